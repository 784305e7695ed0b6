"""The state an ONNX adapter sees while a model is lifted into an IR graph.

An ONNX value lifts to either an IR ``Value`` (an activation) or a *known* array: a numeric
numpy array (an initializer, a ``Constant``, anything folded from them) or an object array of
IR dims (ints and symbols such as ``"batch"``) computed from shapes, e.g.
``Concat(Gather(Shape(x), 0), [-1])`` -> ``["batch", -1]``. Adapters read known arrays as
weights or attributes; ``value`` turns a known array into an activation only where one is
consumed as a tensor (a ``Constant`` node, or ``Shape``/``Gather``/``Concat`` nodes for dims
known only at run time).

Units are named like the torch frontend names them: ``source`` is the module path of a
node's weights, taken from the weight initializer's name (``layer1.0.conv2.weight`` ->
``layer1.0.conv2``), else from the exporter's scope in the node name
(``/layer1/layer1.0/conv2/Conv``) or its ``pkg.torch.onnx.name_scopes`` metadata.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from onnx import NodeProto, TensorProto, helper, numpy_helper

from natopt.errors import FrontendError
from natopt.frontends.onnx.load import LoadedModel
from natopt.ir import Graph, Node, Value
from natopt.ir.infer import ShapeInferenceError, infer_node
from natopt.ir.types import Dim, Shape

__all__ = ["Adapter", "LiftContext", "node_attrs", "module_path", "scope_path", "as_tensor"]

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_TEMP = re.compile(r"_?val_\d+|_?v_\d+")  # exporter temporaries, not module paths
_WEIGHT_SLOTS = frozenset({"weight", "bias", "running_mean", "running_var", "scale"})


def node_attrs(node: NodeProto) -> dict[str, Any]:
    """An ONNX node's attributes as Python values (strings decoded)."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[attr.name] = value
    return out


def module_path(name: str) -> str | None:
    """``name`` when it reads like a module path (``blocks.0.attn``), else ``None``."""
    if _PATH.fullmatch(name) and not _TEMP.fullmatch(name):
        return name
    return None


def scope_path(node: NodeProto) -> str | None:
    """The module an exporter recorded for ``node``.

    Legacy exporter names: ``/features/features.1/block/block.0/Conv`` -> ``features.1.block.0``
    (a segment that starts with the previous one plus ``.`` extends it). Dynamo exporter:
    the last module entry of ``pkg.torch.onnx.name_scopes``.
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                break
            return module_path(scopes[-2]) if len(scopes) >= 2 else None
    if not node.name.startswith("/"):
        return None
    path, previous = "", ""
    for segment in node.name.strip("/").split("/")[:-1]:
        if previous and segment.startswith(previous + "."):
            path += segment[len(previous) :]
        else:
            path = f"{path}.{segment}" if path else segment
        previous = segment
    return module_path(path) if path else None


@dataclass(slots=True)
class LiftContext:
    """What the walker and the adapters share while one ONNX graph is lifted."""

    graph: Graph
    loaded: LoadedModel
    initializers: dict[str, TensorProto]
    use_counts: dict[str, int]
    values: dict[str, Value] = field(default_factory=dict)
    known: dict[str, np.ndarray] = field(default_factory=dict)
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    symbol_sources: dict[str, tuple[Value, int]] = field(default_factory=dict)
    _materialized: dict[str, Value] = field(default_factory=dict)
    _shape_tensors: dict[Value, Value] = field(default_factory=dict)

    @property
    def opset(self) -> int:
        return self.loaded.opset

    def single_use(self, name: str) -> bool:
        """Whether exactly one node reads ``name`` and it is not a graph output."""
        return self.use_counts.get(name, 0) == 1

    def where(self, node: NodeProto) -> str:
        return f"{self.loaded.label}: node {node.name or '(unnamed)'} ({node.op_type})"

    def fail(self, node: NodeProto, message: str) -> FrontendError:
        return FrontendError(f"{self.where(node)}: {message}")

    # ---- known arrays -----------------------------------------------------------------
    def array(self, name: str) -> np.ndarray | None:
        """The known array behind ``name`` (numeric or of dims), ``None`` for activations."""
        if name in self.known:
            return self.known[name]
        tensor = self.initializers.get(name)
        if tensor is None:
            return None
        self.known[name] = numpy_helper.to_array(tensor)
        self.origins.setdefault(name, (name,))
        return self.known[name]

    def const(self, name: str) -> np.ndarray | None:
        """A numeric known array, ``None`` for activations and dims known only symbolically."""
        array = self.array(name) if name else None
        return None if array is None or array.dtype == object else array

    def ints(self, node: NodeProto, index: int, what: str) -> tuple[int, ...] | None:
        """Input ``index`` as a tuple of ints (``None`` when the input is absent)."""
        if index >= len(node.input) or not node.input[index]:
            return None
        array = self.const(node.input[index])
        if array is None:
            raise self.fail(node, f"{what} must be a constant (static) int tensor")
        return tuple(int(v) for v in array.reshape(-1))

    def axes(self, node: NodeProto, index: int) -> tuple[int, ...] | None:
        """Axes from input ``index`` (newer opsets) or from the ``axes`` attribute."""
        axes = self.ints(node, index, "axes")
        if axes is None and "axes" in node_attrs(node):
            axes = tuple(node_attrs(node)["axes"])
        return axes

    def scalar(self, node: NodeProto, index: int, default: float | None) -> float | None:
        if index >= len(node.input) or not node.input[index]:
            return default
        array = self.const(node.input[index])
        if array is None or array.size != 1:
            raise self.fail(node, f"input {index} must be a constant scalar")
        return float(array.reshape(-1)[0])

    def bind(self, name: str, array: np.ndarray, origins: Iterable[str] = ()) -> None:
        """Record ``name`` as known (object arrays of plain ints become int64 arrays)."""
        if array.dtype == object and all(isinstance(d, int) for d in array.reshape(-1)):
            array = array.astype(np.int64)
        self.known[name] = array
        self.origins[name] = (name, *origins)

    # ---- activations ------------------------------------------------------------------
    def value(self, name: str) -> Value:
        """The activation for ``name``; a known array becomes a node the first time it is used."""
        if name in self.values:
            return self.values[name]
        if name in self._materialized:
            return self._materialized[name]
        array = self.array(name)
        if array is None:
            raise FrontendError(f"{self.loaded.label}: value {name!r} is used before it is made")
        if array.dtype == object:
            value = self._dims_tensor(name, array)
        else:
            value = self.constant(array, name, self.origins.get(name, (name,)))
        self._materialized[name] = value
        return value

    def constant(self, array: np.ndarray, name: str, origins: Iterable[str] = ()) -> Value:
        """A ``Constant`` node; one whose ``origins`` name a parameter (``pos_embed``) is
        trainable and takes that name as its source."""
        source = self.source_from_names(origins, keep_slot=True)
        node = self.graph.add_node(
            "Constant",
            weights={"value": as_tensor(array)},
            name=name,
            source=source,
        )
        if source is not None and array.dtype.kind == "f":
            node.meta["trainable"] = True
        infer_node(node)
        return node.output

    def _dims_tensor(self, name: str, dims: np.ndarray) -> Value:
        """An int64 tensor equal to ``dims`` at run time: Shape -> Gather -> Concat."""
        parts: list[Value] = []
        run: list[int] = []
        for dim in [*dims.reshape(-1).tolist(), None]:
            if isinstance(dim, int):
                run.append(dim)
                continue
            if run:
                parts.append(self.constant(np.array(run, dtype=np.int64), f"{name}.const"))
                run = []
            if dim is not None:
                parts.append(self._dim_tensor(name, dim))
        if dims.ndim == 0:
            return self._add("Squeeze", [parts[0]], {"axes": (0,)}, name=name).output
        if len(parts) == 1:
            return parts[0]
        return self._add("Concat", parts, {"axis": 0}, name=name).output

    def _dim_tensor(self, name: str, dim: str) -> Value:
        """A one-element int64 tensor holding the run-time size of the symbol ``dim``."""
        symbol, _, factor = dim.partition("*")
        found = self.symbol_sources.get(dim) or self.symbol_sources.get(symbol)
        if found is None:
            raise FrontendError(
                f"{self.loaded.label}: no tensor carries the dim {dim!r} needed by {name!r}"
            )
        source, axis = found
        shape = self._shape_tensors.get(source)
        if shape is None:
            shape = self._add("Shape", [source], name=f"{name}.shape").output
            self._shape_tensors[source] = shape
        index = self.constant(np.array([axis], dtype=np.int64), f"{name}.axis")
        part = self._add("Gather", [shape, index], {"axis": 0}, name=f"{name}.dim").output
        if dim not in self.symbol_sources and factor:
            k = self.constant(np.array([int(factor)], dtype=np.int64), f"{name}.factor")
            part = self._add("Mul", [part, k], name=f"{name}.mul").output
        return part

    def _add(self, op: str, inputs: Sequence[Value], attrs: dict | None = None, *, name: str):
        node = self.graph.add_node(op, inputs, attrs, name=name)
        infer_node(node)
        return node

    def note_dims(self, value: Value) -> None:
        """Remember ``value`` as a run-time source of each of its symbolic dims."""
        for axis, dim in enumerate(value.shape or ()):
            if isinstance(dim, str):
                self.symbol_sources.setdefault(dim, (value, axis))

    # ---- nodes ------------------------------------------------------------------------
    def emit(
        self,
        node: NodeProto,
        op: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        weights: Mapping[str, np.ndarray | torch.Tensor] | None = None,
        *,
        source: str | None = None,
        suffix: str = "",
        shapes: Sequence[Shape] | None = None,
        num_outputs: int | None = None,
    ) -> Node:
        """Add the IR node that ``node`` (ONNX) lifts to and infer its output shapes.

        Where the op cannot run on meta tensors (a run-time shape tensor), the output shapes
        come from ``shapes`` or else (for the node itself, not a helper with a ``suffix``) from
        ONNX shape inference of ``node``'s outputs.
        """
        tensors = {k: as_tensor(w) for k, w in (weights or {}).items()}
        try:
            ir_node = self.graph.add_node(
                op,
                inputs,
                attrs,
                tensors,
                name=(node.name or node.op_type.lower()) + suffix,
                source=source,
                num_outputs=num_outputs,
            )
        except ValueError as exc:
            raise self.fail(node, str(exc)) from None
        try:
            infer_node(ir_node)
        except ShapeInferenceError as exc:
            known: Sequence[Sequence[Dim | None] | None] | None = shapes
            if known is None and not suffix:
                known = [self.loaded.shapes.get(n) for n in node.output[: len(ir_node.outputs)]]
            self._set_shapes(node, ir_node, known, exc)
        return ir_node

    def _set_shapes(
        self,
        node: NodeProto,
        ir_node: Node,
        shapes: Sequence[Sequence[Dim | None] | None] | None,
        exc: Exception,
    ) -> None:
        if (
            shapes is None
            or len(shapes) != len(ir_node.outputs)
            or any(s is None or any(d is None for d in s) for s in shapes)
        ):
            raise self.fail(node, f"cannot infer its output shapes ({exc})")
        for value, shape, name in zip(ir_node.outputs, shapes, node.output, strict=False):
            value.shape = tuple(shape)  # type: ignore[arg-type]
            value.dtype = self.loaded.dtypes.get(name, value.dtype)

    # ---- naming -----------------------------------------------------------------------
    def source_from_names(self, names: Iterable[str], *, keep_slot: bool = False) -> str | None:
        """The first module-path-like name; its last part dropped if it names a weight slot."""
        for name in names:
            path = module_path(name)
            if path is None:
                continue
            head, _, last = path.rpartition(".")
            return head if head and last in _WEIGHT_SLOTS and not keep_slot else path
        return None

    def source(self, node: NodeProto, weight: str, *others: str) -> str | None:
        """The module path of ``node``'s weights (see the module docstring).

        The main ``weight``'s names come first, then the exporter's scope, then the other
        weights' names (an exporter may share one zero bias between layers under one name).
        """
        return (
            self.source_from_names(self.origins.get(weight, (weight,)))
            or scope_path(node)
            or self.source_from_names(n for o in others if o for n in self.origins.get(o, (o,)))
        )


Adapter = Callable[[LiftContext, NodeProto], "Value | list[Value]"]
"""An ONNX node's adapter: adds its IR node(s), returns the values of its outputs."""


def as_tensor(weight: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A torch tensor owning a contiguous copy of ``weight`` (numpy arrays may be read-only)."""
    if isinstance(weight, torch.Tensor):
        return weight
    return torch.from_numpy(np.array(weight, order="C", copy=True))
