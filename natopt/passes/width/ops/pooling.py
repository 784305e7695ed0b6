"""Pooling: the channels of axis 1 pass through."""

from __future__ import annotations

from natopt.ir import Node
from natopt.passes.width.registry import WidthOp, register
from natopt.passes.width.walk import ChannelWalk

__all__ = ["Pooling"]


@register
class Pooling(WidthOp):
    """Max / average pooling, plain or adaptive: channels on axis 1 pass through (nothing to
    slice); elsewhere they are blocked."""

    ops = ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool")

    def group(self, walk: ChannelWalk, node: Node) -> None:
        walk.set(node.output, walk.channels_first(node, "pooling"))
