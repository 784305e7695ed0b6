"""What pruning a channel space does to each node that touches it: its ``Use`` and price.

A node touches a channel space as ``produce``, ``consume`` or ``follow`` (``Use.role``; the
roles are described in ``natopt.passes.width.registry``): a dense Conv / Linear produces or
consumes the channels (rows ``weight[kept]``, ``bias[kept]``; columns ``weight[:, kept]``,
after a ``Flatten`` the columns of every kept channel's positions, ``Layout.inner``), a
per-channel op, a constant or a static reshape target follows them.

``sliced_dims`` lists the ``(weight, dim)`` pairs a use slices, from its node's
``WidthOp.slices``. ``resized_cost`` prices a node after pruning without touching it: every
weight shrinks by the sliced dims, and the multiply-adds of an op whose
``WidthOp.macs_follow_weight`` (Conv, Linear) shrink as its weight does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from natopt.ir import Cost, Node, node_cost
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import AXIS, width_op

__all__ = ["Use", "sliced_dims", "resized_cost"]


@dataclass(frozen=True, slots=True, eq=False)
class Use:
    """``node`` touches the channels of ``layout`` as ``role`` (produce / consume / follow)."""

    role: str
    node: Node
    layout: Layout


def sliced_dims(use: Use) -> list[tuple[str, int]]:
    """The (weight, dim) pairs ``use`` slices on its node (absent optional weights left out)."""
    pairs = width_op(use.node.op).slices[use.role]
    return [
        (name, use.layout.axis if dim == AXIS else dim)
        for name, dim in pairs
        if name in use.node.weights
    ]


def resized_cost(node: Node, cuts: Iterable[tuple[str, int, int]]) -> Cost:
    """``node``'s cost with weight ``name`` cut along one dim from ``old`` to ``new`` entries,
    for every ``(name, old, new)`` in ``cuts`` (exact integer arithmetic)."""
    grow = dict.fromkeys(node.weights, 1)
    shrink = dict.fromkeys(node.weights, 1)
    for name, old, new in cuts:
        grow[name] *= new
        shrink[name] *= old
    params = sum(int(w.numel()) * grow[n] // shrink[n] for n, w in node.weights.items())
    macs = node_cost(node).macs
    if width_op(node.op).macs_follow_weight and "weight" in node.weights:
        macs = macs * grow["weight"] // shrink["weight"]
    return Cost(params, macs)
