"""What a unit currently is: its op family, geometry, channels and the nodes a rewrite replaces.

Families: ``conv`` (a Conv, any groups), ``sep_conv`` / ``dil_sep_conv`` (a depthwise Conv
``groups = C_in`` followed directly by a pointwise 1x1 Conv, created by a type transition),
``linear``, ``lowrank`` (two Linears, or two 1x1 Convs, created by a low-rank transition),
``max_pool`` / ``avg_pool``, ``branch``, and ``other`` (anything else: depth transitions only).

A rewrite records what it built in ``node.meta`` of the new nodes: ``natopt.unit`` (the unit's
stable name), ``natopt.op`` (the family), ``natopt.part`` (``depthwise``/``pointwise`` or
``reduce``/``expand``), and for low-rank ``natopt.full_rank`` / ``natopt.divisor``.
``transition_units`` regroups the two units ``find_units`` sees in such a pair into one unit
named ``natopt.unit``, so a separable unit is offered its own transitions and a plan for the
rewritten graph names units as the plan for the original did. A composite family is read back
by the rule that creates it (``registry.family_rule``: its ``parts``, ``read`` and
``dense_weight``); the lifted Conv and Linear are read here.

Geometry (``kernel``, ``dilation``) is read only for 2-D convolutions with a square odd
kernel and equal dilations (``kernel`` is ``None`` otherwise: no type or kernel transition).
``positions`` is the number of output elements per output channel (symbolic dims count 1, as
in ``natopt.ir.cost``), so target costs are computed arithmetically.

Width: ``group`` is the channel group (``natopt.passes.width``) the unit leads, set by the
mask's context when the vocabulary has the width level; ``group_reason`` says why it has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from natopt.ir import Cost, Graph, Node, node_cost
from natopt.ir.types import numel
from natopt.passes.transitions.registry import family_rule
from natopt.passes.units import Unit, find_units
from natopt.passes.width import ChannelGroup

__all__ = [
    "UnitState",
    "unit_state",
    "transition_units",
    "dense_weight",
    "per_dim",
    "UNIT_META",
    "OP_META",
    "PART_META",
]

UNIT_META = "natopt.unit"
OP_META = "natopt.op"
PART_META = "natopt.part"
_OP_FAMILY = {"Conv": "conv", "Linear": "linear", "MaxPool": "max_pool", "AvgPool": "avg_pool"}


@dataclass(slots=True)
class UnitState:
    """A unit with what its transitions need to know (see the module docstring)."""

    unit: Unit
    family: str
    replaced: list[Node] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    total: Cost = field(default_factory=Cost)
    kernel: int | None = None
    dilation: int = 1
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    groups: int = 1
    c_in: int = 0
    c_out: int = 0
    positions: int = 0
    bias: bool = False
    full_rank: int | None = None
    divisor: int = 1
    group: ChannelGroup | None = None
    group_reason: str = "the vocabulary has no width level"


def per_dim(value: tuple[int, ...] | int, n: int) -> tuple[int, ...]:
    value = tuple(value) if isinstance(value, (tuple, list)) else (int(value),)
    return value * n if len(value) == 1 else value


def conv_geometry(state: UnitState, conv: Node, channels_in: int, channels_out: int) -> None:
    """Kernel, stride, padding and dilation of a conv node (kernel only when 2-D, square, odd)."""
    kernel = tuple(conv.weights["weight"].shape[2:])
    n = len(kernel)
    dilation = per_dim(conv.attrs["dilation"], n)
    state.stride = per_dim(conv.attrs["stride"], n)
    state.padding = per_dim(conv.attrs["padding"], n)
    state.c_in, state.c_out = channels_in, channels_out
    out = state.replaced[-1].output
    state.positions = numel(out.shape) // max(channels_out, 1)
    square = n == 2 and len(set(kernel)) == 1 and kernel[0] % 2 == 1 and len(set(dilation)) == 1
    if square:
        state.kernel, state.dilation = int(kernel[0]), int(dilation[0])


def _read_conv(state: UnitState) -> None:
    conv = state.replaced[0]
    weight = conv.weights["weight"]
    state.groups = int(conv.attrs["groups"])
    state.bias = "bias" in conv.weights
    conv_geometry(state, conv, int(weight.shape[1]) * state.groups, int(weight.shape[0]))
    if weight.dim() == 4 and state.groups == 1 and tuple(weight.shape[2:]) == (1, 1):
        state.full_rank = min(state.c_in, state.c_out)


def _read_linear(state: UnitState) -> None:
    weight = state.replaced[0].weights["weight"]
    state.c_out, state.c_in = int(weight.shape[0]), int(weight.shape[1])
    state.bias = "bias" in state.replaced[0].weights
    state.positions = numel(state.replaced[0].output.shape) // max(state.c_out, 1)
    state.full_rank = min(state.c_in, state.c_out)


_READERS: dict[str, Callable[[UnitState], None]] = {
    "conv": _read_conv,
    "linear": _read_linear,
}


def _composite_parts(family: object) -> tuple[str, str] | None:
    """The part tags of a composite unit family (created by a rule), else ``None``."""
    if not isinstance(family, str):
        return None
    rule = family_rule(family)
    return None if rule is None else rule.parts


def _family_and_replaced(unit: Unit) -> tuple[str, list[Node]]:
    if unit.kind == "branch":
        return "branch", []
    family = unit.main.meta.get(OP_META)
    wanted = _composite_parts(family)
    if wanted is not None:
        parts = {n.meta.get(PART_META): n for n in unit.nodes if n.meta.get(OP_META) == family}
        if set(parts) != set(wanted):
            return "other", []
        first, second = parts[wanted[0]], parts[wanted[1]]
        if first.output.uses != [(second, 0)]:
            return "other", []
        return family, [first, second]
    family = _OP_FAMILY.get(unit.main.op, "other")
    if family == "conv" and unit.main.weights["weight"].dim() != 4:
        family = "other"
    return family, [unit.main] if family != "other" else []


def unit_state(unit: Unit) -> UnitState:
    """Read ``unit``'s family, geometry and costs (no graph copy, no shape inference)."""
    family, replaced = _family_and_replaced(unit)
    state = UnitState(unit, family, replaced)
    for node in replaced:
        state.cost = state.cost + node_cost(node)
    for node in unit.nodes:
        state.total = state.total + node_cost(node)
    reader = _READERS.get(family)
    if reader is not None:
        reader(state)
    rule = family_rule(family)
    if rule is not None:
        rule.read(state)
    return state


def transition_units(graph: Graph) -> list[Unit]:
    """``find_units(graph)`` with the two halves of each composite unit merged into one.

    The merged unit is named by ``natopt.unit``, keeps the first half as ``main``, the union
    of both halves' nodes, the first half's input and the second half's output.
    """
    units = find_units(graph)
    groups: dict[str, list[Unit]] = {}
    order: list[Unit | str] = []
    for unit in units:
        tag = unit.main.meta.get(UNIT_META) if unit.kind != "branch" else None
        if tag is None:
            order.append(unit)
            continue
        if tag not in groups:
            order.append(tag)
        groups.setdefault(tag, []).append(unit)
    position = {n: i for i, n in enumerate(graph.nodes)}
    merged: list[Unit] = []
    for item in order:
        if isinstance(item, Unit):
            merged.append(item)
            continue
        parts = groups[item]
        nodes = sorted(dict.fromkeys(n for p in parts for n in p.nodes), key=position.__getitem__)
        merged.append(
            Unit(item, parts[0].kind, parts[0].main, nodes, parts[0].input, parts[-1].output)
        )
    return merged


def dense_weight(state: UnitState) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The unit's replaced op as one dense weight (``[O, I/g, k, k]`` or ``[O, I]``) and bias.

    Separable: ``W[o, c] = P[o, c] · D[c]``; low-rank: ``W = expand @ reduce``.
    """
    last = state.replaced[-1]
    bias = last.weights.get("bias")
    rule = family_rule(state.family)
    if rule is not None:
        return rule.dense_weight(state)
    return state.replaced[0].weights["weight"], bias
