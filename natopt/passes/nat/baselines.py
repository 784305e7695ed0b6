"""Baselines for the NAT search, on the same masked space, budget and final selection.

- ``random_search``: every unit draws uniformly among its valid transitions (a uniform draw
  over the masked space, not over the vocabulary), rounds of ``plans_per_round`` plans, until
  the budget is spent. With ``keep_probability`` p, a unit keeps its op with probability p
  and otherwise draws uniformly among its other valid transitions: the random counterpart
  of the NAT policy's ``keep_prior``, to tell what the prior does from what learning does.
- ``greedy_search``: coordinate ascent, one unit at a time. From the current plan (first the
  identity plan, every unit kept) it scores every valid transition of one unit with the others
  fixed and moves that unit to the best one: the highest reward — the caller's reward is
  quality with its cost term, so this is the best quality for the cost the caller asked for —
  ties going to the lower cost. Units are visited in a seeded random order, a new order each
  sweep; a sweep that changes nothing is a local optimum, and the search restarts from a
  uniformly random plan while budget remains.

Greedy looks plans up in the evaluator's cache all the time (the current plan at every unit),
so its draw limit is 50 x the budget rather than 2 x; lookups are free, only evaluations count.
Both alternate with ``train_shared`` like the NAT search (after each round of evaluations),
and both end like it: the top-K distinct plans by search reward are scored with
``space.validate`` and the best is returned.
"""

from __future__ import annotations

import random

from natopt.passes.nat.space import (
    Evaluation,
    PlanEvaluator,
    Progress,
    SearchResult,
    SearchSpace,
)

__all__ = ["random_search", "greedy_search"]


def _valid(space: SearchSpace) -> list[list[int]]:
    return [[int(i) for i in row.nonzero().flatten()] for row in space.mask]


def _uniform(rng: random.Random, valid: list[list[int]]) -> tuple[int, ...]:
    return tuple(rng.choice(choices) for choices in valid)


def _near_identity(
    rng: random.Random, valid: list[list[int]], keep: int, probability: float
) -> tuple[int, ...]:
    plan = []
    for choices in valid:
        others = [c for c in choices if c != keep]
        plan.append(keep if not others or rng.random() < probability else rng.choice(others))
    return tuple(plan)


def random_search(
    space: SearchSpace,
    budget: int,
    *,
    seed: int = 0,
    plans_per_round: int = 4,
    candidates: int = 10,
    max_draws_factor: int = 2,
    keep_probability: float | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Random plans over the masked space for at most ``budget`` evaluations: uniform, or
    keeping each unit with ``keep_probability``."""
    rng = random.Random(seed)
    valid = _valid(space)
    keep = space.identity_index
    evaluator = PlanEvaluator(space, budget, max_draws_factor * budget, progress, method="random")
    while not evaluator.done:
        plans = [
            _uniform(rng, valid)
            if keep_probability is None
            else _near_identity(rng, valid, keep, keep_probability)
            for _ in range(plans_per_round)
        ]
        scored = [p for p in plans if evaluator(p) is not None]
        evaluator.shared_step(scored)
    return evaluator.result(evaluator.top(candidates))


def greedy_search(
    space: SearchSpace,
    budget: int,
    *,
    seed: int = 0,
    candidates: int = 10,
    max_draws_factor: int = 50,
    progress: Progress | None = None,
) -> SearchResult:
    """Coordinate ascent over units with random restarts for at most ``budget`` evaluations."""
    rng = random.Random(seed)
    valid = _valid(space)
    evaluator = PlanEvaluator(space, budget, max_draws_factor * budget, progress, method="greedy")
    current = tuple([space.identity_index] * len(space.units))
    alive = evaluator(current) is not None
    while alive and not evaluator.done:
        order = list(range(len(space.units)))
        rng.shuffle(order)
        changed = False
        for unit in order:
            best = _best_move(evaluator, current, unit, valid[unit])
            if best is None:
                break
            changed |= best != current
            current = best
        if not changed:
            current = _uniform(rng, valid)
            alive = evaluator(current) is not None
    return evaluator.result(evaluator.top(candidates))


def _better(a: Evaluation, b: Evaluation) -> bool:
    return (a.reward, -a.cost) > (b.reward, -b.cost)


def _best_move(
    evaluator: PlanEvaluator, current: tuple[int, ...], unit: int, choices: list[int]
) -> tuple[int, ...] | None:
    """The best plan that differs from ``current`` at most at ``unit``; ``None`` once the
    budget is spent. The current plan is scored first and wins ties, so sweeps terminate.
    The scored plans go through ``train_shared`` as one round.
    """
    ordered = [current[unit]] + [c for c in choices if c != current[unit]]
    scored: list[tuple[tuple[int, ...], Evaluation]] = []
    for choice in ordered:
        plan = current[:unit] + (choice,) + current[unit + 1 :]
        score = evaluator(plan)
        if score is None:
            break
        scored.append((plan, score))
    evaluator.shared_step([plan for plan, _ in scored])
    if not scored:
        return None
    best, best_score = scored[0]
    for plan, score in scored[1:]:
        if _better(score, best_score):
            best, best_score = plan, score
    return best
