"""NAT, grow, random, greedy and knapsack search on synthetic spaces whose best plan is known
exactly."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from natopt.passes.nat import (
    Evaluation,
    SearchConfig,
    SearchSpace,
    greedy_search,
    grow_search,
    knapsack_search,
    nat_search,
    random_search,
    synthetic_problem,
)

FAST = SearchConfig.fast(keep_prior=None)  # the synthetic optima are far from 'keep'
METHODS = {
    "nat": lambda space, budget, seed, **kw: nat_search(
        space, budget, config=FAST, seed=seed, **kw
    ),
    "grow": lambda space, budget, seed, **kw: grow_search(
        space, budget, config=FAST, seed=seed, **kw
    ),
    "random": lambda space, budget, seed, **kw: random_search(space, budget, seed=seed, **kw),
    "greedy": lambda space, budget, seed, **kw: greedy_search(space, budget, seed=seed, **kw),
    "knapsack": lambda space, budget, seed, **kw: knapsack_search(space, budget, seed=seed, **kw),
}


class Recorder:
    """Wraps a space's evaluate; records every plan it is asked to score."""

    def __init__(self, space: SearchSpace) -> None:
        self.inner = space.evaluate
        self.plans: list[tuple[str, ...]] = []

    def __call__(self, plan: dict[str, str]) -> Evaluation:
        self.plans.append(tuple(plan.values()))
        return self.inner(plan)


def recorded(space: SearchSpace) -> tuple[SearchSpace, Recorder]:
    recorder = Recorder(space)
    return dataclasses.replace(space, evaluate=recorder), recorder


def test_nat_finds_the_true_optimum_in_most_seeds():
    hits, ranks = 0, []
    for seed in range(10):
        problem = synthetic_problem(6, seed=seed)
        space = problem.space
        result = nat_search(space, 300, config=FAST, seed=seed)
        # the plan returned is a valid one, and the reward reported is that plan's own
        assert set(result.best_plan) == set(space.units)
        for unit, choice in result.best_plan.items():
            row = space.units.index(unit)
            assert bool(space.mask[row, space.vocabulary.index(choice)]), (unit, choice)
        assert space.evaluate(result.best_plan).reward == result.best_evaluation.reward
        rank = problem.rank(result.best_evaluation.reward)
        ranks.append(rank)
        hits += rank == 0
    assert hits >= 6, ranks
    assert max(ranks) <= 10, ranks  # never far: within the top 10 of 1,700-7,500 plans


@pytest.mark.parametrize("method", sorted(METHODS))
def test_budget_is_respected_and_repeats_are_free(method):
    problem = synthetic_problem(6, seed=1)
    space, recorder = recorded(problem.space)
    result = METHODS[method](space, 120, seed=0)
    search_calls = len(recorder.plans) - result.validations
    assert search_calls == result.evaluations <= 120
    assert len(set(recorder.plans[:search_calls])) == search_calls  # each plan paid once
    assert [t.evaluation for t in result.history] == list(range(1, search_calls + 1))
    assert 1 <= result.validations <= 10
    best = [t.best_reward for t in result.history]
    assert best == sorted(best)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_same_seed_same_plan(method):
    problem = synthetic_problem(6, seed=2)
    first = METHODS[method](problem.space, 100, seed=5)
    again = METHODS[method](problem.space, 100, seed=5)
    assert first.best_plan == again.best_plan
    assert [t.reward for t in first.history] == [t.reward for t in again.history]


def test_different_seeds_explore_differently():
    problem = synthetic_problem(6, seed=2)
    a = random_search(problem.space, 50, seed=0)
    b = random_search(problem.space, 50, seed=1)
    assert [t.reward for t in a.history] != [t.reward for t in b.history]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_plans_respect_the_mask(method):
    problem = synthetic_problem(6, seed=3, density=0.4)
    space, recorder = recorded(problem.space)
    METHODS[method](space, 80, seed=0)
    allowed = [
        {space.vocabulary[i] for i in row.nonzero().flatten().tolist()} for row in space.mask
    ]
    for plan in recorder.plans:
        assert all(t in ok for t, ok in zip(plan, allowed, strict=True))


def test_random_search_is_uniform_over_each_units_valid_transitions():
    problem = synthetic_problem(6, seed=4, density=0.5)
    space, recorder = recorded(problem.space)
    random_search(space, 400, seed=0)
    valid = space.mask[0].nonzero().flatten().tolist()
    counts = Counter(plan[0] for plan in recorder.plans)
    assert set(counts) == {space.vocabulary[i] for i in valid}
    expected = len(recorder.plans) / len(valid)
    assert all(abs(c - expected) < 0.3 * expected for c in counts.values()), counts


def test_greedy_starts_from_the_identity_plan_and_moves_one_unit_at_a_time():
    problem = synthetic_problem(6, seed=5)
    space, recorder = recorded(problem.space)
    greedy_search(space, 15, seed=0)  # within the first sweep: no restart yet
    assert recorder.plans[0] == ("keep",) * 6
    for i, plan in enumerate(recorder.plans[1:15], start=1):
        distances = [sum(a != b for a, b in zip(plan, p, strict=True)) for p in recorder.plans[:i]]
        assert min(distances) == 1  # one unit away from a plan it had already scored


def test_small_space_is_enumerated_then_the_search_stops():
    problem = synthetic_problem(3, seed=0)
    size = problem.space.size()
    for method in METHODS.values():
        result = method(problem.space, 10 * size, seed=0)
        assert result.evaluations <= size
    greedy = greedy_search(problem.space, 10 * size, seed=0)
    assert problem.rank(greedy.best_evaluation.reward) == 0


def test_shared_training_runs_between_rounds_and_invalidates_the_cache():
    problem = synthetic_problem(5, seed=6)
    rounds: list[int] = []
    space, recorder = recorded(problem.space)
    space = dataclasses.replace(space, train_shared=lambda plans: rounds.append(len(plans)))
    result = nat_search(space, 64, config=FAST, seed=0)
    assert sum(rounds) == result.draws and result.evaluations == 64
    assert all(n == FAST.plans_per_step for n in rounds[:-1])
    # greedy re-scores its current plan for every unit: free while the weights stand still,
    # paid again once shared training has changed them
    space, recorder = recorded(problem.space)
    result = greedy_search(dataclasses.replace(space, train_shared=lambda plans: None), 40, seed=0)
    searched = recorder.plans[: result.evaluations]
    assert len(set(searched)) < len(searched)


def test_validation_scores_the_final_candidates():
    problem = synthetic_problem(6, seed=7)
    validated: list[dict[str, str]] = []

    def validate(plan: dict[str, str]) -> Evaluation:
        validated.append(plan)
        return problem.space.evaluate(plan)

    space = dataclasses.replace(problem.space, validate=validate)
    result = random_search(space, 60, seed=0, candidates=5)
    assert len(validated) == result.validations == 5
    best = max(validated, key=lambda p: problem.space.evaluate(p).reward)
    assert result.best_plan == best


def test_progress_reports_every_evaluation():
    problem = synthetic_problem(5, seed=8)
    calls: list[tuple[int, int]] = []
    result = nat_search(
        problem.space,
        30,
        config=FAST,
        progress=lambda step, total, info: calls.append((step, total)),
    )
    assert calls == [(i, 30) for i in range(1, result.evaluations + 1)]


def test_invalid_spaces_are_refused():
    space = synthetic_problem(4, seed=0).space
    with pytest.raises(ValueError, match="mask must be bool"):
        dataclasses.replace(space, mask=space.mask.int())
    mask = space.mask.clone()
    mask[1, 0] = False
    with pytest.raises(ValueError, match="must allow 'keep'"):
        dataclasses.replace(space, mask=mask)
    with pytest.raises(ValueError, match="budget"):
        random_search(space, 0)
    assert torch.equal(space.mask[:, 0], torch.ones(4, dtype=torch.bool))


def test_noisy_synthetic_space_measures_noisily_and_validates_exactly():
    problem = synthetic_problem(5, seed=9, noise=0.5)
    plan = problem.best_plan
    assert problem.space.validate is not None
    assert problem.space.validate(plan).reward == pytest.approx(problem.best_reward)
    measured = {problem.space.evaluate(plan).reward for _ in range(3)}
    assert len(measured) == 3 and all(abs(r - problem.best_reward) < 3 for r in measured)
    result = random_search(problem.space, 60, seed=0)
    assert result.best_evaluation == problem.space.validate(result.best_plan)


def test_keep_prior_and_its_random_counterpart_start_near_the_original():
    problem = synthetic_problem(8, seed=10)
    changeable = [u for u in range(8) if int(problem.space.mask[u].sum()) > 1]

    def kept_share(run) -> float:
        space, recorder = recorded(problem.space)
        run(space)
        plans = recorder.plans[:40]  # distinct plans: repeats of the identity are free
        kept = [plan[u] == "keep" for plan in plans for u in changeable]
        return sum(kept) / len(kept)

    uniform = kept_share(lambda space: random_search(space, 40, seed=0))
    near = kept_share(lambda space: random_search(space, 40, seed=0, keep_probability=0.8))
    assert uniform < 0.4 < 0.6 < near
    flat = kept_share(lambda space: nat_search(space, 40, config=FAST, seed=0))
    prior = SearchConfig.fast()
    biased = kept_share(lambda space: nat_search(space, 40, config=prior, seed=0))
    assert flat < 0.4 < 0.6 < biased
