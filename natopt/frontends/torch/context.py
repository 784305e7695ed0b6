"""The state an adapter sees while one fx graph is lifted into an IR graph.

An fx value lifts to one of: an IR ``Value`` (an activation), a ``ParamRef`` (a parameter,
buffer or lifted constant of the model, not yet placed in the graph), a ``SymDim`` (a
symbolic size such as the dynamic batch) or a plain Python value. Adapters ask the context
for what they need: ``value`` turns anything tensor-like into an activation (a ``ParamRef``
becomes one ``Constant`` node, a Python number a scalar ``Constant``), ``param`` insists on a
stored tensor (a convolution weight), and ``NotLiftable`` tells the walker to keep the fx
node as an ``Opaque`` node instead.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from natopt.ir import Graph, Node, Value
from natopt.ir.infer import ShapeInferenceError, infer_node
from natopt.ir.types import from_torch_dtype, to_torch_dtype

__all__ = [
    "Args",
    "LiftContext",
    "NotLiftable",
    "ParamRef",
    "SymDim",
    "aten_op",
    "aten_ops",
    "first_arg",
    "module_of",
]


@dataclass(slots=True, eq=False)
class ParamRef:
    """A stored tensor of the model: ``path`` is its state-dict key (``layer1.0.conv2.weight``).

    ``trainable`` is true for parameters; buffers and lifted constants are not.
    """

    tensor: torch.Tensor
    path: str
    trainable: bool


@dataclass(frozen=True, slots=True)
class SymDim:
    """A symbolic size in IR form: ``"batch"`` or ``"batch*197"``."""

    dim: str


class NotLiftable(Exception):
    """Raised by an adapter when its fx node has no faithful IR form; it becomes ``Opaque``."""


def module_of(path: str) -> str | None:
    """``"layer1.0.conv2.weight"`` -> ``"layer1.0.conv2"`` (``None`` for a top-level tensor)."""
    return path.rpartition(".")[0] or None


@dataclass(slots=True)
class LiftContext:
    """Builds IR nodes for the fx node being lifted and caches per-tensor constants.

    ``fx_node`` is the node being lifted and ``example`` its example result (a meta or fake
    tensor, or a tuple of them).
    """

    graph: Graph
    dim_sources: dict[str, tuple[Value, int]] = field(default_factory=dict)
    _constants: dict[ParamRef, Value] = field(default_factory=dict)
    _dim_tensors: dict[str, Value] = field(default_factory=dict)
    fx_node: fx.Node | None = None
    example: Any = None
    name_hint: str = "node"

    # ---- building ---------------------------------------------------------------------
    def add(
        self,
        op: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        weights: dict[str, torch.Tensor] | None = None,
        *,
        source: str | None = None,
        num_outputs: int | None = None,
    ) -> Node:
        """Add a node named after the fx node being lifted and infer its output shapes."""
        node = self.graph.add_node(
            op,
            inputs,
            attrs,
            weights,
            name=self.name_hint,
            source=source,
            num_outputs=num_outputs,
        )
        if all(v.shape is not None for v in node.input_values):
            with contextlib.suppress(ShapeInferenceError):
                infer_node(node)
        return node

    def constant(self, tensor: torch.Tensor, *, trainable: bool = False, source: str | None = None):
        """A ``Constant`` node holding ``tensor``; its output shape is the tensor's."""
        node = self.graph.add_node(
            "Constant",
            (),
            weights={"value": tensor.detach()},
            name=f"{self.name_hint}_const",
            source=source,
        )
        node.meta["trainable"] = trainable
        node.output.shape = tuple(tensor.shape)
        node.output.dtype = from_torch_dtype(tensor.dtype)
        return node.output

    # ---- reading arguments -------------------------------------------------------------
    def value(self, x: Any, like: Value | None = None) -> Value:
        """``x`` as an activation: a Value as is, a stored tensor or a number as a Constant.

        A Python number takes the dtype torch would give it next to ``like`` (a 0-d tensor of
        the default dtype of its kind promotes exactly as the Python scalar does).
        """
        if isinstance(x, Value):
            return x
        if isinstance(x, ParamRef):
            if x not in self._constants:
                self._constants[x] = self.constant(
                    x.tensor, trainable=x.trainable, source=module_of(x.path) or x.path
                )
            return self._constants[x]
        if isinstance(x, torch.Tensor):
            return self.constant(x)
        if isinstance(x, (bool, int, float)):
            return self.constant(_scalar_tensor(x, like))
        if isinstance(x, SymDim):
            raise NotLiftable(f"symbolic size {x.dim} used as a tensor")
        raise NotLiftable(f"argument {x!r} is not a tensor")

    def param(self, x: Any) -> ParamRef | None:
        """``x`` as a stored tensor (``None`` stays ``None``); an activation is NotLiftable."""
        if x is None or isinstance(x, ParamRef):
            return x
        raise NotLiftable("expects a stored weight, got a computed tensor")

    def require_first_output_only(self) -> None:
        """The IR op gives only the first result of a multi-result op: refuse if others are read."""
        node = self.fx_node
        if node is None or not isinstance(self.example, (tuple, list)):
            return
        for user in node.users:
            if user.target is not operator.getitem or (user.args[1] != 0 and user.users):
                raise NotLiftable("a second result of this op is used")

    # ---- symbolic sizes ----------------------------------------------------------------
    def dim_tensor(self, dim: int | SymDim) -> Value:
        """A 1-element int64 tensor holding ``dim`` at run time (``Shape`` of a graph input)."""
        if isinstance(dim, int):
            return self.constant(torch.tensor([dim], dtype=torch.int64))
        if dim.dim not in self._dim_tensors:
            symbol, _, factor = dim.dim.partition("*")
            if symbol not in self.dim_sources:
                raise NotLiftable(f"no graph input carries the symbolic size {symbol}")
            source, axis = self.dim_sources[symbol]
            shape = self.add("Shape", [source]).output
            size = self.add(
                "Slice", [shape], {"starts": (axis,), "ends": (axis + 1,), "axes": (0,)}
            )
            out = size.output
            if factor:
                out = self.add("Mul", [out, self.constant(torch.tensor([int(factor)]))]).output
            self._dim_tensors[dim.dim] = out
        return self._dim_tensors[dim.dim]

    def shape_tensor(self, dims: Sequence[int | SymDim]) -> Value:
        """An int64 vector equal to ``dims`` at run time, for Reshape/Expand targets."""
        parts = [self.dim_tensor(d) for d in dims]
        if len(parts) == 1:
            return parts[0]
        return self.add("Concat", parts, {"axis": 0}).output


def _scalar_tensor(x: bool | int | float, like: Value | None) -> torch.Tensor:
    if isinstance(x, bool):
        return torch.tensor(x)
    if like is not None and like.dtype.startswith(("float", "bfloat")):
        return torch.tensor(x, dtype=to_torch_dtype(like.dtype))
    return torch.tensor(x)


Args = dict[str, Any]
"""An fx node's arguments bound by schema name (what an adapter receives)."""


def first_arg(a: Args) -> Any:
    """The first argument, whatever the schema calls it (``self`` or ``input``)."""
    return next(iter(a.values()))


def aten_op(name: str) -> Any:
    """``"add.Tensor"`` -> ``torch.ops.aten.add.Tensor``."""
    return aten_ops(name)[0]


def aten_ops(*names: str) -> list[Any]:
    """``"add.Tensor"`` -> ``torch.ops.aten.add.Tensor`` (no overload name: ``.default``)."""
    out = []
    for name in names:
        packet, _, overload = name.partition(".")
        out.append(getattr(getattr(torch.ops.aten, packet), overload or "default"))
    return out
