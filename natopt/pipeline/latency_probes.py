"""What a latency budget times up front: the graph and every target of its transition mask.

``unit_variants(graph, mask)``: for every unit and every valid type/kernel/low-rank
transition, the unit alone (its nodes, every value read from outside an input) rewritten by
``apply_plan``, once per distinct unit signature (``natopt.bench.segments``). Transitions
whose rule ``builds`` nothing (keep, skip, null) create no new segment and are left out; a
transition valid only in the whole graph (its rule reads the unit's context) is skipped.

``latency_estimator(graph, mask)`` times the graph and those variants into the device's
latency table (``natopt.bench.latency_table``) and returns ``estimate_latency`` bound to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from natopt.bench.latency_table import LatencyTable, estimate_latency
from natopt.bench.segments import clone_nodes, graph_segments
from natopt.errors import NatoptError
from natopt.ir import Graph, Node, Value
from natopt.passes.transitions import TransitionMask, apply_plan, transition_units
from natopt.passes.transitions.registry import rule_for

__all__ = ["unit_variants", "latency_estimator"]


def _builds(op: str) -> bool:
    """Whether transition op ``op`` creates nodes (keep, skip and null only rewire)."""
    rule = rule_for(op)
    return rule is not None and rule.builds


def _unit_graph(nodes: Sequence[Node], unit_output: Value) -> Graph:
    """The unit's nodes alone; every value they read from outside becomes a graph input."""
    graph = Graph("unit")
    env: dict[Value, Value] = {}
    inside = {out for n in nodes for out in n.outputs}
    for node in nodes:
        for value in node.input_values:
            if value not in inside and value not in env:
                env[value] = graph.add_input(value.name, value.shape, value.dtype)
    clone_nodes(graph, nodes, env)
    graph.set_outputs([env[unit_output]])
    return graph


def unit_variants(graph: Graph, mask: TransitionMask) -> list[Graph]:
    """For every unit and every valid type/kernel/low-rank transition, the unit alone
    rewritten by it (one graph per distinct unit signature and transition)."""
    variants: list[Graph] = []
    seen: set[str] = set()
    for row, unit in enumerate(mask.units):
        names = [n for n in mask.valid_names(row) if _builds(mask.vocabulary.get(n).op)]
        if unit.kind == "branch" or not names:
            continue
        alone = _unit_graph(unit.nodes, unit.output)
        key = "|".join(s.key for s in graph_segments(alone))
        if key in seen:
            continue
        seen.add(key)
        local = transition_units(alone)[0].name
        for name in names:
            try:
                variants.append(apply_plan(alone, {local: name}, vocabulary=mask.vocabulary))
            except NatoptError:
                continue  # valid in the whole graph only (its rule reads the context)
    return variants


def latency_estimator(
    graph: Graph, mask: TransitionMask, table: LatencyTable | None = None
) -> Callable[[Graph], float]:
    """Time ``graph`` and its mask's targets (``unit_variants``) now; return an estimator."""
    table = table or LatencyTable.open()
    table.measure(table.pending([graph, *unit_variants(graph, mask)]))
    return partial(estimate_latency, table=table)
