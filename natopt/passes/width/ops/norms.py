"""Norms: BatchNorm, LayerNorm over the channel axis and GroupNorm with 1 or C groups follow
their input's channels."""

from __future__ import annotations

from natopt.ir import Node
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import ROWS, WidthOp, register
from natopt.passes.width.walk import ChannelWalk, dims

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm"]


@register
class BatchNorm(WidthOp):
    """Follows the channels of axis 1 (weight, bias, running statistics); blocks them
    elsewhere."""

    ops = ("BatchNorm",)
    slices = {"follow": (*ROWS, ("running_mean", 0), ("running_var", 0))}

    def group(self, walk: ChannelWalk, node: Node) -> None:
        layout = walk.channels_first(node, "batch norm")
        if layout is not None:
            walk.use("follow", node, layout)
            walk.set(node.output, layout)


@register
class LayerNorm(WidthOp):
    """Channels off the normalised dims pass through; over the last axis alone it follows
    them (weight, bias, ``normalized_shape``); normalised with other dims they are blocked."""

    ops = ("LayerNorm",)
    slices = {"follow": ROWS}

    def group(self, walk: ChannelWalk, node: Node) -> None:
        layout = walk.layout(node.inputs[0])
        if layout is None:
            return
        rank, normalized = len(dims(node.output)), len(node.attrs["normalized_shape"])
        if layout.axis < rank - normalized:
            return walk.set(node.output, layout)
        if layout.axis == rank - 1 and normalized == 1:
            walk.use("follow", node, layout)
            return walk.set(node.output, layout)
        walk.block(layout, f"layer norm {node.name} normalises them together with other dims")
        return None

    def resize(self, node: Node, layout: Layout, old: int, new: int) -> None:
        node.attrs["normalized_shape"] = (new,)


@register
class GroupNorm(WidthOp):
    """With one group or one group per channel it follows the channels of axis 1 (weight,
    bias, ``num_groups`` when it counts the channels); other groupings block them."""

    ops = ("GroupNorm",)
    slices = {"follow": ROWS}

    def group(self, walk: ChannelWalk, node: Node) -> None:
        layout = walk.channels_first(node, "group norm")
        if layout is None:
            return
        channels, groups = walk.analysis.extent(layout), int(node.attrs["num_groups"])
        if groups in (1, channels):
            walk.use("follow", node, layout)
            return walk.set(node.output, layout)
        walk.block(layout, f"group norm {node.name} has {groups} groups of {channels} channels")
        return None

    def resize(self, node: Node, layout: Layout, old: int, new: int) -> None:
        if node.attrs["num_groups"] == old:
            node.attrs["num_groups"] = new
