"""The IR: a typed operation DAG of ``Node``s connected by ``Value``s.

A ``Value`` is a tensor: it knows its shape, its dtype, the node that produces it (``None``
for a graph input) and its uses (``(node, input_index)`` pairs). A ``Node`` is one operation
from the op registry with typed attributes and its own weights; its ``inputs`` are read-only.
The ``Graph`` keeps nodes in topological order; every edit keeps producers and use lists
right: passes edit a graph only through ``add_node``, ``Node.replace_input_with``,
``replace_all_uses``, ``set_outputs`` and ``remove_node``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from natopt.ir.registry import get_spec
from natopt.ir.types import Shape

__all__ = ["Value", "Node", "Graph"]


@dataclass(slots=True, eq=False)
class Value:
    """A tensor edge: ``uses`` lists ``(consumer, input_index)``; no producer for inputs.

    ``graph`` is the graph that created the value (``Graph.add_input`` or ``add_node``).
    """

    name: str
    shape: Shape | None = None
    dtype: str = "float32"
    producer: Node | None = None
    index: int = 0
    uses: list[tuple[Node, int]] = field(default_factory=list)
    graph: Graph | None = field(default=None, repr=False)

    @property
    def consumers(self) -> list[Node]:
        """The nodes that read this value, each once, in the order of ``uses``."""
        return list(dict.fromkeys(node for node, _ in self.uses))

    def is_graph_output(self) -> bool:
        """Whether the value is one of its graph's outputs."""
        return self.graph is not None and any(v is self for v in self.graph.outputs)

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(slots=True, eq=False)
class Node:
    """One operation. ``op`` names a registry entry; ``weights`` are the node's own tensors.

    ``source`` is the module path of the weights in the original model (``layer1.0.conv2``)
    when one is known: it survives every capture method, so plans name units by it.
    ``inputs`` is read-only: ``replace_input_with`` changes one and keeps use lists right.
    """

    name: str
    op: str
    outputs: list[Value] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _inputs: tuple[Value | None, ...] = field(default=(), init=False, repr=False)

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        """The values the node reads, in order (``None`` for an omitted optional input)."""
        return self._inputs

    def replace_input_with(self, index: int, value: Value | None) -> None:
        """Read ``value`` at input ``index``; the old and new values' use lists follow."""
        old = self._inputs[index]
        if old is value:
            return
        if old is not None:
            old.uses.remove((self, index))
        self._inputs = (*self._inputs[:index], value, *self._inputs[index + 1 :])
        if value is not None:
            value.uses.append((self, index))

    @property
    def output(self) -> Value:
        return self.outputs[0]

    @property
    def input_values(self) -> list[Value]:
        return [v for v in self.inputs if v is not None]

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op})"


class Graph:
    """A DAG of nodes in topological order, with named inputs and outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.meta: dict[str, Any] = {}
        self._node_names: set[str] = set()
        self._value_names: set[str] = set()
        self._counter = itertools.count()

    # ---- naming -------------------------------------------------------------------------
    def fresh_name(self, base: str, *, node: bool = False) -> str:
        """A node (or value) name not used yet in this graph, ``base`` itself when free."""
        taken = self._node_names if node else self._value_names
        base = base or "v"
        name = base
        while name in taken:
            name = f"{base}_{next(self._counter)}"
        taken.add(name)
        return name

    # ---- construction -------------------------------------------------------------------
    def add_input(self, name: str, shape: Shape | None, dtype: str = "float32") -> Value:
        value = Value(self.fresh_name(name), shape, dtype, graph=self)
        self.inputs.append(value)
        return value

    def add_node(
        self,
        op: str,
        inputs: Sequence[Value | None] = (),
        attrs: dict[str, Any] | None = None,
        weights: dict[str, torch.Tensor] | None = None,
        *,
        name: str | None = None,
        source: str | None = None,
        num_outputs: int | None = None,
        before: Node | None = None,
    ) -> Node:
        """Create a node consuming ``inputs``; it goes last, or just before ``before``.

        Attributes not given take the op's defaults; unknown ones are refused. Output values
        are created without shapes: ``natopt.ir.infer_node`` fills them.
        """
        spec = get_spec(op)
        node_name = self.fresh_name(name or op.lower(), node=True)
        node = Node(
            node_name,
            op,
            attrs=spec.check_attrs(node_name, attrs or {}),
            weights=dict(weights or {}),
            source=source,
        )
        if num_outputs is None:
            num_outputs = spec.outputs_for(node.attrs)
        for value in inputs:
            self._attach(node, value)
        node.outputs = [
            Value(
                self.fresh_name(node.name if num_outputs == 1 else f"{node.name}.{i}"),
                producer=node,
                index=i,
                graph=self,
            )
            for i in range(num_outputs)
        ]
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def _attach(self, node: Node, value: Value | None) -> None:
        index = len(node.inputs)
        node._inputs = (*node._inputs, value)
        if value is not None:
            value.uses.append((node, index))

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    # ---- editing ------------------------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Every consumer of ``old`` (and the graph outputs) reads ``new`` instead."""
        if old is new:
            return
        for node, index in list(old.uses):
            node.replace_input_with(index, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_node(self, node: Node) -> None:
        """Delete ``node``; its outputs must be unused and not graph outputs."""
        for out in node.outputs:
            if out.uses or out.is_graph_output():
                raise ValueError(f"cannot remove {node.name}: its output {out.name} is still used")
        for index, value in enumerate(node.inputs):
            if value is not None:
                value.uses.remove((node, index))
        self.nodes.remove(node)

    def sort(self) -> None:
        """Restore topological order (stable: keeps the current order where it is valid)."""
        position = {n: i for i, n in enumerate(self.nodes)}
        pending = {n: len(set(_producers(n))) for n in self.nodes}
        ready = [(position[n], n) for n, count in pending.items() if count == 0]
        heapq.heapify(ready)  # positions are unique: nodes themselves are never compared
        order: list[Node] = []
        while ready:
            _, node = heapq.heappop(ready)
            order.append(node)
            for consumer in dict.fromkeys(c for out in node.outputs for c in out.consumers):
                pending[consumer] -= 1
                if pending[consumer] == 0:
                    heapq.heappush(ready, (position[consumer], consumer))
        if len(order) != len(self.nodes):
            stuck = [n.name for n in self.nodes if pending[n] > 0][:5]
            raise ValueError(f"graph {self.name} has a cycle through {', '.join(stuck)}")
        self.nodes = order

    # ---- queries ------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        for node in self.nodes:
            yield from node.outputs

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"graph {self.name} has no node {name!r}")

    def find(self, op: str) -> list[Node]:
        return [n for n in self.nodes if n.op == op]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def copy(self) -> Graph:
        """A structural copy: new nodes and values, weight tensors shared (copy-on-write)."""
        new = Graph(self.name)
        new.meta = dict(self.meta)
        new._node_names = set(self._node_names)
        new._value_names = set(self._value_names)
        start = next(self._counter)  # reading the counter advances it: put it back
        self._counter = itertools.count(start)
        new._counter = itertools.count(start)
        mapping: dict[Value, Value] = {}
        for value in self.inputs:
            mapping[value] = Value(value.name, value.shape, value.dtype, graph=new)
            new.inputs.append(mapping[value])
        for node in self.nodes:
            clone = Node(
                node.name,
                node.op,
                attrs=dict(node.attrs),
                weights=dict(node.weights),
                source=node.source,
                meta=dict(node.meta),
            )
            for value in node.inputs:
                new._attach(clone, None if value is None else mapping[value])
            for out in node.outputs:
                mapping[out] = Value(out.name, out.shape, out.dtype, clone, out.index, graph=new)
                clone.outputs.append(mapping[out])
            new.nodes.append(clone)
        new.outputs = [mapping[v] for v in self.outputs]
        return new

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"Graph({self.name}: {len(self.nodes)} nodes)"


def _producers(node: Node) -> list[Node]:
    return [v.producer for v in node.input_values if v.producer is not None]
