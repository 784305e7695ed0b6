"""Dead-code elimination.

Rewrite: a node none of whose outputs reaches a graph output is removed (with everything
that only it kept alive). Liveness is one backward sweep over the topological order: a node
is live when one of its outputs is a graph output or is read by a live node. No op has side
effects at inference, so no node is kept for any other reason.
"""

from __future__ import annotations

from natopt.ir import Graph
from natopt.passes.base import Pass, PassContext, PassResult

__all__ = ["DeadCodePass"]


class DeadCodePass(Pass):
    """Nodes whose outputs reach no graph output are removed."""

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        live = set(graph.outputs)
        dead = []
        for node in reversed(graph.nodes):
            if any(v in live for v in node.outputs):
                live.update(node.input_values)
            else:
                dead.append(node)
        for node in dead:
            graph.remove_node(node)
        return PassResult(graph, bool(dead))
