"""Torch-level fx nodes (symbolic_trace, dynamo) rewritten to the ATen call they stand for.

A torch-level graph calls modules (``call_module`` ``layer1.0.conv1``), functions
(``F.relu``, ``torch.flatten``, ``operator.add``) and tensor methods (``x.view(2, -1)``).
``TorchLevelNormaliser`` turns each into one ATen call whose adapter ``ATEN_TABLE`` already
has, so every op's IR mapping is written once:

- ``nn.Conv2d`` module ``m`` -> ``aten.conv2d(x, m.weight, m.bias, m.stride, ...)`` with the
  weights as stored tensors named ``<module path>.weight``;
- ``F.relu(x, inplace=True)`` -> ``aten.relu_(x)``; ``x.view(2, -1)`` -> ``aten.view(x, [2, -1])``.

A node the table does not know keeps a callable (the module itself, the function, or
``torch.Tensor.<method>``) and becomes ``Opaque``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from natopt.frontends.torch.callables import ModuleCall
from natopt.frontends.torch.context import ParamRef, SymDim, aten_ops
from natopt.frontends.torch.fx_lift import Call

__all__ = ["TorchLevelNormaliser"]


def _aten(name: str) -> Any:
    return aten_ops(name)[0]


# ---- functions ---------------------------------------------------------------------------
# torch callable -> (ATen op, its positional parameters as "torch_name[:aten_name]");
# an empty parameter list means the callable already uses the ATen schema's names.
_FUNCTIONS: dict[Any, tuple[str, str]] = {
    F.relu: ("relu", "input:self inplace"),
    F.silu: ("silu", "input:self inplace"),
    F.hardswish: ("hardswish", "input:self inplace"),
    F.hardsigmoid: ("hardsigmoid", "input:self inplace"),
    F.relu6: ("relu6", "input:self inplace"),
    F.hardtanh: ("hardtanh", "input:self min_val max_val inplace"),
    F.leaky_relu: ("leaky_relu", "input:self negative_slope inplace"),
    F.softmax: ("softmax.int", "input:self dim _stacklevel dtype"),
    F.log_softmax: ("log_softmax.int", "input:self dim _stacklevel dtype"),
    F.dropout: ("dropout", "input p training:train inplace"),
    F.batch_norm: (
        "batch_norm",
        "input running_mean running_var weight bias training momentum eps",
    ),
    F.layer_norm: ("layer_norm", "input normalized_shape weight bias eps"),
    F.group_norm: ("group_norm", "input num_groups weight bias eps"),
    F.embedding: ("embedding", "input:indices weight padding_idx"),
    F.max_pool1d: ("max_pool1d", "input:self kernel_size stride padding dilation ceil_mode"),
    F.max_pool2d: ("max_pool2d", "input:self kernel_size stride padding dilation ceil_mode"),
    F.max_pool3d: ("max_pool3d", "input:self kernel_size stride padding dilation ceil_mode"),
    F.adaptive_avg_pool1d: ("adaptive_avg_pool1d", ""),
    F.adaptive_avg_pool2d: ("adaptive_avg_pool2d", "input:self output_size"),
    F.adaptive_avg_pool3d: ("adaptive_avg_pool3d", "input:self output_size"),
    F.pad: ("pad", "input:self pad mode value"),
    F.gelu: ("gelu", ""),
    F.sigmoid: ("sigmoid", "input:self"),
    F.tanh: ("tanh", "input:self"),
    F.linear: ("linear", ""),
    F.conv1d: ("conv1d", ""),
    F.conv2d: ("conv2d", ""),
    F.conv3d: ("conv3d", ""),
    F.avg_pool1d: ("avg_pool1d", ""),
    F.avg_pool2d: ("avg_pool2d", ""),
    F.avg_pool3d: ("avg_pool3d", ""),
    F.scaled_dot_product_attention: ("scaled_dot_product_attention", ""),
    torch.relu: ("relu", ""),
    torch.relu_: ("relu_", ""),
    torch.sigmoid: ("sigmoid", ""),
    torch.tanh: ("tanh", ""),
    torch.exp: ("exp", ""),
    torch.sqrt: ("sqrt", ""),
    torch.rsqrt: ("rsqrt", ""),
    torch.erf: ("erf", ""),
    torch.neg: ("neg", ""),
    torch.abs: ("abs", ""),
    torch.flatten: ("flatten.using_ints", ""),
    torch.cat: ("cat", ""),
    torch.concat: ("cat", ""),
    torch.add: ("add.Tensor", ""),
    torch.sub: ("sub.Tensor", ""),
    torch.mul: ("mul.Tensor", ""),
    torch.div: ("div.Tensor", ""),
    torch.pow: ("pow.Tensor_Tensor", ""),
    torch.matmul: ("matmul", ""),
    torch.bmm: ("bmm", ""),
    torch.mm: ("mm", ""),
    torch.transpose: ("transpose.int", ""),
    torch.permute: ("permute", ""),
    torch.reshape: ("reshape", ""),
    torch.squeeze: ("squeeze.dim", ""),
    torch.unsqueeze: ("unsqueeze", ""),
    torch.chunk: ("chunk", ""),
    torch.split: ("split.Tensor", ""),
    torch.unbind: ("unbind.int", ""),
    torch.mean: ("mean.dim", ""),
    torch.sum: ("sum.dim_IntList", ""),
    torch.amax: ("amax", ""),
    torch.softmax: ("softmax.int", ""),
    torch.clamp: ("clamp", ""),
    torch.where: ("where.self", ""),
    torch.conv2d: ("conv2d", ""),
    torch.batch_norm: ("batch_norm", ""),
    torch.layer_norm: ("layer_norm", ""),
    torch.group_norm: ("group_norm", ""),
    torch.embedding: ("embedding", ""),
    torch.max_pool2d: ("max_pool2d", ""),
    torch.adaptive_avg_pool1d: ("adaptive_avg_pool1d", ""),
    operator.add: ("add.Tensor", "self other"),
    operator.iadd: ("add_.Tensor", "self other"),
    operator.sub: ("sub.Tensor", "self other"),
    operator.isub: ("sub_.Tensor", "self other"),
    operator.mul: ("mul.Tensor", "self other"),
    operator.imul: ("mul_.Tensor", "self other"),
    operator.truediv: ("div.Tensor", "self other"),
    operator.itruediv: ("div_.Tensor", "self other"),
    operator.matmul: ("matmul", "self other"),
    operator.neg: ("neg", "self"),
}

# ---- tensor methods ----------------------------------------------------------------------
# method name -> (ATen op, takes its sizes as varargs: x.view(2, -1))
_METHODS: dict[str, tuple[str, bool]] = {
    "view": ("view", True),
    "reshape": ("reshape", True),
    "permute": ("permute", True),
    "expand": ("expand", True),
    "flatten": ("flatten.using_ints", False),
    "transpose": ("transpose.int", False),
    "t": ("t", False),
    "contiguous": ("contiguous", False),
    "clone": ("clone", False),
    "detach": ("detach", False),
    "unsqueeze": ("unsqueeze", False),
    "squeeze": ("squeeze.dim", False),
    "mean": ("mean.dim", False),
    "sum": ("sum.dim_IntList", False),
    "amax": ("amax", False),
    "softmax": ("softmax.int", False),
    "chunk": ("chunk", False),
    "split": ("split.Tensor", False),
    "unbind": ("unbind.int", False),
    "type_as": ("type_as", False),
    "matmul": ("matmul", False),
    "clamp": ("clamp", False),
    "pow": ("pow.Tensor_Tensor", False),
    **{
        name: (f"{name}.Tensor", False)
        for name in ("add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_")
    },
    **{
        name: (name, False)
        for name in (
            "relu",
            "relu_",
            "sigmoid",
            "sigmoid_",
            "tanh",
            "exp",
            "sqrt",
            "rsqrt",
            "erf",
            "neg",
            "abs",
        )
    },
}

_CASTS = {
    "float": torch.float32,
    "half": torch.float16,
    "double": torch.float64,
    "bfloat16": torch.bfloat16,
    "int": torch.int32,
    "long": torch.int64,
    "bool": torch.bool,
}


# ---- modules -----------------------------------------------------------------------------
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
    return Call(_aten(f"conv{n}d.{overload}"), call, {})


def _conv_transpose(m: Any, path: str, args: tuple) -> Call | None:
    if m.padding_mode != "zeros" or len(args) != 1:
        return None
    n = m.weight.dim() - 2
    weight, bias = _stored(m, path, "weight"), _stored(m, path, "bias")
    target = _aten(f"conv_transpose{n}d" if n == 1 else f"conv_transpose{n}d.input")
    call = (args[0], weight, bias, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
    return Call(target, call, {})


def _linear(m: Any, path: str, args: tuple) -> Call:
    return Call(
        _aten("linear"), (args[0], _stored(m, path, "weight"), _stored(m, path, "bias")), {}
    )


def _batch_norm(m: Any, path: str, args: tuple) -> Call:
    refs = [_stored(m, path, k) for k in ("weight", "bias", "running_mean", "running_var")]
    return Call(_aten("batch_norm"), (args[0], *refs, False, 0.0, m.eps, False), {})


def _layer_norm(m: Any, path: str, args: tuple) -> Call:
    refs = (_stored(m, path, "weight"), _stored(m, path, "bias"))
    return Call(_aten("layer_norm"), (args[0], list(m.normalized_shape), *refs, m.eps), {})


def _group_norm(m: Any, path: str, args: tuple) -> Call:
    refs = (_stored(m, path, "weight"), _stored(m, path, "bias"))
    return Call(_aten("group_norm"), (args[0], m.num_groups, *refs, m.eps), {})


def _embedding(m: Any, path: str, args: tuple) -> Call | None:
    if m.max_norm is not None:
        return None
    return Call(_aten("embedding"), (_stored(m, path, "weight"), args[0]), {})


def _simple(name: str, *attrs: str) -> Callable[[Any, str, tuple], Call]:
    """A module whose call is ``aten.<name>(x, **attributes)``; ``attr:aten_name`` renames an
    attribute; a module with ``inplace=True`` picks the in-place op ``<name>_``."""
    pairs = [a.partition(":") for a in attrs]

    def convert(m: Any, path: str, args: tuple) -> Call:
        target = f"{name}_" if getattr(m, "inplace", False) and "." not in name else name
        kwargs = {(aten or attr): getattr(m, attr) for attr, _, aten in pairs}
        return Call(_aten(target), (args[0],), kwargs)

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
        return Call(_aten(f"{kind}_pool{n}d"), (args[0], *rest), {})

    return convert


_MODULES: dict[type, Callable[[Any, str, tuple], Call | None]] = {
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


# ---- the normaliser ----------------------------------------------------------------------
def _by_name(target: Any, params: str, call: Call) -> Call | None:
    """Map the torch call's arguments onto the ATen schema named by ``params``."""
    names = [p.partition(":") for p in params.split()]
    torch_to_aten = {t: (a or t) for t, _, a in names}
    named = dict(zip((a or t for t, _, a in names), call.args, strict=False))
    if len(call.args) > len(names):
        return None
    for key, value in call.kwargs.items():
        named[torch_to_aten.get(key, key)] = value
    if named.pop("inplace", False):
        target = _aten(f"{target._schema.name.split('::')[1]}_")
    named.pop("_stacklevel", None)
    if named.pop("return_indices", False):
        return None
    schema_names = {a.name for a in target._schema.arguments}
    if "input" in named and "input" not in schema_names:
        named["self"] = named.pop("input")
    return Call(target, (), named)


def _tensor_index(call: Call) -> Call | None:
    """``x[i]`` / ``x[:, i]`` / ``x[..., a:b]`` with one non-trivial index -> select/slice."""
    x, index = call.args
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(item is Ellipsis for item in items) > 1:
        return None
    trivial = slice(None)
    picks = [(i, item) for i, item in enumerate(items) if item != trivial and item is not Ellipsis]
    if len(picks) != 1:
        return None
    position, item = picks[0]
    dim = position if Ellipsis not in items[:position] else position - len(items)
    if isinstance(item, (int, SymDim)) and not isinstance(item, bool):
        return Call(_aten("select.int"), (x, dim, item), {})
    if isinstance(item, slice):
        step = 1 if item.step is None else item.step
        return Call(_aten("slice.Tensor"), (x, dim, item.start, item.stop, step), {})
    if item is None and Ellipsis not in items:
        return Call(_aten("unsqueeze"), (x, dim), {})
    return None


class TorchLevelNormaliser:
    """Rewrites the torch-level nodes of ``module``'s graph to ATen calls (see module doc)."""

    def __init__(self, module: fx.GraphModule) -> None:
        self.module = module

    def to_aten(self, node: fx.Node, call: Call) -> Call | None:
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            convert = _MODULES.get(type(module))
            if convert is None or call.kwargs:
                return None
            return convert(module, node.target, call.args)
        if node.op == "call_method":
            return _method(node.target, call)
        if call.target is operator.getitem:
            return _tensor_index(call)
        spec = _FUNCTIONS.get(call.target)
        if spec is None:
            return None
        target = _aten(spec[0])
        if not spec[1]:
            return Call(target, call.args, call.kwargs)
        return _by_name(target, spec[1], call)

    def opaque(self, node: fx.Node, call: Call) -> Call:
        """The callable an Opaque node keeps: the function, ``torch.Tensor.<method>``, or the
        module with its own tensors passed in as inputs (``ModuleCall``)."""
        if node.op == "call_method":
            return Call(getattr(torch.Tensor, node.target), call.args, call.kwargs)
        if node.op != "call_module":
            return call
        module = self.module.get_submodule(node.target)
        state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        refs = tuple(
            ParamRef(t, f"{node.target}.{k}", isinstance(t, nn.Parameter)) for k, t in state.items()
        )
        return Call(ModuleCall(module, tuple(state)), (refs, *call.args), call.kwargs)


def _method(name: str, call: Call) -> Call | None:
    """``x.view(2, -1)`` -> ``aten.view(x, [2, -1])``; casts -> ``aten._to_copy``."""
    if name in _CASTS:
        return Call(_aten("_to_copy"), call.args[:1], {"dtype": _CASTS[name]})
    if name == "to":
        dtypes = [a for a in (*call.args[1:], *call.kwargs.values()) if isinstance(a, torch.dtype)]
        return Call(_aten("_to_copy"), call.args[:1], {"dtype": dtypes[0]}) if dtypes else None
    if name not in _METHODS:
        return None
    aten_name, varargs = _METHODS[name]
    args = call.args
    if varargs and not (len(args) == 2 and isinstance(args[1], (list, tuple))):
        args = (args[0], list(args[1:]))
    return Call(_aten(aten_name), tuple(args), call.kwargs)
