"""Computational units: the objects the learned pass transforms (DESIGN.md, "The transition space").

- ``conv`` / ``linear``: a Conv, ConvTranspose or Linear with constant weights (a Linear on
  inputs of rank >= 2: 2-D classifiers, 3-D transformer projections, 4-D channels-last MLPs),
  then an optional norm (an op of kind ``norm``: BatchNorm, LayerNorm, GroupNorm), then an
  optional chain of activations (the ops of kind ``activation`` without weights: Relu,
  Relu6, Clip, Gelu, Silu, HardSwish, Sigmoid, Tanh ...; not PRelu); each link is the
  single consumer of the previous link's output, which is not a graph output.
- ``pool``: a windowed MaxPool or AvgPool (adaptive / global pooling is not a unit).
- ``branch``: a residual branch. For ``Add(a, b)`` let ``f`` be the value produced by the
  Add's immediate dominator (the nearest node every path from the inputs to the Add passes
  through). An operand ``o`` forms a branch when the nodes between ``f`` and ``o`` are a
  closed single-entry single-exit region: they read only ``f``, each other and constants,
  and their outputs are used only inside the region or by the Add at ``o``'s slot. Constant
  sub-graphs used only by the region (a layer-scale parameter) belong to it. Both operands
  may form branches (a downsample shortcut is a branch as well). Branches may nest and may
  contain conv/linear/pool units; conv/linear/pool units never overlap each other.

Dominators are computed in one pass over the topological order (Cooper, Harvey and Kennedy's
intersection on the dominator tree, which needs no iteration on a DAG); constant nodes
(``natopt.ir.constant_nodes``: those computed from no graph input) are left out, so a
parameter never breaks dominance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from natopt.ir import Graph, Node, Value, constant_nodes, get_spec, ops_of_kind

__all__ = [
    "Unit",
    "find_units",
    "UNIT_KINDS",
    "NORM_OPS",
    "ACTIVATION_OPS",
]

UNIT_KINDS = ("conv", "linear", "pool", "branch")
NORM_OPS = ops_of_kind("norm")
ACTIVATION_OPS = frozenset(op for op in ops_of_kind("activation") if not get_spec(op).weights)
_MAIN_KIND = {
    "Conv": "conv",
    "ConvTranspose": "conv",
    "Linear": "linear",
    "MaxPool": "pool",
    "AvgPool": "pool",
}
_BRANCH_SUFFIX = ":branch"


@dataclass(slots=True, eq=False)
class Unit:
    """One computational unit of a graph (see the module docstring for the kinds).

    ``name`` is the main node's ``source`` (else its node name; for a branch whose main node
    has no source, a reshape or a layer-scale ``Mul``, the last source inside the region),
    ``:branch`` appended for a branch and ``#k`` for the k-th repeat, so it is unique within
    the graph. ``nodes`` are in
    graph order; ``input`` is the unit's data input (a branch's fork value), ``output`` the
    value it produces, ``merge`` the Add that merges a branch with the other operand.
    """

    name: str
    kind: str
    main: Node
    nodes: list[Node]
    input: Value
    output: Value
    merge: Node | None = None


def _key(node: Node) -> str:
    return node.source or node.name


def _branch_key(unit: Unit) -> str:
    """The main node's source, else the last source in the region, else the main's name."""
    sources = [n.source for n in unit.nodes if n.source]
    return unit.main.source or (sources[-1] if sources else unit.main.name)


def _sole_consumer(value: Value) -> Node | None:
    """The node reading ``value`` as its data input (index 0), when it is the only use."""
    if len(value.uses) != 1 or value.is_graph_output():
        return None
    node, index = value.uses[0]
    return node if index == 0 else None


def _is_main(node: Node) -> bool:
    kind = _MAIN_KIND.get(node.op)
    if kind is None or not node.inputs or node.inputs[0] is None:
        return False
    if kind == "pool":
        return True
    if "weight" not in node.weights or len(node.input_values) != 1:
        return False
    return kind == "conv" or len(node.inputs[0].shape or ()) >= 2


def _layer_chain(main: Node) -> list[Node]:
    """``main``, its trailing norm (if any) and its activation chain."""
    nodes = [main]
    if _MAIN_KIND[main.op] == "pool":
        return nodes
    nxt = _sole_consumer(main.output)
    if nxt is not None and nxt.op in NORM_OPS:
        nodes.append(nxt)
        nxt = _sole_consumer(nxt.output)
    while nxt is not None and nxt.op in ACTIVATION_OPS:
        nodes.append(nxt)
        nxt = _sole_consumer(nxt.output)
    return nodes


_Vertex = Node | Value | None  # a dominator-tree vertex: a node, a graph input, None the root


class _Dominators:
    """Immediate dominators of the non-constant nodes of a graph, graph inputs as roots."""

    def __init__(self, graph: Graph) -> None:
        self.constant = constant_nodes(graph)
        self.idom: dict[_Vertex, _Vertex] = {}  # node or input value -> its idom
        self.depth: dict[_Vertex, int] = {None: 0}
        for value in graph.inputs:
            self.idom[value], self.depth[value] = None, 1
        for node in graph.nodes:
            if node in self.constant:
                continue
            preds = {self.origin(v) for v in node.input_values if not self.is_constant(v)}
            dom = preds.pop()
            for pred in preds:
                dom = self._intersect(dom, pred)
            self.idom[node], self.depth[node] = dom, self.depth[dom] + 1

    def is_constant(self, value: Value) -> bool:
        return value.producer is not None and value.producer in self.constant

    @staticmethod
    def origin(value: Value) -> Node | Value:
        """The dominator-tree vertex of a value: its producer, or itself for a graph input."""
        return value.producer if value.producer is not None else value

    def _intersect(self, a: _Vertex, b: _Vertex) -> _Vertex:
        while a is not b:
            while self.depth[a] > self.depth[b]:
                a = self.idom[a]
            while self.depth[b] > self.depth[a]:
                b = self.idom[b]
            if a is not b:
                a, b = self.idom[a], self.idom[b]
        return a


def _closed_region(
    merge: Node, slot: int, fork: Node | Value, doms: _Dominators
) -> tuple[list[Node], Value] | None:
    """The nodes between the fork vertex and ``merge.inputs[slot]`` and their single entry.

    ``None`` when the operand comes straight from the fork or the region is not closed.
    """
    operand = merge.inputs[slot]
    assert operand is not None and operand.producer is not None
    region: dict[Node, None] = {}  # an ordered set
    entries: dict[Value, None] = {}
    constants: dict[Node, None] = {}
    stack = [operand.producer]
    while stack:
        node = stack.pop()
        if node in region:
            continue
        region[node] = None
        for value in node.input_values:
            if doms.is_constant(value):
                assert value.producer is not None
                constants[value.producer] = None
            elif doms.origin(value) is fork:
                entries[value] = None
            else:
                assert value.producer is not None
                stack.append(value.producer)
    if len(entries) != 1:
        return None
    for node in region:
        for out in node.outputs:
            if out.is_graph_output():
                return None
            for user, index in out.uses:
                if user not in region and not (user is merge and index == slot):
                    return None
    _absorb_constants(region, constants)
    return list(region), next(iter(entries))


def _absorb_constants(region: dict[Node, None], constants: dict[Node, None]) -> None:
    """Add the constant nodes all of whose uses lie inside ``region``, transitively."""
    stack = list(constants)
    while stack:
        node = stack.pop()
        if node in region:
            continue
        uses_inside = all(
            not out.is_graph_output() and all(user in region for user, _ in out.uses)
            for out in node.outputs
        )
        if uses_inside:
            region[node] = None
            stack.extend(v.producer for v in node.input_values if v.producer is not None)


def _branches(graph: Graph) -> Iterable[Unit]:
    doms = _Dominators(graph)
    for merge in graph.nodes:
        if merge.op != "Add" or merge in doms.constant or len(merge.inputs) != 2:
            continue
        a, b = merge.inputs
        if a is None or b is None or a is b or doms.is_constant(a) or doms.is_constant(b):
            continue
        fork = doms.idom[merge]
        if fork is None:
            continue
        for slot, operand in enumerate((a, b)):
            if doms.origin(operand) is fork:
                continue
            found = _closed_region(merge, slot, fork, doms)
            if found is not None:
                nodes, entry = found
                assert operand.producer is not None
                yield Unit("", "branch", operand.producer, nodes, entry, operand, merge)


def find_units(graph: Graph) -> list[Unit]:
    """Every computational unit of ``graph``, ordered by the position of its main node."""
    units: list[Unit] = []
    for node in graph.nodes:
        if _is_main(node):
            chain = _layer_chain(node)
            assert node.inputs[0] is not None
            units.append(
                Unit("", _MAIN_KIND[node.op], node, chain, node.inputs[0], chain[-1].output)
            )
    units.extend(_branches(graph))
    position = {n: i for i, n in enumerate(graph.nodes)}
    for unit in units:
        unit.nodes.sort(key=position.__getitem__)
    units.sort(key=lambda u: (position[u.main], u.kind == "branch"))
    taken: dict[str, int] = {}
    for unit in units:
        base = _key(unit.main) if unit.kind != "branch" else _branch_key(unit) + _BRANCH_SUFFIX
        repeat = taken.get(base, 0)
        taken[base] = repeat + 1
        unit.name = base if repeat == 0 else f"{base}#{repeat}"
    return units
