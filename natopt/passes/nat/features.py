"""The unit graph the NAT policy reads: one vertex per computational unit, data-flow edges.

Vertices are the units of ``transition_units`` (``find_units`` with the two halves of a
separable or low-rank unit merged), in the order of the rows of ``compute_mask(graph)``.
Edges (undirected, both directions listed):

- flow: ``A — B`` when ``B``'s input is reached from ``A``'s output through nodes that belong
  to no conv/linear/pool unit (activations after a merge, reshapes, global pooling); the walk
  stops at the first conv/linear/pool unit on each path. A branch is reached where the walk
  meets its input (fork) value or its merge (the Add joining it to the other operand); the
  merge belongs to the branch, so only the branch's own walk continues past it. A residual
  stream thus becomes a chain ``stem — block1 — block2 — ...`` rather than every unit being
  linked to every later unit its identity shortcuts reach.
- containment: a branch ``—`` each unit directly inside it (the innermost branch holding
  the unit), so a branch's vertex sees what nulling it would remove.

Features per unit (``FEATURES`` names the numeric columns):

- ``op_type``: an index into ``OP_TYPES``, the unit's current op: its family from
  ``unit_state`` and, for convolutions, its kernel (``conv5``, ``dwconv3``, ``sep_conv3``,
  ``dil_sep_conv5``, ``linear``, ``lowrank``, ``max_pool``, ``branch``, ``other``...); the
  policy embeds it;
- ``features`` [U, len(FEATURES)]: log(1+params)/10, log(1+MACs)/20 (all the unit's nodes,
  a branch's whole region), the unit's share of the graph's MACs, log(1+channels in)/8,
  log(1+channels out)/8, log(1+positions)/10 (spatial size H·W, sequence length; 1 for a
  vector), log2 of the input/output position ratio (2 for a stride-2 2-D conv), and the
  normalised depth (topological position of the unit's first node in [0, 1]). The scales
  keep every column within about [0, 1.5].

Precondition: the graph's value shapes are inferred (frontends and passes keep them so);
symbolic dims count as 1 (batch 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from natopt.ir import Graph, Node, Value, graph_cost
from natopt.ir.types import concrete_shape
from natopt.passes.transitions.state import UnitState, transition_units, unit_state
from natopt.passes.units import Unit

__all__ = ["OP_TYPES", "FEATURES", "UnitGraph", "unit_graph", "unit_op_type"]

OP_TYPES = (
    "conv1",
    "conv3",
    "conv5",
    "conv7",
    "dwconv3",
    "dwconv5",
    "dwconv7",
    "groupconv",
    "sep_conv3",
    "sep_conv5",
    "sep_conv7",
    "dil_sep_conv3",
    "dil_sep_conv5",
    "dil_sep_conv7",
    "linear",
    "lowrank",
    "max_pool",
    "avg_pool",
    "branch",
    "other",
)
FEATURES = (
    "log_params",
    "log_macs",
    "macs_share",
    "log_channels_in",
    "log_channels_out",
    "log_positions",
    "log2_stride",
    "depth",
)
_OP_INDEX = {name: i for i, name in enumerate(OP_TYPES)}
_CHANNELS_FIRST = frozenset({"conv", "sep_conv", "dil_sep_conv", "max_pool", "avg_pool"})


@dataclass(slots=True)
class UnitGraph:
    """The policy's input. Shapes: ``op_type`` [U] int64, ``features`` [U, F] float32,
    ``edge_index`` [2, E] int64 (both directions of every edge, no self-loops)."""

    units: list[str]
    op_type: torch.Tensor
    features: torch.Tensor
    edge_index: torch.Tensor

    def __post_init__(self) -> None:
        count = len(self.units)
        if self.op_type.shape != (count,) or self.features.shape[0] != count:
            raise ValueError(
                f"UnitGraph: {count} units but op_type {tuple(self.op_type.shape)} and "
                f"features {tuple(self.features.shape)}; give one row per unit"
            )
        if self.edge_index.numel() and int(self.edge_index.max()) >= count:
            raise ValueError(f"UnitGraph: edge_index names a unit >= {count}")


def _kernel_bucket(state: UnitState) -> int:
    size = state.kernel or 1
    return next(k for k in (1, 3, 5, 7) if size <= k or k == 7)


def _conv_type(state: UnitState) -> str:
    kernel = _kernel_bucket(state)
    if state.groups == 1:
        return f"conv{kernel}"
    depthwise = state.groups == state.c_in and kernel > 1
    return f"dwconv{kernel}" if depthwise else "groupconv"


_FAMILY_TYPE = {
    "conv": _conv_type,
    "sep_conv": lambda state: f"sep_conv{max(3, _kernel_bucket(state))}",
    "dil_sep_conv": lambda state: f"dil_sep_conv{max(3, _kernel_bucket(state))}",
}


def unit_op_type(state: UnitState) -> str:
    """The entry of ``OP_TYPES`` naming the unit's current op (its family and kernel)."""
    classify = _FAMILY_TYPE.get(state.family)
    return classify(state) if classify is not None else state.family


def _channels_positions(value: Value, channels_first: bool) -> tuple[int, int]:
    """(channels, positions) of a value: channels on axis 1 (images) or -1 (tokens)."""
    shape = concrete_shape(value.shape or ())
    if len(shape) < 2:
        return (shape[0] if shape else 1), 1
    axis = 1 if channels_first else len(shape) - 1
    channels = shape[axis]
    return channels, max(1, math.prod(shape[1:]) // max(channels, 1))


def _unit_numeric(state: UnitState, depth: float, total_macs: int) -> list[float]:
    unit = state.unit
    if state.family == "branch":
        channels_first = len(unit.input.shape or ()) >= 4
    else:
        channels_first = state.family in _CHANNELS_FIRST
    c_in, p_in = _channels_positions(unit.input, channels_first)
    c_out, p_out = _channels_positions(unit.output, channels_first)
    params, macs = state.total.params, state.total.macs
    return [
        math.log1p(params) / 10.0,
        math.log1p(macs) / 20.0,
        macs / total_macs if total_macs else 0.0,
        math.log1p(c_in) / 8.0,
        math.log1p(c_out) / 8.0,
        math.log1p(p_out) / 10.0,
        math.log2(max(1.0, p_in / p_out)),
        depth,
    ]


def _edges(units: list[Unit]) -> set[tuple[int, int]]:
    """Undirected (i < j) flow and containment edges between unit indices."""
    leaf_of: dict[Node, int] = {}
    branch_at: dict[Value, list[int]] = {}
    merged_by: dict[Node, list[int]] = {}
    for i, unit in enumerate(units):
        if unit.kind == "branch":
            branch_at.setdefault(unit.input, []).append(i)
            if unit.merge is not None:
                merged_by.setdefault(unit.merge, []).append(i)
        else:
            for node in unit.nodes:
                leaf_of[node] = i
    edges: set[tuple[int, int]] = set()

    def link(a: int, b: int) -> None:
        if a != b:
            edges.add((min(a, b), max(a, b)))

    for i, unit in enumerate(units):
        stack, seen = [unit.output], set[Value]()
        while stack:
            value = stack.pop()
            if value in seen:
                continue
            seen.add(value)
            for j in branch_at.get(value, ()):
                link(i, j)
            for consumer in value.consumers:
                owners = merged_by.get(consumer, ())
                for j in owners:
                    link(i, j)
                if consumer in leaf_of:
                    link(i, leaf_of[consumer])
                elif not owners or i in owners:
                    stack.extend(consumer.outputs)
    branch_nodes = {j: set(u.nodes) for j, u in enumerate(units) if u.kind == "branch"}
    for i, unit in enumerate(units):
        inside = set(unit.nodes)
        holders = [j for j, nodes in branch_nodes.items() if j != i and inside <= nodes]
        if holders:
            link(i, min(holders, key=lambda j: len(branch_nodes[j])))
    return edges


def unit_graph(graph: Graph, units: list[Unit] | None = None) -> UnitGraph:
    """The unit graph of ``graph``; ``units`` defaults to ``transition_units(graph)`` (the
    rows of ``compute_mask(graph)``, so the policy's rows match the mask's)."""
    units = transition_units(graph) if units is None else units
    states = [unit_state(u) for u in units]
    position = {node: i for i, node in enumerate(graph.nodes)}
    last = max(len(graph.nodes) - 1, 1)
    total_macs = graph_cost(graph).macs
    numeric = [_unit_numeric(s, position[s.unit.nodes[0]] / last, total_macs) for s in states]
    pairs = sorted(_edges(units))
    sources = [a for a, _ in pairs] + [b for _, b in pairs]
    targets = [b for _, b in pairs] + [a for a, _ in pairs]
    return UnitGraph(
        units=[u.name for u in units],
        op_type=torch.tensor([_OP_INDEX[unit_op_type(s)] for s in states], dtype=torch.long),
        features=torch.tensor(numeric, dtype=torch.float32).reshape(len(units), len(FEATURES)),
        edge_index=torch.tensor([sources, targets], dtype=torch.long).reshape(2, -1),
    )
