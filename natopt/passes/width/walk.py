"""The state of the channel walk: union-find over channel spaces, layouts, uses, reasons.

``ChannelWalk`` is what the width ops (``WidthOp.group``, ``registry``) read and write:
``fresh`` spaces, ``set`` a value's layout, record a ``use``, ``block`` spaces with a reason
(``block_inputs``: all a node reads; ``channels_first``: a layout off a conv-like op's channel
axis), ``tie`` layouts that must keep the same channels. ``claim`` gives a constant operand (a
layer scale, a position embedding, a class token through its Expand) the channel structure of
the tensor it meets, walking back to its ``Constant`` through the ops whose ``WidthOp.claim``
lets it (Cast / Identity / Transpose / Expand / reshapes); every value on that chain must have
that single use, so slicing the constant changes nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from natopt.ir import Graph, Node, Value
from natopt.passes.width.analysis import GroupAnalysis
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import width_op
from natopt.passes.width.rounding import ChannelRounding
from natopt.passes.width.slicing import Use

__all__ = ["ChannelWalk", "dims"]


def dims(value: Value) -> tuple:
    return tuple(value.shape or ())


class ChannelWalk:
    """Mutable state of the forward walk (union-find, layouts, uses, reasons)."""

    def __init__(self, graph: Graph, rounding: ChannelRounding) -> None:
        self.analysis = GroupAnalysis(graph, [], [], {}, rounding)
        self.uses: list[tuple[int, Use]] = []
        self.reasons: list[tuple[int, str]] = []

    def fresh(self, size: int) -> int:
        self.analysis.parent.append(len(self.analysis.parent))
        self.analysis.sizes.append(size)
        return len(self.analysis.parent) - 1

    def layout(self, value: Value | None) -> Layout | None:
        return None if value is None else self.analysis.layouts.get(value)

    def set(self, value: Value, layout: Layout | None) -> None:
        if layout is not None:
            self.analysis.layouts[value] = layout

    def use(self, role: str, node: Node, layout: Layout) -> None:
        use = Use(role, node, layout)
        for space in layout.spaces:
            self.uses.append((space, use))

    def block(self, layout: Layout | None, reason: str) -> None:
        for space in layout.spaces if layout is not None else ():
            self.reasons.append((space, reason))

    def block_inputs(self, node: Node) -> None:
        """Block every channel space ``node`` reads (what an op that cannot prune them does)."""
        for value in node.input_values:
            self.block(self.layout(value), f"{node.op} node {node.name} reads them")

    def channels_first(self, node: Node, what: str) -> Layout | None:
        """The layout of ``node``'s first input if it lies plain on axis 1; else blocked."""
        layout = self.layout(node.inputs[0])
        if layout is not None and (layout.axis != 1 or not layout.plain):
            self.block(layout, f"{what} {node.name} sees them off its channel axis")
            return None
        return layout

    def sizes_of(self, layout: Layout) -> tuple[int, ...]:
        return tuple(self.analysis.size(s) for s in layout.spaces)

    def tie(self, layouts: Sequence[Layout], axis: int, node: Node) -> Layout | None:
        """Unite the spaces of ``layouts`` position by position; ``None`` (all blocked) when
        their structures differ. The result lies on ``axis``."""
        first = layouts[0]
        shape = (self.sizes_of(first), first.inner, first.outer)
        if any((self.sizes_of(o), o.inner, o.outer) != shape for o in layouts[1:]):
            for other in layouts:
                self.block(other, f"channels laid out differently meet at {node.op} {node.name}")
            return None
        for other in layouts[1:]:
            for a, b in zip(first.spaces, other.spaces, strict=True):
                ra, rb = self.analysis.find(a), self.analysis.find(b)
                if ra != rb:
                    self.analysis.parent[rb] = ra
        return first.moved(axis)

    def claim(self, value: Value, template: Layout) -> Layout | None:
        """Give a constant-derived ``value`` the structure of ``template`` in fresh spaces,
        walking back to its Constant; ``None`` when the chain is shared or not constant."""
        fresh = tuple(self.fresh(self.analysis.size(s)) for s in template.spaces)
        mine = Layout(template.axis, fresh, template.inner, template.outer)
        return mine if self.reach(value, mine) else None

    def reach(self, value: Value, layout: Layout) -> bool:
        """Record ``layout`` on ``value`` and on its chain back to a Constant (same spaces)."""
        producer = value.producer
        if len(value.uses) != 1 or value.is_graph_output() or producer is None:
            return False
        if not width_op(producer.op).claim(self, producer, layout):
            return False
        self.set(value, layout)
        return True
