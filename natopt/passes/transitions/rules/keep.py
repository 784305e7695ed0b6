"""Keep: the unit stays as it is. Always valid, at the unit's own cost; rewrites nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from natopt.ir import Graph, Node
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    register,
)
from natopt.passes.transitions.state import UnitState

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["KeepRule"]


@register
class KeepRule(TransitionRule):
    """``keep``: vocabulary entry 0, valid for every unit."""

    ops = ("keep",)
    entries = (Transition("keep", "depth", "keep"),)
    order = 0
    builds = False

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        return Target(entry, state.cost)

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        return []
