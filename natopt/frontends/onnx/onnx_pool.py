"""Adapters for ONNX pooling: ``MaxPool``, ``AveragePool`` and the global pools.

- Windows pad as convolutions do (``onnx_layers.window_pads``: ``auto_pad`` resolved,
  asymmetric pads as a ``Pad`` node before the op, ``-inf`` for ``MaxPool``).
- ``AveragePool`` with asymmetric pads and ``count_include_pad=0`` (``auto_pad=SAME_*`` with
  an even kernel, as TensorFlow converters write it) -> ``Pad`` -> ``AvgPool`` -> ``Div`` by
  a constant: the same pooling of ones, i.e. the fraction of each window that is not padding
  (static spatial dims only), so each output averages its real elements only.
- ``GlobalAveragePool``/``GlobalMaxPool`` -> ``AdaptiveAvgPool``/``AdaptiveMaxPool`` to 1.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import NodeProto

from natopt.frontends.onnx.context import Adapter, LiftContext, node_attrs
from natopt.frontends.onnx.onnx_layers import padded, window, window_pads
from natopt.ir import Value, get_spec

__all__ = ["POOL_ADAPTERS"]


def _pool(op: str, fill: float) -> Adapter:
    def adapt(cx: LiftContext, node: NodeProto) -> Value:
        attrs = node_attrs(node)
        if len(node.output) > 1 and node.output[1] and cx.use_counts.get(node.output[1], 0):
            raise cx.fail(node, "the Indices output is not supported")
        kernel = tuple(attrs["kernel_shape"])
        strides, dilations = window(node, len(kernel))
        x = cx.value(node.input[0])
        pads = window_pads(cx, node, x, kernel, strides, dilations)
        include_pad = bool(attrs.get("count_include_pad", 0))
        exclude_pad_node = op == "AvgPool" and pads[0] != pads[1] and not include_pad
        x_padded, padding = padded(cx, node, x, pads, fill)
        ir_attrs = {
            "kernel_size": kernel,
            "stride": strides,
            "padding": padding,
            "ceil_mode": bool(attrs.get("ceil_mode", 0)),
        }
        if op == "MaxPool":
            ir_attrs["dilation"] = dilations
        elif any(d != 1 for d in dilations):
            raise cx.fail(node, "dilated average pooling is not supported")
        else:
            ir_attrs["count_include_pad"] = include_pad or exclude_pad_node
        if not exclude_pad_node:
            return cx.emit(node, op, [x_padded], ir_attrs).output
        pooled = cx.emit(node, op, [x_padded], ir_attrs, suffix=".sum").output
        fraction = _real_fraction(cx, node, x, pads, ir_attrs)
        divisor = cx.constant(fraction, f"{node.name or 'avgpool'}.real_fraction")
        return cx.emit(node, "Div", [pooled, divisor]).output

    return adapt


def _real_fraction(
    cx: LiftContext,
    node: NodeProto,
    x: Value,
    pads: tuple[list[int], list[int]],
    ir_attrs: dict[str, object],
) -> np.ndarray:
    """``AvgPool`` (padding counted) of ones padded with zeros: each window's real share."""
    spatial = list(x.shape or ())[2:]
    if not all(isinstance(d, int) for d in spatial):
        raise cx.fail(node, "asymmetric pads with count_include_pad=0 need static spatial dims")
    torch_pads: list[int] = []
    for begin, end in reversed(list(zip(*pads, strict=True))):
        torch_pads += [begin, end]
    ones = torch.ones(1, 1, *spatial, dtype=torch.float32)
    ones = get_spec("Pad").impl(ones, pads=tuple(torch_pads))
    fraction = get_spec("AvgPool").impl(ones, **ir_attrs)
    return fraction.numpy().astype(x.dtype)


def _global_pool(op: str) -> Adapter:
    def adapt(cx: LiftContext, node: NodeProto) -> Value:
        x = cx.value(node.input[0])
        size = (1,) * (len(x.shape or ()) - 2)
        return cx.emit(node, op, [x], {"output_size": size}).output

    return adapt


POOL_ADAPTERS: dict[str, Adapter] = {
    "MaxPool": _pool("MaxPool", float("-inf")),
    "AveragePool": _pool("AvgPool", 0.0),
    "GlobalAveragePool": _global_pool("AdaptiveAvgPool"),
    "GlobalMaxPool": _global_pool("AdaptiveMaxPool"),
}
