"""Rewrite one fx ``GraphModule`` by a plan: lift, canonicalise, apply, lower like the original.

Shared by the ``torch.compile`` backend (a graph dynamo hands over, the model's parameters
among its placeholders) and the fx pass (a ``symbolic_trace``'d module):

1. ``lift_torch(gm, example_inputs)``; dynamo's parameter placeholders become stored weights
   named by their module path, so units are named as on any other capture of the model;
2. ``canonicalize`` (BatchNorm folded: inference semantics), find the units;
3. the plan's entries whose unit is in this graph are applied (``apply_plan``), or, when
   searching, a plan is searched on the example inputs (``natopt.compile.search``);
4. ``lower_like``: ``to_torch`` of the result, with the original's calling convention (one
   placeholder per original placeholder, unused ones for the parameters dynamo passes) and
   output structure, so it replaces the original wherever that was called.

A graph none of whose units the plan names is returned as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx

from natopt.backends import to_torch
from natopt.compile.options import CompileOptions
from natopt.compile.search import search_plan
from natopt.errors import BackendError
from natopt.frontends.torch import lift_torch
from natopt.frontends.torch.graph_module import INPUT_POSITIONS
from natopt.ir import Graph
from natopt.passes import canonicalize
from natopt.passes.transitions import ApplyReport, apply_plan, transition_units

__all__ = ["Rewritten", "rewrite_graph_module", "lower_like"]


@dataclass(slots=True)
class Rewritten:
    """The rewritten module (the input itself when nothing applied), this graph's unit names,
    the plan entries whose unit it has (``matched``) and those ``apply_plan`` rewrote."""

    module: fx.GraphModule
    units: list[str]
    matched: dict[str, str] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)
    graph: Graph | None = None


def rewrite_graph_module(
    gm: fx.GraphModule, example_inputs: Sequence[Any], options: CompileOptions
) -> Rewritten:
    """``gm`` rewritten by ``options`` (plan replay or search; module docstring)."""
    graph = lift_torch(gm, tuple(example_inputs), name=type(gm).__name__)
    canonical = canonicalize(graph)
    units = {u.name: None for u in transition_units(canonical)}  # ordered set
    positions = graph.meta.get(INPUT_POSITIONS, list(range(len(graph.inputs))))
    if options.search:
        inputs = [example_inputs[i] for i in positions]
        plan, optimized = search_plan(canonical, inputs, options)
        matched = dict(plan.transitions)
    else:
        entries = options.plan.transitions if options.plan is not None else {}
        matched = {u: t for u, t in entries.items() if u in units}
        if not matched:
            return Rewritten(gm, list(units))
        optimized = apply_plan(canonical, matched)
    report: ApplyReport = optimized.meta["transitions"]
    module = lower_like(gm, optimized, positions)
    return Rewritten(module, list(units), matched, dict(report.applied), optimized)


def _leaves(template: Any) -> int:
    found: list[Any] = []
    fx.node.map_aggregate(template, found.append)
    return len(found)


def lower_like(gm: fx.GraphModule, graph: Graph, positions: Sequence[int]) -> fx.GraphModule:
    """``to_torch(graph)`` called like ``gm``: placeholder ``positions[k]`` of ``gm`` feeds
    graph input ``k``, the others are accepted and unused; outputs take ``gm``'s structure."""
    module = to_torch(graph)
    fx_graph = module.graph
    original = [n for n in gm.graph.nodes if n.op == "placeholder"]
    feeding = set(positions)
    inputs = iter([n for n in fx_graph.nodes if n.op == "placeholder"])
    anchor = next(n for n in fx_graph.nodes if n.op != "placeholder")
    ordered = []
    for i, ph in enumerate(original):
        if i in feeding:
            node = next(inputs)
        else:
            with fx_graph.inserting_before(anchor):
                node = fx_graph.placeholder(f"unused_{ph.name}")
        node.target = ph.target
        ordered.append(node)
    for node in ordered:
        anchor.prepend(node)
    output = next(n for n in fx_graph.nodes if n.op == "output")
    results = output.args[0] if isinstance(output.args[0], tuple) else (output.args[0],)
    template = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    if _leaves(template) != len(results):
        raise BackendError(
            f"{type(gm).__name__}: the rewritten graph has {len(results)} outputs, the original "
            f"returns {_leaves(template)} tensors; natopt lowers flat tensor outputs only"
        )
    leaves = iter(results)
    output.args = (fx.node.map_aggregate(template, lambda _: next(leaves)),)
    fx_graph.lint()
    module.recompile()
    return module
