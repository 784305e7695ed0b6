"""The width target, the one family not yet a rule under ``rules/``.

``TARGET_RULES["width"]`` returns a ``Target`` (the kept channel count and its marginal
cost) or a ``Reason``:

- width: the unit must lead a prunable channel group (``state.group``, from
  ``natopt.passes.width``); the kept count is ``fraction·C`` rounded up to the device's
  channel block; invalid when it is not below ``C`` or equals what a larger fraction keeps,
  or when the group's nodes (producers, consumers, followers) would not cost less in total.
  The target's cost is marginal: the unit's replaced op minus what narrowing saves over the
  whole group (it may be negative), so a plan priced unit by unit sees the group's savings.
"""

from __future__ import annotations

from collections.abc import Callable

from natopt.ir import Cost
from natopt.passes.transitions.registry import Reason, Target, Transition, cheaper
from natopt.passes.transitions.state import UnitState
from natopt.passes.transitions.vocabulary import VOCABULARY

__all__ = ["TARGET_RULES", "target_for"]

_WIDTHS = tuple(e for e in VOCABULARY if e.op == "width")


def _width(state: UnitState, entry: Transition, kernel_level: bool) -> Target | Reason:
    group = state.group
    if group is None:
        return Reason(f"width needs a unit leading a prunable channel group; {state.group_reason}")
    fraction = entry.fraction or 1.0
    kept = group.kept(fraction)
    if kept >= group.channels:
        return Reason(
            f"{entry.name} of {group.channels} channels rounds up to {kept}: none removed"
        )
    same = [
        wider.name
        for wider in _WIDTHS
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
        state.cost.params - before.params + after.params, state.cost.macs - before.macs + after.macs
    )
    return Target(entry, marginal, channels=kept)


TARGET_RULES: dict[str, Callable[[UnitState, Transition, bool], Target | Reason]] = {
    "width": _width,
}


def target_for(state: UnitState, entry: Transition, kernel_level: bool = True) -> Target | Reason:
    """The target ``entry`` gives ``state``'s unit, or why it is invalid."""
    rule = TARGET_RULES.get(entry.op)
    if rule is None:
        return Reason(f"{entry.op} is not a type, kernel, low-rank or width transition")
    return rule(state, entry, kernel_level)
