"""Ops that move the channel axis: reshapes, Expand and Transpose (forwards and, for a
constant's claim, backwards)."""

from __future__ import annotations

from typing import ClassVar

from natopt.ir import Node
from natopt.passes.width.layout import Layout, relocate
from natopt.passes.width.registry import WidthOp, register
from natopt.passes.width.walk import ChannelWalk, dims

__all__ = ["Relayout", "Reshape", "Expand", "Transpose"]


def _resize_target(node: Node, layout: Layout, new: int) -> None:
    """A static target shape that names the channel extent at the layout's axis takes ``new``."""
    shape = list(node.attrs["shape"])
    if shape[layout.axis] > 0 and shape[layout.axis] != 1:
        shape[layout.axis] = new
    node.attrs["shape"] = tuple(shape)


@register
class Relayout(WidthOp):
    """Flatten / Squeeze / Unsqueeze move the channels by the mixed-radix rule
    (``layout.relocate``: a Flatten before a classifier gives the Linear ``C x H·W`` columns);
    a reshape that cuts the channel digit or mixes it across axes blocks them. ``targeted``:
    the op's static target shape names the channel extent, so it follows the channels."""

    ops = ("Flatten", "Squeeze", "Unsqueeze")
    targeted: ClassVar[bool] = False

    def group(self, walk: ChannelWalk, node: Node) -> None:
        x = node.inputs[0]
        layout = walk.layout(x)
        if layout is None or x is None:
            return
        total = sum(walk.sizes_of(layout))
        moved = None
        if len(node.input_values) == 1:
            moved = relocate(layout, total, dims(x), dims(node.output))
        if moved is None:
            reason = f"{node.op} {node.name} splits them or mixes them across axes"
            return walk.block(layout, reason)
        if self.targeted:
            walk.use("follow", node, moved)
        return walk.set(node.output, moved)

    def claim(self, walk: ChannelWalk, node: Node, layout: Layout) -> bool:
        x = node.inputs[0]
        if x is None or len(node.input_values) != 1:
            return False
        total = sum(walk.sizes_of(layout))
        back = relocate(layout, total, dims(node.output), dims(x))
        if back is None or not walk.reach(x, back):
            return False
        if self.targeted:
            walk.use("follow", node, layout)
        return True


@register
class Reshape(Relayout):
    """A Reshape moves the channels as ``Relayout`` does and follows them: its target takes
    the new extent."""

    ops = ("Reshape",)
    slices = {"follow": ()}
    targeted = True

    def resize(self, node: Node, layout: Layout, old: int, new: int) -> None:
        _resize_target(node, layout, new)


@register
class Expand(WidthOp):
    """Channels not broadcast by the Expand follow it (its target takes the new extent);
    channels it broadcasts are blocked."""

    ops = ("Expand",)
    slices = {"follow": ()}

    def group(self, walk: ChannelWalk, node: Node) -> None:
        x = node.inputs[0]
        layout = walk.layout(x)
        if layout is None or x is None:
            return
        out = dims(node.output)
        axis = layout.axis + len(out) - len(dims(x))
        if len(node.input_values) != 1 or dims(x)[layout.axis] != out[axis]:
            return walk.block(layout, f"expand {node.name} broadcasts them")
        walk.use("follow", node, layout.moved(axis))
        return walk.set(node.output, layout.moved(axis))

    def claim(self, walk: ChannelWalk, node: Node, layout: Layout) -> bool:
        x = node.inputs[0]
        if x is None or len(node.input_values) != 1:
            return False
        local = layout.axis - (len(dims(node.output)) - len(dims(x)))
        if local >= 0 and dims(x)[local] != 1 and not walk.reach(x, layout.moved(local)):
            return False
        walk.use("follow", node, layout)
        return True

    def resize(self, node: Node, layout: Layout, old: int, new: int) -> None:
        _resize_target(node, layout, new)


@register
class Transpose(WidthOp):
    """The channels move to the axis the permutation sends theirs to."""

    ops = ("Transpose",)

    def group(self, walk: ChannelWalk, node: Node) -> None:
        layout = walk.layout(node.inputs[0])
        if layout is not None:
            walk.set(node.output, layout.moved(list(node.attrs["perm"]).index(layout.axis)))

    def claim(self, walk: ChannelWalk, node: Node, layout: Layout) -> bool:
        x = node.inputs[0]
        moved = layout.moved(list(node.attrs["perm"])[layout.axis])
        return x is not None and walk.reach(x, moved)
