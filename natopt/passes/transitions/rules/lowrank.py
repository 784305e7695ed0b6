"""Low rank: a linear layer (or a dense 1x1 conv) becomes two thinner ones.

``Linear(x; W, b) -> Linear(Linear(x; A); B, b)`` with ``B @ A`` the truncated SVD of ``W``
(``inherit.low_rank_from_dense``): rank ``r = full_rank // divisor`` (``full_rank`` =
``min(C_in, C_out)``). A 1x1 conv becomes two 1x1 convs, stride and padding on the first.
The halves are tagged ``reduce`` / ``expand`` (``natopt.full_rank``, ``natopt.divisor`` in
their meta), so a low-rank unit is recognised again and may take a larger divisor.

Valid from ``linear``, a dense 1x1 ``conv`` or a ``lowrank`` unit with a smaller divisor,
when ``r >= 1`` and the pair is cheaper: ``P·r·(I + O)`` MACs and ``r·(I + O) + b·O``
parameters (P output positions, b = 1 when the replaced op had a bias).
Refit: the second factor and its bias, on the first factor's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from natopt.ir import Cost, Graph, Node
from natopt.ir.types import numel
from natopt.passes.calibration import refit_last
from natopt.passes.transitions.inherit import low_rank_from_dense
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    priced,
    register,
)
from natopt.passes.transitions.rewrite import add_node, part_tags, with_bias
from natopt.passes.transitions.state import UnitState, dense_weight, per_dim

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["LowRankRule"]


@register
class LowRankRule(TransitionRule):
    """``lowrank_1_{2,4,8}``: rank full // divisor (see the module docstring)."""

    ops = ("lowrank",)
    family = "lowrank"
    parts = ("reduce", "expand")
    entries = tuple(
        Transition(f"lowrank_1_{d}", "lowrank", "lowrank", divisor=d) for d in (2, 4, 8)
    )
    order = 70
    accepts = frozenset({"conv", "linear", "lowrank"})

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        if state.family not in self.accepts or state.full_rank is None:
            return Reason("low rank needs a linear, a dense 1x1 conv or a low-rank unit")
        divisor = entry.divisor or 1
        if divisor <= state.divisor:
            return Reason(f"the unit already has rank full/{state.divisor}")
        rank = state.full_rank // divisor
        if rank < 1:
            return Reason(f"rank {state.full_rank}//{divisor} is 0")
        return priced(
            state, Target(entry, self.price(state, rank), padding=state.padding, rank=rank)
        )

    @staticmethod
    def price(state: UnitState, rank: int) -> Cost:
        per_position = rank * (state.c_in + state.c_out)
        return Cost(per_position + state.bias * state.c_out, state.positions * per_position)

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        weight, bias = dense_weight(state)
        reduce_w, expand_w = low_rank_from_dense(
            weight.reshape(weight.shape[0], -1), target.rank or 1
        )
        first, second = self.parts
        extra = {"natopt.full_rank": state.full_rank, "natopt.divisor": target.entry.divisor}
        conv = state.replaced[0].op == "Conv"
        op = "Conv" if conv else "Linear"
        reduce_attrs: dict[str, Any] = {}
        expand_attrs: dict[str, Any] = {}
        if conv:
            reduce_w, expand_w = reduce_w[:, :, None, None], expand_w[:, :, None, None]
            reduce_attrs = {"stride": state.stride, "padding": state.padding, "dilation": (1, 1)}
            expand_attrs = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)}
        reduce = add_node(
            graph,
            state,
            op,
            state.replaced[0].inputs[0],
            reduce_attrs,
            {"weight": reduce_w},
            f"{state.unit.name}.{first}",
            part_tags(state, "lowrank", first, **extra),
        )
        expand = add_node(
            graph,
            state,
            op,
            reduce.output,
            expand_attrs,
            with_bias({"weight": expand_w}, bias),
            f"{state.unit.name}.{second}",
            part_tags(state, "lowrank", second, **extra),
        )
        return [reduce, expand]

    def refit(self, nodes: Sequence[Node], x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        refit_last(nodes, x, y, alpha)

    def read(self, state: UnitState) -> None:
        reduce, expand = state.replaced
        state.c_in = int(reduce.weights["weight"].shape[1])
        state.c_out = int(expand.weights["weight"].shape[0])
        state.bias = "bias" in expand.weights
        state.positions = numel(expand.output.shape) // max(state.c_out, 1)
        state.full_rank = int(reduce.meta["natopt.full_rank"])
        state.divisor = int(reduce.meta["natopt.divisor"])
        if reduce.op == "Conv":
            state.stride = per_dim(reduce.attrs["stride"], 2)
            state.padding = per_dim(reduce.attrs["padding"], 2)

    def dense_weight(self, state: UnitState) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``W = expand @ reduce``."""
        reduce = state.replaced[0].weights["weight"]
        expand = state.replaced[1]
        bias = expand.weights.get("bias")
        weight = expand.weights["weight"]
        dense = weight.reshape(weight.shape[0], -1) @ reduce.reshape(reduce.shape[0], -1)
        return dense.reshape(weight.shape[0], -1, *reduce.shape[2:]), bias
