"""The learned NAT pass: GCN policy over the unit graph, REINFORCE search, and its baselines.

- ``unit_graph`` (``features``): the policy's input built from an IR graph;
- ``NATPolicy`` (``policy``): the GCN emitting one logit per transition per unit;
- ``SearchSpace`` / ``Evaluation`` / ``SearchResult`` (``space``): the protocol every search
  works on, with budgeted, cached evaluation;
- ``nat_search`` / ``SearchConfig`` (``search``), ``random_search`` / ``greedy_search``
  (``baselines``): the searches, sharing budget and final validation;
- ``knapsack_search`` / ``multiple_choice_knapsack`` (``knapsack``): the non-learned
  budgeted solver (per-unit sensitivities, multiple-choice knapsack DP);
- ``grow_search`` / ``GrowPolicy`` (``grow``): plans grown unit by unit in topological
  order, each decision conditioned on the predecessors' (an option beside ``nat_search``);
- ``synthetic_problem`` (``synthetic``): toy spaces with a known optimum.
"""

from __future__ import annotations

from natopt.passes.nat.baselines import greedy_search, random_search
from natopt.passes.nat.features import FEATURES, OP_TYPES, UnitGraph, unit_graph, unit_op_type
from natopt.passes.nat.grow import GrownPlans, GrowPolicy, grow_sample, grow_search, unit_order
from natopt.passes.nat.knapsack import (
    KnapsackSolution,
    knapsack_search,
    multiple_choice_knapsack,
)
from natopt.passes.nat.policy import NATPolicy
from natopt.passes.nat.search import SearchConfig, nat_search
from natopt.passes.nat.space import (
    Choices,
    Evaluation,
    PlanEvaluator,
    Progress,
    SearchResult,
    SearchSpace,
    Trace,
)
from natopt.passes.nat.synthetic import SYNTHETIC_VOCABULARY, SyntheticProblem, synthetic_problem

__all__ = [
    "FEATURES",
    "OP_TYPES",
    "SYNTHETIC_VOCABULARY",
    "Evaluation",
    "GrowPolicy",
    "GrownPlans",
    "KnapsackSolution",
    "NATPolicy",
    "Choices",
    "PlanEvaluator",
    "Progress",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "SyntheticProblem",
    "Trace",
    "UnitGraph",
    "greedy_search",
    "grow_sample",
    "grow_search",
    "knapsack_search",
    "multiple_choice_knapsack",
    "nat_search",
    "random_search",
    "synthetic_problem",
    "unit_graph",
    "unit_op_type",
    "unit_order",
]
