"""Emitters for IR layers with weights, normalisation, attention and pooling.

- ``Linear`` -> ``Gemm(x, W, b, transB=1)`` for a 2-D input, else ``MatMul(x, W^T) + b``
  (the transposed weight keeps the name ``<source>.weight``).
- ``LayerNorm`` -> ``LayerNormalization`` from opset 17; before it
  ``(x - mean) / sqrt(var + eps) * w + b`` with ``ReduceMean``.
- ``GroupNorm`` -> ``Reshape [N, G, -1]`` -> ``InstanceNormalization`` -> ``Reshape`` back
  -> ``* w + b`` per channel (valid at every opset, unlike GroupNormalization's history).
- ``Attention`` -> ``softmax(q k^T * scale + mask) v`` with ``MatMul``/``Mul``/``Softmax``
  (``is_causal``: a constant lower-triangular mask; a boolean mask through ``Where``), since
  the ONNX ``Attention`` op needs opset 23.
- ``AdaptiveAvgPool``/``AdaptiveMaxPool`` to 1 -> ``GlobalAveragePool``/``GlobalMaxPool``;
  another output size -> a fixed window where the input's spatial dims are static multiples
  of it (kernel = stride = input // output), else not lowerable.
"""

from __future__ import annotations

import math

import numpy as np

from natopt.backends.onnx.context import EmitContext, NotLowerable
from natopt.ir import Node

__all__ = ["LAYER_EMITTERS"]


def _per_dim(values, n: int) -> list[int]:
    values = [values] if isinstance(values, int) else list(values)
    return values * n if len(values) == 1 else values


def _conv_pads(node: Node, kernel: tuple[int, ...]) -> list[int]:
    """ONNX pads ``[begin..., end...]`` from the IR's symmetric (or torch string) padding."""
    n = len(kernel)
    padding = node.attrs["padding"]
    dilation = _per_dim(node.attrs["dilation"], n)
    if padding == "valid":
        return [0] * 2 * n
    if padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return [t // 2 for t in totals] + [t - t // 2 for t in totals]
    return _per_dim(padding, n) * 2


def conv(cx: EmitContext, node: Node) -> None:
    weight = node.weights["weight"]
    kernel = tuple(weight.shape[2:])
    n = len(kernel)
    inputs = [cx.name(cx.arg(node, 0)), cx.weight(node, "weight")]
    if "bias" in node.weights:
        inputs.append(cx.weight(node, "bias"))
    cx.add(
        "Conv",
        inputs,
        cx.out(node),
        kernel_shape=list(kernel),
        strides=_per_dim(node.attrs["stride"], n),
        pads=_conv_pads(node, kernel),
        dilations=_per_dim(node.attrs["dilation"], n),
        group=int(node.attrs["groups"]),
    )


def conv_transpose(cx: EmitContext, node: Node) -> None:
    weight = node.weights["weight"]
    n = weight.dim() - 2
    inputs = [cx.name(cx.arg(node, 0)), cx.weight(node, "weight")]
    if "bias" in node.weights:
        inputs.append(cx.weight(node, "bias"))
    cx.add(
        "ConvTranspose",
        inputs,
        cx.out(node),
        kernel_shape=list(weight.shape[2:]),
        strides=_per_dim(node.attrs["stride"], n),
        pads=_per_dim(node.attrs["padding"], n) * 2,
        output_padding=_per_dim(node.attrs["output_padding"], n),
        dilations=_per_dim(node.attrs["dilation"], n),
        group=int(node.attrs["groups"]),
    )


def linear(cx: EmitContext, node: Node) -> None:
    x = cx.arg(node, 0)
    weight = node.weights["weight"]
    has_bias = "bias" in node.weights
    if cx.rank(x) == 2:
        inputs = [cx.name(x), cx.weight(node, "weight")]
        if has_bias:
            inputs.append(cx.weight(node, "bias"))
        cx.add("Gemm", inputs, cx.out(node), transB=1)
        return
    w_t = cx.weight(node, "weight", weight.detach().t().contiguous())
    product = cx.add("MatMul", [cx.name(x), w_t], None if has_bias else cx.out(node))
    if has_bias:
        cx.add("Add", [product, cx.weight(node, "bias")], cx.out(node))


def _weight_or(cx: EmitContext, node: Node, key: str, shape, fill: float, dtype: str) -> str:
    """Weight ``key``, or a constant ``fill`` tensor standing for it where it is absent."""
    if key in node.weights:
        return cx.weight(node, key)
    return cx.weight(node, key, np.full(shape, fill, dtype=np.dtype(dtype)))


def batch_norm(cx: EmitContext, node: Node) -> None:
    mean = node.weights["running_mean"]
    channels = tuple(mean.shape)
    dtype = str(mean.dtype).removeprefix("torch.")
    inputs = [
        cx.name(cx.arg(node, 0)),
        _weight_or(cx, node, "weight", channels, 1.0, dtype),
        _weight_or(cx, node, "bias", channels, 0.0, dtype),
        cx.weight(node, "running_mean"),
        cx.weight(node, "running_var"),
    ]
    cx.add("BatchNormalization", inputs, cx.out(node), epsilon=float(node.attrs["eps"]))


def layer_norm(cx: EmitContext, node: Node) -> None:
    x = cx.arg(node, 0)
    shape = tuple(node.attrs["normalized_shape"])
    scale = _weight_or(cx, node, "weight", shape, 1.0, x.dtype)
    bias = _weight_or(cx, node, "bias", shape, 0.0, x.dtype)
    eps = float(node.attrs["eps"])
    if cx.opset >= 17:
        inputs = [cx.name(x), scale, bias]
        cx.add("LayerNormalization", inputs, cx.out(node), axis=-len(shape), epsilon=eps)
        return
    axes = list(range(-len(shape), 0))
    mean = cx.reduce("ReduceMean", cx.name(x), axes, True)
    centred = cx.add("Sub", [cx.name(x), mean])
    var = cx.reduce("ReduceMean", cx.add("Mul", [centred, centred]), axes, True)
    std = cx.add("Sqrt", [cx.add("Add", [var, cx.scalar(eps, x, "eps")])])
    normed = cx.add("Div", [centred, std])
    cx.add("Add", [cx.add("Mul", [normed, scale]), bias], cx.out(node))


def group_norm(cx: EmitContext, node: Node) -> None:
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    channels = cx.dims(x)[1]
    groups = int(node.attrs["num_groups"])
    if not isinstance(channels, int):
        raise NotLowerable(f"GroupNorm {node.name}: the channel dim must be static")
    dtype = np.dtype(x.dtype)
    grouped = cx.add("Reshape", [cx.name(x), cx.ints([0, groups, -1], "groups")])
    ones = cx.tensor(np.ones(groups, dtype), f"{node.name}.group_scale")
    zeros = cx.tensor(np.zeros(groups, dtype), f"{node.name}.group_bias")
    eps = float(node.attrs["eps"])
    normed = cx.add("InstanceNormalization", [grouped, ones, zeros], epsilon=eps)
    y = cx.add("Reshape", [normed, cx.add("Shape", [cx.name(x)])])
    affine = (channels,) + (1,) * (rank - 2)
    for key, op in (("weight", "Mul"), ("bias", "Add")):
        if key in node.weights:
            w = node.weights[key].detach().cpu().reshape(affine)
            y = cx.add(op, [y, cx.weight(node, key, w)])
    cx.add("Identity", [y], cx.out(node))


def embedding(cx: EmitContext, node: Node) -> None:
    cx.add("Gather", [cx.weight(node, "weight"), cx.name(cx.arg(node, 0))], cx.out(node), axis=0)


def attention(cx: EmitContext, node: Node) -> None:
    q, k, v = (cx.arg(node, i) for i in range(3))
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    q_dims, k_dims = cx.dims(q), cx.dims(k)
    scale = node.attrs["scale"]
    if scale is None:
        if not isinstance(q_dims[-1], int):
            raise NotLowerable(f"Attention {node.name}: the head dim must be static")
        scale = 1.0 / math.sqrt(q_dims[-1])
    perm = list(range(len(k_dims)))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    k_t = cx.add("Transpose", [cx.name(k)], perm=perm)
    scores = cx.add("Mul", [cx.add("MatMul", [cx.name(q), k_t]), cx.scalar(scale, q, "scale")])
    if node.attrs["is_causal"]:
        length, span = q_dims[-2], k_dims[-2]
        if not (isinstance(length, int) and isinstance(span, int)):
            raise NotLowerable(f"Attention {node.name}: is_causal needs static lengths")
        causal = np.tril(np.ones((length, span), dtype=bool))
        scores = _masked(cx, scores, cx.tensor(causal, f"{node.name}.causal"), q)
    if mask is not None:
        if mask.dtype == "bool":
            scores = _masked(cx, scores, cx.name(mask), q)
        else:
            scores = cx.add("Add", [scores, cx.name(mask)])
    weights = cx.add("Softmax", [scores], axis=-1)
    cx.add("MatMul", [weights, cx.name(v)], cx.out(node))


def _masked(cx: EmitContext, scores: str, keep: str, like) -> str:
    return cx.add("Where", [keep, scores, cx.scalar(-np.inf, like, "neg_inf")])


def _pool_attrs(node: Node) -> dict:
    kernel = list(node.attrs["kernel_size"])
    n = len(kernel)
    stride = _per_dim(node.attrs["stride"], n) if node.attrs["stride"] else kernel
    attrs = {
        "kernel_shape": kernel,
        "strides": stride,
        "pads": _per_dim(node.attrs["padding"], n) * 2,
        "ceil_mode": int(node.attrs["ceil_mode"]),
    }
    return attrs


def max_pool(cx: EmitContext, node: Node) -> None:
    attrs = _pool_attrs(node)
    attrs["dilations"] = _per_dim(node.attrs["dilation"], len(attrs["kernel_shape"]))
    cx.add("MaxPool", [cx.name(cx.arg(node, 0))], cx.out(node), **attrs)


def avg_pool(cx: EmitContext, node: Node) -> None:
    attrs = _pool_attrs(node)
    attrs["count_include_pad"] = int(node.attrs["count_include_pad"])
    cx.add("AveragePool", [cx.name(cx.arg(node, 0))], cx.out(node), **attrs)


def _adaptive(global_op: str, window_op: str):
    def emit(cx: EmitContext, node: Node) -> None:
        x = cx.arg(node, 0)
        spatial = cx.dims(x)[2:]
        size = node.attrs["output_size"]
        size = _per_dim(size, len(spatial)) if size is not None else [None] * len(spatial)
        wanted = [s if o is None else o for s, o in zip(spatial, size, strict=True)]
        if all(o == 1 for o in wanted):
            cx.add(global_op, [cx.name(x)], cx.out(node))
            return
        window = [
            s // o
            for s, o in zip(spatial, wanted, strict=True)
            if isinstance(s, int) and isinstance(o, int) and s % o == 0
        ]
        if len(window) != len(spatial):
            raise NotLowerable(
                f"{node.op} {node.name}: output size {wanted} from input {spatial} needs static "
                "input dims that are multiples of it"
            )
        cx.add(window_op, [cx.name(x)], cx.out(node), kernel_shape=window, strides=window)

    return emit


LAYER_EMITTERS = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "Linear": linear,
    "BatchNorm": batch_norm,
    "LayerNorm": layer_norm,
    "GroupNorm": group_norm,
    "Embedding": embedding,
    "Attention": attention,
    "MaxPool": max_pool,
    "AvgPool": avg_pool,
    "AdaptiveAvgPool": _adaptive("GlobalAveragePool", "AveragePool"),
    "AdaptiveMaxPool": _adaptive("GlobalMaxPool", "MaxPool"),
}
