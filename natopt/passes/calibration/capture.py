"""Activation capture: run the original graph on calibration batches, keep the named values.

``capture(graph, calibration, names)`` runs the graph on the calibration inputs
(``natopt.ir.run_graph`` with ``watch``) and keeps the tensors of the named values,
concatenated over the calibration batches along dim 0. ``ActivationCache`` keeps them across
the many plans a search applies to one graph; ``run_chain`` runs a replacement (a chain of
single-input nodes) on a captured input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from natopt.ir import Graph, Node, Value, call_node, run_graph

__all__ = ["capture", "ActivationCache", "run_chain"]


def capture(
    graph: Graph, calibration: Sequence[Tensor | Sequence[Tensor]], names: set[str]
) -> dict[str, Tensor]:
    """The tensors of the values named ``names`` on every calibration batch, concatenated
    (the graph runs only as far as the last node that produces one of them)."""
    seen: dict[str, list[Tensor]] = {name: [] for name in names}

    def keep(values: Sequence[Value | None], tensors: Sequence[object]) -> None:
        for value, tensor in zip(values, tensors, strict=True):
            if value is not None and value.name in seen and isinstance(tensor, Tensor):
                seen[value.name].append(tensor)

    def watch(node: Node, args: tuple, outs: tuple) -> None:
        keep(node.outputs, outs)

    producers = [n for n in graph.nodes if any(v.name in names for v in n.outputs)]
    last = producers[-1] if producers else None  # no need to run the graph past it
    for batch in calibration:
        inputs = [batch] if isinstance(batch, Tensor) else list(batch)
        keep(graph.inputs, inputs)
        if last is not None:
            run_graph(graph, inputs, watch=watch, upto=last)
    return {name: torch.cat(parts) for name, parts in seen.items() if parts}


class ActivationCache:
    """Activations of one graph on fixed calibration batches, captured once and reused.

    A search applies many plans to the same graph: each needs the activations of a few
    units, and running the whole graph on the calibration data for each plan would cost
    more than the rest of the evaluation. The cache keys on the identity of the graph and
    of its weight tensors (natopt replaces weight tensors, never edits them in place), so
    fine-tuned shared weights are captured anew.
    """

    def __init__(self, calibration: Sequence[Tensor | Sequence[Tensor]]) -> None:
        self.calibration = list(calibration)
        self._key: tuple[int, ...] | None = None
        self._values: dict[str, Tensor] = {}

    @staticmethod
    def fingerprint(graph: Graph) -> tuple[int, ...]:
        """What the captures of ``graph`` depend on: the graph and its weight tensors."""
        return (id(graph), *(id(w) for node in graph.nodes for w in node.weights.values()))

    def capture(self, graph: Graph, names: set[str]) -> dict[str, Tensor]:
        key = self.fingerprint(graph)
        if key != self._key:
            self._key, self._values = key, {}
        missing = names - self._values.keys()
        if missing:
            self._values.update(capture(graph, self.calibration, missing))
        return {name: self._values[name] for name in names if name in self._values}


def run_chain(nodes: Sequence[Node], x: Tensor) -> Tensor:
    """Run a chain of single-input nodes (a replacement) on ``x``."""
    with torch.no_grad():
        for node in nodes:
            (x,) = call_node(node, [x])
    return x
