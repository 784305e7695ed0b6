"""Lower an IR graph to a trainable ``torch.fx.GraphModule``.

Each IR node becomes one ``call_function`` of its op's torch implementation, with attributes
as keyword arguments and weights read through ``get_attr`` from parameters registered under
the node's source path (``layer1.0.conv2.weight``), so ``parameters()`` yields them, ``.train()``
works and gradients flow. Weight tensors are copied: training the module never changes the
graph until ``load_weights_into_graph`` is called.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from keyword import iskeyword
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from natopt.errors import BackendError
from natopt.ir import Graph, Node, Value, get_spec
from natopt.ir.ops.special import substitute_inputs

__all__ = ["to_torch", "load_weights_into_graph", "WEIGHT_PATHS"]

WEIGHT_PATHS = "natopt_weight_paths"
_INVALID = re.compile(r"[^A-Za-z0-9_.]")


def _module_path(root: nn.Module, node: Node, taken: set[str]) -> str:
    base = _INVALID.sub("_", node.source or node.name).strip(".") or "node"
    parts = base.split(".")
    base = ".".join(f"{p}_" if hasattr(nn.Module, p) or iskeyword(p) else p or "_" for p in parts)
    path, k = base, 1
    while path in taken or not _free(root, path, node.weights):
        path, k = f"{base}_{k}", k + 1
    taken.add(path)
    return path


def _free(root: nn.Module, path: str, names: Iterable[str]) -> bool:
    """Whether ``path`` can hold ``names``: no tensor on the way (a parameter ``a.scale`` and
    a node whose source is ``a.scale``), no submodule already called like one of them."""
    module = root
    for part in path.split("."):
        child = getattr(module, part, None)
        if child is None:
            return True
        if not isinstance(child, nn.Module):
            return False
        module = child
    return not any(isinstance(getattr(module, name, None), nn.Module) for name in names)


def _identifier(name: str) -> str:
    """A Python identifier for a placeholder: ``"input.1"`` -> ``"input_1"``."""
    name = re.sub(r"\W", "_", name) or "x"
    return f"_{name}" if name[0].isdigit() or iskeyword(name) else name


def _register(root: nn.Module, path: str, name: str, tensor: torch.Tensor, trainable: bool) -> str:
    module = root
    for part in path.split("."):
        if not hasattr(module, part):
            module.add_module(part, nn.Module())
        module = getattr(module, part)
    tensor = tensor.detach().clone()
    if trainable and tensor.is_floating_point():
        module.register_parameter(name, nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)
    return f"{path}.{name}"


def _is_trainable(node: Node, weight: str) -> bool:
    spec = get_spec(node.op)
    if weight in spec.buffers:
        return bool(node.meta.get("trainable", False))
    return True


def _lower_call(fx_graph: fx.Graph, node: Node, args: tuple, weights: dict[str, fx.Node]):
    return fx_graph.call_function(get_spec(node.op).impl, args, {**node.attrs, **weights})


def _lower_opaque(fx_graph: fx.Graph, node: Node, args: tuple, weights: dict[str, fx.Node]):
    attrs = node.attrs
    call_args = substitute_inputs(tuple(attrs["args"]), args)
    call_kwargs = substitute_inputs(dict(attrs["kwargs"] or {}), args)
    return fx_graph.call_function(attrs["target"], call_args, call_kwargs)


_LOWERING = {"Opaque": _lower_opaque}


def to_torch(graph: Graph) -> fx.GraphModule:
    """A ``torch.fx.GraphModule`` computing ``graph``; weights become parameters/buffers."""
    root = nn.Module()
    fx_graph = fx.Graph()
    env: dict[Value, Any] = {}
    taken: set[str] = set()
    weight_paths: dict[str, dict[str, str]] = {}
    for value in graph.inputs:
        env[value] = fx_graph.placeholder(_identifier(value.name))
    for node in graph.nodes:
        weights: dict[str, fx.Node] = {}
        if node.weights:
            path = _module_path(root, node, taken)
            paths = {
                name: _register(root, path, name, tensor, _is_trainable(node, name))
                for name, tensor in node.weights.items()
            }
            weight_paths[node.name] = paths
            weights = {name: fx_graph.get_attr(target) for name, target in paths.items()}
        args = tuple(None if v is None else env[v] for v in node.inputs)
        try:
            result = _LOWERING.get(node.op, _lower_call)(fx_graph, node, args, weights)
        except Exception as exc:
            raise BackendError(f"node {node.name} ({node.op}) cannot be lowered: {exc}") from exc
        if len(node.outputs) == 1:
            env[node.output] = result
        else:
            for i, out in enumerate(node.outputs):
                env[out] = fx_graph.call_function(operator.getitem, (result, i))
    outputs = [env[v] for v in graph.outputs]
    fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    module = fx.GraphModule(root, fx_graph, class_name=_INVALID.sub("_", graph.name) or "Model")
    setattr(module, WEIGHT_PATHS, weight_paths)
    module.eval()
    return module


def load_weights_into_graph(graph: Graph, module: fx.GraphModule) -> None:
    """Copy the (fine-tuned) tensors of ``module`` back into the nodes of ``graph``."""
    paths: dict[str, dict[str, str]] = getattr(module, WEIGHT_PATHS)
    state = module.state_dict()
    nodes = {n.name: n for n in graph.nodes}
    for node_name, weights in paths.items():
        if node_name not in nodes:
            raise BackendError(f"module has weights for node {node_name}, absent from the graph")
        for name, target in weights.items():
            nodes[node_name].weights[name] = state[target].detach().clone()
