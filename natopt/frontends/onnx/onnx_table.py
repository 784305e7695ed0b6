"""The ONNX op -> IR adapter table: one entry per ONNX op type the frontend lifts.

An adapter ``(cx, node) -> Value | list[Value]`` adds the IR node(s) an ONNX node lifts to
and returns the values of its outputs (see ``context.LiftContext``). Element-wise ops and
activations map one to one (``Dropout`` and ``Identity`` -> ``Identity``; ``Max``/``Min`` of
any number of inputs); the others live in ``onnx_layers`` (weights, normalisation), ``onnx_pool``,
``onnx_tensor`` (data movement), ``onnx_math`` (variadic sums, PRelu, Tile, CumSum, Range,
Einsum) and ``onnx_resize`` (Resize):

- ``Clip(x, 0, 6)`` -> ``Relu6``, other constant bounds -> ``Clip(min, max)``;
- ``Add(Linear(x), b)`` with a constant ``[out]`` bias and a bias-free ``Linear`` read only
  there -> the ``Linear`` takes ``b`` as its bias (``MatMul`` + ``Add`` as exporters write
  a rank-3 ``nn.Linear``);
- ``Reduce*``: axes from the attribute or the input; no axes reduces every axis;
  ``ArgMax``/``ArgMin`` keep ``axis``, ``keepdims`` and ``select_last_index``.

``Constant`` and everything computable before run time never reach the table (``fold``).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from natopt.frontends.onnx.context import Adapter, LiftContext, as_tensor, node_attrs
from natopt.frontends.onnx.onnx_layers import LAYER_ADAPTERS
from natopt.frontends.onnx.onnx_math import MATH_ADAPTERS
from natopt.frontends.onnx.onnx_pool import POOL_ADAPTERS
from natopt.frontends.onnx.onnx_resize import RESIZE_ADAPTERS
from natopt.frontends.onnx.onnx_tensor import TENSOR_ADAPTERS
from natopt.ir import Value

__all__ = ["ONNX_ADAPTERS", "supported_ops"]

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
    "HardSwish",
    "Softplus",
    "Softsign",
    "Mish",
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
    "Where",
    "Max",
    "Min",
    "Identity",
]

# ONNX attribute -> (IR attribute, ONNX default)
_WITH_ATTRS: dict[str, dict[str, tuple[str, object]]] = {
    "LeakyRelu": {"alpha": ("alpha", 0.01)},
    "HardSigmoid": {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)},
    "Elu": {"alpha": ("alpha", 1.0)},
    "Celu": {"alpha": ("alpha", 1.0)},
    "Selu": {
        "alpha": ("alpha", 1.67326319217681884765625),
        "gamma": ("gamma", 1.05070102214813232421875),
    },
    "ThresholdedRelu": {"alpha": ("alpha", 1.0)},
    "Gelu": {"approximate": ("approximate", "none")},
    "Softmax": {"axis": ("axis", -1)},
    "LogSoftmax": {"axis": ("axis", -1)},
}


def _direct(op: str, attr_map: dict[str, tuple[str, object]] | None = None) -> Adapter:
    def adapt(cx: LiftContext, node: NodeProto) -> Value:
        given = node_attrs(node)
        attrs = {ir: given.get(name, default) for name, (ir, default) in (attr_map or {}).items()}
        return cx.emit(node, op, [cx.value(name) for name in node.input if name], attrs).output

    return adapt


def clip(cx: LiftContext, node: NodeProto) -> Value:
    low, high = cx.scalar(node, 1, None), cx.scalar(node, 2, None)
    x = cx.value(node.input[0])
    if low == 0.0 and high == 6.0:
        return cx.emit(node, "Relu6", [x]).output
    return cx.emit(node, "Clip", [x], {"min": low, "max": high}).output


def add(cx: LiftContext, node: NodeProto) -> Value:
    for i in (0, 1):
        product = cx.values.get(node.input[i])
        linear = None if product is None else product.producer
        bias = cx.const(node.input[1 - i])
        if (
            product is not None
            and linear is not None
            and linear.op == "Linear"
            and "bias" not in linear.weights
            and cx.single_use(node.input[i])
            and bias is not None
            and bias.dtype.kind == "f"
            and _is_row_bias(bias, linear.weights["weight"].shape[0], len(product.shape or ()))
        ):
            linear.weights["bias"] = as_tensor(bias.reshape(-1))
            return product
    return cx.emit(node, "Add", [cx.value(name) for name in node.input]).output


def _is_row_bias(bias: np.ndarray, out: int, rank: int) -> bool:
    return bias.size == out and bias.shape[-1:] == (out,) and bias.ndim <= rank


def dropout(cx: LiftContext, node: NodeProto) -> Value:
    """Inference semantics: the identity (its mask output must be unused)."""
    return cx.emit(node, "Identity", [cx.value(node.input[0])]).output


def _arg(op: str) -> Adapter:
    def adapt(cx: LiftContext, node: NodeProto) -> Value:
        attrs = node_attrs(node)
        x = cx.value(node.input[0])
        ir_attrs = {
            "axis": int(attrs.get("axis", 0)) % len(x.shape or (1,)),
            "keepdims": bool(attrs.get("keepdims", 1)),
            "select_last_index": bool(attrs.get("select_last_index", 0)),
        }
        return cx.emit(node, op, [x], ir_attrs).output

    return adapt


def _reduce(op: str) -> Adapter:
    def adapt(cx: LiftContext, node: NodeProto) -> Value:
        attrs = node_attrs(node)
        x = cx.value(node.input[0])
        rank = len(x.shape or ())
        axes = cx.axes(node, 1)
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return cx.emit(node, "Identity", [x]).output
            axes = tuple(range(rank))
        ir_attrs = {
            "axes": tuple(a % rank for a in axes),
            "keepdims": bool(attrs.get("keepdims", 1)),
        }
        return cx.emit(node, op, [x], ir_attrs).output

    return adapt


ONNX_ADAPTERS: dict[str, Adapter] = {
    **{op: _direct(op) for op in _SAME},
    **{op: _direct(op, attrs) for op, attrs in _WITH_ATTRS.items()},
    "Dropout": dropout,
    "Clip": clip,
    "Add": add,
    "ReduceMean": _reduce("ReduceMean"),
    "ReduceSum": _reduce("ReduceSum"),
    "ReduceMax": _reduce("ReduceMax"),
    "ReduceMin": _reduce("ReduceMin"),
    "ReduceL2": _reduce("ReduceL2"),
    "ArgMax": _arg("ArgMax"),
    "ArgMin": _arg("ArgMin"),
    **LAYER_ADAPTERS,
    **POOL_ADAPTERS,
    **TENSOR_ADAPTERS,
    **MATH_ADAPTERS,
    **RESIZE_ADAPTERS,
}


def supported_ops() -> list[str]:
    """Every ONNX op type the frontend lifts (``Constant`` is folded, never an IR node)."""
    return sorted({*ONNX_ADAPTERS, "Constant"})
