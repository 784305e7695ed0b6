"""Merge (DepthShrinker, ICML 2022): drop the activations between consecutive convolutions
and merge the convolutions into one.

``merge_2`` merges the unit's conv with the next conv unit's, ``merge_3`` with the next two:
an inverted residual block ``Conv_1x1 -> act -> Conv_kxk(depthwise) -> act -> Conv_1x1``
becomes one dense ``Conv_kxk``. The activations between the merged convs are removed; the
last unit's trailing norm and activations stay after the merged conv.

Composition. With no nonlinearity between them, a conv ``f`` followed by a conv ``g`` is one
conv when one of the two is pointwise (1x1 kernel, stride 1, no padding). With ``F̄``, ``Ḡ``
the weights expanded from their groups to dense (``[O, I, k, k]``):

- ``g`` pointwise: ``W[o, c] = Σ_m G[o, m] · F̄[m, c]``, ``b = G·b_f + b_g``, the geometry
  (stride, padding, dilation) of ``f``; exact;
- ``f`` pointwise: ``W[o, c] = Σ_m Ḡ[o, m] · F[m, c]``,
  ``b = b_g + Σ_{m,h,w} Ḡ[o, m, h, w]·b_f[m]``, the geometry of ``g``; exact away from the
  border, and everywhere when ``f`` has no bias or ``g`` no padding (where ``g``'s zero
  padding meets the image the original sees 0 there, the merged conv ``b_f``).

The merged conv is dense (groups 1). A chain composes pair by pair from its first conv.

Valid on a unit whose conv (family ``conv``, 2-D) is followed only by activations (no norm:
fold it first), whose output (no graph output) is read only by the next unit's conv, and so
on along the chain; each pair must compose; and the merged conv must be cheaper than all it
replaces (the convs and the activations between them; ``registry.cheaper``). That rules out
most pairs of an inverted residual block (a 1x1 then a depthwise kxk merge into a dense kxk
that costs more) and admits the whole block. The target's cost is marginal: the unit's conv
minus what the merge saves over the chain (it may be negative).

Refit: the whole merged kernel and its bias, on the im2col patches of the first conv's input,
against the last conv's original output (``refit_conv``).

The rule is ``optional``: its entries are not in ``VOCABULARY``; a vocabulary that wants them
lists them, ``Vocabulary((*VOCABULARY, *MergeRule.entries))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from natopt.ir import Cost, Graph, Node, node_cost
from natopt.passes.calibration import refit_conv
from natopt.passes.transitions.registry import (
    Reason,
    Target,
    Transition,
    TransitionRule,
    cheaper,
    register,
)
from natopt.passes.transitions.rewrite import add_node, source_name
from natopt.passes.transitions.state import UnitState, per_dim, unit_state
from natopt.passes.units import ACTIVATION_OPS, Unit

if TYPE_CHECKING:
    from natopt.passes.transitions.mask import MaskContext

__all__ = ["MergeRule", "merge_convs"]

_LENGTHS = {"merge_2": 2, "merge_3": 3}


@dataclass(frozen=True, slots=True)
class _Geometry:
    """A 2-D conv as the merge sees it: dense channels, kernel, stride, padding, dilation."""

    c_out: int
    c_in: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @classmethod
    def of(cls, conv: Node) -> _Geometry:
        weight = conv.weights["weight"]
        groups = int(conv.attrs["groups"])
        return cls(
            int(weight.shape[0]),
            int(weight.shape[1]) * groups,
            tuple(int(k) for k in weight.shape[2:]),
            per_dim(conv.attrs["stride"], 2),
            per_dim(conv.attrs["padding"], 2),
            per_dim(conv.attrs["dilation"], 2),
        )

    @property
    def pointwise(self) -> bool:
        return self.kernel == (1, 1) and set(self.stride) == {1} and set(self.padding) == {0}


def _merged(first: _Geometry, second: _Geometry) -> _Geometry | Reason:
    """The geometry of ``second ∘ first`` as one conv, or why they do not compose."""
    if second.pointwise:
        return replace(first, c_out=second.c_out)
    if first.pointwise:
        return replace(second, c_in=first.c_in)
    return Reason("neither of two consecutive convs is a pointwise 1x1 (stride 1, no padding)")


def _dense(conv: Node) -> torch.Tensor:
    """The conv's weight ``[O, I/g, kh, kw]`` expanded to dense ``[O, I, kh, kw]`` (float64)."""
    weight = conv.weights["weight"].detach().double()
    groups = int(conv.attrs["groups"])
    if groups == 1:
        return weight
    c_out, per_group, kh, kw = weight.shape
    dense = weight.new_zeros(c_out, per_group * groups, kh, kw)
    blocks = dense.view(groups, c_out // groups, groups, per_group, kh, kw)
    index = torch.arange(groups)
    blocks[index, :, index] = weight.view(groups, c_out // groups, per_group, kh, kw)
    return dense


def _fold(convs: Sequence[Node]) -> _Geometry | Reason:
    """The geometry of the whole chain as one conv, or why it does not compose."""
    geometry = _Geometry.of(convs[0])
    for conv in convs[1:]:
        merged = _merged(geometry, _Geometry.of(conv))
        if isinstance(merged, Reason):
            return merged
        geometry = merged
    return geometry


def _bias(conv: Node) -> torch.Tensor | None:
    bias = conv.weights.get("bias")
    return None if bias is None else bias.detach().double()


def merge_convs(convs: Sequence[Node]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dense weight and bias of the chain ``convs[-1] ∘ ... ∘ convs[0]`` without the
    activations between them (see the module docstring); precondition: ``_fold`` composes."""
    weight, bias = _dense(convs[0]), _bias(convs[0])
    for conv in convs[1:]:
        g, g_bias = _dense(conv), _bias(conv)
        if _Geometry.of(conv).pointwise:
            weight = torch.einsum("om,mchw->ochw", g[:, :, 0, 0], weight)
            carried = None if bias is None else g[:, :, 0, 0] @ bias
        else:
            weight = torch.einsum("omhw,mc->ochw", g, weight[:, :, 0, 0])
            carried = None if bias is None else torch.einsum("omhw,m->o", g, bias)
        if carried is None or g_bias is None:
            bias = g_bias if carried is None else carried
        else:
            bias = carried + g_bias
    dtype = convs[0].weights["weight"].dtype
    return weight.to(dtype), None if bias is None else bias.to(dtype)


def _between(unit: Unit) -> list[Node] | Reason:
    """The ops after ``unit``'s conv that a merge removes: activations only."""
    after = [n for n in unit.nodes if n is not unit.main]
    others = sorted({n.op for n in after if n.op not in ACTIVATION_OPS})
    if others:
        return Reason(f"{unit.name} has {', '.join(others)} after its conv (fold it first)")
    return after


@register
class MergeRule(TransitionRule):
    """``merge_2``, ``merge_3``: this conv and the next one or two as one conv."""

    ops = ("merge",)
    entries = tuple(Transition(name, "depth", "merge") for name in _LENGTHS)
    order = 90
    accepts = frozenset({"conv"})
    optional = True

    def context(self, graph: Graph, units: Sequence[Unit]) -> dict[Node, Unit]:
        """The conv and linear units by their main node."""
        return {u.main: u for u in units if u.kind != "branch"}

    def _chain(self, state: UnitState, length: int, ctx: MaskContext) -> list[UnitState] | Reason:
        """The states of the unit and the ``length - 1`` conv units that follow it."""
        by_main = ctx.facts(self)
        assert isinstance(by_main, dict)
        chain = [state]
        while True:
            if chain[-1].family not in self.accepts:
                return Reason(f"{chain[-1].unit.name} is not a 2-D conv")
            if len(chain) == length:
                return chain
            unit = chain[-1].unit
            out = unit.output
            if out.is_graph_output() or len(out.uses) != 1:
                return Reason(f"{unit.name}'s output is not read by one conv alone")
            consumer, index = out.uses[0]
            following = by_main.get(consumer)
            if following is None or index != 0:
                return Reason(f"{unit.name}'s output is not read by a conv unit")
            chain.append(unit_state(following))

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        chain = self._chain(state, _LENGTHS[entry.name], ctx)
        if isinstance(chain, Reason):
            return chain
        geometry = _fold([link.unit.main for link in chain])
        if isinstance(geometry, Reason):
            return geometry
        replaced: list[Node] = []
        for link in chain[:-1]:
            between = _between(link.unit)
            if isinstance(between, Reason):
                return between
            replaced += [link.unit.main, *between]
        replaced.append(chain[-1].unit.main)
        removed = sum((node_cost(n) for n in replaced), Cost())
        last = chain[-1]
        bias = any("bias" in link.unit.main.weights for link in chain)
        weights = geometry.c_out * geometry.c_in * geometry.kernel[0] * geometry.kernel[1]
        cost = Cost(weights + bias * geometry.c_out, last.positions * weights)
        if not cheaper(cost, removed):
            return Reason(
                f"{entry.name} costs {cost.macs} MACs / {cost.params} params, not below the "
                f"{removed.macs} / {removed.params} of the convs it merges"
            )
        marginal = Cost(
            state.cost.params - removed.params + cost.params,
            state.cost.macs - removed.macs + cost.macs,
        )
        return Target(
            entry,
            marginal,
            kernel=geometry.kernel[0],
            dilation=geometry.dilation[0],
            padding=geometry.padding,
            replaces=tuple(replaced),
        )

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        convs = [n for n in target.replaces if n.op == "Conv"]
        geometry = _fold(convs)
        assert isinstance(geometry, _Geometry)  # checked by ``check``
        weight, bias = merge_convs(convs)
        attrs = {
            "stride": geometry.stride,
            "padding": geometry.padding,
            "dilation": geometry.dilation,
            "groups": 1,
        }
        weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
        x = convs[0].inputs[0]
        return [add_node(graph, state, "Conv", x, attrs, weights, source_name(state))]

    def refit(self, nodes: Sequence[Node], x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        refit_conv(nodes, x, y, alpha)
