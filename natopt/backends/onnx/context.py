"""The state an ONNX emitter sees while an IR graph is lowered to ONNX nodes.

Every IR value gets one ONNX name (its IR name, which the graph keeps unique; graph outputs
take the names a frontend recorded in ``graph.meta["output_names"]``); weights become
initializers named ``<source>.<weight>`` (``layer1.0.conv2.weight``) when the node's source
is known, ``<node>.<weight>`` otherwise; helper constants (shapes, axes, scalars) become
small initializers. An emitter that cannot express its node raises ``NotLowerable``, which
makes ``to_onnx`` fall back to the torch exporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from onnx import NodeProto, TensorProto, helper, numpy_helper

from natopt.ir import Graph, Node, Value
from natopt.ir.types import Dim

__all__ = ["EmitContext", "NotLowerable", "onnx_dtype", "INT64_MAX", "OUTPUT_NAMES"]

INT64_MAX = np.iinfo(np.int64).max
OUTPUT_NAMES = "output_names"  # graph.meta key a frontend may set: names of the graph outputs


class NotLowerable(Exception):
    """An IR node has no ONNX form here (the message says why)."""


def onnx_dtype(dtype: str) -> int:
    """The ONNX element type of an IR dtype name (``"float32"`` -> ``TensorProto.FLOAT``)."""
    if dtype == "bfloat16":
        return TensorProto.BFLOAT16
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


@dataclass(slots=True)
class EmitContext:
    """Collects the ONNX nodes and initializers of one graph."""

    graph: Graph
    opset: int
    nodes: list[NodeProto] = field(default_factory=list)
    initializers: list[TensorProto] = field(default_factory=list)
    _names: dict[Value, str] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)
    _counter: int = 0

    def __post_init__(self) -> None:
        """Inputs keep their names; outputs take ``graph.meta["output_names"]`` when given."""
        for value in self.graph.inputs:
            self._names[value] = self._claim(value.name)
        wanted = self.graph.meta.get(OUTPUT_NAMES)
        if isinstance(wanted, list) and len(wanted) == len(self.graph.outputs):
            for value, name in zip(self.graph.outputs, wanted, strict=True):
                if value not in self._names and name not in self._taken:
                    self._names[value] = self._claim(name)
        for value in self.graph.values():
            if value not in self._names:
                self._names[value] = self._claim(value.name)

    def _claim(self, base: str) -> str:
        name = base
        while name in self._taken:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._taken.add(name)
        return name

    # ---- names ------------------------------------------------------------------------
    def name(self, value: Value | None) -> str:
        """The ONNX name of ``value`` (``""`` for an absent optional input)."""
        return "" if value is None else self._names[value]

    def rename(self, value: Value, name: str) -> None:
        """``value`` is known under ``name`` (an initializer standing for a Constant)."""
        self._names[value] = name

    def arg(self, node: Node, index: int) -> Value:
        """Input ``index`` of ``node``, which must be present."""
        value = node.inputs[index] if index < len(node.inputs) else None
        if value is None:
            raise NotLowerable(f"{node.op} {node.name}: input {index} is missing")
        return value

    def inputs(self, node: Node) -> list[str]:
        return [self.name(v) for v in node.inputs]

    def out(self, node: Node, index: int = 0) -> str:
        return self.name(node.outputs[index])

    def fresh(self, hint: str) -> str:
        return self._claim(hint)

    # ---- building ---------------------------------------------------------------------
    def add(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | str | None = None,
        *,
        hint: str = "",
        **attrs: Any,
    ) -> str:
        """Append an ONNX node; returns its (first) output name, fresh unless ``outputs``."""
        if outputs is None:
            outputs = [self.fresh(f"{hint or op_type}.out")]
        elif isinstance(outputs, str):
            outputs = [outputs]
        name = self.fresh(f"{hint or outputs[0]}.{op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name, **attrs))
        return outputs[0]

    def tensor(self, array: np.ndarray | torch.Tensor, name: str) -> str:
        """An initializer holding ``array`` under a unique name based on ``name``."""
        name = self._claim(name)
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu()
            if array.dtype == torch.bfloat16:
                raise NotLowerable(f"bfloat16 tensor {name} has no numpy form")
            array = array.numpy()
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, node: Node, key: str, array: np.ndarray | torch.Tensor | None = None) -> str:
        """Node weight ``key`` (or ``array`` standing for it) as ``<source>.<key>``."""
        tensor = node.weights[key] if array is None else array
        return self.tensor(tensor, f"{node.source or node.name}.{key}")

    def ints(self, values: Sequence[int], hint: str) -> str:
        """A small int64 initializer (shape, axes, pads)."""
        clamped = [max(min(int(v), INT64_MAX), -INT64_MAX - 1) for v in values]
        return self.tensor(np.array(clamped, dtype=np.int64), hint)

    def scalar(self, value: float, like: Value, hint: str) -> str:
        """A 0-d initializer with ``like``'s dtype (ONNX does not promote types)."""
        return self.tensor(np.array(value, dtype=_np_dtype(like.dtype)), hint)

    def reduce(
        self, op_type: str, x: str, axes: Sequence[int] | None, keepdims: bool, **kw: Any
    ) -> str:
        """``Reduce*`` over ``axes`` (``None``: all); axes are an input from opset 18 (13 for
        ReduceSum), an attribute before."""
        if axes is None:
            return self.add(op_type, [x], keepdims=int(keepdims), **kw)
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.add(op_type, [x, self.ints(axes, "axes")], keepdims=int(keepdims), **kw)
        return self.add(op_type, [x], axes=list(axes), keepdims=int(keepdims), **kw)

    def rank(self, value: Value) -> int:
        if value.shape is None:
            raise NotLowerable(f"{value.name} has no shape")
        return len(value.shape)

    def dims(self, value: Value) -> tuple[Dim, ...]:
        if value.shape is None:
            raise NotLowerable(f"{value.name} has no shape")
        return tuple(value.shape)


def _np_dtype(dtype: str) -> np.dtype:
    return np.dtype("float32" if dtype == "bfloat16" else dtype)
