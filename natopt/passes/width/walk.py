"""The state of the channel walk: union-find over channel spaces, layouts, uses, reasons.

``ChannelWalk`` is what the op rules (``rules.CHANNEL_RULES``) read and write: ``fresh``
spaces, ``set`` a value's layout, record a ``use``, ``block`` spaces with a reason, ``tie``
layouts that must keep the same channels. ``claim`` gives a constant operand (a layer scale,
a position embedding, a class token through its Expand) the channel structure of the tensor
it meets, walking back to its ``Constant`` through Cast / Identity / Transpose / Expand /
reshapes (``CLAIMS``); every value on that chain must have that single use, so slicing the
constant changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from natopt.ir import Graph, Node, Value
from natopt.passes.width.analysis import GroupAnalysis
from natopt.passes.width.layout import Layout, relocate
from natopt.passes.width.rounding import ChannelRounding
from natopt.passes.width.slicing import Use

__all__ = ["ChannelWalk", "CLAIMS", "RESHAPES", "dims"]

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


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
        handler = CLAIMS.get(producer.op)
        if handler is None or not handler(self, producer, layout):
            return False
        self.set(value, layout)
        return True


Claim = Callable[[ChannelWalk, Node, Layout], bool]


def _claim_constant(walk: ChannelWalk, node: Node, layout: Layout) -> bool:
    walk.use("follow", node, layout)
    return True


def _claim_through(walk: ChannelWalk, node: Node, layout: Layout) -> bool:
    x = node.inputs[0]
    return x is not None and walk.reach(x, layout)


def _claim_transpose(walk: ChannelWalk, node: Node, layout: Layout) -> bool:
    x = node.inputs[0]
    moved = layout.moved(list(node.attrs["perm"])[layout.axis])
    return x is not None and walk.reach(x, moved)


def _claim_reshape(walk: ChannelWalk, node: Node, layout: Layout) -> bool:
    x = node.inputs[0]
    if x is None or len(node.input_values) != 1:
        return False
    total = sum(walk.sizes_of(layout))
    back = relocate(layout, total, dims(node.output), dims(x))
    if back is None or not walk.reach(x, back):
        return False
    if node.op == "Reshape":
        walk.use("follow", node, layout)
    return True


def _claim_expand(walk: ChannelWalk, node: Node, layout: Layout) -> bool:
    x = node.inputs[0]
    if x is None or len(node.input_values) != 1:
        return False
    local = layout.axis - (len(dims(node.output)) - len(dims(x)))
    if local >= 0 and dims(x)[local] != 1 and not walk.reach(x, layout.moved(local)):
        return False
    walk.use("follow", node, layout)
    return True


CLAIMS: dict[str, Claim] = {
    "Constant": _claim_constant,
    "Cast": _claim_through,
    "Identity": _claim_through,
    "Transpose": _claim_transpose,
    "Expand": _claim_expand,
    **dict.fromkeys(RESHAPES, _claim_reshape),
}
