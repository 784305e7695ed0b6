"""Read-only analyses of a graph: facts derived from its structure, never stored on it.

*Constant* means computed from no graph input. A node is constant when every value it reads
is the output of a constant node, so a node that reads nothing (a ``Constant``: a parameter
or buffer used as an activation) is constant, and so is whatever reads only constants (a
``Reshape`` of a parameter, a shape computed from constant tensors). A node's own weights are
not inputs and never make it non-constant. A graph input is never constant, and neither is
anything that reads one, directly or through other nodes. A value is constant when its
producer is.

The graph keeps no edit counter, so nothing here is cached: call again after editing.
"""

from __future__ import annotations

from natopt.ir.graph import Graph, Node, Value

__all__ = ["constant_nodes", "constant_values"]


def constant_nodes(graph: Graph) -> frozenset[Node]:
    """The nodes of ``graph`` computed from no graph input (see the module docstring)."""
    constant: set[Node] = set()
    for node in graph.nodes:  # topological order: every producer is decided first
        if all(v.producer is not None and v.producer in constant for v in node.input_values):
            constant.add(node)
    return frozenset(constant)


def constant_values(graph: Graph) -> frozenset[Value]:
    """The outputs of ``constant_nodes(graph)``: the values computed from no graph input."""
    return frozenset(v for node in constant_nodes(graph) for v in node.outputs)
