"""Adapters for element-wise ATen ops: activations, arithmetic, comparisons, reductions.

In-place variants (``relu_``, ``add_``) share the adapter of the out-of-place op; the walker
makes later reads of the mutated tensor see the new value. Python numbers become scalar
``Constant`` nodes of the dtype torch would promote them to, e.g.
``aten.mul.Tensor(x, 0.5)`` -> ``Mul(x, Constant(0.5))``.
"""

from __future__ import annotations

from typing import Any

from natopt.frontends.torch.context import Args, LiftContext, NotLiftable, aten_ops, first_arg
from natopt.ir import Node, Value

__all__ = ["ELEMENTWISE_ADAPTERS"]


def unary(op: str, **attrs: Any):
    """An adapter lifting the op's first argument through the attribute-free IR ``op``."""

    def adapter(cx: LiftContext, a: Args) -> Node:
        return cx.add(op, [cx.value(first_arg(a))], attrs)

    adapter.__name__ = f"unary_{op}"
    return adapter


def gelu(cx: LiftContext, a: Args) -> Node:
    return cx.add("Gelu", [cx.value(a["self"])], {"approximate": a["approximate"]})


def leaky_relu(cx: LiftContext, a: Args) -> Node:
    return cx.add("LeakyRelu", [cx.value(a["self"])], {"alpha": float(a["negative_slope"])})


def hardtanh(cx: LiftContext, a: Args) -> Node:
    """``hardtanh(x, 0, 6)`` -> Relu6; any other bounds -> Clip."""
    x = cx.value(a["self"])
    low, high = a["min_val"], a["max_val"]
    if (low, high) == (0, 6):
        return cx.add("Relu6", [x])
    return cx.add("Clip", [x], {"min": float(low), "max": float(high)})


def clamp(cx: LiftContext, a: Args) -> Node:
    low, high = a.get("min"), a.get("max")
    if any(not isinstance(b, (int, float, type(None))) for b in (low, high)):
        raise NotLiftable("clamp bounds are tensors")
    return cx.add("Clip", [cx.value(a["self"])], {"min": low, "max": high})


def softmax(op: str):
    def adapter(cx: LiftContext, a: Args) -> Node:
        if a.get("dtype") is not None or a.get("half_to_float", False):
            raise NotLiftable("softmax with a dtype change")
        if a.get("dim") is None:
            raise NotLiftable("softmax without a dim")
        return cx.add(op, [cx.value(a["self"])], {"axis": int(a["dim"])})

    adapter.__name__ = f"softmax_{op}"
    return adapter


def rsqrt(cx: LiftContext, a: Args) -> Node:
    """``rsqrt(x)`` -> ``Reciprocal(Sqrt(x))``."""
    root = cx.add("Sqrt", [cx.value(a["self"])]).output
    return cx.add("Reciprocal", [root])


def _operands(cx: LiftContext, lhs: Any, rhs: Any) -> tuple[Value, Value]:
    """Both operands as Values; a Python number takes its dtype from the other operand."""
    if isinstance(lhs, (int, float, bool)) and not isinstance(rhs, (int, float, bool)):
        right = cx.value(rhs)
        return cx.value(lhs, like=right), right
    left = cx.value(lhs)
    return left, cx.value(rhs, like=left)


def _scaled(cx: LiftContext, value: Any, alpha: Any) -> Any:
    """``alpha * value`` for the ``alpha`` argument of add/sub (no node when alpha is 1)."""
    if alpha == 1:
        return value
    if isinstance(value, (int, float)):
        return value * alpha
    v = cx.value(value)
    return cx.add("Mul", [v, cx.value(alpha, like=v)]).output


def binary(op: str, lhs: str = "self", rhs: str = "other"):
    """An adapter for ``op(lhs, rhs)``; ``alpha`` (add/sub) scales the right operand."""

    def adapter(cx: LiftContext, a: Args) -> Node:
        if a.get("rounding_mode") is not None:
            raise NotLiftable("division with a rounding mode")
        right = _scaled(cx, a[rhs], a.get("alpha", 1))
        return cx.add(op, list(_operands(cx, a[lhs], right)))

    adapter.__name__ = f"binary_{op}"
    return adapter


def rsub(cx: LiftContext, a: Args) -> Node:
    """``rsub(x, y, alpha)`` = ``y - alpha * x``."""
    scaled = _scaled(cx, a["self"], a["alpha"])
    return cx.add("Sub", list(_operands(cx, a["other"], scaled)))


def where(cx: LiftContext, a: Args) -> Node:
    condition = cx.value(a["condition"])
    left, right = _operands(cx, a["self"], a["other"])
    return cx.add("Where", [condition, left, right])


def reduce(op: str):
    """``mean.dim(x, dims, keepdim)`` -> ``ReduceMean(axes=dims, keepdims)``; no dims: all."""

    def adapter(cx: LiftContext, a: Args) -> Node:
        if a.get("dtype") is not None:
            raise NotLiftable("reduction with a dtype change")
        x = cx.value(a["self"])
        dims = a.get("dim")
        if isinstance(dims, int):
            dims = [dims]
        if not dims:
            if x.shape is None:
                raise NotLiftable("reduction over all dims of a tensor of unknown rank")
            dims = range(len(x.shape))
        attrs = {"axes": tuple(int(d) for d in dims), "keepdims": bool(a.get("keepdim", False))}
        return cx.add(op, [x], attrs)

    adapter.__name__ = f"reduce_{op}"
    return adapter


_UNARY = {
    "Relu": ("relu", "relu_"),
    "Sigmoid": ("sigmoid", "sigmoid_"),
    "Tanh": ("tanh", "tanh_"),
    "Silu": ("silu", "silu_"),
    "HardSwish": ("hardswish", "hardswish_"),
    "HardSigmoid": ("hardsigmoid", "hardsigmoid_"),
    "Relu6": ("relu6", "relu6_"),
    "Erf": ("erf", "erf_"),
    "Exp": ("exp", "exp_"),
    "Log": ("log", "log_"),
    "Sqrt": ("sqrt", "sqrt_"),
    "Neg": ("neg", "neg_"),
    "Reciprocal": ("reciprocal", "reciprocal_"),
    "Abs": ("abs", "abs_"),
    "Not": ("logical_not",),
}

_BINARY = {
    "Add": ("add.Tensor", "add.Scalar", "add_.Tensor", "add_.Scalar"),
    "Sub": ("sub.Tensor", "sub.Scalar", "sub_.Tensor", "sub_.Scalar"),
    "Mul": ("mul.Tensor", "mul.Scalar", "mul_.Tensor", "mul_.Scalar"),
    "Div": (
        "div.Tensor",
        "div.Scalar",
        "div_.Tensor",
        "div_.Scalar",
        "div.Tensor_mode",
        "div.Scalar_mode",
    ),
    "Equal": ("eq.Tensor", "eq.Scalar"),
    "Less": ("lt.Tensor", "lt.Scalar"),
    "Greater": ("gt.Tensor", "gt.Scalar"),
}

ELEMENTWISE_ADAPTERS: dict[Any, Any] = {
    **{target: unary(op) for op, names in _UNARY.items() for target in aten_ops(*names)},
    **{target: binary(op) for op, names in _BINARY.items() for target in aten_ops(*names)},
    **dict.fromkeys(
        aten_ops("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar"),
        binary("Pow", rhs="exponent"),
    ),
    **dict.fromkeys(aten_ops("rsub.Tensor", "rsub.Scalar"), rsub),
    **dict.fromkeys(aten_ops("where.self", "where.ScalarSelf", "where.ScalarOther"), where),
    **dict.fromkeys(aten_ops("gelu", "gelu_"), gelu),
    **dict.fromkeys(aten_ops("leaky_relu", "leaky_relu_"), leaky_relu),
    **dict.fromkeys(aten_ops("hardtanh", "hardtanh_"), hardtanh),
    **dict.fromkeys(aten_ops("clamp", "clamp_", "clamp_min", "clamp_max"), clamp),
    **dict.fromkeys(aten_ops("rsqrt", "rsqrt_"), rsqrt),
    **dict.fromkeys(aten_ops("softmax.int", "_softmax"), softmax("Softmax")),
    **dict.fromkeys(aten_ops("log_softmax.int", "_log_softmax"), softmax("LogSoftmax")),
    **dict.fromkeys(aten_ops("mean.dim", "mean.default"), reduce("ReduceMean")),
    **dict.fromkeys(aten_ops("sum.dim_IntList", "sum.default"), reduce("ReduceSum")),
    **dict.fromkeys(aten_ops("amax"), reduce("ReduceMax")),
}
