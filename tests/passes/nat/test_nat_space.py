"""SearchSpace's per-unit savings and required saving: validation and the additive estimate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from natopt.passes.nat import synthetic_problem


def test_synthetic_savings_are_exact_fractions_of_the_original_cost():
    problem = synthetic_problem(6, seed=0, budget=0.6)
    space = problem.space
    assert space.savings is not None and space.required_saving == pytest.approx(0.4)
    assert torch.all(space.savings[:, space.identity_index] == 0)
    assert torch.all(space.savings[~space.mask] == 0)
    original = space.evaluate(space.plan((0,) * 6)).cost
    plan = tuple(int(row.nonzero().flatten()[-1]) for row in space.mask)
    measured = 1.0 - space.evaluate(space.plan(plan)).cost / original
    assert space.saving(plan) == pytest.approx(measured)  # cost is additive here


def test_budgeted_synthetic_rewards_penalise_plans_over_budget():
    problem = synthetic_problem(6, seed=1, budget=0.5)
    space = problem.space
    assert space.evaluate(space.plan((0,) * 6)).reward < 0 < problem.best_reward
    best = tuple(space.vocabulary.index(t) for t in problem.best_plan.values())
    assert space.saving(best) >= 0.5 - 1e-12
    assert space.evaluate(problem.best_plan).reward == pytest.approx(problem.best_reward)
    assert synthetic_problem(6, seed=1).space.required_saving is None


def test_savings_and_required_saving_are_validated():
    space = synthetic_problem(4, seed=0).space
    assert space.savings is not None
    with pytest.raises(ValueError, match=r"savings must be float \[4, 5\]"):
        dataclasses.replace(space, savings=space.savings[:3])
    with pytest.raises(ValueError, match="savings must be float"):
        dataclasses.replace(space, savings=(space.savings > 0).long())
    negative = space.savings.clone()
    negative[1, 2] = -0.1
    with pytest.raises(ValueError, match=">= 0"):
        dataclasses.replace(space, savings=negative)
    kept = space.savings.clone()
    kept[0, 0] = 0.1
    with pytest.raises(ValueError, match="savings of 'keep' must be 0"):
        dataclasses.replace(space, savings=kept)
    with pytest.raises(ValueError, match="required_saving needs savings"):
        dataclasses.replace(space, savings=None, required_saving=0.3)
    with pytest.raises(ValueError, match="not a fraction"):
        dataclasses.replace(space, required_saving=1.5)
    with pytest.raises(ValueError, match="has no savings"):
        dataclasses.replace(space, savings=None).saving((0,) * 4)
    plain = dataclasses.replace(space, savings=None)
    assert plain.savings is None and plain.required_saving is None


def test_a_plans_saving_is_the_sum_over_its_units():
    space = synthetic_problem(5, seed=2).space
    assert space.savings is not None
    rng = np.random.default_rng(0)
    valid = [row.nonzero().flatten().tolist() for row in space.mask]
    for _ in range(10):
        plan = tuple(int(rng.choice(v)) for v in valid)
        expected = sum(float(space.savings[u, a]) for u, a in enumerate(plan))
        assert space.saving(plan) == pytest.approx(expected)
