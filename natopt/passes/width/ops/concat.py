"""Concat: along the channel axis it concatenates the layouts, along another it unites them."""

from __future__ import annotations

from natopt.ir import Node
from natopt.passes.width.layout import Layout
from natopt.passes.width.ops.elementwise import Broadcast
from natopt.passes.width.registry import register
from natopt.passes.width.walk import ChannelWalk, dims

__all__ = ["Concat"]


@register
class Concat(Broadcast):
    """Along the channel axis the parts' spaces are concatenated (a consumer of the concat
    slices the kept channels of each part at its offset; an untracked part is blocked, a part
    off the axis or merged with other dims blocks all); along another axis the parts are
    united as a broadcast op's operands are."""

    ops = ("Concat",)

    def group(self, walk: ChannelWalk, node: Node) -> None:
        rank = len(dims(node.output))
        axis = int(node.attrs["axis"]) % rank
        layouts = [walk.layout(v) for v in node.input_values]
        known = [lay for lay in layouts if lay is not None]
        if not known:
            return
        if known[0].axis != axis:
            return super().group(walk, node)
        if any(lay is not None and (lay.axis != axis or not lay.plain) for lay in layouts):
            return walk.block_inputs(node)
        parts: list[int] = []
        for value, lay in zip(node.input_values, layouts, strict=True):
            if lay is None:
                fixed = walk.fresh(int(dims(value)[axis]))
                walk.block(Layout(axis, (fixed,)), f"concat {node.name} joins untracked channels")
                parts.append(fixed)
            else:
                parts.extend(lay.spaces)
        return walk.set(node.output, Layout(axis, tuple(parts)))
