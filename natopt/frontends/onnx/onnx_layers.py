"""Adapters for ONNX layers with weights and normalisation, and the window padding they share
with pooling (``onnx_pool``).

- ``Conv``/``ConvTranspose``/``Gemm``/``MatMul`` with a constant ``B``/``BatchNormalization``/
  ``LayerNormalization``/``InstanceNormalization``/``GroupNormalization`` take their
  initializers as node weights; ``source`` names the module they came from.
- ``Gemm(A, B, C, alpha, beta, transA, transB)`` with constant ``B`` -> ``Linear`` with
  ``weight = alpha * op(B)^T`` (``[out, in]``) and ``bias = beta * C``; ``MatMul(x, B)`` ->
  ``Linear`` with ``weight = B^T`` (any input rank).
- Window padding: ``auto_pad`` SAME_UPPER / SAME_LOWER / VALID become explicit pads (the
  spatial input shape must be static); asymmetric pads become a ``Pad`` node before the op
  (``-inf`` for MaxPool), symmetric ones the op's ``padding``. ``ConvTranspose`` pads crop
  its output instead: asymmetric ones (or ``auto_pad``/``output_shape``) are a ``Slice``
  after it.
- ``InstanceNormalization`` -> ``GroupNorm`` with one group per channel.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import NodeProto

from natopt.frontends.onnx.context import Adapter, LiftContext, node_attrs
from natopt.ir import Value

__all__ = ["LAYER_ADAPTERS", "window", "window_pads", "padded"]


def _weight(cx: LiftContext, node: NodeProto, index: int, what: str) -> np.ndarray:
    array = cx.const(node.input[index]) if index < len(node.input) else None
    if array is None:
        raise cx.fail(node, f"its {what} (input {index}) must be an initializer or a constant")
    return array


def _optional(cx: LiftContext, node: NodeProto, index: int, what: str) -> np.ndarray | None:
    if index >= len(node.input) or not node.input[index]:
        return None
    return _weight(cx, node, index, what)


def window_pads(
    cx: LiftContext, node: NodeProto, x: Value, kernel, strides, dilations
) -> tuple[list[int], list[int]]:
    """Begin and end pads per spatial dim, ``auto_pad`` resolved."""
    attrs = node_attrs(node)
    n = len(kernel)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = list(attrs.get("pads", [0] * 2 * n))
        return pads[:n], pads[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    spatial = list(x.shape or ())[2:]
    if len(spatial) != n or not all(isinstance(d, int) for d in spatial):
        raise cx.fail(node, f"auto_pad {auto_pad} needs a static spatial input shape")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        out = math.ceil(size / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        begins.append(begin)
        ends.append(end)
    return begins, ends


def padded(
    cx: LiftContext, node: NodeProto, x: Value, pads: tuple[list[int], list[int]], fill: float
) -> tuple[Value, tuple[int, ...]]:
    """``(input, padding)``: symmetric pads go to the op; others to a ``Pad`` node before it."""
    begins, ends = pads
    if begins == ends:
        return x, tuple(begins)
    torch_pads: list[int] = []
    for begin, end in reversed(list(zip(begins, ends, strict=True))):
        torch_pads += [begin, end]
    attrs = {"pads": tuple(torch_pads), "mode": "constant", "value": fill}
    pad = cx.emit(node, "Pad", [x], attrs, suffix=".pad")
    return pad.output, (0,) * len(begins)


def window(node: NodeProto, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    attrs = node_attrs(node)
    return tuple(attrs.get("strides", [1] * n)), tuple(attrs.get("dilations", [1] * n))


def conv(cx: LiftContext, node: NodeProto) -> Value:
    weight = _weight(cx, node, 1, "weight")
    bias = _optional(cx, node, 2, "bias")
    kernel = weight.shape[2:]
    strides, dilations = window(node, len(kernel))
    x = cx.value(node.input[0])
    pads = window_pads(cx, node, x, kernel, strides, dilations)
    x, padding = padded(cx, node, x, pads, 0.0)
    attrs = {
        "stride": strides,
        "padding": padding,
        "dilation": dilations,
        "groups": int(node_attrs(node).get("group", 1)),
    }
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    source = cx.source(node, *node.input[1:3])
    return cx.emit(node, "Conv", [x], attrs, weights, source=source).output


def conv_transpose(cx: LiftContext, node: NodeProto) -> Value:
    """Symmetric pads -> the op's ``padding``; asymmetric ones (explicit, ``auto_pad`` SAME_*,
    or an ``output_shape``) -> ``ConvTranspose`` without padding, then a ``Slice`` crop."""
    attrs = node_attrs(node)
    weight = _weight(cx, node, 1, "weight")
    bias = _optional(cx, node, 2, "bias")
    n = weight.ndim - 2
    strides, dilations = window(node, n)
    output_padding = tuple(attrs.get("output_padding", [0] * n))
    x = cx.value(node.input[0])
    begins, ends = _transpose_pads(cx, node, x, weight.shape[2:], strides, dilations)
    symmetric = begins == ends
    ir_attrs = {
        "stride": strides,
        "padding": tuple(begins) if symmetric else (0,) * n,
        "output_padding": output_padding,
        "dilation": dilations,
        "groups": int(attrs.get("group", 1)),
    }
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    source = cx.source(node, *node.input[1:3])
    suffix = "" if symmetric else ".full"
    y = cx.emit(node, "ConvTranspose", [x], ir_attrs, weights, source=source, suffix=suffix)
    if symmetric:
        return y.output
    crop = {
        "starts": tuple(begins),
        "ends": tuple(-e if e else _END for e in ends),
        "axes": tuple(range(2, 2 + n)),
        "steps": (1,) * n,
    }
    return cx.emit(node, "Slice", [y.output], crop).output


_END = 2**63 - 1  # a Slice end past any dim


def _transpose_pads(
    cx: LiftContext,
    node: NodeProto,
    x: Value,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
) -> tuple[list[int], list[int]]:
    """Begin and end pads of a ``ConvTranspose``: explicit, or the total padding that gives
    ``output_shape`` (``input * stride`` for ``auto_pad`` SAME_*) split by ``auto_pad``."""
    attrs = node_attrs(node)
    n = len(kernel)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad == "NOTSET" and "output_shape" not in attrs:
        pads = list(attrs.get("pads", [0] * 2 * n))
        return pads[:n], pads[n:]
    spatial = list(x.shape or ())[2:]
    if len(spatial) != n or not all(isinstance(d, int) for d in spatial):
        raise cx.fail(node, "output_shape / auto_pad need a static spatial input shape")
    targets = list(attrs.get("output_shape", []))[-n:]
    if not targets:  # auto_pad SAME_*: the input times the stride
        targets = [size * s for size, s in zip(spatial, strides, strict=True)]
    output_padding = list(attrs.get("output_padding", [0] * n))
    begins, ends = [], []
    for size, k, s, d, extra, out in zip(
        spatial, kernel, strides, dilations, output_padding, targets, strict=True
    ):
        total = s * (size - 1) + extra + (k - 1) * d + 1 - out
        if total < 0:
            raise cx.fail(node, f"output_shape {targets} is larger than the full output")
        small, large = total // 2, total - total // 2
        begin, end = (large, small) if auto_pad == "SAME_LOWER" else (small, large)
        begins.append(begin)
        ends.append(end)
    return begins, ends


def _as_bias(c: np.ndarray | None, out: int) -> np.ndarray | None:
    """``C`` as a ``[out]`` vector when it broadcasts along rows only, else ``None``."""
    if c is None or c.size not in (1, out) or (c.ndim == 2 and c.shape[0] != 1):
        return None
    return np.broadcast_to(c.reshape(-1), (out,)).copy()


def gemm(cx: LiftContext, node: NodeProto) -> Value:
    attrs = node_attrs(node)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    a = cx.value(node.input[0])
    if attrs.get("transA", 0):
        a = cx.emit(node, "Transpose", [a], {"perm": (1, 0)}, suffix=".transA").output
    b = cx.const(node.input[1])
    has_c = len(node.input) > 2 and bool(node.input[2])
    c = cx.const(node.input[2]) if has_c else None
    if b is None:
        b_value = cx.value(node.input[1])
        if attrs.get("transB", 0):
            flip = cx.emit(node, "Transpose", [b_value], {"perm": (1, 0)}, suffix=".transB")
            b_value = flip.output
        y = cx.emit(node, "MatMul", [a, b_value], suffix=".matmul").output
        if alpha != 1.0:
            scale = cx.constant(np.array(alpha, dtype=np.float32), f"{node.name}.alpha")
            y = cx.emit(node, "Mul", [y, scale], suffix=".alpha").output
        bias_weight = None
    else:
        weight = (b if attrs.get("transB", 0) else b.T) * np.float32(alpha)
        bias_weight = _as_bias(None if c is None else c * np.float32(beta), weight.shape[0])
        weights = {"weight": weight.astype(b.dtype)}
        if bias_weight is not None:
            weights["bias"] = bias_weight.astype(b.dtype)
        source = cx.source(node, *node.input[1:3])
        y = cx.emit(node, "Linear", [a], weights=weights, source=source).output
    if has_c and bias_weight is None:
        c_value = cx.value(node.input[2])
        if beta != 1.0:
            scale = cx.constant(np.array(beta, dtype=np.float32), f"{node.name}.beta")
            c_value = cx.emit(node, "Mul", [c_value, scale], suffix=".beta").output
        y = cx.emit(node, "Add", [y, c_value], suffix=".bias").output
    return y


def matmul(cx: LiftContext, node: NodeProto) -> Value:
    b = cx.const(node.input[1])
    a = cx.value(node.input[0])
    if b is not None and b.ndim == 2 and b.dtype.kind == "f":
        source = cx.source(node, node.input[1])
        return cx.emit(node, "Linear", [a], weights={"weight": b.T}, source=source).output
    return cx.emit(node, "MatMul", [a, cx.value(node.input[1])]).output


def batch_norm(cx: LiftContext, node: NodeProto) -> Value:
    attrs = node_attrs(node)
    if attrs.get("training_mode", 0):
        raise cx.fail(node, "training_mode=1 is not supported; export the model in eval mode")
    names = ("weight", "bias", "running_mean", "running_var")
    weights = {name: _weight(cx, node, i + 1, name) for i, name in enumerate(names)}
    source = cx.source(node, *node.input[1:])
    eps = float(attrs.get("epsilon", 1e-5))
    x = cx.value(node.input[0])
    return cx.emit(node, "BatchNorm", [x], {"eps": eps}, weights, source=source).output


def layer_norm(cx: LiftContext, node: NodeProto) -> Value:
    attrs = node_attrs(node)
    x = cx.value(node.input[0])
    shape = list(x.shape or ())
    dims = shape[int(attrs.get("axis", -1)) % len(shape) :]
    normalized = tuple(d for d in dims if isinstance(d, int))
    if len(normalized) != len(dims):
        raise cx.fail(node, f"normalised dims {dims} must be static")
    weights = {"weight": np.broadcast_to(_weight(cx, node, 1, "scale"), normalized)}
    bias = _optional(cx, node, 2, "bias")
    if bias is not None:
        weights["bias"] = np.broadcast_to(bias, normalized)
    attrs_ir = {"normalized_shape": normalized, "eps": float(attrs.get("epsilon", 1e-5))}
    source = cx.source(node, *node.input[1:3])
    return cx.emit(node, "LayerNorm", [x], attrs_ir, weights, source=source).output


def _group_norm(cx: LiftContext, node: NodeProto, groups: int) -> Value:
    """GroupNorm with per-channel affine weights (per-group ones repeated per channel)."""
    x = cx.value(node.input[0])
    channels = (x.shape or (0, 0))[1]
    if not isinstance(channels, int):
        raise cx.fail(node, "the channel dim must be static")
    weights = {}
    for index, name in ((1, "weight"), (2, "bias")):
        array = _weight(cx, node, index, name).reshape(-1)
        weights[name] = (
            np.repeat(array, channels // array.size) if array.size != channels else array
        )
    attrs = {"num_groups": groups, "eps": float(node_attrs(node).get("epsilon", 1e-5))}
    source = cx.source(node, *node.input[1:3])
    return cx.emit(node, "GroupNorm", [x], attrs, weights, source=source).output


def instance_norm(cx: LiftContext, node: NodeProto) -> Value:
    return _group_norm(cx, node, int(_weight(cx, node, 1, "scale").size))


def group_norm(cx: LiftContext, node: NodeProto) -> Value:
    return _group_norm(cx, node, int(node_attrs(node)["num_groups"]))


LAYER_ADAPTERS: dict[str, Adapter] = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "Gemm": gemm,
    "MatMul": matmul,
    "BatchNormalization": batch_norm,
    "LayerNormalization": layer_norm,
    "InstanceNormalization": instance_norm,
    "GroupNormalization": group_norm,
}
