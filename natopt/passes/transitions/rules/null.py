"""Null: the unit's output becomes zero, so each Add reading it becomes its other operand.

Call a unit a *null candidate* when its output is not a graph output and every use of it is
an operand of a two-input ``Add`` whose other operand is a different value, has the Add's
own shape and dtype, and depends on a graph input (is not a constant). ``null`` is valid on
a candidate when, for every such Add, the other operand is *not* the output of a null
candidate. Hence at most one operand of an Add is ever nullable, and the other operand of
every nulled Add stays live: the main path is never zeroed. (In a ResNet block with a
downsample shortcut both operands are candidates, so neither is offered null.)

Rewrite: every Add reading the unit's output is replaced by its other operand (``x + 0 =
x``); the unit's nodes are left for dead-code removal. Cost 0; it also frees the unit's
input, and taken by a residual branch it wins over the units inside the branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from natopt.ir import Cost, Graph, Node, Value, constant_values
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    register,
)
from natopt.passes.transitions.state import UnitState
from natopt.passes.units import Unit

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["NullRule"]


def _add_partners(value: Value, constant: frozenset[Value]) -> list[Value] | None:
    """The other operands of the Adds reading ``value``; ``None`` unless all uses qualify."""
    if not value.uses or value.is_graph_output():
        return None
    partners = []
    for node, index in value.uses:
        if node.op != "Add" or len(node.inputs) != 2:
            return None
        other = node.inputs[1 - index]
        if other is None or other is value or other in constant:
            return None
        if other.shape != node.output.shape or other.dtype != node.output.dtype:
            return None
        partners.append(other)
    return partners


@register
class NullRule(TransitionRule):
    """``null``: output := 0 on a residual branch (see the module docstring)."""

    ops = ("null",)
    entries = (Transition("null", "depth", "null"),)
    order = 20
    builds = False
    overrides_nested = True
    frees_inputs = True

    def context(self, graph: Graph, units: Sequence[Unit]) -> set[Value]:
        """The unit outputs offered null."""
        constant = constant_values(graph)
        partners = {u.output: _add_partners(u.output, constant) for u in units}
        candidates = {key for key, found in partners.items() if found is not None}
        return {
            key
            for key in candidates
            if all(other not in candidates for other in partners[key] or ())
        }

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        nullable = ctx.facts(self)
        assert isinstance(nullable, set)
        if state.unit.output not in nullable:
            return Reason(
                "null needs every use of the unit's output to be an Add whose other operand "
                "stays live (and cannot itself be nulled)"
            )
        return Target(entry, Cost())

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        for add, index in list(state.unit.output.uses):
            other = add.inputs[1 - index]
            assert other is not None  # guaranteed by check
            graph.replace_all_uses(add.output, other)
        return []

    def rewired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(y)
