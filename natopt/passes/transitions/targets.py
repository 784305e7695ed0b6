"""Type, kernel and width targets: which op a unit may become, with what geometry and cost.

One rule per target op (``TARGET_RULES``, keyed by ``Transition.op``) returns either a
``Target`` (the replacement's kernel, dilation, padding and its cost) or a ``Reason`` saying
why the transition is invalid. The families already moved to ``rules/`` are checked by
their rule objects (``registry.rule_for``) instead; the shared kernel and padding arithmetic
is in ``geometry``. Rules, in the NAT++ two-level order:

- type level: ``conv -> sep_conv -> dil_sep_conv -> pooling`` (each family may go only to
  itself or below: ``FROM`` lists the families each target accepts); pooling only where
  ``C_in == C_out``.
- kernel level: the target kernel is odd and at most the unit's; the same family requires a
  strictly smaller kernel; a type change that also shrinks the kernel needs the ``kernel``
  level in the vocabulary (``kernel_level``).
- geometry: stride is kept and the padding becomes ``p' = p − (d(k−1) − d'(k'−1)) / 2`` per
  dim, which keeps every output size exactly (the output size depends on ``2p − d(k−1)``
  only); invalid when ``p'`` is negative or not an integer (pooling also needs
  ``p' <= k'//2``). Pooling has dilation 1.
- width: the unit must lead a prunable channel group (``state.group``, from
  ``natopt.passes.width``); the kept count is ``fraction·C`` rounded up to the device's
  channel block; invalid when it is not below ``C`` or equals what a larger fraction keeps,
  or when the group's nodes (producers, consumers, followers) would not cost less in total.
  The target's cost is marginal: the unit's replaced op minus what narrowing saves over the
  whole group (it may be negative), so a plan priced unit by unit sees the group's savings.
- cost: the target's MACs and parameters (computed arithmetically from the unit's channels
  and output positions) are both at most the replaced op's, and (MACs, params) strictly
  smaller lexicographically.

Costs (P output positions, bias b = 1 when the replaced op had one):
pooling 0, 0.
"""

from __future__ import annotations

from collections.abc import Callable

from natopt.ir import Cost
from natopt.passes.transitions.geometry import kernel_check, output_padding
from natopt.passes.transitions.registry import Reason, Target, Transition, cheaper, priced
from natopt.passes.transitions.state import UnitState
from natopt.passes.transitions.vocabulary import VOCABULARY

__all__ = ["TARGET_RULES", "FROM", "target_for"]

FROM: dict[str, frozenset[str]] = {
    "max_pool": frozenset({"conv", "sep_conv", "dil_sep_conv"}),
    "avg_pool": frozenset({"conv", "sep_conv", "dil_sep_conv"}),
}


def _pool(state: UnitState, entry: Transition, kernel_level: bool) -> Target | Reason:
    reason = kernel_check(state, entry, FROM[entry.op], kernel_level)
    if reason:
        return reason
    if state.c_in != state.c_out:
        return Reason(f"pooling keeps channels, the unit maps {state.c_in} to {state.c_out}")
    k = entry.kernel or 1
    padding = output_padding(state, k, 1)
    if isinstance(padding, Reason):
        return padding
    if max(padding) > k // 2:
        return Reason(f"pooling padding {padding} exceeds half the kernel {k}")
    return priced(state, Target(entry, Cost(), k, 1, padding))


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
    "max_pool": _pool,
    "avg_pool": _pool,
    "width": _width,
}


def target_for(state: UnitState, entry: Transition, kernel_level: bool = True) -> Target | Reason:
    """The target ``entry`` gives ``state``'s unit, or why it is invalid."""
    rule = TARGET_RULES.get(entry.op)
    if rule is None:
        return Reason(f"{entry.op} is not a type, kernel, low-rank or width transition")
    return rule(state, entry, kernel_level)
