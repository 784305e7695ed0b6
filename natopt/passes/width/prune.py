"""The width rewrite: keep the most important channels of whole groups, then refit consumers.

Rewrite, for every group ``g`` a plan narrows from ``C`` to ``K`` channels (kept channels
``k``, the ``K`` highest ``importance`` scores on the calibration data):

    producer   W[C, ...], b[C]      ->  W[k, ...], b[k]
    consumer   W[O, C·inner, ...]   ->  W[:, positions(k), ...]
    follower   a per-channel op / constant / static reshape target, sliced or resized alike

(``slicing`` lists what each use slices), every value's shape re-inferred. Every kept
channel computes exactly what it did before (a producer's kept rows are untouched), so the
only error is at the consumers, which lose the pruned channels' contributions. With
calibration data each consumer is then refit by ridge least squares (its
``WidthOp.refit``, ``registry``) on the original model's activations: input
``X`` restricted to the kept positions, target the consumer's original output ``Y``
(restricted to its own kept channels when its output group is pruned too), so that
``W' X_k ≈ Y``. The relative error ``‖Ŷ − Y‖ / ‖Y‖`` is recorded per consumer before (plain
slicing) and after the refit, and pooled per group (``√(Σ‖Ŷ−Y‖² / Σ‖Y‖²)``).

Several groups are pruned in one step, so a consumer of a channel concat whose parts are
pruned by different groups is sliced once, with every part's kept channels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from natopt.ir import Graph, Node, infer_shapes
from natopt.passes.calibration import ActivationCache, run_chain
from natopt.passes.width.groups import ChannelGroup, GroupAnalysis
from natopt.passes.width.importance import IMPORTANCE, Evidence, kept_channels
from natopt.passes.width.layout import positions
from natopt.passes.width.options import WidthOptions
from natopt.passes.width.registry import width_op
from natopt.passes.width.slicing import Use, sliced_dims

__all__ = ["WidthResult", "prune_groups", "apply_width"]

_DATA_FREE = "l1"


@dataclass(slots=True)
class WidthResult:
    """What the width rewrite did: channels per leader, errors, and activation views."""

    channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    inherited_errors: dict[str, float] = field(default_factory=dict)
    layer_errors: dict[str, tuple[float, float]] = field(default_factory=dict)
    views: dict[str, tuple[int, Tensor]] = field(default_factory=dict)

    def view(self, name: str, tensor: Tensor) -> Tensor:
        """An original-graph activation of value ``name`` restricted to the kept channels."""
        found = self.views.get(name)
        return tensor if found is None else tensor.index_select(found[0], found[1])


def _apply(use: Use, index: Tensor, old: int) -> None:
    node = use.node
    for name, dim in sliced_dims(use):
        node.weights[name] = node.weights[name].index_select(dim, index).contiguous()
    if use.role == "follow":
        width_op(node.op).resize(node, use.layout, old, int(index.numel()))


def prune_groups(
    graph: Graph, analysis: GroupAnalysis, kept: Mapping[int, Tensor]
) -> dict[str, tuple[int, Tensor]]:
    """Slice every use of the groups in ``kept`` (root -> sorted kept channels) in ``graph``
    (the graph ``analysis`` was computed on) and re-infer shapes. Returns, for every value
    whose channels changed, ``(axis, kept positions)`` in the unpruned tensor."""
    views: dict[str, tuple[int, Tensor]] = {}
    for value in graph.values():
        layout = analysis.layout(value)
        if layout is not None and any(analysis.find(s) in kept for s in layout.spaces):
            index = positions(layout, analysis.sizes, kept, analysis.find)
            views[value.name] = (layout.axis, index)
    done: set[Use] = set()
    for group in analysis.groups:
        if group.root not in kept:
            continue
        for use in group.uses:
            if use in done:
                continue
            done.add(use)
            index = positions(use.layout, analysis.sizes, kept, analysis.find)
            _apply(use, index, analysis.extent(use.layout))
    infer_shapes(graph)
    return views


def _consumers(groups: list[ChannelGroup]) -> list[Node]:
    return list(dict.fromkeys(u.node for g in groups for u in g.role("consume")))


def _layer_name(node: Node) -> str:
    return node.source or node.name


def _refit(
    result: WidthResult,
    groups: list[ChannelGroup],
    seen: dict[str, Tensor],
    refit: bool,
    ridge: float,
) -> None:
    sums: dict[Node, tuple[float, float, float]] = {}
    for node in _consumers(groups):
        x_value = node.inputs[0]
        assert x_value is not None
        x = result.view(x_value.name, seen[x_value.name])
        y = result.view(node.output.name, seen[node.output.name])
        before = float((run_chain([node], x) - y).double().pow(2).sum())
        if refit:
            width_op(node.op).refit(node, x, y, ridge)
        after = float((run_chain([node], x) - y).double().pow(2).sum())
        scale = float(y.double().pow(2).sum())
        sums[node] = (before, after, scale)
        result.layer_errors[_layer_name(node)] = (_ratio(before, scale), _ratio(after, scale))
    for group in groups:
        assert group.leader is not None
        parts = [sums[u.node] for u in group.role("consume")]
        before, after, scale = (sum(p[i] for p in parts) for i in range(3))
        result.inherited_errors[group.leader.name] = _ratio(before, scale)
        result.errors[group.leader.name] = _ratio(after, scale)


def _ratio(squared_error: float, squared_scale: float) -> float:
    if squared_scale == 0.0:
        return 0.0 if squared_error == 0.0 else float("inf")
    return math.sqrt(squared_error / squared_scale)


def apply_width(
    graph: Graph,
    original: Graph,
    analysis: GroupAnalysis,
    chosen: Mapping[str, tuple[ChannelGroup, int]],
    calibration: ActivationCache | None = None,
    options: WidthOptions | None = None,
    ridge: float = 1e-3,
) -> WidthResult:
    """Narrow the groups in ``chosen`` (leader name -> (group, kept count)) in ``graph``.

    ``analysis`` was computed on ``graph``; ``original`` is the unpruned graph the
    calibration activations come from (same value names). See the module docstring.
    """
    options = options or WidthOptions()
    groups = [group for group, _ in chosen.values()]
    method = options.importance if calibration is not None else _DATA_FREE
    evidence = Evidence(original, calibration)
    kept: dict[int, Tensor] = {}
    result = WidthResult()
    with torch.no_grad():
        scores = IMPORTANCE[method](groups, evidence)
    for (leader, (group, count)), score in zip(chosen.items(), scores, strict=True):
        kept[group.root] = kept_channels(score, count)
        result.channels[leader] = (group.channels, count)
    result.views = prune_groups(graph, analysis, kept)
    if calibration is not None:
        names = {v.name for n in _consumers(groups) for v in (n.inputs[0], n.output) if v}
        _refit(result, groups, evidence.activations(names), options.refit, ridge)
    return result
