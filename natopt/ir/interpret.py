"""Run an IR graph eagerly in torch, node by node, through each op's implementation.

Passes use it for calibration (the activations flowing into a unit) and shape inference uses
it on meta tensors; the trainable module for users comes from ``natopt.backends.to_torch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from natopt.ir.graph import Graph, Node, Value
from natopt.ir.registry import get_spec

__all__ = ["call_node", "run_graph"]


def call_node(node: Node, inputs: Sequence[Any], weights: dict[str, Any] | None = None) -> tuple:
    """Apply ``node``'s op to ``inputs``; returns a tuple with one entry per output."""
    spec = get_spec(node.op)
    weights = node.weights if weights is None else weights
    result = spec.impl(*inputs, **weights, **node.attrs)
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


@torch.no_grad()
def run_graph(
    graph: Graph,
    inputs: Sequence[torch.Tensor],
    *,
    watch: Callable[[Node, tuple, tuple], None] | None = None,
    upto: Node | None = None,
) -> list[torch.Tensor]:
    """Evaluate ``graph`` on ``inputs``; ``watch(node, node_inputs, node_outputs)`` sees each step.

    Intermediate tensors are freed as soon as their last consumer has run. ``upto``: stop
    after running that node (for a caller that only watches; nothing is returned then).
    """
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"graph {graph.name} takes {len(graph.inputs)} inputs, got {len(inputs)}")
    env: dict[Value, Any] = dict(zip(graph.inputs, inputs, strict=True))
    remaining = {v: len(v.uses) for v in graph.values()}

    def read(value: Value | None) -> Any:
        if value is None:
            return None
        tensor = env[value]
        remaining[value] -= 1
        if remaining[value] == 0 and not value.is_graph_output():
            del env[value]
        return tensor

    for node in graph.nodes:
        args = tuple(read(v) for v in node.inputs)
        outs = call_node(node, args)
        if watch is not None:
            watch(node, args, outs)
        if node is upto:
            return []
        for value, tensor in zip(node.outputs, outs, strict=True):
            env[value] = tensor
    return [env[v] for v in graph.outputs]
