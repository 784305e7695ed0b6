"""Smaller kernel: a conv keeps its type and takes a smaller odd kernel (7 -> 5 -> 3 -> 1).

``Conv_k(x; W, b) -> Conv_k'(x; centre(W), b)``: groups, stride and dilation kept, the
padding the one that keeps the output size (``geometry``); the new kernel takes the centre
``k'×k'`` of the old one (``inherit.resample_kernel``).

Valid from a dense or grouped ``conv`` with a square odd kernel ``k > k'``, when it is
cheaper: ``P·O·(I/g)·k'²`` MACs, ``O·(I/g)·k'² + b·O`` parameters (P output positions,
b = 1 when the conv had a bias). Refit: the whole new kernel and its bias, per group, on the
im2col patches of the unit's input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from natopt.ir import Cost, Graph, Node
from natopt.passes.calibration import refit_conv
from natopt.passes.transitions.geometry import kernel_check, output_padding
from natopt.passes.transitions.inherit import resample_kernel
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    priced,
    register,
)
from natopt.passes.transitions.rewrite import add_node, source_name, with_bias
from natopt.passes.transitions.state import UnitState, dense_weight

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["KernelRule"]


@register
class KernelRule(TransitionRule):
    """``conv_{7,5,3,1}``: the same conv with a smaller kernel."""

    ops = ("conv",)
    entries = tuple(Transition(f"conv_{k}x{k}", "kernel", "conv", k) for k in (7, 5, 3, 1))
    order = 30
    accepts = frozenset({"conv"})

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        reason = kernel_check(state, entry, self.accepts, kernel_level)
        if reason:
            return reason
        k = entry.kernel or 1
        padding = output_padding(state, k, state.dilation)
        if isinstance(padding, Reason):
            return padding
        return priced(state, Target(entry, self.price(state, k), k, state.dilation, padding))

    @staticmethod
    def price(state: UnitState, kernel: int) -> Cost:
        weights = state.c_out * (state.c_in // state.groups) * kernel * kernel
        return Cost(weights + state.bias * state.c_out, state.positions * weights)

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        weight, bias = dense_weight(state)
        k, d = target.kernel or 1, target.dilation
        attrs = {
            "stride": state.stride,
            "padding": target.padding,
            "dilation": (d, d),
            "groups": state.groups,
        }
        new = with_bias({"weight": resample_kernel(weight, state.dilation, k, d)}, bias)
        x = state.replaced[0].inputs[0]
        return [add_node(graph, state, "Conv", x, attrs, new, source_name(state))]

    def refit(self, nodes: Sequence[Node], x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        refit_conv(nodes, x, y, alpha)
