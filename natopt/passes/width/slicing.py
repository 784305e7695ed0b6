"""What pruning a channel space does to each node that touches it: one table entry per use.

A node touches a channel space in one of three roles (``Use.role``):

- ``produce``: a dense Conv / Linear computes the channels: its output rows go
  (``weight[kept]``, ``bias[kept]``);
- ``consume``: a dense Conv / Linear reads them: its input columns go (``weight[:, kept]``;
  after a ``Flatten`` the columns of every kept channel's positions, ``Layout.inner``);
- ``follow``: a per-channel op passes them through: a depthwise Conv (rows, bias and
  ``groups``), BatchNorm (weight, bias, running statistics), LayerNorm over the channel
  axis (weight, bias, ``normalized_shape``), GroupNorm with one group or one group per
  channel (weight, bias, ``num_groups``), a Constant (the value along the layout's axis:
  layer-scale, position embedding, class token), and a Reshape / Expand whose static target
  names the channel extent (the target at that axis).

``SLICES[(role, op)]`` lists the ``(weight, dim)`` pairs sliced (``AXIS``: the layout's
axis); ``RESIZE[op]`` updates the attributes of a ``follow`` use to the new extent.
``resized_cost`` prices a node after pruning without touching it: every weight shrinks by the
sliced dims, and the multiply-adds of a Conv / Linear shrink as its weight does (MACs are
output positions x weight columns, both linear in the sliced dims).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from natopt.ir import Cost, Node, node_cost
from natopt.passes.width.layout import Layout

__all__ = ["Use", "SLICES", "RESIZE", "AXIS", "sliced_dims", "resized_cost"]

_MACS_BY_WEIGHT = frozenset({"Conv", "Linear"})
AXIS = -1  # stands for the use's layout axis (a Constant's channel axis)


@dataclass(frozen=True, slots=True, eq=False)
class Use:
    """``node`` touches the channels of ``layout`` as ``role`` (produce / consume / follow)."""

    role: str
    node: Node
    layout: Layout


_ROWS = (("weight", 0), ("bias", 0))
SLICES: dict[tuple[str, str], tuple[tuple[str, int], ...]] = {
    ("produce", "Conv"): _ROWS,
    ("produce", "Linear"): _ROWS,
    ("consume", "Conv"): (("weight", 1),),
    ("consume", "Linear"): (("weight", 1),),
    ("follow", "Conv"): _ROWS,
    ("follow", "BatchNorm"): (*_ROWS, ("running_mean", 0), ("running_var", 0)),
    ("follow", "LayerNorm"): _ROWS,
    ("follow", "GroupNorm"): _ROWS,
    ("follow", "Constant"): (("value", AXIS),),
    ("follow", "Reshape"): (),
    ("follow", "Expand"): (),
}


def _groups(node: Node, layout: Layout, old: int, new: int) -> None:
    node.attrs["groups"] = new


def _normalized_shape(node: Node, layout: Layout, old: int, new: int) -> None:
    node.attrs["normalized_shape"] = (new,)


def _num_groups(node: Node, layout: Layout, old: int, new: int) -> None:
    if node.attrs["num_groups"] == old:
        node.attrs["num_groups"] = new


def _target(node: Node, layout: Layout, old: int, new: int) -> None:
    shape = list(node.attrs["shape"])
    if shape[layout.axis] > 0 and shape[layout.axis] != 1:
        shape[layout.axis] = new
    node.attrs["shape"] = tuple(shape)


RESIZE: dict[str, Callable[[Node, Layout, int, int], None]] = {
    "Conv": _groups,
    "LayerNorm": _normalized_shape,
    "GroupNorm": _num_groups,
    "Reshape": _target,
    "Expand": _target,
}


def sliced_dims(use: Use) -> list[tuple[str, int]]:
    """The (weight, dim) pairs ``use`` slices on its node (absent optional weights left out)."""
    pairs = SLICES[(use.role, use.node.op)]
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
    if node.op in _MACS_BY_WEIGHT and "weight" in node.weights:
        macs = macs * grow["weight"] // shrink["weight"]
    return Cost(params, macs)
