"""Width: a unit keeps a fraction of its output channels, and so does its whole channel group.

The unit must lead a prunable channel group (``state.group``, from ``natopt.passes.width``,
computed by the mask's context when the vocabulary has the width level). The kept count is
``fraction·C`` rounded up to the device's channel block; invalid when it is not below ``C``
or equals what a larger fraction keeps, or when the group's nodes (producers, consumers,
followers) would not cost less in total. The target's cost is marginal: the unit's replaced
op minus what narrowing saves over the whole group (it may be negative), so a plan priced
unit by unit sees the group's savings.

The rule is ``grouped``: ``apply_plan`` narrows every width step first, together
(``natopt.passes.width.apply_width``: channels chosen by importance, consumers sliced and
refit), instead of calling a per-unit rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from natopt.ir import Cost
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    cheaper,
    register,
)
from natopt.passes.transitions.state import UnitState

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["WidthRule"]


@register
class WidthRule(TransitionRule):
    """``width_3_4``, ``width_1_2``, ``width_1_4``: that fraction of the output channels."""

    ops = ("width",)
    entries = tuple(
        Transition(f"width_{a}_{b}", "width", "width", fraction=a / b)
        for a, b in ((3, 4), (1, 2), (1, 4))
    )
    order = 80
    grouped = True

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        group = state.group
        if group is None:
            return Reason(
                f"width needs a unit leading a prunable channel group; {state.group_reason}"
            )
        fraction = entry.fraction or 1.0
        kept = group.kept(fraction)
        if kept >= group.channels:
            return Reason(
                f"{entry.name} of {group.channels} channels rounds up to {kept}: none removed"
            )
        same = [
            wider.name
            for wider in self.entries
            if (wider.fraction or 1.0) > fraction and group.kept(wider.fraction or 1.0) == kept
        ]
        if same:
            return Reason(f"{entry.name} keeps the same {kept} channels as {same[0]}")
        changes = group.costs(kept)
        before = sum((b for b, _ in changes.values()), Cost())
        after = sum((a for _, a in changes.values()), Cost())
        if not cheaper(after, before):
            return Reason(f"{entry.name} does not lower the cost of the group's layers")
        marginal = Cost(
            state.cost.params - before.params + after.params,
            state.cost.macs - before.macs + after.macs,
        )
        return Target(entry, marginal, channels=kept)
