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
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from natopt.frontends.torch.callables import ModuleCall
from natopt.frontends.torch.context import ParamRef, SymDim, aten_op
from natopt.frontends.torch.fx_lift import Call
from natopt.frontends.torch.torch_level_modules import MODULES

__all__ = ["TorchLevelNormaliser"]


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
        target = aten_op(f"{target._schema.name.split('::')[1]}_")
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
        return Call(aten_op("select.int"), (x, dim, item), {})
    if isinstance(item, slice):
        step = 1 if item.step is None else item.step
        return Call(aten_op("slice.Tensor"), (x, dim, item.start, item.stop, step), {})
    if item is None and Ellipsis not in items:
        return Call(aten_op("unsqueeze"), (x, dim), {})
    return None


class TorchLevelNormaliser:
    """Rewrites the torch-level nodes of ``module``'s graph to ATen calls (see module doc)."""

    def __init__(self, module: fx.GraphModule) -> None:
        self.module = module

    def to_aten(self, node: fx.Node, call: Call) -> Call | None:
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            convert = MODULES.get(type(module))
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
        target = aten_op(spec[0])
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
        return Call(aten_op("_to_copy"), call.args[:1], {"dtype": _CASTS[name]})
    if name == "to":
        dtypes = [a for a in (*call.args[1:], *call.kwargs.values()) if isinstance(a, torch.dtype)]
        return Call(aten_op("_to_copy"), call.args[:1], {"dtype": dtypes[0]}) if dtypes else None
    if name not in _METHODS:
        return None
    aten_name, varargs = _METHODS[name]
    args = call.args
    if varargs and not (len(args) == 2 and isinstance(args[1], (list, tuple))):
        args = (args[0], list(args[1:]))
    return Call(aten_op(aten_name), tuple(args), call.kwargs)
