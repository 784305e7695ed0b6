"""Shape functions for the commonest ops, so that lifting them needs no meta tensors.

Running an op on meta tensors is how ``natopt.ir.infer`` derives shapes for every op; but the
first meta op makes torch import ``torch._dynamo`` and sympy (seconds of start-up), and a
plain CNN needs nothing but these few rules. ``OpSpec.shape(shapes, weights, attrs)``
receives concrete input shapes (``None`` for an omitted input) and weight shapes; it
returns the output shapes, or ``None`` whenever it is not certain (an invalid or unusual
case), and inference then runs the op on meta tensors as before, errors included.
``tests/ir/test_ops.py`` checks every rule against meta execution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "ShapeRule",
    "same_shape",
    "broadcast_shape",
    "conv_shape",
    "linear_shape",
    "batch_norm_shape",
    "window_pool_shape",
    "adaptive_pool_shape",
]

Shapes = Sequence[tuple[int, ...] | None]
Result = list[tuple[int, ...]] | None
ShapeRule = Callable[[Shapes, Mapping[str, tuple[int, ...]], Mapping[str, Any]], Result]


def _per_dim(value: Any, n: int) -> tuple[int, ...] | None:
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(value) == 1:
        value = value * n
    return value if len(value) == n and all(isinstance(v, int) for v in value) else None


def same_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """One input, one output of the same shape (element-wise unary ops)."""
    if len(shapes) != 1 or shapes[0] is None or weights:
        return None
    return [shapes[0]]


def broadcast_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """Two inputs broadcast against each other (numpy rules)."""
    if len(shapes) != 2 or shapes[0] is None or shapes[1] is None:
        return None
    a, b = shapes
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return [tuple(out)]


def conv_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """``[N, Cin, *S] * weight[Cout, Cin/groups, *K]``: symmetric padding, floor division."""
    weight = weights.get("weight")
    if len(shapes) != 1 or shapes[0] is None or weight is None or len(weight) < 3:
        return None
    x, n = shapes[0], len(weight) - 2
    stride, padding = _per_dim(attrs["stride"], n), _per_dim(attrs["padding"], n)
    dilation, groups = _per_dim(attrs["dilation"], n), attrs["groups"]
    if stride is None or padding is None or dilation is None or len(x) != n + 2:
        return None
    if (
        x[1] != weight[1] * groups
        or weight[0] % groups
        or weights.get("bias", (weight[0],)) != (weight[0],)
    ):
        return None
    spatial = [
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(x[2:], weight[2:], stride, padding, dilation, strict=True)
    ]
    if min(spatial) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        return None
    return [(x[0], weight[0], *spatial)]


def linear_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """``x[..., in] @ weight[out, in]^T``."""
    weight = weights.get("weight")
    if len(shapes) != 1 or shapes[0] is None or weight is None or len(weight) != 2:
        return None
    x = shapes[0]
    if not x or x[-1] != weight[1] or weights.get("bias", (weight[0],)) != (weight[0],):
        return None
    return [(*x[:-1], weight[0])]


def batch_norm_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """The input's shape; every statistic has one entry per channel (dim 1)."""
    if len(shapes) != 1 or shapes[0] is None or len(shapes[0]) < 2:
        return None
    x = shapes[0]
    if any(w != (x[1],) for w in weights.values()):
        return None
    return [x]


def window_pool_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """Max or average pooling over a window (torch's ``pooling_output_shape``)."""
    if len(shapes) != 1 or shapes[0] is None or weights:
        return None
    x, n = shapes[0], len(attrs["kernel_size"])
    kernel, stride = _per_dim(attrs["kernel_size"], n), _per_dim(attrs["stride"], n)
    padding, dilation = _per_dim(attrs["padding"], n), _per_dim(attrs.get("dilation", 1), n)
    if kernel is None or stride is None or padding is None or dilation is None:
        return None
    if len(x) != n + 2 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        return None
    ceil = bool(attrs["ceil_mode"])
    spatial = []
    for size, k, s, p, d in zip(x[2:], kernel, stride, padding, dilation, strict=True):
        if p > k // 2:
            return None
        out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
        if ceil and (out - 1) * s >= size + p:
            out -= 1
        if out < 1:
            return None
        spatial.append(out)
    return [(*x[:2], *spatial)]


def adaptive_pool_shape(shapes: Shapes, weights: Mapping, attrs: Mapping) -> Result:
    """The leading dims, then ``output_size``."""
    size = attrs["output_size"]
    if len(shapes) != 1 or shapes[0] is None or weights:
        return None
    if not all(isinstance(s, int) and s >= 1 for s in size) or len(shapes[0]) < len(size) + 1:
        return None
    x = shapes[0]
    if min(x[-len(size) :]) < 1:
        return None
    return [(*x[: -len(size)], *size)]
