"""Computational units: the objects the learned pass transforms (DESIGN.md, "The transition space").

- ``conv`` / ``linear``: a Conv, ConvTranspose or Linear with constant weights (a Linear on
  inputs of rank >= 2: 2-D classifiers, 3-D transformer projections, 4-D channels-last MLPs),
  then an optional norm (BatchNorm, LayerNorm, GroupNorm), then an optional chain of
  activations (Relu, Relu6, Clip, LeakyRelu, Gelu, Silu, HardSwish, HardSigmoid, Sigmoid,
  Tanh); each link is the single consumer of the previous link's output, which is not a
  graph output.
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
intersection on the dominator tree, which needs no iteration on a DAG); constant values
(those computed from no graph input) are left out, so a parameter never breaks dominance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from natopt.ir import Graph, Node, Value
from natopt.passes.base import Pass, PassContext, PassResult

__all__ = [
    "Unit",
    "find_units",
    "GroupUnitsPass",
    "UNIT_KINDS",
    "NORM_OPS",
    "ACTIVATION_OPS",
]

UNIT_KINDS = ("conv", "linear", "pool", "branch")
NORM_OPS = frozenset({"BatchNorm", "LayerNorm", "GroupNorm"})
ACTIVATION_OPS = frozenset(
    {
        "Relu",
        "Relu6",
        "Clip",
        "LeakyRelu",
        "Gelu",
        "Silu",
        "HardSwish",
        "HardSigmoid",
        "Sigmoid",
        "Tanh",
        "Elu",
        "Celu",
        "Selu",
        "Softplus",
        "Softsign",
        "Mish",
        "ThresholdedRelu",
    }
)
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


def _sole_consumer(value: Value, graph_outputs: set[int]) -> Node | None:
    """The node reading ``value`` as its data input (index 0), when it is the only use."""
    if len(value.uses) != 1 or id(value) in graph_outputs:
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


def _layer_chain(main: Node, graph_outputs: set[int]) -> list[Node]:
    """``main``, its trailing norm (if any) and its activation chain."""
    nodes = [main]
    if _MAIN_KIND[main.op] == "pool":
        return nodes
    nxt = _sole_consumer(main.output, graph_outputs)
    if nxt is not None and nxt.op in NORM_OPS:
        nodes.append(nxt)
        nxt = _sole_consumer(nxt.output, graph_outputs)
    while nxt is not None and nxt.op in ACTIVATION_OPS:
        nodes.append(nxt)
        nxt = _sole_consumer(nxt.output, graph_outputs)
    return nodes


class _Dominators:
    """Immediate dominators of the non-constant nodes of a graph, graph inputs as roots."""

    ROOT = -1

    def __init__(self, graph: Graph) -> None:
        self.constant: set[int] = set()
        self.idom: dict[int, int] = {}  # id(node) or id(input value) -> id of its idom
        self.depth: dict[int, int] = {self.ROOT: 0}
        for value in graph.inputs:
            self.idom[id(value)], self.depth[id(value)] = self.ROOT, 1
        for node in graph.nodes:
            preds = {self.origin(v) for v in node.input_values if not self.is_constant(v)}
            if not preds:
                self.constant.add(id(node))
                continue
            dom = preds.pop()
            for pred in preds:
                dom = self._intersect(dom, pred)
            self.idom[id(node)], self.depth[id(node)] = dom, self.depth[dom] + 1

    def is_constant(self, value: Value) -> bool:
        return value.producer is not None and id(value.producer) in self.constant

    @staticmethod
    def origin(value: Value) -> int:
        """The dominator-tree vertex of a value: its producer, or itself for a graph input."""
        return id(value.producer) if value.producer is not None else id(value)

    def _intersect(self, a: int, b: int) -> int:
        while a != b:
            while self.depth[a] > self.depth[b]:
                a = self.idom[a]
            while self.depth[b] > self.depth[a]:
                b = self.idom[b]
            if a != b:
                a, b = self.idom[a], self.idom[b]
        return a


def _closed_region(
    merge: Node, slot: int, fork: int, doms: _Dominators, graph_outputs: set[int]
) -> tuple[list[Node], Value] | None:
    """The nodes between the fork vertex and ``merge.inputs[slot]`` and their single entry.

    ``None`` when the operand comes straight from the fork or the region is not closed.
    """
    operand = merge.inputs[slot]
    assert operand is not None and operand.producer is not None
    region: dict[int, Node] = {}
    entries: dict[int, Value] = {}
    constants: dict[int, Node] = {}
    stack = [operand.producer]
    while stack:
        node = stack.pop()
        if id(node) in region:
            continue
        region[id(node)] = node
        for value in node.input_values:
            if doms.is_constant(value):
                assert value.producer is not None
                constants[id(value.producer)] = value.producer
            elif doms.origin(value) == fork:
                entries[id(value)] = value
            else:
                assert value.producer is not None
                stack.append(value.producer)
    if len(entries) != 1:
        return None
    for node in region.values():
        for out in node.outputs:
            if id(out) in graph_outputs:
                return None
            for user, index in out.uses:
                if id(user) not in region and not (user is merge and index == slot):
                    return None
    _absorb_constants(region, constants, graph_outputs)
    return list(region.values()), next(iter(entries.values()))


def _absorb_constants(
    region: dict[int, Node], constants: dict[int, Node], graph_outputs: set[int]
) -> None:
    """Add the constant nodes all of whose uses lie inside ``region``, transitively."""
    stack = list(constants.values())
    while stack:
        node = stack.pop()
        if id(node) in region:
            continue
        uses_inside = all(
            id(out) not in graph_outputs and all(id(user) in region for user, _ in out.uses)
            for out in node.outputs
        )
        if uses_inside:
            region[id(node)] = node
            stack.extend(v.producer for v in node.input_values if v.producer is not None)


def _branches(graph: Graph, graph_outputs: set[int]) -> Iterable[Unit]:
    doms = _Dominators(graph)
    for merge in graph.nodes:
        if merge.op != "Add" or id(merge) in doms.constant or len(merge.inputs) != 2:
            continue
        a, b = merge.inputs
        if a is None or b is None or a is b or doms.is_constant(a) or doms.is_constant(b):
            continue
        fork = doms.idom[id(merge)]
        if fork == _Dominators.ROOT:
            continue
        for slot, operand in enumerate((a, b)):
            if doms.origin(operand) == fork:
                continue
            found = _closed_region(merge, slot, fork, doms, graph_outputs)
            if found is not None:
                nodes, entry = found
                assert operand.producer is not None
                yield Unit("", "branch", operand.producer, nodes, entry, operand, merge)


def find_units(graph: Graph) -> list[Unit]:
    """Every computational unit of ``graph``, ordered by the position of its main node."""
    graph_outputs = {id(v) for v in graph.outputs}
    units: list[Unit] = []
    for node in graph.nodes:
        if _is_main(node):
            chain = _layer_chain(node, graph_outputs)
            assert node.inputs[0] is not None
            units.append(
                Unit("", _MAIN_KIND[node.op], node, chain, node.inputs[0], chain[-1].output)
            )
    units.extend(_branches(graph, graph_outputs))
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    for unit in units:
        unit.nodes.sort(key=lambda n: position[id(n)])
    units.sort(key=lambda u: (position[id(u.main)], u.kind == "branch"))
    taken: dict[str, int] = {}
    for unit in units:
        base = _key(unit.main) if unit.kind != "branch" else _branch_key(unit) + _BRANCH_SUFFIX
        repeat = taken.get(base, 0)
        taken[base] = repeat + 1
        unit.name = base if repeat == 0 else f"{base}#{repeat}"
    return units


def _set_meta(node: Node, key: str, value: object) -> bool:
    if value is None:
        return node.meta.pop(key, None) is not None
    if node.meta.get(key) == value:
        return False
    node.meta[key] = value
    return True


class GroupUnitsPass(Pass):
    """Annotate nodes with their units; the graph's structure is untouched.

    ``node.meta["unit"]``: the name of the conv/linear/pool unit the node belongs to;
    ``node.meta["branches"]``: the names of the branches containing it, outermost first.
    Stale annotations are removed, so running the pass twice changes nothing the second time.
    """

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        unit_of: dict[int, str] = {}
        branches_of: dict[int, list[str]] = {}
        units = find_units(graph)
        branch_sizes = {u.name: len(u.nodes) for u in units}
        for unit in units:
            for node in unit.nodes:
                if unit.kind == "branch":
                    branches_of.setdefault(id(node), []).append(unit.name)
                else:
                    unit_of[id(node)] = unit.name
        changed = False
        for node in graph.nodes:
            names = sorted(branches_of.get(id(node), ()), key=lambda n: -branch_sizes[n])
            changed |= _set_meta(node, "unit", unit_of.get(id(node)))
            changed |= _set_meta(node, "branches", tuple(names) or None)
        return PassResult(graph, changed)
