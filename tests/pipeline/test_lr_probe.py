"""The learning-rate probe: a step size that damages the original model is lowered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from natopt.backends import to_torch
from natopt.frontends import lift
from natopt.passes.transitions import Plan
from natopt.pipeline.data import Dataset
from natopt.pipeline.finetune import FinetuneConfig, finetune
from natopt.pipeline.lr_probe import probe_lr, probe_tolerance
from natopt.pipeline.optimize import OptimizeConfig, optimize
from natopt.pipeline.problem import graph_outputs


def _inputs(problem):
    data = problem.splits.finetune
    return data, graph_outputs(problem.graph, data)


def test_a_step_size_that_ruins_the_original_is_divided_until_it_does_not(problem):
    data, teacher = _inputs(problem)
    before = {n.name: {k: w.clone() for k, w in n.weights.items()} for n in problem.graph.nodes}
    config = FinetuneConfig(steps=200, batch_size=16, lr=3.0)
    lr, tries = probe_lr(problem, data, teacher, config, steps=10, tolerance=2.0, tries=4)
    assert [t.lr for t in tries] == pytest.approx([3.0 / 10**i for i in range(len(tries))])
    assert tries[0].drop_points > 2.0  # Adam at 3.0 wrecks it
    assert 1 < len(tries) <= 4 and lr < 3.0
    kept = [t for t in tries if t.kept]
    assert len(kept) == 1 and kept[0].lr == lr
    if kept[0].drop_points <= 2.0:
        assert kept[0] is tries[-1]  # the first step size within the tolerance stops it
    assert all(t.steps == 10 for t in tries)
    for node in problem.graph.nodes:  # the probe trains a copy
        for key, weight in node.weights.items():
            assert torch.equal(weight, before[node.name][key])


def test_a_gentle_step_size_is_kept_after_one_try(problem):
    data, teacher = _inputs(problem)
    config = FinetuneConfig(steps=200, batch_size=16, lr=1e-5)
    lr, tries = probe_lr(problem, data, teacher, config, steps=5, tolerance=2.0)
    assert lr == 1e-5 and len(tries) == 1 and tries[0].kept
    assert tries[0].drop_points <= 2.0


def test_the_tolerance_is_the_transient_and_never_under_two_samples():
    assert probe_tolerance(1000) == 5.0
    assert probe_tolerance(20) == 10.0  # two samples of a 20-sample split


def test_stop_after_trains_the_opening_steps_of_the_same_schedule(toy_model):
    x = np.random.default_rng(3).normal(size=(64, 1, 8, 8)).astype(np.float32)
    graph = lift(toy_model, torch.randn(2, 1, 8, 8))
    data = Dataset([x])
    teacher = graph_outputs(graph, data)
    config = FinetuneConfig(steps=40, batch_size=16)
    full, part = to_torch(graph), to_torch(graph)
    losses = finetune(full, data, teacher, config)
    opening = finetune(part, data, teacher, config, stop_after=7)
    assert len(losses) == 40 and opening == pytest.approx(losses[:7])


def _toy_run(toy_model, seed: int, **options):
    """The toy model lifted, 120 random samples, and a small random search's config (Adam at
    3.0, 30 fine-tuning steps, no rungs, no latency, the guard off) with ``options``."""
    graph = lift(toy_model, torch.randn(2, 1, 8, 8), dynamic_batch=True)
    x = np.random.default_rng(seed).normal(size=(120, 1, 8, 8)).astype(np.float32)
    defaults = dict(
        space="nat",
        search="random",
        evaluations=4,
        candidates=2,
        finetune=FinetuneConfig(steps=30, lr=3.0),
        measure_latency=False,
        progress=False,
        calibration_samples=32,
        rungs=(),
        max_drop=float("inf"),
    )
    return graph, x, OptimizeConfig(**(defaults | options))


def test_optimize_reports_the_probe_and_fine_tunes_at_the_kept_step_size(toy_model):
    graph, x, config = _toy_run(toy_model, 4, lr_probe_steps=10)
    said = []
    result = optimize(graph, (Dataset([x]), None), config, log=said.append)
    block = result.report["finetune"]
    assert block["lr_probe"][0]["lr"] == 3.0 and len(block["lr_probe"]) > 1
    assert block["lr"] == next(t["lr"] for t in block["lr_probe"] if t["kept"]) < 3.0
    assert any("fine-tuning at lr 3" in line for line in said)
    off = optimize(graph, (Dataset([x]), None), dataclasses.replace(config, lr_probe_steps=0))
    assert off.report["finetune"]["lr"] == 3.0 and off.report["finetune"]["lr_probe"] == []


def test_a_fine_tune_that_lowers_validation_quality_is_not_kept(toy_model):
    # the probe off and Adam at 3.0: fine-tuning wrecks the model, so both the optimised
    # model (a plan of one skip) and the control keep their weights from before it
    graph, x, config = _toy_run(toy_model, 5, lr_probe_steps=0, time_budget=None)
    result = optimize(graph, (Dataset([x]), None), config)
    (final,) = result.report["search"]["final_tries"]
    assert final["refit_val_quality"] > 0.5  # the refit alone is a working model
    assert not final["fine_tuned"] and final["val_quality"] == final["refit_val_quality"]
    assert result.report["finetune"]["kept"] is False
    assert result.report["finetune"]["control_kept"] is False
    assert result.report["control"]["quality"] == pytest.approx(1.0)  # the original, untouched


def test_a_plan_that_keeps_every_unit_returns_the_model_unchanged(toy_model):
    graph, x, config = _toy_run(
        toy_model, 6, plan=Plan({}), finetune=FinetuneConfig(steps=30), max_drop=0.0
    )
    said = []
    result = optimize(graph, (Dataset([x]), None), config, log=said.append)
    assert result.report["finetune"]["steps"] == 0 and not result.report["finetune"]["kept"]
    assert result.report["after"]["quality"] == pytest.approx(1.0)  # the original's outputs
    assert result.report["quality_guard"]["accepted"]
    assert any("returned unchanged" in line for line in said)


def test_score_steps_train_at_the_problems_step_size(problem):
    plan = {"a:branch": "null"}
    refit = problem.evaluate(plan).quality
    problem.score_steps = 10
    problem.score_lr = 1e-12  # no step at all, in effect: the refit's score
    assert problem.evaluate(plan).quality == pytest.approx(refit)
    problem.score_lr = 3.0  # Adam at 3.0 wrecks it
    assert problem.evaluate(plan).quality < refit
