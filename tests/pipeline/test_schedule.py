"""The time budget: a schedule estimated to take longer than the seconds left is scaled."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from natopt.errors import QualityError
from natopt.frontends import lift
from natopt.pipeline.data import Dataset
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.optimize import OptimizeConfig, optimize
from natopt.pipeline.schedule import (
    MIN_EVALUATIONS,
    MIN_RUNG_STEPS,
    MIN_STEPS,
    Costs,
    Schedule,
    fit,
)

ASKED = Schedule(evaluations=48, rungs=((4, 50), (2, 150)), steps=600)


def test_a_schedule_that_fits_is_kept_as_it_is():
    costs = Costs(evaluation=0.2, step=0.05)  # 9.6 s + 0.05 * (500 + 1200) = 94.6 s
    assert ASKED.seconds(costs) == pytest.approx(94.6)
    assert fit(ASKED, costs, 100.0) == (ASKED, 1.0)


def test_a_schedule_that_does_not_fit_is_scaled_by_one_factor():
    costs = Costs(evaluation=1.0, step=0.1)  # 48 + 170 = 218 s
    fitted, factor = fit(ASKED, costs, 109.0)
    assert factor == pytest.approx(0.5)
    assert fitted == Schedule(evaluations=24, rungs=((4, 25), (2, 75)), steps=300)
    assert fitted.seconds(costs) == pytest.approx(109.0)


def test_the_floors_hold_and_the_counts_never_rise():
    costs = Costs(evaluation=7.4, step=4.7)  # a 224x224 ImageNet network on 2 cores
    fitted, factor = fit(ASKED, costs, 60.0)
    assert factor < 0.01
    assert fitted.evaluations == MIN_EVALUATIONS
    assert [steps for _, steps in fitted.rungs] == [MIN_RUNG_STEPS, MIN_RUNG_STEPS]
    assert [plans for plans, _ in fitted.rungs] == [4, 2]  # plans per rung stay
    assert fitted.steps == MIN_STEPS
    small = Schedule(evaluations=4, rungs=((2, 3),), steps=10)
    assert fit(small, costs, 1.0)[0] == small  # below the floors already: left alone
    wide = Schedule(evaluations=48, rungs=((12, 50),), steps=600)
    assert fit(wide, costs, 1.0)[0].evaluations == 12  # the first rung's plans need scoring


def _run(time_budget, max_drop=float("inf"), said=None, steps=160):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 4),
    )
    graph = lift(model, torch.randn(2, 1, 8, 8), dynamic_batch=True)
    x = np.random.default_rng(0).normal(size=(120, 1, 8, 8)).astype(np.float32)
    config = OptimizeConfig(
        space="nat++",
        search="random",
        evaluations=40,
        candidates=2,
        finetune=FinetuneConfig(steps=steps),
        lr_probe_steps=5,
        measure_latency=False,
        progress=False,
        calibration_samples=32,
        rungs=((2, steps // 4),),
        max_drop=max_drop,
        time_budget=time_budget,
    )
    said = [] if said is None else said
    return optimize(graph, (Dataset([x]), None), config, log=said.append), said


def test_optimize_scales_its_schedule_into_a_small_time_budget():
    result, said = _run(time_budget=0.5)
    schedule = result.report["schedule"]
    assert schedule["scaled"] < 1.0
    planned = schedule["planned"]
    assert planned["evaluations"] < 40 and planned["steps"] < 160
    assert planned["rungs"][0][1] < 40
    assert schedule["evaluation_s"] > 0 and schedule["step_s"] > 0
    assert result.report["search"]["evaluations"] <= planned["evaluations"]
    assert any("the schedule is scaled by" in line for line in said)
    # what is left is fitted again after the search, at the pace measured so far, and
    # after the rungs; the final fine-tune runs the last plan's steps
    after_search, after_rungs = schedule["replans"]
    assert after_search["after"] == "search" and after_rungs["after"] == "rungs"
    assert after_search["step_s"] > 0 and after_rungs["step_s"] > 0
    assert after_rungs["planned"]["steps"] <= after_search["planned"]["steps"] <= planned["steps"]
    assert result.report["finetune"]["steps"] == after_rungs["planned"]["steps"]


def test_without_a_time_budget_the_schedule_is_as_given():
    result, said = _run(time_budget=None)
    assert result.report["schedule"]["scaled"] == 1.0
    assert result.report["finetune"]["steps"] == 160
    assert not any("scaled" in line for line in said)


def test_past_the_time_budget_no_other_finalist_is_fine_tuned():
    # max_drop -1: a finalist must beat the original's 100% agreement, which none can, so
    # without a time budget every finalist is fine-tuned in turn; past the budget only one
    def tries(time_budget):
        with pytest.raises(QualityError) as refused:  # the guard refuses it too
            _run(time_budget, max_drop=-1.0, said=(said := []), steps=40)
        return refused.value.result.report["search"]["final_tries"], said

    unlimited, _ = tries(None)
    assert len(unlimited) >= 2 and not any(t["within"] for t in unlimited)
    spent, said = tries(1e-3)  # spent before the first finalist is fine-tuned
    assert len(spent) == 1
    assert any("the time budget is spent" in line for line in said)


def test_large_inputs_fine_tune_in_smaller_batches():
    from natopt.pipeline.data import TRAINING_ELEMENTS

    mnist = Dataset([np.zeros((4, 1, 28, 28), np.float32)])
    imagenet = Dataset([np.zeros((4, 3, 224, 224), np.float32)])
    assert mnist.training_batch(64) == 64
    assert imagenet.training_batch(64) == TRAINING_ELEMENTS // (3 * 224 * 224) == 16
    assert imagenet.training_batch(8) == 8  # never more than asked


def test_the_cli_reads_a_time_budget_in_seconds_or_none():
    from natopt.cli.optimize import _time_budget
    from natopt.errors import NatoptError

    assert _time_budget("120") == 120.0 and _time_budget("None") is None
    for bad in ("0", "-5", "inf", "soon"):
        with pytest.raises(NatoptError, match="--time-budget"):
            _time_budget(bad)


def test_the_default_evaluations_give_way_to_the_time_budget_before_the_fine_tunes(
    monkeypatch,
):
    """Evaluations grown by default past 48 are cut first, to what fits beside the rungs and
    the fine-tune as asked; evaluations the user asked for are scaled with everything."""
    import natopt.pipeline.optimize as optimize_module

    monkeypatch.setattr(optimize_module, "_costs", lambda *_: (Costs(1.0, 0.1), 0.0))
    config = OptimizeConfig(
        evaluations=200, rungs=((4, 50), (2, 150)), finetune=FinetuneConfig(steps=600)
    )
    # 48 evaluations take 48 s and the fine-tunes 0.1 s x (500 + 2 x 600) = 170 s
    said: list[str] = []

    def scheduled(seconds: float, grown: bool) -> OptimizeConfig:
        timed = dataclasses.replace(config, time_budget=seconds)
        return optimize_module._scheduled(None, timed, [], None, 0.0, said.append, grown)[0]

    grown = scheduled(300.0, grown=True)
    assert grown.evaluations == 48 + 82  # the 82 s left over
    assert grown.rungs == config.rungs and grown.finetune.steps == 600
    assert "130 of the 200 default evaluations fit" in said[-1]
    asked = scheduled(300.0, grown=False)  # 370 s asked: every count by 300 / 370
    assert asked.evaluations == 162 and asked.finetune.steps == 486
    tight = scheduled(109.0, grown=True)  # 48 evaluations do not fit: scaled from them
    assert tight.evaluations < 48 and tight.finetune.steps < 600
    assert scheduled(400.0, grown=True).evaluations == 200  # it all fits
