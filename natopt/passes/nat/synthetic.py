"""Synthetic plan spaces with a known optimum, for testing and benchmarking the searches.

Units form a chain ``0 — 1 — ... — U−1``. A plan ``a`` scores

    quality(a) = Σ_u r[u, a_u] + Σ_{u} w[u, a_u, a_{u+1}],
    cost(a)    = Σ_u c_u · f[a_u],          reward(a) = quality(a) − λ · cost(a),

with per-unit tables ``r`` ~ N(0, 1), chain interactions ``w`` ~ N(0, ``coupling``²), unit
sizes ``c_u`` ~ U(0.5, 1.5) and the relative costs ``f`` of the transitions (keep 1, cheaper
ops less, null 0). With ``budget`` B (a fraction of the original cost Σ_u c_u), the cost term
becomes a constraint, as in natopt's budgeted objectives: reward(a) = quality(a) −
10 · max(0, cost(a) / Σ_u c_u − B), and ``cost_weight`` is unused. The space carries exact
per-unit savings, ``savings[u, v] = c_u (1 − f[v]) / Σ_u c_u`` (cost is additive here), and
``required_saving = 1 − B`` (``None`` without a budget).

The interactions make a one-unit-at-a-time search myopic, as on a real network where nulling
one block changes what its neighbour is worth. Every transition but ``keep`` is valid with
probability ``density``. With ``noise`` > 0, ``evaluate`` adds
N(0, noise²) to the reward (a score measured on a finite sample), from a generator seeded
with ``seed``; ``validate`` stays exact. The whole space is small enough to enumerate, so a
search's result can be compared with the true best plan (``rank``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from natopt.passes.nat.features import FEATURES, OP_TYPES, UnitGraph
from natopt.passes.nat.space import Choices, Evaluation, SearchSpace

__all__ = ["SYNTHETIC_VOCABULARY", "SyntheticProblem", "synthetic_problem"]

SYNTHETIC_VOCABULARY = ("keep", "kernel3", "separable", "skip", "null")
_RELATIVE_COST = np.array([1.0, 0.4, 0.15, 0.01, 0.0])
_OVER_BUDGET_PENALTY = 10.0


@dataclass(slots=True)
class SyntheticProblem:
    """A synthetic space and its exhaustively computed rewards (``rewards``: every plan's)."""

    space: SearchSpace
    best_plan: Choices
    best_reward: float
    rewards: np.ndarray

    def rank(self, reward: float) -> int:
        """How many plans of the space score strictly more than ``reward`` (0: optimal)."""
        return int((self.rewards > reward + 1e-9).sum())


def synthetic_problem(
    units: int = 6,
    *,
    seed: int = 0,
    coupling: float = 0.5,
    cost_weight: float = 1.0,
    density: float = 0.75,
    noise: float = 0.0,
    budget: float | None = None,
) -> SyntheticProblem:
    """A chain of ``units`` units over ``SYNTHETIC_VOCABULARY`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    vocab = len(SYNTHETIC_VOCABULARY)
    table = rng.normal(size=(units, vocab))
    pair = rng.normal(scale=coupling, size=(max(units - 1, 0), vocab, vocab))
    size = rng.uniform(0.5, 1.5, size=units)
    mask = rng.random((units, vocab)) < density
    mask[:, 0] = True
    names = [f"unit{u}" for u in range(units)]
    index = {name: i for i, name in enumerate(SYNTHETIC_VOCABULARY)}

    def objective(quality: Any, cost: Any) -> Any:  # floats, or arrays over every plan
        if budget is None:
            return quality - cost_weight * cost
        return quality - _OVER_BUDGET_PENALTY * np.maximum(0.0, cost / size.sum() - budget)

    def score(actions: tuple[int, ...]) -> Evaluation:
        quality = sum(table[u, a] for u, a in enumerate(actions))
        quality += sum(pair[u, actions[u], actions[u + 1]] for u in range(units - 1))
        cost = sum(size[u] * _RELATIVE_COST[a] for u, a in enumerate(actions))
        relative = cost / size.sum()  # Evaluation.cost: a fraction of the original's
        return Evaluation(float(objective(quality, cost)), float(quality), float(relative))

    def exact(plan: Choices) -> Evaluation:
        return score(tuple(index[plan[name]] for name in names))

    noise_rng = np.random.default_rng([seed, 1])

    def measured(plan: Choices) -> Evaluation:
        truth = exact(plan)
        error = float(noise_rng.normal(scale=noise))
        return Evaluation(truth.reward + error, truth.quality + error, truth.cost)

    edges = [[u, u + 1] for u in range(units - 1)] + [[u + 1, u] for u in range(units - 1)]
    graph = UnitGraph(
        units=names,
        op_type=torch.from_numpy(rng.integers(0, len(OP_TYPES), size=units)),
        features=torch.from_numpy(rng.random((units, len(FEATURES))).astype(np.float32)),
        edge_index=torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T.contiguous(),
    )
    space = SearchSpace(
        names,
        list(SYNTHETIC_VOCABULARY),
        torch.from_numpy(mask),
        graph,
        measured if noise > 0 else exact,
        validate=exact if noise > 0 else None,
        savings=torch.from_numpy(np.outer(size, 1.0 - _RELATIVE_COST) / size.sum() * mask),
        required_saving=None if budget is None else 1.0 - budget,
    )
    rewards = objective(*_all_scores(table, pair, size, mask))
    best = np.unravel_index(int(rewards.argmax()), rewards.shape)
    valid = [np.flatnonzero(row) for row in mask]
    actions = tuple(int(valid[u][i]) for u, i in enumerate(best))
    return SyntheticProblem(space, space.plan(actions), float(rewards[best]), rewards.ravel())


def _all_scores(
    table: np.ndarray, pair: np.ndarray, size: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(quality, cost) of every valid plan, as arrays with one axis per unit (its valid
    choices)."""
    valid = [np.flatnonzero(row) for row in mask]
    units = len(valid)
    quality = np.zeros([len(v) for v in valid])
    cost = np.zeros([len(v) for v in valid])
    for u, choices in enumerate(valid):
        shape = [1] * units
        shape[u] = len(choices)
        quality = quality + table[u, choices].reshape(shape)
        cost = cost + (size[u] * _RELATIVE_COST[choices]).reshape(shape)
        if u + 1 < units:
            shape[u + 1] = len(valid[u + 1])
            quality = quality + pair[u][np.ix_(choices, valid[u + 1])].reshape(shape)
    return quality, cost
