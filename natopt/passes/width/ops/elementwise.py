"""Element-wise ops: unary ones pass the channels through, binary ones unite them."""

from __future__ import annotations

from natopt.ir import Node, Value, ops_of_kind
from natopt.passes.units import ACTIVATION_OPS
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import WidthOp, register
from natopt.passes.width.walk import ChannelWalk, dims

__all__ = ["Unary", "Relabel", "Broadcast"]


@register
class Unary(WidthOp):
    """Element by element on one tensor (every activation a unit may end with, the identity
    ops, other unary maths): the channels pass through."""

    ops = (
        *sorted(ACTIVATION_OPS),
        *sorted(ops_of_kind("identity") - {"Identity"}),
        *("Erf", "Exp", "Log", "Sqrt", "Neg", "Reciprocal", "Abs", "Not"),
    )

    def group(self, walk: ChannelWalk, node: Node) -> None:
        walk.set(node.output, walk.layout(node.inputs[0]))


@register
class Relabel(Unary):
    """Cast and Identity pass the channels through and, backwards, a constant's claim."""

    ops = ("Cast", "Identity")

    def claim(self, walk: ChannelWalk, node: Node, layout: Layout) -> bool:
        x = node.inputs[0]
        return x is not None and walk.reach(x, layout)


def _aligned(value: Value, axis: int, rank: int) -> int:
    """``value``'s ``axis`` seen on a broadcast result of rank ``rank`` (and back, negated)."""
    return axis + rank - len(dims(value))


@register
class Broadcast(WidthOp):
    """Element-wise ops with numpy broadcasting: operands with the full channel extent are
    united (a residual merge, a squeeze-excitation gate); an operand broadcast along the
    channel axis is not; a constant operand with the full extent is claimed (a follower);
    channels met on another axis, or with untracked channels, are blocked."""

    ops = ("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "Where")

    def group(self, walk: ChannelWalk, node: Node) -> None:
        out = dims(node.output)
        rank = len(out)
        described = [(v, walk.layout(v)) for v in node.input_values]
        full = [
            _aligned(v, lay.axis, rank)
            for v, lay in described
            if lay is not None and dims(v)[lay.axis] == out[_aligned(v, lay.axis, rank)]
        ]
        if not full:
            return walk.block_inputs(node)
        axis = full[0]
        layouts: list[Layout] = []
        pending: list[tuple[Value, int]] = []
        for value, layout in described:
            if layout is None:
                local = axis - (rank - len(dims(value)))
                if local >= 0 and dims(value)[local] != 1:
                    pending.append((value, local))  # not broadcast: a constant may follow
            elif (
                _aligned(value, layout.axis, rank) == axis and dims(value)[layout.axis] == out[axis]
            ):
                layouts.append(layout)
            else:
                walk.block(layout, f"{node.op} {node.name} meets them on another axis")
        for value, local in pending:
            claimed = walk.claim(value, layouts[0].moved(local))
            if claimed is None:
                for layout in layouts:
                    walk.block(layout, f"{node.op} {node.name} meets them with untracked channels")
                return None
            layouts.append(claimed)
        walk.set(node.output, walk.tie(layouts, axis, node))
        return None
