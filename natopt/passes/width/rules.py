"""The channel rule of every op: how a node's outputs carry its inputs' channels.

``CHANNEL_RULES[op](walk, node)`` reads the layouts of the node's inputs from the
``ChannelWalk`` and sets its outputs' layouts, records its uses and blocks what it cannot
prune (see ``natopt.passes.width.groups`` for the rules in words). An op with no entry
blocks every channel space it reads.
"""

from __future__ import annotations

from collections.abc import Callable

from natopt.ir import Node, Value, ops_of_kind
from natopt.passes.units import ACTIVATION_OPS
from natopt.passes.width.layout import Layout, relocate
from natopt.passes.width.walk import RESHAPES, ChannelWalk, dims

__all__ = ["CHANNEL_RULES", "Rule", "blocking"]


Rule = Callable[[ChannelWalk, Node], None]


def blocking(walk: ChannelWalk, node: Node) -> None:
    for value in node.input_values:
        walk.block(walk.layout(value), f"{node.op} node {node.name} reads them")


def _same(walk: ChannelWalk, node: Node) -> None:
    walk.set(node.output, walk.layout(node.inputs[0]))


def _channels_first(walk: ChannelWalk, node: Node, what: str) -> Layout | None:
    layout = walk.layout(node.inputs[0])
    if layout is not None and (layout.axis != 1 or not layout.plain):
        walk.block(layout, f"{what} {node.name} sees them off its channel axis")
        return None
    return layout


def _conv(walk: ChannelWalk, node: Node) -> None:
    weight = node.weights.get("weight")
    if weight is None or len(node.input_values) != 1:
        return blocking(walk, node)
    groups, c_out = int(node.attrs["groups"]), int(weight.shape[0])
    c_in = int(weight.shape[1]) * groups
    layout = _channels_first(walk, node, "convolution")
    if groups == 1:
        if layout is not None:
            walk.use("consume", node, layout)
        out = Layout(1, (walk.fresh(c_out),))
        walk.use("produce", node, out)
        return walk.set(node.output, out)
    if groups == c_in == c_out and layout is not None:
        walk.use("follow", node, layout)
        return walk.set(node.output, layout)
    walk.block(layout, f"grouped convolution {node.name} (groups {groups}) needs whole groups")
    return None


def _linear(walk: ChannelWalk, node: Node) -> None:
    weight = node.weights.get("weight")
    if weight is None or len(node.input_values) != 1:
        return blocking(walk, node)
    x = node.inputs[0]
    assert x is not None
    layout, last = walk.layout(x), len(dims(x)) - 1
    if layout is not None and layout.axis != last:
        return walk.set(node.output, layout)  # mixes another axis: channels pass through
    if layout is not None:
        walk.use("consume", node, layout)
    out = Layout(last, (walk.fresh(int(weight.shape[0])),))
    walk.use("produce", node, out)
    return walk.set(node.output, out)


def _batch_norm(walk: ChannelWalk, node: Node) -> None:
    layout = _channels_first(walk, node, "batch norm")
    if layout is not None:
        walk.use("follow", node, layout)
        walk.set(node.output, layout)


def _layer_norm(walk: ChannelWalk, node: Node) -> None:
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


def _group_norm(walk: ChannelWalk, node: Node) -> None:
    layout = _channels_first(walk, node, "group norm")
    if layout is None:
        return
    channels, groups = walk.analysis.extent(layout), int(node.attrs["num_groups"])
    if groups in (1, channels):
        walk.use("follow", node, layout)
        return walk.set(node.output, layout)
    walk.block(layout, f"group norm {node.name} has {groups} groups of {channels} channels")
    return None


def _pool(walk: ChannelWalk, node: Node) -> None:
    walk.set(node.output, _channels_first(walk, node, "pooling"))


def _aligned(value: Value, axis: int, rank: int) -> int:
    """``value``'s ``axis`` seen on a broadcast result of rank ``rank`` (and back, negated)."""
    return axis + rank - len(dims(value))


def _broadcast(walk: ChannelWalk, node: Node) -> None:
    """Element-wise ops with numpy broadcasting: full-extent operands are united."""
    out = dims(node.output)
    rank = len(out)
    described = [(v, walk.layout(v)) for v in node.input_values]
    full = [
        _aligned(v, lay.axis, rank)
        for v, lay in described
        if lay is not None and dims(v)[lay.axis] == out[_aligned(v, lay.axis, rank)]
    ]
    if not full:
        return blocking(walk, node)
    axis = full[0]
    layouts: list[Layout] = []
    pending: list[tuple[Value, int]] = []
    for value, layout in described:
        if layout is None:
            local = axis - (rank - len(dims(value)))
            if local >= 0 and dims(value)[local] != 1:
                pending.append((value, local))  # not broadcast: a constant may follow
        elif _aligned(value, layout.axis, rank) == axis and dims(value)[layout.axis] == out[axis]:
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


def _concat(walk: ChannelWalk, node: Node) -> None:
    rank = len(dims(node.output))
    axis = int(node.attrs["axis"]) % rank
    layouts = [walk.layout(v) for v in node.input_values]
    known = [lay for lay in layouts if lay is not None]
    if not known:
        return
    if known[0].axis == axis:
        if any(lay is not None and (lay.axis != axis or not lay.plain) for lay in layouts):
            return blocking(walk, node)
        parts: list[int] = []
        for value, lay in zip(node.input_values, layouts, strict=True):
            if lay is None:
                fixed = walk.fresh(int(dims(value)[axis]))
                walk.block(Layout(axis, (fixed,)), f"concat {node.name} joins untracked channels")
                parts.append(fixed)
            else:
                parts.extend(lay.spaces)
        return walk.set(node.output, Layout(axis, tuple(parts)))
    return _broadcast(walk, node)


def _off_axis(axes_of: Callable[[Node, int], list[int]], shift: bool = False) -> Rule:
    """Pass the channels through an op acting on other axes; ``shift``: the op drops its axes
    (the channel axis moves down by the dropped axes before it)."""

    def rule(walk: ChannelWalk, node: Node) -> None:
        layout = walk.layout(node.inputs[0])
        if layout is None:
            return
        rank = len(dims(node.inputs[0]))  # type: ignore[arg-type]
        axes = [a % rank for a in axes_of(node, rank)]
        if layout.axis in axes:
            return walk.block(layout, f"{node.op} {node.name} acts along them")
        moved = layout.axis - sum(a < layout.axis for a in axes) if shift else layout.axis
        for out in node.outputs:
            walk.set(out, layout.moved(moved))
        return None

    return rule


def _reduce_axes(node: Node, rank: int) -> list[int]:
    axes = node.attrs["axes"]
    return list(range(rank)) if axes is None else list(axes)


_REDUCE_KEEP = _off_axis(_reduce_axes)
_REDUCE_DROP = _off_axis(_reduce_axes, shift=True)


def _reduce(walk: ChannelWalk, node: Node) -> None:
    (_REDUCE_KEEP if node.attrs["keepdims"] else _REDUCE_DROP)(walk, node)


def _nothing(walk: ChannelWalk, node: Node) -> None:
    return None


def _pad_axes(node: Node, rank: int) -> list[int]:
    pads = node.attrs["pads"]
    return [rank - 1 - k for k in range(len(pads) // 2) if pads[2 * k] or pads[2 * k + 1]]


def _gather(walk: ChannelWalk, node: Node) -> None:
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


def _transpose(walk: ChannelWalk, node: Node) -> None:
    layout = walk.layout(node.inputs[0])
    if layout is not None:
        walk.set(node.output, layout.moved(list(node.attrs["perm"]).index(layout.axis)))


def _reshape(walk: ChannelWalk, node: Node) -> None:
    x = node.inputs[0]
    layout = walk.layout(x)
    if layout is None or x is None:
        return
    total = sum(walk.sizes_of(layout))
    moved = None
    if len(node.input_values) == 1:
        moved = relocate(layout, total, dims(x), dims(node.output))
    if moved is None:
        return walk.block(layout, f"{node.op} {node.name} splits them or mixes them across axes")
    if node.op == "Reshape":
        walk.use("follow", node, moved)
    return walk.set(node.output, moved)


def _expand(walk: ChannelWalk, node: Node) -> None:
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


def _softmax_axes(node: Node, rank: int) -> list[int]:
    return [int(node.attrs["axis"])]


def _slice_axes(node: Node, rank: int) -> list[int]:
    return list(node.attrs["axes"])


def _select_axes(node: Node, rank: int) -> list[int]:
    return [int(node.attrs["axis"])]


def _split_axes(node: Node, rank: int) -> list[int]:
    return [int(node.attrs["axis"])]


# element by element: every activation a unit may end with, the identities, other unary ops
_UNARY = [*sorted(ACTIVATION_OPS), *sorted(ops_of_kind("identity"))]
_UNARY += ["Erf", "Exp", "Log", "Sqrt", "Neg", "Reciprocal", "Abs", "Not", "Cast"]
_BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "Where"]

CHANNEL_RULES: dict[str, Rule] = {
    "Conv": _conv,
    "Linear": _linear,
    "BatchNorm": _batch_norm,
    "LayerNorm": _layer_norm,
    "GroupNorm": _group_norm,
    "MaxPool": _pool,
    "AvgPool": _pool,
    "AdaptiveAvgPool": _pool,
    "AdaptiveMaxPool": _pool,
    "Concat": _concat,
    "Transpose": _transpose,
    "Expand": _expand,
    "Gather": _gather,
    "ReduceMean": _reduce,
    "ReduceSum": _reduce,
    "ReduceMax": _reduce,
    "Pad": _off_axis(_pad_axes),
    "Softmax": _off_axis(_softmax_axes),
    "LogSoftmax": _off_axis(_softmax_axes),
    "Slice": _off_axis(_slice_axes),
    "Split": _off_axis(_split_axes),
    "Select": _off_axis(_select_axes, shift=True),
    "Constant": _nothing,  # claimed backwards by the op that needs it
    **dict.fromkeys(_UNARY, _same),
    **dict.fromkeys(_BINARY, _broadcast),
    **dict.fromkeys(RESHAPES, _reshape),
}
