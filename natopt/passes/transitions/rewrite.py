"""Rewriting a unit: ``rewrite_unit`` and the helpers every rule's rewrite builds with.

The rules under ``rules/`` build their own replacement; the families below are still
rewritten from the ``REWRITES`` table.

Main-op rewrites replace the nodes ``state.replaced`` (the conv, the linear, or both halves of
a separable / low-rank pair) by new nodes inserted in their place; the unit's trailing norm
and activation chain stay. Weights are inherited (``inherit``) from the unit's dense kernel
``W`` (``state.dense_weight``), bias kept on the last new node:

- ``max_pool`` / ``avg_pool``  ``Conv_k(x) -> Pool_k'(x)`` (avg: ``count_include_pad=False``)

Stride is kept and padding is the target's (output shape unchanged). New nodes are tagged in
``meta`` (``state`` module docstring) so the result is recognised as the same unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from natopt.ir import Graph, Node, infer_node
from natopt.passes.transitions.registry import Target, rule_for
from natopt.passes.transitions.state import (
    OP_META,
    PART_META,
    UNIT_META,
    UnitState,
)

__all__ = ["REWRITES", "rewrite_unit"]


def source_name(state: UnitState) -> str:
    """The source a single replacement node takes, so that the unit keeps its name."""
    main = state.unit.main
    return main.source if main.source and main.meta.get(UNIT_META) is None else state.unit.name


def part_tags(state: UnitState, op: str, part: str, **extra: Any) -> dict[str, Any]:
    return {UNIT_META: state.unit.name, OP_META: op, PART_META: part, **extra}


def add_node(
    graph: Graph,
    state: UnitState,
    op: str,
    x: Any,
    attrs: dict[str, Any],
    weights: dict[str, torch.Tensor],
    source: str,
    meta: dict[str, Any] | None = None,
) -> Node:
    node = graph.add_node(
        op, [x], attrs, weights, source=source, before=state.replaced[0], name=op.lower()
    )
    node.meta.update(meta or {})
    infer_node(node)
    return node


def with_bias(weights: dict[str, torch.Tensor], bias: torch.Tensor | None) -> dict:
    return weights if bias is None else {**weights, "bias": bias}


def _pool(graph: Graph, state: UnitState, target: Target) -> list[Node]:
    k = target.kernel or 1
    attrs: dict[str, Any] = {
        "kernel_size": (k, k),
        "stride": state.stride,
        "padding": target.padding,
    }
    op = "MaxPool" if target.entry.op == "max_pool" else "AvgPool"
    if op == "AvgPool":
        attrs["count_include_pad"] = False
    return [add_node(graph, state, op, state.replaced[0].inputs[0], attrs, {}, source_name(state))]


REWRITES: dict[str, Callable[[Graph, UnitState, Target], list[Node]]] = {
    "max_pool": _pool,
    "avg_pool": _pool,
}


def rewrite_unit(graph: Graph, state: UnitState, op: str, target: Target) -> list[Node]:
    """Apply transition ``op`` to ``state``'s unit in ``graph``; returns the new nodes.

    Preconditions: ``target`` is what the rule's check returned. Replaced nodes are removed
    here; rules that build nothing (keep, skip, null) leave dead nodes behind.
    """
    rule = rule_for(op)
    if rule is not None and not rule.builds:
        return rule.rewrite(graph, state, target)
    new = (
        rule.rewrite(graph, state, target)
        if rule is not None
        else REWRITES[op](graph, state, target)
    )
    graph.replace_all_uses(state.replaced[-1].output, new[-1].output)
    for node in reversed(state.replaced):
        graph.remove_node(node)
    return new
