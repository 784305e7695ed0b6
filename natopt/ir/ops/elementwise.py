"""Binary, ternary and variadic element-wise ops (numpy broadcasting) and reductions."""

from __future__ import annotations

import functools

import torch

from natopt.ir.ops.shapes import broadcast_shape
from natopt.ir.registry import OpSpec, register


def add(a, b):
    return torch.add(a, b)


def sub(a, b):
    return torch.sub(a, b)


def mul(a, b):
    return torch.mul(a, b)


def div(a, b):
    return torch.div(a, b)


def pow_(a, b):
    return torch.pow(a, b)


def equal(a, b):
    return torch.eq(a, b)


def less(a, b):
    return torch.lt(a, b)


def greater(a, b):
    return torch.gt(a, b)


def less_or_equal(a, b):
    return torch.le(a, b)


def greater_or_equal(a, b):
    return torch.ge(a, b)


def and_(a, b):
    return torch.logical_and(a, b)


def or_(a, b):
    return torch.logical_or(a, b)


def where(condition, a, b):
    return torch.where(condition, a, b)


def maximum(*xs):
    """Element-wise maximum of any number of broadcasting inputs (ONNX ``Max``)."""
    return functools.reduce(torch.maximum, xs)


def minimum(*xs):
    return functools.reduce(torch.minimum, xs)


def reduce_mean(x, *, axes=None, keepdims=True):
    return torch.mean(x, dim=axes, keepdim=keepdims) if axes is not None else torch.mean(x)


def reduce_sum(x, *, axes=None, keepdims=True):
    return torch.sum(x, dim=axes, keepdim=keepdims) if axes is not None else torch.sum(x)


def reduce_max(x, *, axes=None, keepdims=True):
    return torch.amax(x, dim=axes, keepdim=keepdims) if axes is not None else torch.amax(x)


def reduce_min(x, *, axes=None, keepdims=True):
    return torch.amin(x, dim=axes, keepdim=keepdims) if axes is not None else torch.amin(x)


def reduce_l2(x, *, axes=None, keepdims=True):
    """sqrt(sum(x^2)) over ``axes`` (every axis when ``None``)."""
    if axes is None:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=axes, keepdim=keepdims)


def _arg(pick):
    def impl(x, *, axis=0, keepdims=True, select_last_index=False):
        """ONNX ArgMax/ArgMin: int64 indices along ``axis``; ties pick the first index, or the
        last with ``select_last_index``."""
        if not select_last_index:
            return pick(x, axis, keepdim=keepdims)
        last = x.shape[axis] - 1
        return last - pick(torch.flip(x, (axis,)), axis, keepdim=keepdims)

    return impl


arg_max, arg_min = _arg(torch.argmax), _arg(torch.argmin)


def top_k(x, *, k=1, axis=-1, largest=True, sorted=True):  # noqa: A002  (ONNX's name)
    """ONNX TopK: the ``k`` largest (or smallest) values along ``axis`` and their indices."""
    values, indices = torch.topk(x, k, axis, largest, sorted)
    return values, indices


for _name, _impl in [("Add", add), ("Sub", sub), ("Mul", mul), ("Div", div)]:
    register(OpSpec(_name, "elementwise", _impl, shape=broadcast_shape))

for _name, _impl in [
    ("Pow", pow_),
    ("Equal", equal),
    ("Less", less),
    ("Greater", greater),
    ("LessOrEqual", less_or_equal),
    ("GreaterOrEqual", greater_or_equal),
    ("And", and_),
    ("Or", or_),
    ("Where", where),
    ("Max", maximum),
    ("Min", minimum),
]:
    register(OpSpec(_name, "elementwise", _impl))

for _name, _impl in [
    ("ReduceMean", reduce_mean),
    ("ReduceSum", reduce_sum),
    ("ReduceMax", reduce_max),
    ("ReduceMin", reduce_min),
    ("ReduceL2", reduce_l2),
]:
    register(OpSpec(_name, "reduce", _impl, attrs={"axes": None, "keepdims": True}))

register(
    OpSpec(
        "TopK",
        "reduce",
        top_k,
        attrs={"k": 1, "axis": -1, "largest": True, "sorted": True},
        num_outputs=lambda attrs: 2,
        doc="(values, int64 indices) of the k largest or smallest along axis",
    )
)

for _name, _impl in [("ArgMax", arg_max), ("ArgMin", arg_min)]:
    register(
        OpSpec(
            _name,
            "reduce",
            _impl,
            attrs={"axis": 0, "keepdims": True, "select_last_index": False},
        )
    )
