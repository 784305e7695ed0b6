"""Adapters for ATen ops with weights or windows: conv, linear, norms, pooling, attention.

Each adapter takes the lift context and the op's arguments bound by name (schema defaults
filled) and adds IR nodes: ``aten.conv2d(x, W, b, stride, padding, dilation, groups)`` ->
``Conv(x; weight=W, bias=b)`` with ``source`` the module path of ``W``. A weight that is
not a stored tensor (computed in the graph) raises ``NotLiftable`` so the op stays Opaque.
"""

from __future__ import annotations

from typing import Any

from natopt.frontends.torch.context import (
    Args,
    LiftContext,
    NotLiftable,
    ParamRef,
    aten_ops,
    module_of,
)
from natopt.ir import Node, Value

__all__ = ["NN_ADAPTERS"]


def ntuple(value: Any, n: int) -> tuple[int, ...]:
    """``3`` or ``[3]`` -> ``(3,) * n``; a list of length ``n`` as a tuple."""
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    return value * n if len(value) == 1 else value


def _weights(**refs: ParamRef | None) -> dict:
    return {name: ref.tensor.detach() for name, ref in refs.items() if ref is not None}


def _source(*refs: ParamRef | None) -> str | None:
    for ref in refs:
        if ref is not None:
            return module_of(ref.path)
    return None


def _conv_padding(padding: Any, kernel: tuple[int, ...], dilation: tuple[int, ...]):
    """Symmetric padding per dim; ``"same"`` only where it is symmetric (odd extent)."""
    if padding == "valid":
        return (0,) * len(kernel)
    if padding == "same":
        extents = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        if any(e % 2 for e in extents):
            raise NotLiftable("padding='same' with an even kernel extent is asymmetric")
        return tuple(e // 2 for e in extents)
    return ntuple(padding, len(kernel))


def conv(cx: LiftContext, a: Args) -> Node:
    weight, bias = cx.param(a["weight"]), cx.param(a["bias"])
    if weight is None:
        raise NotLiftable("convolution without a weight")
    if a.get("transposed", False):
        return _conv_transpose(cx, a, weight, bias)
    n = weight.tensor.dim() - 2
    dilation = ntuple(a["dilation"], n)
    attrs = {
        "stride": ntuple(a["stride"], n),
        "padding": _conv_padding(a["padding"], tuple(weight.tensor.shape[2:]), dilation),
        "dilation": dilation,
        "groups": int(a["groups"]),
    }
    x = cx.value(a["input"])
    return cx.add("Conv", [x], attrs, _weights(weight=weight, bias=bias), source=_source(weight))


def _conv_transpose(cx: LiftContext, a: Args, weight: ParamRef, bias: ParamRef | None) -> Node:
    n = weight.tensor.dim() - 2
    attrs = {
        "stride": ntuple(a["stride"], n),
        "padding": ntuple(a["padding"], n),
        "output_padding": ntuple(a["output_padding"], n),
        "dilation": ntuple(a["dilation"], n),
        "groups": int(a["groups"]),
    }
    x = cx.value(a["input"])
    return cx.add(
        "ConvTranspose", [x], attrs, _weights(weight=weight, bias=bias), source=_source(weight)
    )


def conv_transpose(cx: LiftContext, a: Args) -> Node:
    weight, bias = cx.param(a["weight"]), cx.param(a["bias"])
    if weight is None:
        raise NotLiftable("transposed convolution without a weight")
    return _conv_transpose(cx, a, weight, bias)


def linear(cx: LiftContext, a: Args) -> Node:
    weight, bias = cx.param(a["weight"]), cx.param(a["bias"])
    x = cx.value(a["input"])
    return cx.add("Linear", [x], {}, _weights(weight=weight, bias=bias), source=_source(weight))


def addmm(cx: LiftContext, a: Args) -> Node:
    """``addmm(b, x, W^T)`` with stored ``W^T`` and ``b`` -> ``Linear(x; weight=W, bias=b)``."""
    if a["beta"] != 1 or a["alpha"] != 1:
        raise NotLiftable("addmm with beta/alpha other than 1")
    weight_t, bias = cx.param(a["mat2"]), cx.param(a["self"])
    if bias is not None and bias.tensor.dim() != 1:
        raise NotLiftable("addmm with a bias that is not a vector")
    weight = ParamRef(weight_t.tensor.t(), weight_t.path, weight_t.trainable)
    x = cx.value(a["mat1"])
    return cx.add("Linear", [x], {}, _weights(weight=weight, bias=bias), source=_source(weight))


def matmul(cx: LiftContext, a: Args) -> Node:
    """``mm(x, W^T)`` with a stored 2-d ``W^T`` -> Linear; two activations -> MatMul."""
    other = a.get("mat2", a.get("other"))
    if isinstance(other, ParamRef) and other.tensor.dim() == 2:
        weight = ParamRef(other.tensor.t(), other.path, other.trainable)
        x = cx.value(a["self"])
        return cx.add("Linear", [x], {}, _weights(weight=weight), source=_source(weight))
    lhs = cx.value(a["self"])
    return cx.add("MatMul", [lhs, cx.value(other)])


def batch_norm(cx: LiftContext, a: Args) -> Node:
    """Inference batch norm; training-mode statistics are not an IR op (-> Opaque)."""
    cx.require_first_output_only()
    if a.get("training", False):
        raise NotLiftable("batch norm in training mode")
    refs = {k: cx.param(a[k]) for k in ("weight", "bias", "running_mean", "running_var")}
    if refs["running_mean"] is None or refs["running_var"] is None:
        raise NotLiftable("batch norm without running statistics")
    x = cx.value(a["input"])
    source = _source(refs["weight"], refs["running_mean"])
    return cx.add("BatchNorm", [x], {"eps": float(a["eps"])}, _weights(**refs), source=source)


def layer_norm(cx: LiftContext, a: Args) -> Node:
    cx.require_first_output_only()
    weight, bias = cx.param(a["weight"]), cx.param(a["bias"])
    attrs = {"normalized_shape": tuple(a["normalized_shape"]), "eps": float(a["eps"])}
    x = cx.value(a["input"])
    return cx.add(
        "LayerNorm", [x], attrs, _weights(weight=weight, bias=bias), source=_source(weight)
    )


def group_norm(cx: LiftContext, a: Args) -> Node:
    weight, bias = cx.param(a["weight"]), cx.param(a["bias"])
    attrs = {"num_groups": int(a["num_groups"]), "eps": float(a["eps"])}
    x = cx.value(a["input"])
    return cx.add(
        "GroupNorm", [x], attrs, _weights(weight=weight, bias=bias), source=_source(weight)
    )


def embedding(cx: LiftContext, a: Args) -> Node:
    weight = cx.param(a["weight"])
    indices = cx.value(a["indices"])
    return cx.add("Embedding", [indices], {}, _weights(weight=weight), source=_source(weight))


def attention(cx: LiftContext, a: Args) -> Node:
    if a.get("dropout_p", 0.0) or a.get("enable_gqa", False):
        raise NotLiftable("attention with dropout or grouped-query attention")
    inputs = [cx.value(a[k]) for k in ("query", "key", "value")]
    if a.get("attn_mask") is not None:
        inputs.append(cx.value(a["attn_mask"]))
    attrs = {"is_causal": bool(a["is_causal"]), "scale": a.get("scale")}
    return cx.add("Attention", inputs, attrs)


def _window(a: Args, n: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride, padding) per spatial dim; an empty stride means the kernel."""
    kernel = ntuple(a["kernel_size"], n)
    stride = ntuple(a["stride"], n) if a["stride"] else kernel
    return kernel, stride, ntuple(a["padding"], n)


def _spatial_dims(x: Value) -> int:
    if x.shape is None:
        raise NotLiftable(f"pooling input {x.name} has no known rank")
    return len(x.shape) - 2


def max_pool(cx: LiftContext, a: Args) -> Node:
    cx.require_first_output_only()
    x = cx.value(a["self"])
    kernel, stride, padding = _window(a, _spatial_dims(x))
    attrs = {
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": ntuple(a["dilation"], len(kernel)),
        "ceil_mode": bool(a["ceil_mode"]),
    }
    return cx.add("MaxPool", [x], attrs)


def avg_pool(cx: LiftContext, a: Args) -> Node:
    if a.get("divisor_override") is not None:
        raise NotLiftable("avg_pool with divisor_override")
    x = cx.value(a["self"])
    kernel, stride, padding = _window(a, _spatial_dims(x))
    attrs = {
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "ceil_mode": bool(a["ceil_mode"]),
        "count_include_pad": bool(a["count_include_pad"]),
    }
    return cx.add("AvgPool", [x], attrs)


def adaptive_avg_pool(cx: LiftContext, a: Args) -> Node:
    x = cx.value(a["self"])
    size = _adaptive_size(a["output_size"], x)
    return cx.add("AdaptiveAvgPool", [x], {"output_size": size})


def adaptive_max_pool(cx: LiftContext, a: Args) -> Node:
    cx.require_first_output_only()
    x = cx.value(a["self"])
    size = _adaptive_size(a["output_size"], x)
    return cx.add("AdaptiveMaxPool", [x], {"output_size": size})


def _adaptive_size(output_size: Any, x: Value) -> tuple[int, ...]:
    size = ntuple(output_size, _spatial_dims(x))
    if any(s is None for s in size):
        raise NotLiftable("adaptive pooling with a None output size")
    return size


NN_ADAPTERS: dict[Any, Any] = {
    **dict.fromkeys(
        aten_ops(
            "conv1d",
            "conv2d",
            "conv3d",
            "conv1d.padding",
            "conv2d.padding",
            "conv3d.padding",
            "convolution",
            "_convolution",
        ),
        conv,
    ),
    **dict.fromkeys(
        aten_ops("conv_transpose1d", "conv_transpose2d.input", "conv_transpose3d.input"),
        conv_transpose,
    ),
    **dict.fromkeys(aten_ops("linear"), linear),
    **dict.fromkeys(aten_ops("addmm"), addmm),
    **dict.fromkeys(aten_ops("mm", "matmul", "bmm"), matmul),
    **dict.fromkeys(
        aten_ops("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm"),
        batch_norm,
    ),
    **dict.fromkeys(aten_ops("layer_norm", "native_layer_norm"), layer_norm),
    **dict.fromkeys(aten_ops("group_norm"), group_norm),
    **dict.fromkeys(aten_ops("embedding"), embedding),
    **dict.fromkeys(aten_ops("scaled_dot_product_attention"), attention),
    **dict.fromkeys(
        aten_ops("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices"), max_pool
    ),
    **dict.fromkeys(aten_ops("avg_pool1d", "avg_pool2d", "avg_pool3d"), avg_pool),
    **dict.fromkeys(
        aten_ops(
            "adaptive_avg_pool1d",
            "adaptive_avg_pool2d",
            "adaptive_avg_pool3d",
            "_adaptive_avg_pool2d",
        ),
        adaptive_avg_pool,
    ),
    **dict.fromkeys(
        aten_ops("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"),
        adaptive_max_pool,
    ),
}
