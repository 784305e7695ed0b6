"""Rewriting a unit: ``rewrite_unit`` and the helpers every rule's rewrite builds with.

``rewrite_unit(graph, state, op, target)`` asks the rule of ``op`` (``registry.rule_for``)
for the replacement. A rule that ``builds`` (kernel, separable, pooling, low rank ...)
returns new nodes inserted before the nodes ``target.replaced(state)`` replaces (the conv, the
linear, both halves of a separable / low-rank pair, or the chain a target names); here the
last new node's output takes over the uses of the last replaced one and the replaced nodes
are removed. The unit's trailing norm
and activation chain stay. Rules that build nothing (keep, skip, null) rewire the graph
themselves and leave the unit's nodes to dead-code removal.

Helpers: ``add_node`` (a node inserted before the replaced ones, shapes inferred),
``source_name`` (the source a single replacement takes, so the unit keeps its name),
``part_tags`` (the ``meta`` tags of a composite half, ``state`` module docstring) and
``with_bias``.
"""

from __future__ import annotations

from typing import Any

import torch

from natopt.ir import Graph, Node, infer_node
from natopt.passes.transitions.registry import Target, rule_for
from natopt.passes.transitions.state import OP_META, PART_META, UNIT_META, UnitState

__all__ = ["rewrite_unit", "add_node", "part_tags", "source_name", "with_bias"]


def source_name(state: UnitState) -> str:
    """The source a single replacement node takes, so that the unit keeps its name."""
    main = state.unit.main
    return main.source if main.source and main.meta.get(UNIT_META) is None else state.unit.name


def part_tags(state: UnitState, op: str, part: str, **extra: Any) -> dict[str, Any]:
    """The meta of one half (``part``) of a composite replacement of family ``op``."""
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
    """A single-input ``op`` node reading ``x``, inserted before the replaced nodes."""
    node = graph.add_node(
        op, [x], attrs, weights, source=source, before=state.replaced[0], name=op.lower()
    )
    node.meta.update(meta or {})
    infer_node(node)
    return node


def with_bias(weights: dict[str, torch.Tensor], bias: torch.Tensor | None) -> dict:
    """``weights`` with ``bias`` added when there is one."""
    return weights if bias is None else {**weights, "bias": bias}


def rewrite_unit(graph: Graph, state: UnitState, op: str, target: Target) -> list[Node]:
    """Apply transition ``op`` to ``state``'s unit in ``graph``; returns the new nodes.

    Preconditions: ``target`` is what the rule's check returned. Replaced nodes are removed
    here; rules that build nothing (keep, skip, null) leave dead nodes behind.
    """
    rule = rule_for(op)
    assert rule is not None, op  # every op of a vocabulary entry has a rule
    if not rule.builds:
        return rule.rewrite(graph, state, target)
    new = rule.rewrite(graph, state, target)
    replaced = target.replaced(state)
    graph.replace_all_uses(replaced[-1].output, new[-1].output)
    for node in reversed(replaced):
        graph.remove_node(node)
    return new
