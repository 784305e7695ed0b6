"""Lift an ``fx.GraphModule``: as ``torch.compile`` hands it to a backend, or from
``torch.fx.symbolic_trace``.

A dynamo graph (``inline_inbuilt_nn_modules``) takes the model's parameters and buffers as
extra placeholders, named like ``L_self_modules_layer1_modules_0_modules_conv1_parameters_weight_``
and marked ``_dynamo_static_input_type`` in ``tensor_dict``; their example inputs are the
real tensors. Those placeholders are bound as stored tensors under their module path
(``layer1.0.conv1.weight``); the others are the graph inputs, and
``graph.meta["input_positions"]`` lists their placeholder positions so a backend can route
its arguments.

The GraphModule is exported with ``torch.export`` when that works (the ATen graph is lifted
through the ATen table); otherwise its torch-level graph is lifted node by node through the
torch-level table, with shapes from running it once on the example inputs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from natopt.errors import FrontendError
from natopt.frontends.torch.context import LiftContext, ParamRef
from natopt.frontends.torch.export import check_inputs_fit, eval_mode, export_module, reason
from natopt.frontends.torch.fx_lift import FxWalker, sym_namer
from natopt.frontends.torch.program import add_graph_input, lift_program
from natopt.frontends.torch.torch_level_table import TorchLevelNormaliser
from natopt.ir import Graph

__all__ = [
    "lift_graph_module",
    "lift_torch_level",
    "dynamo_path",
    "dynamo_stored_inputs",
    "INPUT_POSITIONS",
]

INPUT_POSITIONS = "input_positions"
_DYNAMO_PART = re.compile(r"_(?:modules|parameters|buffers)_")


def dynamo_path(name: str) -> str | None:
    """``L_self_modules_layer1_modules_0_modules_conv1_parameters_weight_`` ->
    ``layer1.0.conv1.weight`` (``None`` when the name is not a dynamo parameter/buffer)."""
    first = _DYNAMO_PART.search(name)
    if first is None:
        return None
    rest = name[first.start() :]
    rest = rest[:-1] if rest.endswith("_") else rest
    parts = _DYNAMO_PART.split(rest)[1:]
    return ".".join(parts) if parts and all(parts) else None


def dynamo_stored_inputs(
    placeholders: Sequence[fx.Node], inputs: Sequence[Any]
) -> dict[int, ParamRef]:
    """Placeholders that are the model's own tensors (dynamo graphs), by position."""
    stored = {}
    for i, (node, example) in enumerate(zip(placeholders, inputs, strict=False)):
        marked = "_dynamo_static_input_type" in node.meta.get("tensor_dict", {})
        if (marked or isinstance(example, nn.Parameter)) and isinstance(example, torch.Tensor):
            path = dynamo_path(str(node.target)) or node.name
            stored[i] = ParamRef(example, path, isinstance(example, nn.Parameter))
    return stored


def _record_examples(module: fx.GraphModule, inputs: Sequence[Any]) -> dict[fx.Node, Any]:
    """Run ``module`` once; every node's result, tensors as meta tensors (shape and dtype)."""
    vals: dict[fx.Node, Any] = {}

    def as_meta(x: Any) -> Any:
        return torch.empty_like(x, device="meta") if isinstance(x, torch.Tensor) else x

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            vals[n] = fx.node.map_aggregate(result, as_meta)
            return result

    with torch.no_grad():
        Recorder(module).run(*inputs)
    return vals


def lift_torch_level(
    module: fx.GraphModule,
    inputs: Sequence[Any],
    name: str,
    stored: dict[int, ParamRef] | None = None,
) -> Graph:
    """Lift a torch-level fx graph (call_module / torch functions / tensor methods)."""
    stored = stored or {}
    for node in module.graph.nodes:
        if node.op == "call_function" and node.target is operator.setitem:
            raise FrontendError(
                f"{name}: node {node.name} writes into a tensor by indexing (x[...] = y), which "
                "a torch-level graph cannot express functionally; make the model exportable "
                "with torch.export, or write it out of place (torch.where, torch.cat)"
            )
    vals = _record_examples(module, inputs)
    graph = Graph(name)
    cx = LiftContext(graph)
    sym = sym_namer({})
    env: dict[fx.Node, Any] = {}
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    for i, node in enumerate(placeholders):
        if i in stored:
            env[node] = stored[i]
        elif i < len(inputs):
            env[node] = add_graph_input(cx, node.name, inputs[i], sym)
        else:
            env[node] = node.args[0]
    for node in module.graph.nodes:
        if node.op == "get_attr":
            value = _attr(module, node.target)
            if isinstance(value, torch.Tensor):
                value = ParamRef(value, node.target, isinstance(value, nn.Parameter))
            env[node] = value
    walker = FxWalker(cx, env, sym, normalise=TorchLevelNormaliser(module), vals=vals)
    graph.set_outputs([cx.value(r) for r in walker.run(module.graph)])
    return graph


def _defaults(placeholders: Sequence[fx.Node]) -> int:
    """How many trailing placeholders have a default value (``forward(x, mask=None)``)."""
    count = 0
    for node in reversed(placeholders):
        if not node.args:
            break
        count += 1
    return count


def _attr(module: nn.Module, target: str) -> Any:
    owner, _, attr = target.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, attr)


def _inline(node: fx.Node, value: Any) -> None:
    """Every user of ``node`` reads the Python ``value`` instead."""

    def swap(n: fx.Node) -> Any:
        return value if n is node else n

    for user in list(node.users):
        user.args = fx.node.map_arg(user.args, swap)
        user.kwargs = fx.node.map_arg(user.kwargs, swap)


def _only_read_by_item(node: fx.Node) -> bool:
    return bool(node.users) and all(
        u.op == "call_method" and u.target == "item" for u in node.users
    )


def _tensor_inputs_only(
    module: fx.GraphModule, inputs: tuple, name: str
) -> tuple[fx.GraphModule, tuple, list[int]]:
    """Dynamo with dynamic shapes also passes sizes (``s77``) and module floats (a BN's
    ``eps`` as a 0-d tensor read by ``.item()``) as inputs. Sizes are read from the tensor
    inputs instead (``aten.sym_size(x, 0)``), floats become constants. Returns the module,
    its inputs, and each remaining placeholder's position among the original ones."""
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]

    def removable(node: fx.Node, x: Any) -> bool:
        scalar = isinstance(x, torch.Tensor) and x.dim() == 0 and _only_read_by_item(node)
        return isinstance(x, torch.SymInt) or scalar

    if not any(removable(n, x) for n, x in zip(placeholders, inputs, strict=False)):
        return module, inputs, list(range(len(inputs)))
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    graph.output(graph.graph_copy(module.graph, env))
    dims = {}
    for node in placeholders:
        example = node.meta.get("example_value")
        if isinstance(example, torch.Tensor):
            for axis, size in enumerate(example.shape):
                if isinstance(size, torch.SymInt):
                    dims.setdefault(size.node.expr, (env[node], axis))
    last = env[placeholders[-1]]
    kept = []
    for position, (old, example) in enumerate(zip(placeholders, inputs, strict=False)):
        node = env[old]
        if not removable(old, example):
            kept.append(position)
        elif isinstance(example, torch.SymInt):
            source = dims.get(old.meta["example_value"].node.expr)
            if source is None:
                raise FrontendError(
                    f"GraphModule {name}: size input {old.name} is not a dim of a tensor input"
                )
            with graph.inserting_after(last):
                node.replace_all_uses_with(graph.call_function(torch.ops.aten.sym_size.int, source))
            graph.erase_node(node)
        else:
            for item in list(node.users):
                _inline(item, example.item())
                graph.erase_node(item)
            graph.erase_node(node)
    return fx.GraphModule(module, graph), tuple(inputs[i] for i in kept), kept


def lift_graph_module(
    module: fx.GraphModule, example_inputs: Any, dynamic_batch: bool, name: str
) -> Graph:
    """Export-then-lift, else lift the torch-level graph (see the module docstring)."""
    if example_inputs is None:
        raise FrontendError(
            f"lifting GraphModule {name} needs example_inputs (one per placeholder); a "
            "torch.compile backend receives them with the graph"
        )
    inputs = (
        tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    )
    module, inputs, original_positions = _tensor_inputs_only(module, inputs, name)
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    if not len(placeholders) - _defaults(placeholders) <= len(inputs) <= len(placeholders):
        raise FrontendError(
            f"GraphModule {name} has {len(placeholders)} placeholders but {len(inputs)} example "
            "inputs were given"
        )
    stored = dynamo_stored_inputs(placeholders, inputs)
    for i, (node, example) in enumerate(zip(placeholders, inputs, strict=False)):
        if i not in stored and not isinstance(example, torch.Tensor):
            raise FrontendError(
                f"input {node.name} of GraphModule {name} is a {type(example).__name__}; natopt "
                "lifts tensor inputs only"
            )
    with eval_mode(module):
        try:
            program = export_module(
                module, inputs, dynamic_batch=dynamic_batch, static_positions=list(stored)
            )
        except Exception as exc:
            check_inputs_fit(module, inputs)
            if dynamic_batch:
                raise FrontendError(
                    f"dynamic_batch needs torch.export, which failed for {name}: {reason(exc)}"
                ) from exc
            graph = lift_torch_level(module, inputs, name, stored)
        else:
            graph = lift_program(program, name, stored)
    graph.meta[INPUT_POSITIONS] = [
        original_positions[i] for i in range(len(inputs)) if i not in stored
    ]
    return graph
