"""The IR op -> ONNX emitter table: one entry per IR op ``to_onnx`` lowers directly.

An emitter ``(cx, node)`` appends the ONNX nodes computing ``node`` and writes each IR output
under its ONNX name (``cx.out(node, i)``). Ops missing here (``Opaque``), or an emitter
raising ``NotLowerable``, make ``to_onnx`` fall back to the torch exporter. Element-wise ops
map one to one; the rest (the opset decides between forms):

- ``Relu6`` -> ``Clip(0, 6)``; ``Silu`` -> ``x * Sigmoid(x)``; ``Gelu`` -> ``Gelu`` from
  opset 20, else ``0.5 x (1 + erf(x / sqrt 2))`` (``tanh`` approximation likewise);
- ``Reduce*`` with ``axes=None`` reduce every axis to a scalar, as torch does;
- ``Select(axis, i)`` -> ``Gather`` with a scalar index; ``Flatten`` -> ``Flatten(axis=1)``
  or a ``Reshape``; ``Expand`` -> ``Expand`` with -1 read as 1 (torch keeps the dim, ONNX
  broadcasts it); ``Pad`` from torch order (last dim first) to ONNX order;
- ``Constant`` -> an initializer (no node), ``Identity``/``Dropout`` -> ``Identity``;
- ``PRelu``, ``Mish``, ``Tile``, ``CumSum``, ``Resize``: ``lower_math``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from natopt.backends.onnx.context import EmitContext, NotLowerable, onnx_dtype
from natopt.backends.onnx.lower_layers import LAYER_EMITTERS
from natopt.backends.onnx.lower_math import MATH_EMITTERS
from natopt.ir import Node

__all__ = ["EMITTERS", "Emitter"]

Emitter = Callable[[EmitContext, Node], None]

_SAME = [
    "Relu",
    "Sigmoid",
    "Tanh",
    "Erf",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Reciprocal",
    "Abs",
    "Not",
    "IsNaN",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
    "Softplus",
    "Softsign",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Max",
    "Min",
    "Where",
    "MatMul",
    "Range",
    "Shape",
    "Identity",
]
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _same(op_type: str, *attr_names: str) -> Emitter:
    def emit(cx: EmitContext, node: Node) -> None:
        attrs = {name: node.attrs[name] for name in attr_names}
        cx.add(op_type, cx.inputs(node), cx.out(node), **attrs)

    return emit


def clip(cx: EmitContext, node: Node, low: float | None = None, high: float | None = None) -> None:
    x = cx.arg(node, 0)
    low = node.attrs.get("min") if low is None else low
    high = node.attrs.get("max") if high is None else high
    bounds = ["" if b is None else cx.scalar(b, x, "clip") for b in (low, high)]
    while bounds and not bounds[-1]:
        bounds.pop()
    cx.add("Clip", [cx.name(x), *bounds], cx.out(node))


def silu(cx: EmitContext, node: Node) -> None:
    x = cx.name(cx.arg(node, 0))
    cx.add("Mul", [x, cx.add("Sigmoid", [x])], cx.out(node))


def hard_swish(cx: EmitContext, node: Node) -> None:
    if cx.opset >= 14:
        cx.add("HardSwish", cx.inputs(node), cx.out(node))
        return
    x = cx.name(cx.arg(node, 0))
    cx.add("Mul", [x, cx.add("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)], cx.out(node))


def gelu(cx: EmitContext, node: Node) -> None:
    x_value = cx.arg(node, 0)
    approximate = node.attrs["approximate"]
    if cx.opset >= 20:
        cx.add("Gelu", [cx.name(x_value)], cx.out(node), approximate=approximate)
        return
    x = cx.name(x_value)
    if approximate == "tanh":
        cube = cx.add("Mul", [cx.add("Mul", [x, x]), x])
        inner = cx.add("Add", [x, cx.add("Mul", [cube, cx.scalar(0.044715, x_value, "c")])])
        k = cx.scalar(math.sqrt(2.0 / math.pi), x_value, "k")
        core = cx.add("Tanh", [cx.add("Mul", [inner, k])])
    else:
        core = cx.add("Erf", [cx.add("Div", [x, cx.scalar(math.sqrt(2.0), x_value, "sqrt2")])])
    one_plus = cx.add("Add", [core, cx.scalar(1.0, x_value, "one")])
    half_x = cx.add("Mul", [x, cx.scalar(0.5, x_value, "half")])
    cx.add("Mul", [half_x, one_plus], cx.out(node))


def _reduce(op_type: str) -> Emitter:
    def emit(cx: EmitContext, node: Node) -> None:
        axes = node.attrs["axes"]
        keepdims = bool(node.attrs["keepdims"]) if axes is not None else False
        x = cx.name(cx.arg(node, 0))
        cx.reduce(op_type, x, None if axes is None else list(axes), keepdims, outputs=cx.out(node))

    return emit


def reshape(cx: EmitContext, node: Node) -> None:
    x, shape_input = cx.arg(node, 0), node.inputs[1:]
    target = cx.name(shape_input[0]) if shape_input else cx.ints(node.attrs["shape"], "shape")
    cx.add("Reshape", [cx.name(x), target], cx.out(node))


def flatten(cx: EmitContext, node: Node) -> None:
    x = cx.arg(node, 0)
    dims = cx.dims(x)
    rank = len(dims)
    start, end = node.attrs["start_dim"] % rank, node.attrs["end_dim"] % rank
    if start == 1 and end == rank - 1:
        cx.add("Flatten", [cx.name(x)], cx.out(node), axis=1)
        return
    tail = [d for d in dims[end + 1 :] if isinstance(d, int)]
    if len(tail) != rank - end - 1:
        raise NotLowerable(f"Flatten {node.name}: dims after end_dim must be static")
    target = [0] * start + [-1] + tail
    cx.add("Reshape", [cx.name(x), cx.ints(target, "shape")], cx.out(node))


def _axes_op(op_type: str) -> Emitter:
    def emit(cx: EmitContext, node: Node) -> None:
        axes = node.attrs["axes"]
        inputs = [cx.name(cx.arg(node, 0))]
        if axes is not None:
            inputs.append(cx.ints(list(axes), "axes"))
        cx.add(op_type, inputs, cx.out(node))

    return emit


def slice_(cx: EmitContext, node: Node) -> None:
    starts = list(node.attrs["starts"])
    steps = list(node.attrs["steps"] or [1] * len(starts))
    inputs = [
        cx.name(cx.arg(node, 0)),
        cx.ints(starts, "starts"),
        cx.ints(node.attrs["ends"], "ends"),
        cx.ints(node.attrs["axes"], "axes"),
        cx.ints(steps, "steps"),
    ]
    cx.add("Slice", inputs, cx.out(node))


def select(cx: EmitContext, node: Node) -> None:
    index = cx.tensor(np.array(node.attrs["index"], dtype=np.int64), "index")
    cx.add("Gather", [cx.name(cx.arg(node, 0)), index], cx.out(node), axis=node.attrs["axis"])


def split(cx: EmitContext, node: Node) -> None:
    outputs = [cx.out(node, i) for i in range(len(node.outputs))]
    sizes = cx.ints(node.attrs["sizes"], "split")
    cx.add("Split", [cx.name(cx.arg(node, 0)), sizes], outputs, axis=node.attrs["axis"])


def expand(cx: EmitContext, node: Node) -> None:
    x, shape_input = cx.arg(node, 0), node.inputs[1:]
    if shape_input:  # a run-time target may hold torch's -1 ("keep"): max(s, 1) is ONNX's 1
        target = cx.add("Max", [cx.name(shape_input[0]), cx.ints([1], "one")])
    else:
        target = cx.ints([1 if s == -1 else s for s in node.attrs["shape"]], "shape")
    cx.add("Expand", [cx.name(x), target], cx.out(node))


def pad(cx: EmitContext, node: Node) -> None:
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    pads = list(node.attrs["pads"])
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pads) // 2):
        begins[rank - 1 - i], ends[rank - 1 - i] = pads[2 * i], pads[2 * i + 1]
    mode = _PAD_MODES[node.attrs["mode"]]
    if mode == "wrap" and cx.opset < 19:
        raise NotLowerable(f"Pad {node.name}: circular padding needs opset 19")
    inputs = [cx.name(x), cx.ints(begins + ends, "pads")]
    if mode == "constant":
        inputs.append(cx.scalar(float(node.attrs["value"]), x, "pad_value"))
    cx.add("Pad", inputs, cx.out(node), mode=mode)


def cast(cx: EmitContext, node: Node) -> None:
    to = onnx_dtype(node.attrs["dtype"])
    cx.add("Cast", [cx.name(cx.arg(node, 0))], cx.out(node), to=to)


def constant(cx: EmitContext, node: Node) -> None:
    name = node.source or node.output.name
    cx.rename(node.output, cx.tensor(node.weights["value"], name))


EMITTERS: dict[str, Emitter] = {
    **{op: _same(op) for op in _SAME},
    "Relu6": lambda cx, node: clip(cx, node, 0.0, 6.0),
    "Clip": clip,
    "LeakyRelu": _same("LeakyRelu", "alpha"),
    "HardSigmoid": _same("HardSigmoid", "alpha", "beta"),
    "Elu": _same("Elu", "alpha"),
    "Celu": _same("Celu", "alpha"),
    "Selu": _same("Selu", "alpha", "gamma"),
    "ThresholdedRelu": _same("ThresholdedRelu", "alpha"),
    "Einsum": _same("Einsum", "equation"),
    "Softmax": _same("Softmax", "axis"),
    "LogSoftmax": _same("LogSoftmax", "axis"),
    "Concat": _same("Concat", "axis"),
    "Gather": _same("Gather", "axis"),
    "GatherElements": _same("GatherElements", "axis"),
    "Transpose": _same("Transpose", "perm"),
    "Gelu": gelu,
    "Silu": silu,
    "HardSwish": hard_swish,
    "ReduceMean": _reduce("ReduceMean"),
    "ReduceSum": _reduce("ReduceSum"),
    "ReduceMax": _reduce("ReduceMax"),
    "ReduceMin": _reduce("ReduceMin"),
    "ReduceL2": _reduce("ReduceL2"),
    "Reshape": reshape,
    "Flatten": flatten,
    "Squeeze": _axes_op("Squeeze"),
    "Unsqueeze": _axes_op("Unsqueeze"),
    "Slice": slice_,
    "Select": select,
    "Split": split,
    "Expand": expand,
    "Pad": pad,
    "Cast": cast,
    "Constant": constant,
    "Dropout": _same("Identity"),
    **LAYER_EMITTERS,
    **MATH_EMITTERS,
}
