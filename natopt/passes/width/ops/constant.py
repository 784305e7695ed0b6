"""Constant: a follower claimed backwards by the op that needs its channels."""

from __future__ import annotations

from natopt.ir import Node
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import AXIS, WidthOp, register
from natopt.passes.width.walk import ChannelWalk

__all__ = ["Constant"]


@register
class Constant(WidthOp):
    """Carries no channels of its own in the forward walk; claimed (a layer scale, a position
    embedding, a class token), it follows them: its value is sliced along the claimed axis."""

    ops = ("Constant",)
    slices = {"follow": (("value", AXIS),)}

    def group(self, walk: ChannelWalk, node: Node) -> None:
        return None

    def claim(self, walk: ChannelWalk, node: Node, layout: Layout) -> bool:
        walk.use("follow", node, layout)
        return True
