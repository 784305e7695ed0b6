"""Multi-fidelity selection: successive halving on fine-tuned validation quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from natopt.frontends import lift
from natopt.passes import canonicalize
from natopt.passes.calibration import ActivationCache
from natopt.passes.transitions import compute_mask, vocabulary_for
from natopt.pipeline import fidelity
from natopt.pipeline.data import Dataset, Splits
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.optimize import OptimizeConfig, optimize
from natopt.pipeline.problem import SearchProblem


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.a(x)
        x = x + self.b(x)
        return self.head(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def problem():
    graph = canonicalize(lift(Net().eval(), torch.randn(2, 1, 8, 8)))
    x = np.random.default_rng(0).normal(size=(96, 1, 8, 8)).astype(np.float32)
    data = Dataset([x])
    mask = compute_mask(graph, vocabulary_for("nat"))
    calibration = ActivationCache([[torch.from_numpy(x[:32])]])
    return SearchProblem(graph, mask, Splits(data, data, data, data), None, 0.005, calibration)


POOL = [
    {"a:branch": "null"},
    {"b:branch": "null"},
    {"a": "skip"},
    {"a:branch": "null", "b:branch": "null"},
]


def test_the_schedule_halves_and_keeps_the_best_fine_tuned_plan(problem, monkeypatch):
    # fine-tuned qualities per plan and rung: the refit order (pool order) is not the
    # fine-tuned one; the plan that trains best is third in the pool
    after = {0: [0.50, 0.55], 1: [0.70, 0.71], 2: [0.80, 0.90], 3: [0.20, 0.99]}
    seeds: dict[int, list[int]] = {}

    def fake_train(problem_, candidate, data, teacher, config, seed):
        index = POOL.index(candidate.plan)
        seeds.setdefault(index, []).append(seed)
        return after[index][len(candidate.scores)]

    monkeypatch.setattr(fidelity, "train_candidate", fake_train)
    rungs = ((4, 3), (2, 5))
    chosen, records = fidelity.successive_halving(
        problem,
        POOL,
        problem.splits.finetune,
        problem.reference["finetune"],
        rungs,
        FinetuneConfig(steps=1),
    )
    assert chosen == POOL[2]
    assert sorted(len(r.scores) for r in records) == [1, 1, 2, 2]
    survivors = [r.plan for r in records if len(r.scores) == 2]
    assert survivors == [POOL[1], POOL[2]]  # the best two after rung 1, not plan 3's 0.99
    # a candidate's seed depends on the rung and its plan only, not on its place in the pool
    reversed_seeds: dict[int, list[int]] = {}

    def fake_train_reversed(problem_, candidate, data, teacher, config, seed):
        reversed_seeds.setdefault(POOL.index(candidate.plan), []).append(seed)
        return after[POOL.index(candidate.plan)][len(candidate.scores)]

    monkeypatch.setattr(fidelity, "train_candidate", fake_train_reversed)
    fidelity.successive_halving(
        problem,
        POOL[::-1],
        problem.splits.finetune,
        problem.reference["finetune"],
        rungs,
        FinetuneConfig(steps=1),
    )
    assert reversed_seeds == seeds


def test_ties_keep_the_cheaper_plan(problem, monkeypatch):
    monkeypatch.setattr(fidelity, "train_candidate", lambda *args, **kwargs: 0.5)
    chosen, _ = fidelity.successive_halving(
        problem,
        POOL,
        problem.splits.finetune,
        problem.reference["finetune"],
        ((4, 1),),
        FinetuneConfig(steps=1),
    )
    assert chosen == POOL[3]  # both branches removed: the cheapest of equal quality


def test_real_fine_tuning_scores_each_rung(problem):
    chosen, records = fidelity.successive_halving(
        problem,
        POOL,
        problem.splits.finetune,
        problem.reference["finetune"],
        ((3, 4), (1, 4)),
        FinetuneConfig(steps=1),
    )
    assert chosen in POOL[:3]
    assert sorted(len(r.scores) for r in records) == [1, 1, 2]
    assert all(0.0 <= s <= 1.0 for r in records for s in r.scores)
    assert all(r.module is None for r in records)  # trained copies are freed


def test_optimize_reports_the_rungs_and_fine_tunes_their_choice():
    graph = lift(Net().eval(), torch.randn(2, 1, 8, 8), dynamic_batch=True)
    x = np.random.default_rng(1).normal(size=(120, 1, 8, 8)).astype(np.float32)
    config = OptimizeConfig(
        space="nat",
        search="random",
        evaluations=8,
        candidates=2,
        finetune=FinetuneConfig(steps=5),
        measure_latency=False,
        progress=False,
        calibration_samples=32,
        rungs=((3, 4), (1, 4)),
        max_drop=float("inf"),
    )
    result = optimize(graph, (Dataset([x]), None), config)
    block = result.report["search"]["fidelity"]
    assert block["rungs"] == [[3, 4], [1, 4]]
    finalists = [c for c in block["candidates"] if len(c["finetuned_quality"]) == 2]
    assert len(finalists) == 1 and finalists[0]["plan"] == result.plan.transitions
    assert block["changed_choice"] == (block["refit_choice"] != result.plan.transitions)
    assert "rungs" in result.report["times"]
