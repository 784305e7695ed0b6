"""Ops acting along some axes (reductions, padding, softmax, slicing, splitting, selecting,
gathering): the channels on another axis pass through, those on an acted axis are blocked."""

from __future__ import annotations

from natopt.ir import Node
from natopt.passes.width.registry import WidthOp, register
from natopt.passes.width.walk import ChannelWalk, dims

__all__ = ["OffAxis", "Reduce", "Pad", "AlongAxis", "Select", "SliceAxes", "Gather"]


class OffAxis(WidthOp):
    """Passes the channels through when they lie off the op's ``axes``; an op that ``drops``
    its axes moves the channel axis down by the dropped axes before it."""

    def axes(self, node: Node, rank: int) -> list[int]:
        raise NotImplementedError(f"{type(self).__name__}.axes")

    def drops(self, node: Node) -> bool:
        return False

    def group(self, walk: ChannelWalk, node: Node) -> None:
        layout = walk.layout(node.inputs[0])
        if layout is None:
            return
        rank = len(dims(node.inputs[0]))  # type: ignore[arg-type]
        axes = [a % rank for a in self.axes(node, rank)]
        if layout.axis in axes:
            return walk.block(layout, f"{node.op} {node.name} acts along them")
        moved = layout.axis
        if self.drops(node):
            moved -= sum(a < layout.axis for a in axes)
        for out in node.outputs:
            walk.set(out, layout.moved(moved))
        return None


@register
class Reduce(OffAxis):
    """Reductions over ``axes`` (every axis when none), dropping them unless ``keepdims``."""

    ops = ("ReduceMean", "ReduceSum", "ReduceMax")

    def axes(self, node: Node, rank: int) -> list[int]:
        axes = node.attrs["axes"]
        return list(range(rank)) if axes is None else list(axes)

    def drops(self, node: Node) -> bool:
        return not node.attrs["keepdims"]


@register
class Pad(OffAxis):
    """Padding acts along the axes it pads (``pads``: begin and end per dim, last dim first)."""

    ops = ("Pad",)

    def axes(self, node: Node, rank: int) -> list[int]:
        pads = node.attrs["pads"]
        return [rank - 1 - k for k in range(len(pads) // 2) if pads[2 * k] or pads[2 * k + 1]]


@register
class AlongAxis(OffAxis):
    """Softmax, LogSoftmax and Split act along their one ``axis``."""

    ops = ("Softmax", "LogSoftmax", "Split")

    def axes(self, node: Node, rank: int) -> list[int]:
        return [int(node.attrs["axis"])]


@register
class Select(AlongAxis):
    """Select picks one index along its ``axis`` and drops it."""

    ops = ("Select",)

    def drops(self, node: Node) -> bool:
        return True


@register
class SliceAxes(OffAxis):
    """Slice acts along its ``axes``."""

    ops = ("Slice",)

    def axes(self, node: Node, rank: int) -> list[int]:
        return list(node.attrs["axes"])


@register
class Gather(WidthOp):
    """Channels off the gathered axis pass through (moved by the indices' extra dims when the
    gathered axis lies before them); picking along them blocks them."""

    ops = ("Gather",)

    def group(self, walk: ChannelWalk, node: Node) -> None:
        layout = walk.layout(node.inputs[0])
        if layout is None:
            return
        x, indices = node.inputs[0], node.inputs[1]
        assert x is not None and indices is not None
        axis = int(node.attrs["axis"]) % len(dims(x))
        if axis == layout.axis:
            return walk.block(layout, f"gather {node.name} picks along them")
        moved = layout.axis + (len(dims(indices)) - 1 if axis < layout.axis else 0)
        return walk.set(node.output, layout.moved(moved))
