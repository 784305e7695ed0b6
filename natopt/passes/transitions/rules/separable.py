"""Depthwise-separable conv: a dense conv becomes a depthwise k'×k' conv then a pointwise 1x1.

``Conv_k(x; W, b) -> Conv_1x1(Conv_k'(x; D, groups=C_in); P, b)`` with
``D, P = separable_from_dense(resample(W))`` (``inherit``: per input channel the best rank-1
split of the kernel slice). Stride, the unit's base dilation ``d₀`` and the size-keeping
padding go on the depthwise half. The halves are tagged ``depthwise`` / ``pointwise``
(``natopt.kernel`` in their meta), so a separable unit is recognised again and may take a
smaller kernel, or the dilated separable or pooling target.

Valid from a dense ``conv`` (groups 1) or a separable unit, subject to ``geometry``'s kernel
check, when it is cheaper: ``P·(I·k'² + I·O)`` MACs, ``I·k'² + I·O + b·O`` parameters.
Refit: the pointwise conv and its bias, on the depthwise conv's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from natopt.ir import Cost, Graph, Node
from natopt.passes.calibration import refit_last
from natopt.passes.transitions.geometry import kernel_check, output_padding
from natopt.passes.transitions.inherit import resample_kernel, separable_from_dense
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    family_rule,
    priced,
    register,
)
from natopt.passes.transitions.rewrite import add_node, part_tags, with_bias
from natopt.passes.transitions.state import UnitState, conv_geometry, dense_weight

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["SeparableRule"]


@register
class SeparableRule(TransitionRule):
    """``sep_conv_{7,5,3}``; ``dilation``: the factor on the base dilation of the result."""

    ops = ("sep_conv",)
    entries = tuple(Transition(f"sep_conv_{k}x{k}", "type", "sep_conv", k) for k in (7, 5, 3))
    order = 40
    accepts = frozenset({"conv", "sep_conv"})
    family = "sep_conv"
    parts = ("depthwise", "pointwise")
    dilation: ClassVar[int] = 1

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        reason = kernel_check(state, entry, self.accepts, kernel_level)
        if reason:
            return reason
        if state.groups != 1:
            return Reason(
                f"separable targets need a dense conv (groups 1), the unit has groups "
                f"{state.groups}"
            )
        k = entry.kernel or 1
        current = family_rule(state.family)
        base = state.dilation // (current.dilation if isinstance(current, SeparableRule) else 1)
        dilation = base * self.dilation
        padding = output_padding(state, k, dilation)
        if isinstance(padding, Reason):
            return padding
        return priced(state, Target(entry, self.price(state, k), k, dilation, padding))

    @staticmethod
    def price(state: UnitState, kernel: int) -> Cost:
        per_position = state.c_in * kernel * kernel + state.c_in * state.c_out
        return Cost(per_position + state.bias * state.c_out, state.positions * per_position)

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        weight, bias = dense_weight(state)
        k, d = target.kernel or 1, target.dilation
        depthwise, pointwise = separable_from_dense(resample_kernel(weight, state.dilation, k, d))
        first, second = self.parts
        dw_attrs = {"stride": state.stride, "padding": target.padding, "dilation": (d, d)}
        dw = add_node(
            graph,
            state,
            "Conv",
            state.replaced[0].inputs[0],
            {**dw_attrs, "groups": state.c_in},
            {"weight": depthwise},
            f"{state.unit.name}.{first}",
            part_tags(state, self.family, first, **{"natopt.kernel": k}),
        )
        pw_attrs = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
        pw = add_node(
            graph,
            state,
            "Conv",
            dw.output,
            pw_attrs,
            with_bias({"weight": pointwise}, bias),
            f"{state.unit.name}.{second}",
            part_tags(state, self.family, second, **{"natopt.kernel": k}),
        )
        return [dw, pw]

    def refit(self, nodes: Sequence[Node], x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        refit_last(nodes, x, y, alpha)

    def read(self, state: UnitState) -> None:
        depthwise, pointwise = state.replaced
        state.bias = "bias" in pointwise.weights
        channels = int(depthwise.weights["weight"].shape[0])
        conv_geometry(state, depthwise, channels, int(pointwise.weights["weight"].shape[0]))

    def dense_weight(self, state: UnitState) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``W[o, c] = P[o, c] · D[c]``."""
        depthwise = state.replaced[0].weights["weight"]  # [C, 1, k, k]
        pointwise = state.replaced[1].weights["weight"]  # [O, C, 1, 1]
        return pointwise * depthwise[:, 0][None], state.replaced[1].weights.get("bias")
