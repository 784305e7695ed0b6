"""Channel dependency groups: the channels that must be pruned together, found on the IR.

One forward walk in graph order gives every value that carries channels a ``Layout`` (the
channel spaces along one axis, ``layout``) and records how each node touches them (``Use``:
produce / consume / follow, ``slicing``). Spaces are union-find elements; an op that makes
two tensors' channels meet (``x + f(x)``, ``x * gate``, a concat along another axis) unites
their spaces. A *group* is a union-find class: every producer, consumer and follower in it
must keep the same channels. The rule for each op is the ``group`` of its ``WidthOp``
(``registry.width_op``; one class per op family under ``ops/``):

- dense Conv / Linear: consumes the input's space (input channels), produces a new one;
  a Linear over a non-channel axis passes the channels through;
- depthwise Conv (``groups = C_in = C_out``), BatchNorm, LayerNorm over the channel axis,
  GroupNorm with 1 or C groups: follow (their channels are the input's);
- activations, casts, pooling, padding / slicing / reductions / softmax off the channel axis:
  pass through; Transpose moves the axis; Reshape / Flatten / Squeeze / Unsqueeze move it by
  the mixed-radix rule (``layout.relocate``), so a Flatten before a classifier gives the
  Linear ``C x H·W`` columns to slice;
- Add, Sub, Mul, Div, Where, Pow, comparisons: operands with the full channel extent are
  united (a residual merge, a squeeze-excitation gate); an operand broadcast along the
  channel axis is not; a constant operand (layer scale, position embedding, through Expand /
  Reshape / Transpose) becomes a follower, claimed backwards from the op that needs it, when
  each value on its chain has that single use;
- Concat along the channel axis concatenates the layouts (a consumer of the concat slices the
  kept channels of each part at its offset); along another axis it unites them;
- anything else (Attention, MatMul, Opaque, a grouped conv, a reshape that cuts the channel
  digit as ``[N, L, 3·D] -> [N, L, 3, H, D/H]`` does for a transformer's qkv, a reduction or
  softmax over channels, a Shape read) blocks the spaces it touches, with the reason; so do
  the graph's outputs.

A group is *prunable* when nothing blocks it and it has a producer. Its *leader* is the first
conv/linear unit (graph order) whose output carries the group and contains one of its
producers: the leader's row of the transition mask carries the group's width entries, and
every other member follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from natopt.ir import Graph
from natopt.passes.units import Unit
from natopt.passes.width.analysis import ChannelGroup, GroupAnalysis
from natopt.passes.width.registry import width_op
from natopt.passes.width.rounding import CPU_ROUNDING, ChannelRounding
from natopt.passes.width.walk import ChannelWalk

__all__ = ["ChannelGroup", "GroupAnalysis", "channel_groups"]

_WIDTH_KINDS = frozenset({"conv", "linear"})


def _assign_leaders(analysis: GroupAnalysis, units: Sequence[Unit]) -> None:
    for unit in units:
        if unit.kind not in _WIDTH_KINDS:
            analysis.why[unit.name] = "width applies to conv and linear units"
            continue
        group = analysis.group_of(unit.output)
        if group is None:
            analysis.why[unit.name] = "the unit's output channels are not one tracked group"
            continue
        reason = group.why_not()
        if reason is not None:
            analysis.why[unit.name] = reason
            continue
        members = set(unit.nodes)
        if group.leader is None and any(u.node in members for u in group.role("produce")):
            group.leader = unit
            analysis.led[unit.name] = group
        else:
            leader = group.leader.name if group.leader is not None else "an earlier layer"
            analysis.why[unit.name] = (
                f"its output channels follow {leader}, whose row carries the group's width"
            )


def channel_groups(
    graph: Graph, units: Sequence[Unit] = (), rounding: ChannelRounding = CPU_ROUNDING
) -> GroupAnalysis:
    """The channel groups of ``graph`` and, among ``units`` (graph order), their leaders."""
    walk = ChannelWalk(graph, rounding)
    for node in graph.nodes:
        width_op(node.op).group(walk, node)
    for value in graph.outputs:
        walk.block(walk.layout(value), f"they reach the graph output {value.name}")
    analysis = walk.analysis
    groups: dict[int, ChannelGroup] = {}

    def group(space: int) -> ChannelGroup:
        root = analysis.find(space)
        if root not in groups:
            groups[root] = ChannelGroup(root, analysis.sizes[root], analysis)
        return groups[root]

    for space, use in walk.uses:
        found = group(space)
        if not any(u is use for u in found.uses):
            found.uses.append(use)
    for space, reason in walk.reasons:
        group(space).reasons.append(reason)
    analysis.groups = sorted(groups.values(), key=lambda g: g.root)
    _assign_leaders(analysis, units)
    return analysis
