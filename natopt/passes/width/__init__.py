"""Width transitions: channel dependency groups on the IR, and narrowing them.

- ``groups``: ``channel_groups(graph, units) -> GroupAnalysis`` — the channels that must be
  pruned together (residual merges, concats, depthwise convs, norms, flattens, gates), what
  blocks each group, and the unit that leads it (its mask row carries the width entries);
  built from the width ops, ``walk`` (union-find state, constants claimed backwards) and
  ``analysis`` (the ``ChannelGroup`` / ``GroupAnalysis`` records);
- ``registry``: ``WidthOp``, one object per IR op kind (one class per op family under
  ``ops/``) that knows how the op's channels are grouped, claimed, sliced, resized and
  refit; ``width_op(op)`` finds it (an unknown op blocks);
- ``layout``: where channel spaces lie along an axis, moved through reshapes;
- ``rounding``: ``ChannelRounding`` — kept counts rounded up to the device's channel block;
- ``importance``: ``IMPORTANCE`` scores (``l1``, ``activation``, ``taylor``);
- ``options``: ``WidthOptions`` (rounding, importance, refit);
- ``slicing``: what pruning does to each node touching a group (``Use``, from the width ops);
- ``prune``: ``apply_width`` — keep the top channels, slice, refit the consumers
  (``natopt.passes.calibration``, the one package of ``passes`` this one builds on).
"""

from __future__ import annotations

from natopt.passes.width.groups import ChannelGroup, GroupAnalysis, channel_groups
from natopt.passes.width.importance import DEFAULT_IMPORTANCE, IMPORTANCE, kept_channels
from natopt.passes.width.layout import Layout, positions, relocate
from natopt.passes.width.options import WidthOptions
from natopt.passes.width.prune import WidthResult, apply_width
from natopt.passes.width.registry import WidthOp, width_op, width_ops
from natopt.passes.width.rounding import CPU_ROUNDING, ChannelRounding

__all__ = [
    "CPU_ROUNDING",
    "DEFAULT_IMPORTANCE",
    "IMPORTANCE",
    "ChannelGroup",
    "ChannelRounding",
    "GroupAnalysis",
    "Layout",
    "WidthOptions",
    "WidthOp",
    "WidthResult",
    "apply_width",
    "channel_groups",
    "kept_channels",
    "positions",
    "relocate",
    "width_op",
    "width_ops",
]
