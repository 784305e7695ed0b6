"""Which channels of a group to keep: one importance score per channel, highest kept.

Three scores (``IMPORTANCE``), each a vector ``s [C]`` over the group's channels:

- ``l1`` (weight magnitude): for each producer, the L1 norm of every output filter,
  ``s_p[c] = Σ |W_p[c, ...]|``; needs no data.
- ``activation``: for each value a consumer of the group reads (its input ``a``), the mean
  absolute activation of every channel over the calibration data, ``s_a[c] = E |a[:, c]|``
  (all positions; a flattened input averages the channel's positions).
- ``taylor`` (first order, Molchanov et al. 2017): ``s_a[c] = E_n |Σ_positions a·∂L/∂a|``,
  the first-order change of ``L`` when channel ``c`` of ``a`` is zeroed, with the
  distillation-free proxy ``L = ½‖y‖²`` of the graph's first output ``y`` (no labels and no
  teacher are needed); gradients through the IR's own op implementations.

Scores of different tensors are normalised by their mean before they are summed, so each
producer (or consumer input) counts once whatever its scale. ``kept_channels`` keeps the
``k`` highest (ties to the lower index), in increasing order. Data-driven scores fall back
to ``l1`` for a group no consumer reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from natopt.ir import Graph, call_node
from natopt.passes.width.groups import ChannelGroup
from natopt.passes.width.layout import Layout

__all__ = [
    "IMPORTANCE",
    "DEFAULT_IMPORTANCE",
    "Importance",
    "consumer_inputs",
    "kept_channels",
    "channel_means",
]

Calibration = Sequence[Tensor | Sequence[Tensor]]
Importance = Callable[[ChannelGroup, Graph, dict[str, Tensor], Calibration], Tensor]
DEFAULT_IMPORTANCE = "activation"


def consumer_inputs(group: ChannelGroup) -> dict[str, Layout]:
    """The values the group's consumers read (by name), with their layouts."""
    found: dict[str, Layout] = {}
    for use in group.role("consume"):
        value = use.node.inputs[0]
        assert value is not None
        found[value.name] = use.layout
    return found


def _group_part(per_channel: Tensor, layout: Layout, group: ChannelGroup) -> Tensor:
    """The entries of ``per_channel`` (one per channel of the layout's concatenated spaces)
    that belong to the group (averaged when the group appears more than once)."""
    analysis = group.analysis
    parts, offset = [], 0
    for space in layout.spaces:
        size = analysis.size(space)
        if analysis.find(space) == group.root:
            parts.append(per_channel[offset : offset + size])
        offset += size
    return torch.stack(parts).mean(dim=0)


def _per_channel(tensor: Tensor, layout: Layout, group: ChannelGroup) -> Tensor:
    """``tensor`` ``[N, ...]`` as ``[N, outer, T, inner, rest]`` summed over ``rest``."""
    total = sum(group.analysis.size(s) for s in layout.spaces)
    moved = tensor.movedim(layout.axis, 1)
    return moved.reshape(moved.shape[0], layout.outer, total, layout.inner, -1).sum(dim=-1)


def channel_means(tensor: Tensor, layout: Layout, group: ChannelGroup) -> Tensor:
    """``tensor`` reduced to the group's channels: the mean over every other index."""
    blocks = _per_channel(tensor, layout, group)
    rest = tensor.numel() // max(blocks.numel(), 1)
    return _group_part(blocks.mean(dim=(0, 1, 3)) / max(rest, 1), layout, group)


def _normalised_sum(vectors: list[Tensor]) -> Tensor:
    return sum(v / v.mean().clamp_min(1e-12) for v in vectors)  # type: ignore[return-value]


def _l1(group: ChannelGroup, graph: Graph, seen: dict[str, Tensor], data: Calibration) -> Tensor:
    rows = [
        u.node.weights["weight"].detach().abs().flatten(1).sum(1) for u in group.role("produce")
    ]
    return _normalised_sum([r.double() for r in rows])


def _activation(
    group: ChannelGroup, graph: Graph, seen: dict[str, Tensor], data: Calibration
) -> Tensor:
    inputs = consumer_inputs(group)
    if not inputs:
        return _l1(group, graph, seen, data)
    means = [channel_means(seen[n].abs().double(), lay, group) for n, lay in inputs.items()]
    return _normalised_sum(means)


def _forward(graph: Graph, inputs: Sequence[Tensor], names: set[str]) -> tuple[Tensor, dict]:
    """The first output and the named values, with autograd on (``run_graph`` runs without)."""
    env = {id(v): t for v, t in zip(graph.inputs, inputs, strict=True)}
    kept: dict[str, Tensor] = {}
    for node in graph.nodes:
        outs = call_node(node, [None if v is None else env[id(v)] for v in node.inputs])
        for value, tensor in zip(node.outputs, outs, strict=True):
            env[id(value)] = tensor
            if value.name in names:
                kept[value.name] = tensor
    return env[id(graph.outputs[0])], kept


def _taylor(
    group: ChannelGroup, graph: Graph, seen: dict[str, Tensor], data: Calibration
) -> Tensor:
    inputs = consumer_inputs(group)
    if not inputs:
        return _l1(group, graph, seen, data)
    totals = dict.fromkeys(inputs, 0.0)
    count = 0
    for batch in data:
        tensors = [batch] if isinstance(batch, Tensor) else list(batch)
        feeds = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in tensors]
        with torch.enable_grad():
            out, values = _forward(graph, feeds, set(inputs))
            wanted = [values[n] for n in inputs]
            grads = torch.autograd.grad(0.5 * out.pow(2).sum(), wanted, allow_unused=True)
        for (name, layout), value, grad in zip(inputs.items(), wanted, grads, strict=True):
            if grad is None:
                continue
            first_order = _per_channel((value * grad).detach().double(), layout, group)
            totals[name] = totals[name] + first_order.sum(dim=(1, 3)).abs().sum(dim=0)
        count += int(tensors[0].shape[0])
    scored = [
        _group_part(t / max(count, 1), inputs[n], group)
        for n, t in totals.items()
        if isinstance(t, Tensor)
    ]
    return _normalised_sum(scored) if scored else _l1(group, graph, seen, data)


IMPORTANCE: dict[str, Importance] = {"l1": _l1, "activation": _activation, "taylor": _taylor}


def kept_channels(scores: Tensor, kept: int) -> Tensor:
    """Indices of the ``kept`` highest scores, in increasing order (stable on ties)."""
    order = torch.sort(-scores.double(), stable=True).indices
    return torch.sort(order[:kept]).values
