"""Torch-level ``call_module`` nodes as ATen calls: the module's attributes become arguments.

``nn.Conv2d`` module ``m`` at ``layer1.0.conv1`` -> ``aten.conv2d(x, W, b, m.stride,
m.padding, m.dilation, m.groups)`` where ``W`` and ``b`` are stored tensors named
``layer1.0.conv1.weight`` / ``.bias``; norms run with eval semantics (running statistics).
A converter returns ``None`` where the module's configuration has no ATen equivalent the
table maps (``padding_mode="reflect"``, ``return_indices=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from natopt.frontends.torch.context import ParamRef, aten_op
from natopt.frontends.torch.fx_lift import Call

__all__ = ["MODULES"]

ModuleConverter = Callable[[Any, str, tuple], Call | None]


def _stored(module: nn.Module, path: str, attr: str) -> ParamRef | None:
    tensor = getattr(module, attr, None)
    if tensor is None:
        return None
    full = f"{path}.{attr}" if path else attr
    return ParamRef(tensor, full, isinstance(tensor, nn.Parameter))


def _conv(m: Any, path: str, args: tuple) -> Call | None:
    if m.padding_mode != "zeros" or len(args) != 1:
        return None
    n = m.weight.dim() - 2
    overload = "padding" if isinstance(m.padding, str) else "default"
    weight, bias = _stored(m, path, "weight"), _stored(m, path, "bias")
    call = (args[0], weight, bias, m.stride, m.padding, m.dilation, m.groups)
    return Call(aten_op(f"conv{n}d.{overload}"), call, {})


def _conv_transpose(m: Any, path: str, args: tuple) -> Call | None:
    if m.padding_mode != "zeros" or len(args) != 1:
        return None
    n = m.weight.dim() - 2
    weight, bias = _stored(m, path, "weight"), _stored(m, path, "bias")
    target = aten_op(f"conv_transpose{n}d" if n == 1 else f"conv_transpose{n}d.input")
    call = (args[0], weight, bias, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
    return Call(target, call, {})


def _linear(m: Any, path: str, args: tuple) -> Call:
    return Call(
        aten_op("linear"), (args[0], _stored(m, path, "weight"), _stored(m, path, "bias")), {}
    )


def _batch_norm(m: Any, path: str, args: tuple) -> Call:
    refs = [_stored(m, path, k) for k in ("weight", "bias", "running_mean", "running_var")]
    return Call(aten_op("batch_norm"), (args[0], *refs, False, 0.0, m.eps, False), {})


def _layer_norm(m: Any, path: str, args: tuple) -> Call:
    refs = (_stored(m, path, "weight"), _stored(m, path, "bias"))
    return Call(aten_op("layer_norm"), (args[0], list(m.normalized_shape), *refs, m.eps), {})


def _group_norm(m: Any, path: str, args: tuple) -> Call:
    refs = (_stored(m, path, "weight"), _stored(m, path, "bias"))
    return Call(aten_op("group_norm"), (args[0], m.num_groups, *refs, m.eps), {})


def _embedding(m: Any, path: str, args: tuple) -> Call | None:
    if m.max_norm is not None:
        return None
    return Call(aten_op("embedding"), (_stored(m, path, "weight"), args[0]), {})


def _simple(name: str, *attrs: str) -> Callable[[Any, str, tuple], Call]:
    """A module whose call is ``aten.<name>(x, **attributes)``; ``attr:aten_name`` renames an
    attribute; a module with ``inplace=True`` picks the in-place op ``<name>_``."""
    pairs = [a.partition(":") for a in attrs]

    def convert(m: Any, path: str, args: tuple) -> Call:
        target = f"{name}_" if getattr(m, "inplace", False) and "." not in name else name
        kwargs = {(aten or attr): getattr(m, attr) for attr, _, aten in pairs}
        return Call(aten_op(target), (args[0],), kwargs)

    return convert


def _pool(kind: str) -> Callable[[Any, str, tuple], Call | None]:
    def convert(m: Any, path: str, args: tuple) -> Call | None:
        if getattr(m, "return_indices", False):
            return None
        n = {"1d": 1, "2d": 2, "3d": 3}[type(m).__name__[-2:]]
        if kind == "max":
            rest = (m.kernel_size, m.stride or [], m.padding, m.dilation, m.ceil_mode)
        elif kind == "avg":
            rest = (m.kernel_size, m.stride or [], m.padding, m.ceil_mode, m.count_include_pad)
            rest += (m.divisor_override,) if n > 1 else ()
        else:
            rest = (m.output_size,)
        return Call(aten_op(f"{kind}_pool{n}d"), (args[0], *rest), {})

    return convert


MODULES: dict[type, ModuleConverter] = {
    **dict.fromkeys((nn.Conv1d, nn.Conv2d, nn.Conv3d), _conv),
    **dict.fromkeys((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _conv_transpose),
    nn.Linear: _linear,
    **dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), _batch_norm),
    nn.LayerNorm: _layer_norm,
    nn.GroupNorm: _group_norm,
    nn.Embedding: _embedding,
    nn.ReLU: _simple("relu"),
    nn.ReLU6: _simple("relu6"),
    nn.SiLU: _simple("silu"),
    nn.Hardswish: _simple("hardswish"),
    nn.Hardsigmoid: _simple("hardsigmoid"),
    nn.Sigmoid: _simple("sigmoid"),
    nn.Tanh: _simple("tanh"),
    nn.GELU: _simple("gelu", "approximate"),
    nn.Hardtanh: _simple("hardtanh", "min_val", "max_val"),
    nn.LeakyReLU: _simple("leaky_relu", "negative_slope"),
    nn.Softmax: _simple("softmax.int", "dim"),
    nn.Flatten: _simple("flatten.using_ints", "start_dim", "end_dim"),
    nn.Identity: _simple("alias"),
    **dict.fromkeys(
        (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout),
        _simple("dropout", "p", "training:train"),
    ),
    **dict.fromkeys((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), _pool("max")),
    **dict.fromkeys((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), _pool("avg")),
    **dict.fromkeys(
        (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), _pool("adaptive_avg")
    ),
    **dict.fromkeys(
        (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d), _pool("adaptive_max")
    ),
}
