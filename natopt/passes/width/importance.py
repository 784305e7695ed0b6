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

``Evidence`` is what the scores read: activations from the calibration ``ActivationCache``
and, for ``taylor``, the per-sample first-order terms ``Σ a·∂L/∂a`` of every value asked for,
from one forward and backward pass per calibration batch for all of them, kept per
calibration set and graph weights (a search narrows the same groups in many plans).

Measured on the trained MNIST models of ``benchmarks/vs_torch_pruning.py`` (every group
narrowed to about half, refit on 256 images, then a short fine-tune), ``taylor`` kept the
most accuracy on the two residual CNNs (example 91.5% after fine-tuning against 82.4% for
``l1`` and 81.6% for ``activation``; ResNet8 97.2% against 95.1% / 94.5%) and was within
0.1 point of the best on the 3-conv CNN: it is the default.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from natopt.ir import Graph, call_node
from natopt.passes.calibration import ActivationCache
from natopt.passes.width.analysis import ChannelGroup
from natopt.passes.width.layout import Layout

__all__ = [
    "IMPORTANCE",
    "DEFAULT_IMPORTANCE",
    "Evidence",
    "Importance",
    "consumer_inputs",
    "kept_channels",
    "channel_means",
]

DEFAULT_IMPORTANCE = "taylor"
_FIRST_ORDER: weakref.WeakKeyDictionary[ActivationCache, tuple[tuple, dict]] = (
    weakref.WeakKeyDictionary()
)  # per calibration set: (graph fingerprint, {(value, axis): [N, L] first-order terms})


class Evidence:
    """Calibration facts about the original ``graph`` for the data-driven scores."""

    def __init__(self, graph: Graph, calibration: ActivationCache | None) -> None:
        self.graph = graph
        self.calibration = calibration

    def activations(self, names: set[str]) -> dict[str, Tensor]:
        if self.calibration is None:
            return {}
        return self.calibration.capture(self.graph, names)

    def first_order(self, axes: dict[str, int]) -> dict[str, Tensor]:
        """Per value ``[N, L]``: ``a·∂L/∂a`` summed over every dim but the batch and ``axis``
        (``L = ½‖y‖²``, the graph's first output), for every calibration sample."""
        if self.calibration is None:
            return {}
        key = self.calibration.fingerprint(self.graph)
        stored_key, stored = _FIRST_ORDER.get(self.calibration, (None, {}))
        if stored_key != key:
            stored = {}
            _FIRST_ORDER[self.calibration] = (key, stored)
        missing = {(n, a) for n, a in axes.items()} - stored.keys()
        if missing:
            stored.update(_first_order(self.graph, self.calibration.calibration, missing))
        return {n: stored[(n, a)] for n, a in axes.items() if (n, a) in stored}


Importance = Callable[[Sequence[ChannelGroup], Evidence], list[Tensor]]


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


def _blocks(per_position: Tensor, layout: Layout, group: ChannelGroup) -> Tensor:
    """``[N, L]`` along the layout's axis as ``[N, outer, T, inner]``."""
    total = sum(group.analysis.size(s) for s in layout.spaces)
    return per_position.reshape(per_position.shape[0], layout.outer, total, layout.inner)


def channel_means(tensor: Tensor, layout: Layout, group: ChannelGroup) -> Tensor:
    """``tensor`` reduced to the group's channels: the mean over every other index."""
    moved = tensor.movedim(layout.axis, 1)
    per_position = moved.reshape(moved.shape[0], moved.shape[1], -1).mean(dim=-1)
    return _group_part(_blocks(per_position, layout, group).mean(dim=(0, 1, 3)), layout, group)


def _normalised_sum(vectors: list[Tensor]) -> Tensor:
    return sum(v / v.mean().clamp_min(1e-12) for v in vectors)  # type: ignore[return-value]


def _magnitude(group: ChannelGroup) -> Tensor:
    rows = [
        u.node.weights["weight"].detach().abs().flatten(1).sum(1) for u in group.role("produce")
    ]
    return _normalised_sum([r.double() for r in rows])


def _l1(groups: Sequence[ChannelGroup], evidence: Evidence) -> list[Tensor]:
    return [_magnitude(group) for group in groups]


def _activation(groups: Sequence[ChannelGroup], evidence: Evidence) -> list[Tensor]:
    inputs = [consumer_inputs(g) for g in groups]
    seen = evidence.activations({n for found in inputs for n in found})
    scores = []
    for group, found in zip(groups, inputs, strict=True):
        if not found or not found.keys() <= seen.keys():
            scores.append(_magnitude(group))
            continue
        means = [channel_means(seen[n].abs().double(), lay, group) for n, lay in found.items()]
        scores.append(_normalised_sum(means))
    return scores


def _forward(graph: Graph, inputs: Sequence[Tensor], names: set[str]) -> tuple[Tensor, dict]:
    """The first output and the named values, with autograd on (``run_graph`` runs without)."""
    env = {v: t for v, t in zip(graph.inputs, inputs, strict=True)}
    kept: dict[str, Tensor] = {}
    for node in graph.nodes:
        outs = call_node(node, [None if v is None else env[v] for v in node.inputs])
        for value, tensor in zip(node.outputs, outs, strict=True):
            env[value] = tensor
            if value.name in names:
                kept[value.name] = tensor
    return env[graph.outputs[0]], kept


def _first_order(
    graph: Graph, batches: Sequence[Tensor | Sequence[Tensor]], wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], Tensor]:
    names = sorted({n for n, _ in wanted})
    parts: dict[tuple[str, int], list[Tensor]] = {key: [] for key in wanted}
    for batch in batches:
        tensors = [batch] if isinstance(batch, Tensor) else list(batch)
        feeds = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in tensors]
        with torch.enable_grad():
            out, values = _forward(graph, feeds, set(names))
            grads = torch.autograd.grad(
                0.5 * out.pow(2).sum(), [values[n] for n in names], allow_unused=True
            )
        for name, grad in zip(names, grads, strict=True):
            product = values[name].detach().double()
            product = product * (0.0 if grad is None else grad.double())
            for key in [k for k in wanted if k[0] == name]:
                moved = product.movedim(key[1], 1)
                parts[key].append(moved.reshape(moved.shape[0], moved.shape[1], -1).sum(dim=-1))
    return {key: torch.cat(chunks) for key, chunks in parts.items()}


def _taylor(groups: Sequence[ChannelGroup], evidence: Evidence) -> list[Tensor]:
    inputs = [consumer_inputs(g) for g in groups]
    terms = evidence.first_order({n: lay.axis for found in inputs for n, lay in found.items()})
    scores = []
    for group, found in zip(groups, inputs, strict=True):
        if not found or not found.keys() <= terms.keys():
            scores.append(_magnitude(group))
            continue
        parts = []
        for name, layout in found.items():
            per_sample = _blocks(terms[name], layout, group).sum(dim=(1, 3)).abs()  # [N, T]
            parts.append(_group_part(per_sample.mean(dim=0), layout, group))
        scores.append(_normalised_sum(parts))
    return scores


IMPORTANCE: dict[str, Importance] = {"l1": _l1, "activation": _activation, "taylor": _taylor}


def kept_channels(scores: Tensor, kept: int) -> Tensor:
    """Indices of the ``kept`` highest scores, in increasing order (stable on ties)."""
    order = torch.sort(-scores.double(), stable=True).indices
    return torch.sort(order[:kept]).values
