"""Skip: the unit becomes the identity; every use of its output reads its input instead.

Valid when the unit's output has the shape and dtype of its input. It removes the unit's
MACs and parameters (cost 0); the unit's nodes are left for dead-code removal. Taken by a
residual branch, it wins over the units inside the branch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from natopt.ir import Cost, Graph, Node
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

__all__ = ["SkipRule"]


@register
class SkipRule(TransitionRule):
    """``skip``: output := input."""

    ops = ("skip",)
    entries = (Transition("skip", "depth", "skip"),)
    order = 10
    builds = False
    overrides_nested = True

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        unit = state.unit
        if unit.input.shape != unit.output.shape or unit.input.dtype != unit.output.dtype:
            return Reason(
                f"skip needs output shape {unit.output.shape} equal to input shape "
                f"{unit.input.shape}"
            )
        return Target(entry, Cost())

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        graph.replace_all_uses(state.unit.output, state.unit.input)
        return []

    def rewired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x
