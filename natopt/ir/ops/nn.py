"""Layers with weights: convolutions, linear, normalisation, embedding, attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from natopt.ir.cost import (
    attention_macs,
    conv_macs,
    conv_transpose_macs,
    einsum_macs,
    linear_macs,
    matmul_macs,
)
from natopt.ir.ops.shapes import batch_norm_shape, conv_shape, linear_shape
from natopt.ir.registry import OpSpec, register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv(x, weight, bias=None, *, stride=(1,), padding=(0,), dilation=(1,), groups=1):
    """N-d convolution, dimensionality from the weight; padding is symmetric per dim."""
    return _CONV[weight.dim() - 2](x, weight, bias, stride, padding, dilation, groups)


def conv_transpose(
    x, weight, bias=None, *, stride=(1,), padding=(0,), output_padding=(0,), dilation=(1,), groups=1
):
    fn = _CONV_T[weight.dim() - 2]
    return fn(x, weight, bias, stride, padding, output_padding, groups, dilation)


def linear(x, weight, bias=None):
    return F.linear(x, weight, bias)


def matmul(a, b):
    return torch.matmul(a, b)


def einsum(*operands, equation=""):
    return torch.einsum(equation, *operands)


def batch_norm(x, weight=None, bias=None, running_mean=None, running_var=None, *, eps=1e-5):
    """Inference-mode batch norm (running statistics)."""
    return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)


def layer_norm(x, weight=None, bias=None, *, normalized_shape=(), eps=1e-5):
    return F.layer_norm(x, normalized_shape, weight, bias, eps)


def group_norm(x, weight=None, bias=None, *, num_groups=1, eps=1e-5):
    return F.group_norm(x, num_groups, weight, bias, eps)


def embedding(indices, weight):
    return F.embedding(indices, weight)


def attention(q, k, v, mask=None, *, is_causal=False, scale=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)


register(
    OpSpec(
        "Conv",
        "compute",
        conv,
        attrs={"stride": (1,), "padding": (0,), "dilation": (1,), "groups": 1},
        weights=("weight", "bias"),
        optional_weights=("bias",),
        cost=conv_macs,
        shape=conv_shape,
        doc="x[N,Cin,*S] * weight[Cout,Cin/groups,*K] (+ bias)",
    )
)
register(
    OpSpec(
        "ConvTranspose",
        "compute",
        conv_transpose,
        attrs={
            "stride": (1,),
            "padding": (0,),
            "output_padding": (0,),
            "dilation": (1,),
            "groups": 1,
        },
        weights=("weight", "bias"),
        optional_weights=("bias",),
        cost=conv_transpose_macs,
        doc="transposed convolution",
    )
)
register(
    OpSpec(
        "Linear",
        "compute",
        linear,
        weights=("weight", "bias"),
        optional_weights=("bias",),
        cost=linear_macs,
        shape=linear_shape,
        doc="x[..., in] @ weight[out, in]^T (+ bias)",
    )
)
register(
    OpSpec(
        "MatMul",
        "compute",
        matmul,
        cost=matmul_macs,
        doc="matrix product of two activations (numpy broadcasting)",
    )
)
register(
    OpSpec(
        "Einsum",
        "compute",
        einsum,
        attrs={"equation": ""},
        cost=einsum_macs,
        doc="torch.einsum(equation, *operands); ONNX and torch share the notation",
    )
)
register(
    OpSpec(
        "BatchNorm",
        "norm",
        batch_norm,
        attrs={"eps": 1e-5},
        weights=("weight", "bias", "running_mean", "running_var"),
        optional_weights=("weight", "bias"),
        buffers=("running_mean", "running_var"),
        shape=batch_norm_shape,
        doc="inference-mode batch norm",
    )
)
register(
    OpSpec(
        "LayerNorm",
        "norm",
        layer_norm,
        attrs={"normalized_shape": (), "eps": 1e-5},
        weights=("weight", "bias"),
        optional_weights=("weight", "bias"),
    )
)
register(
    OpSpec(
        "GroupNorm",
        "norm",
        group_norm,
        attrs={"num_groups": 1, "eps": 1e-5},
        weights=("weight", "bias"),
        optional_weights=("weight", "bias"),
    )
)
register(
    OpSpec(
        "Embedding",
        "compute",
        embedding,
        weights=("weight",),
        doc="rows of weight[num, dim] gathered by integer indices",
    )
)
register(
    OpSpec(
        "Attention",
        "compute",
        attention,
        attrs={"is_causal": False, "scale": None},
        cost=attention_macs,
        doc="scaled dot-product attention softmax(qk^T*s)v",
    )
)
