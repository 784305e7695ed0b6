"""A small label-free plan search for one graph, on the example inputs a compiler is given.

A compile-time backend has no data set and no time to fine-tune, so this is the
``natopt optimize`` search cut down: the example batch serves as search, validation and
calibration data; quality is agreement with the original graph on it (top-1 for a
classifier's logits, cosine similarity otherwise, ``natopt.pipeline.quality``); the greedy
baseline spends ``evaluations`` plan evaluations (each refit by least squares on the batch),
under the options' budget (``None``: NAT's objective, never costlier). For real gains, search
with ``natopt optimize`` on real data and replay its plan.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from natopt.compile.options import CompileOptions
from natopt.ir import Graph
from natopt.passes.calibration import ActivationCache
from natopt.passes.nat import greedy_search
from natopt.passes.transitions import Plan, compute_mask, vocabulary_for
from natopt.pipeline.data import Dataset, Splits
from natopt.pipeline.latency_probes import latency_estimator
from natopt.pipeline.problem import SearchProblem, strip_keep

__all__ = ["search_plan", "SPACE", "COST_WEIGHT"]

SPACE = "nat++"
COST_WEIGHT = 0.02


def search_plan(
    graph: Graph, inputs: Sequence[torch.Tensor], options: CompileOptions
) -> tuple[Plan, Graph]:
    """The best plan found for canonical ``graph`` on ``inputs``, and ``graph`` rewritten by
    it (replacements refit on ``inputs``)."""
    mask = compute_mask(graph, vocabulary_for(SPACE))
    data = Dataset([t.detach().cpu().numpy() for t in inputs])
    budget = options.budget
    latency = None
    if budget is not None and budget.metric == "latency":
        latency = latency_estimator(graph, mask)
    problem = SearchProblem(
        graph,
        mask,
        Splits(data, data, data, data),
        budget,
        COST_WEIGHT,
        ActivationCache([[t.detach() for t in inputs]]),
        seed=options.seed,
        latency=latency,
    )
    space = problem.search_space(validate=False)
    found = greedy_search(space, options.evaluations, seed=options.seed, candidates=2)
    plan = Plan(strip_keep(found.best_plan))
    return plan, problem.build(plan.transitions, base=graph)
