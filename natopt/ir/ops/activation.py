"""Activations and other unary element-wise functions (no weights, no multiply-adds)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from natopt.ir.ops.shapes import same_shape
from natopt.ir.registry import OpSpec, register


def relu(x):
    return F.relu(x)


def relu6(x):
    return F.relu6(x)


def clip(x, *, min=None, max=None):  # noqa: A002  (ONNX and torch both call them min/max)
    return torch.clamp(x, min, max)


def leaky_relu(x, *, alpha=0.01):
    return F.leaky_relu(x, alpha)


def gelu(x, *, approximate="none"):
    return F.gelu(x, approximate=approximate)


def silu(x):
    return F.silu(x)


def hard_swish(x):
    return F.hardswish(x)


def hard_sigmoid(x, *, alpha=1.0 / 6.0, beta=0.5):
    """max(0, min(1, alpha * x + beta)); torch's hardsigmoid is alpha=1/6, beta=1/2."""
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


def elu(x, *, alpha=1.0):
    return F.elu(x, alpha)


def celu(x, *, alpha=1.0):
    return F.celu(x, alpha)


def selu(x, *, alpha=1.6732632423543772, gamma=1.0507009873554805):
    """gamma * (x if x > 0 else alpha * (exp(x) - 1)); torch's selu fixes both constants."""
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


def softplus(x):
    return F.softplus(x)


def softsign(x):
    return F.softsign(x)


def mish(x):
    return F.mish(x)


def thresholded_relu(x, *, alpha=1.0):
    return torch.where(x > alpha, x, torch.zeros_like(x))


def prelu(x, weight):
    """x where x >= 0, weight * x elsewhere; ``weight`` broadcasts (``[C, 1, 1]``, ``[1]``)."""
    return torch.where(x >= 0, x, x * weight)


def sigmoid(x):
    return torch.sigmoid(x)


def tanh(x):
    return torch.tanh(x)


def softmax(x, *, axis=-1):
    return torch.softmax(x, axis)


def log_softmax(x, *, axis=-1):
    return torch.log_softmax(x, axis)


def erf(x):
    return torch.erf(x)


def exp(x):
    return torch.exp(x)


def log(x):
    return torch.log(x)


def sqrt(x):
    return torch.sqrt(x)


def neg(x):
    return torch.neg(x)


def reciprocal(x):
    return torch.reciprocal(x)


def abs_(x):
    return torch.abs(x)


def not_(x):
    return torch.logical_not(x)


def is_nan(x):
    return torch.isnan(x)


def floor(x):
    return torch.floor(x)


def ceil(x):
    return torch.ceil(x)


def round_(x):
    """Halves to even, as ONNX ``Round``."""
    return torch.round(x)


def sign(x):
    return torch.sign(x)


def sin(x):
    return torch.sin(x)


def cos(x):
    return torch.cos(x)


for _name, _impl, _attrs in [
    ("Relu", relu, {}),
    ("Relu6", relu6, {}),
    ("Clip", clip, {"min": None, "max": None}),
    ("LeakyRelu", leaky_relu, {"alpha": 0.01}),
    ("Gelu", gelu, {"approximate": "none"}),
    ("Silu", silu, {}),
    ("HardSwish", hard_swish, {}),
    ("HardSigmoid", hard_sigmoid, {"alpha": 1.0 / 6.0, "beta": 0.5}),
    ("Elu", elu, {"alpha": 1.0}),
    ("Celu", celu, {"alpha": 1.0}),
    ("Selu", selu, {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}),
    ("Softplus", softplus, {}),
    ("Softsign", softsign, {}),
    ("Mish", mish, {}),
    ("ThresholdedRelu", thresholded_relu, {"alpha": 1.0}),
    ("Sigmoid", sigmoid, {}),
    ("Tanh", tanh, {}),
]:
    register(OpSpec(_name, "activation", _impl, attrs=_attrs, shape=same_shape))

for _name, _impl, _attrs in [
    ("Softmax", softmax, {"axis": -1}),
    ("LogSoftmax", log_softmax, {"axis": -1}),
]:
    register(OpSpec(_name, "softmax", _impl, attrs=_attrs))

for _name, _impl in [
    ("Erf", erf),
    ("Exp", exp),
    ("Log", log),
    ("Sqrt", sqrt),
    ("Neg", neg),
    ("Reciprocal", reciprocal),
    ("Abs", abs_),
    ("Not", not_),
    ("IsNaN", is_nan),
    ("Floor", floor),
    ("Ceil", ceil),
    ("Round", round_),
    ("Sign", sign),
    ("Sin", sin),
    ("Cos", cos),
]:
    register(OpSpec(_name, "elementwise", _impl))

register(
    OpSpec(
        "PRelu",
        "activation",
        prelu,
        weights=("weight",),
        doc="x if x >= 0 else weight * x, weight broadcast against x",
    )
)
