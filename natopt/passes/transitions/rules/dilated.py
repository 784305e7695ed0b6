"""Dilated separable conv: the separable rewrite with twice the unit's base dilation.

``Conv_k(x) -> Conv_1x1(Conv_k'(x; D, groups=C_in, dilation=2·d₀); P)``: the depthwise kernel
samples the old kernel on its dilated grid (``inherit.resample_kernel``), so a 3x3 dilated
target covers a 5x5 window. Valid from a dense conv, a separable or a dilated separable unit;
otherwise as ``rules.separable`` (checks, cost, refit, the ``depthwise`` / ``pointwise``
halves).
"""

from __future__ import annotations

from natopt.passes.transitions.registry import Transition, register
from natopt.passes.transitions.rules.separable import SeparableRule

__all__ = ["DilatedRule"]


@register
class DilatedRule(SeparableRule):
    """``dil_sep_conv_{5,3}``."""

    ops = ("dil_sep_conv",)
    entries = tuple(Transition(f"dil_sep_conv_{k}x{k}", "type", "dil_sep_conv", k) for k in (5, 3))
    order = 50
    accepts = frozenset({"conv", "sep_conv", "dil_sep_conv"})
    family = "dil_sep_conv"
    dilation = 2
