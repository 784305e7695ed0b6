"""Pooling: windowed max/avg and adaptive (global) pooling, N-d by the kernel's length."""

from __future__ import annotations

import torch.nn.functional as F

from natopt.ir.ops.shapes import adaptive_pool_shape, window_pool_shape
from natopt.ir.registry import OpSpec, register

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def max_pool(x, *, kernel_size=(1,), stride=(1,), padding=(0,), dilation=(1,), ceil_mode=False):
    fn = _MAX[len(kernel_size)]
    return fn(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)


def avg_pool(
    x, *, kernel_size=(1,), stride=(1,), padding=(0,), ceil_mode=False, count_include_pad=True
):
    fn = _AVG[len(kernel_size)]
    return fn(x, kernel_size, stride, padding, ceil_mode, count_include_pad)


def adaptive_avg_pool(x, *, output_size=(1, 1)):
    return _ADAPTIVE_AVG[len(output_size)](x, output_size)


def adaptive_max_pool(x, *, output_size=(1, 1)):
    return _ADAPTIVE_MAX[len(output_size)](x, output_size)


_WINDOW = {"kernel_size": (1,), "stride": (1,), "padding": (0,), "ceil_mode": False}
_MAX_ATTRS = {**_WINDOW, "dilation": (1,)}
_AVG_ATTRS = {**_WINDOW, "count_include_pad": True}
register(OpSpec("MaxPool", "pool", max_pool, attrs=_MAX_ATTRS, shape=window_pool_shape))
register(OpSpec("AvgPool", "pool", avg_pool, attrs=_AVG_ATTRS, shape=window_pool_shape))
register(
    OpSpec(
        "AdaptiveAvgPool",
        "pool",
        adaptive_avg_pool,
        attrs={"output_size": (1, 1)},
        shape=adaptive_pool_shape,
        doc="output_size all ones is global average pooling",
    )
)
register(OpSpec("AdaptiveMaxPool", "pool", adaptive_max_pool, attrs={"output_size": (1, 1)}))
