"""Pooling: a conv becomes a max or average pooling window with no weights.

``Conv_k(x) -> MaxPool_k'(x)`` or ``AvgPool_k'(x)`` (``count_include_pad=False``): stride
kept, dilation 1, the size-keeping padding (``geometry``), which pooling also needs to be at
most ``k' // 2``.

Valid from a dense, separable or dilated separable conv that keeps its channel count
(``C_in == C_out``), subject to ``geometry``'s kernel check. It costs nothing (0 MACs, 0
parameters), so it is valid wherever the unit costs anything; nothing is refit. Max and
average pooling cost the same, so neither is offered from the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from natopt.ir import Cost, Graph, Node
from natopt.passes.transitions.geometry import kernel_check, output_padding
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    priced,
    register,
)
from natopt.passes.transitions.rewrite import add_node, source_name
from natopt.passes.transitions.state import UnitState

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["PoolingRule"]

_OPS = {"max_pool": "MaxPool", "avg_pool": "AvgPool"}


@register
class PoolingRule(TransitionRule):
    """``max_pool_3x3``, ``avg_pool_3x3``."""

    ops = tuple(_OPS)
    entries = tuple(Transition(f"{op}_3x3", "type", op, 3) for op in _OPS)
    order = 60
    accepts = frozenset({"conv", "sep_conv", "dil_sep_conv"})

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        reason = kernel_check(state, entry, self.accepts, kernel_level)
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

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        k = target.kernel or 1
        attrs: dict[str, Any] = {
            "kernel_size": (k, k),
            "stride": state.stride,
            "padding": target.padding,
        }
        op = _OPS[target.entry.op]
        if op == "AvgPool":
            attrs["count_include_pad"] = False
        x = state.replaced[0].inputs[0]
        return [add_node(graph, state, op, x, attrs, {}, source_name(state))]
