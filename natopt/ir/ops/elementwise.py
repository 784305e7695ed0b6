"""Binary and ternary element-wise ops (numpy broadcasting) and reductions."""

from __future__ import annotations

import torch

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


def where(condition, a, b):
    return torch.where(condition, a, b)


def reduce_mean(x, *, axes=None, keepdims=True):
    return torch.mean(x, dim=axes, keepdim=keepdims) if axes is not None else torch.mean(x)


def reduce_sum(x, *, axes=None, keepdims=True):
    return torch.sum(x, dim=axes, keepdim=keepdims) if axes is not None else torch.sum(x)


def reduce_max(x, *, axes=None, keepdims=True):
    return torch.amax(x, dim=axes, keepdim=keepdims) if axes is not None else torch.amax(x)


for _name, _impl in [
    ("Add", add),
    ("Sub", sub),
    ("Mul", mul),
    ("Div", div),
    ("Pow", pow_),
    ("Equal", equal),
    ("Less", less),
    ("Greater", greater),
    ("Where", where),
]:
    register(OpSpec(_name, "elementwise", _impl))

for _name, _impl in [
    ("ReduceMean", reduce_mean),
    ("ReduceSum", reduce_sum),
    ("ReduceMax", reduce_max),
]:
    register(OpSpec(_name, "reduce", _impl, attrs={"axes": None, "keepdims": True}))
