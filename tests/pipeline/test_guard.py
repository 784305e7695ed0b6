"""The quality guard, the control row and budgets that keep quality.

Unit level: the guard's arithmetic and words. End to end: the CLI's exit status 3 on the
shipped MNIST example's files (copied: the inputs must stay untouched), and a budget on a
toy model where a plan at the budget and a much cheaper, worse plan both exist.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from natopt.cli.main import main
from natopt.errors import NatoptError, QualityError
from natopt.frontends import lift
from natopt.ir import graph_cost
from natopt.passes import canonicalize
from natopt.passes.calibration import ActivationCache
from natopt.passes.nat import random_search
from natopt.passes.transitions import compute_mask, vocabulary_for
from natopt.pipeline.budget import Budget
from natopt.pipeline.data import Dataset, Splits
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.guard import Verdict, doomed, parse_max_drop, versus_control
from natopt.pipeline.objective import Objective
from natopt.pipeline.optimize import OptimizeConfig, optimize
from natopt.pipeline.problem import SearchProblem


def test_max_drop_reads_numbers_and_inf_and_refuses_the_rest():
    assert parse_max_drop("0.5") == 0.5
    assert parse_max_drop("0") == 0.0
    assert math.isinf(parse_max_drop("inf"))
    for bad in ("-0.1", "abc", "nan", ""):
        with pytest.raises(NatoptError, match="--max-drop"):
            parse_max_drop(bad)


def test_verdict_measures_the_drop_in_points():
    kept = Verdict("accuracy", 0.993, 0.9885, 0.5, 2000)
    assert kept.drop == pytest.approx(0.45)
    assert kept.accepted
    refused = Verdict("agreement", 1.0, 0.0, 0.5, 320)
    assert not refused.accepted
    assert "100.00 points of agreement" in refused.refusal()
    assert "--max-drop 0.5" in refused.refusal()
    assert Verdict("cosine", 1.0, 0.0, math.inf, 10).accepted


def test_the_guard_accepts_a_drop_of_exactly_the_tolerance_as_the_rungs_do():
    # 0.9875 - 0.9825 is 0.5000000000000004 points in floats: the rungs call it within, and
    # the final guard must not refuse that model on the last bit
    boundary = Verdict("accuracy", 0.9875, 0.9825, 0.5, 400)
    assert boundary.drop > 0.5
    assert boundary.accepted
    assert Objective("fastest", 0.5, 0.9875).within(0.9825)
    assert not Verdict("accuracy", 0.9875, 0.9824, 0.5, 400).accepted


def test_versus_control_needs_more_than_one_standard_error():
    # 2000 samples at 99%: one standard error is 0.22 points
    assert versus_control(0.9915, 0.9930, 2000)["outcome"] == "ties"
    assert versus_control(0.9960, 0.9900, 2000)["outcome"] == "beats"
    assert versus_control(0.9850, 0.9900, 2000)["outcome"] == "loses to"
    words = versus_control(0.9850, 0.9900, 2000)["summary"]
    assert "loses to the control" in words and "-0.50 points" in words


def test_a_run_far_outside_the_tolerance_is_flagged_early():
    assert doomed(1.0, 0.02, 0.5) is not None
    assert doomed(0.99, 0.97, 0.5) is None  # 2 points: fine-tuning recovers that often
    assert doomed(1.0, 0.0, math.inf) is None


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_collapsed_model_is_refused_with_exit_3_and_nothing_written(tmp_path, capsys):
    root = resources.files("natopt") / "data"
    model, data = tmp_path / "model.onnx", tmp_path / "data.npz"
    shutil.copy(str(root / "example_mnist.onnx"), model)
    shutil.copy(str(root / "example_mnist.npz"), data)
    hashes = {p: _file_hash(p) for p in (model, data)}
    out, report, plan = tmp_path / "out.onnx", tmp_path / "report.json", tmp_path / "plan.json"
    argv = [
        "optimize", str(model), "--data", str(data), "-o", str(out), "--report", str(report),
        "--save-plan", str(plan), "--budget", "macs=0.5", "--evaluations", "4",
        "--candidates", "1", "--finetune-steps", "0", "--no-latency", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("natopt: error: the optimised model lost")
    assert "--max-drop 0.5" in err[0] and "Traceback" not in err[0]
    assert not out.exists() and not plan.exists()
    written = json.loads(report.read_text())
    assert written["accepted"] is False
    guard = written["quality_guard"]
    assert guard["drop_points"] > 0.5 and guard["accepted"] is False
    assert written["control"]["quality"] > written["after"]["quality"]
    assert {p: _file_hash(p) for p in (model, data)} == hashes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "model.onnx", "report.json"]


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_max_drop_is_one_line_and_exit_2(tmp_path, capsys, value):
    report = tmp_path / "report.json"
    argv = ["optimize", "--example", "--max-drop", value, "--report", str(report), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("natopt: error: --max-drop")
    assert not report.exists()


class Residual(nn.Module):
    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.mul_(scale)
            self.conv.bias.mul_(scale)

    def forward(self, x):
        return x + self.conv(x)


class TwoBranches(nn.Module):
    """Branch ``a`` is almost zero (removing it is free); removing ``b`` costs a little."""

    def __init__(self, scale_b: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.a = Residual(8, 1e-4)
        self.b = Residual(8, scale_b)
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        return self.head(torch.flatten(self.b(self.a(torch.relu(self.stem(x)))), 1))


def _problem(scale_b: float, budget: Budget | None) -> SearchProblem:
    graph = canonicalize(lift(TwoBranches(scale_b).eval(), torch.randn(2, 1, 8, 8)))
    x = np.random.default_rng(0).normal(size=(512, 1, 8, 8)).astype(np.float32)
    data = Dataset([x])
    mask = compute_mask(graph, vocabulary_for("nat"))
    calibration = ActivationCache([[torch.from_numpy(x[:64])]])
    return SearchProblem(graph, mask, Splits(data, data, data, data), budget, 0.005, calibration)


AT_BUDGET = {"a.conv:branch": "null"}
CHEAPER = {"a.conv:branch": "null", "b.conv:branch": "null"}


def test_a_budget_keeps_the_plan_at_it_over_a_much_cheaper_worse_one():
    # the weakest branch b that still matters: removing it loses a sample or two, less than
    # a cost term of 0.005 x the MACs it saves would pay for (the reward before this guard)
    for scale in (0.002, 0.005, 0.01, 0.02, 0.05, 0.1):
        problem = _problem(scale, None)
        at, cheap = (problem.quality(problem.build(p), "val").quality for p in (AT_BUDGET, CHEAPER))
        if at > cheap:
            break
    else:
        pytest.fail("no scale of branch b made removing it cost quality")
    original = problem.original_cost.macs
    at_ratio = graph_cost(problem.build(AT_BUDGET)).macs / original
    cheap_ratio = graph_cost(problem.build(CHEAPER)).macs / original
    assert cheap_ratio < at_ratio - 0.3, "the cheaper plan must be much cheaper"
    budget = Budget("macs", round(at_ratio + 0.01, 3))
    problem = _problem(scale, budget)
    assert problem.validate(AT_BUDGET).reward > problem.validate(CHEAPER).reward

    # a search that sees every plan keeps the best quality within the budget
    space = problem.search_space()
    found = random_search(space, space.size(), seed=0, candidates=space.size())
    chosen = {u: t for u, t in found.best_plan.items() if t != "keep"}
    chosen_graph = problem.build(chosen)
    assert graph_cost(chosen_graph).macs / original <= budget.fraction
    within = [
        e["quality"]
        for e in problem.evaluated
        if e["split"] == "val" and e["macs"] / original <= budget.fraction
    ]
    assert problem.quality(chosen_graph, "val").quality == max(within)
    assert chosen != CHEAPER


def test_the_api_raises_a_quality_error_that_carries_the_result():
    model = TwoBranches(1.0).eval()
    graph = lift(model, torch.randn(2, 1, 8, 8), dynamic_batch=True)
    x = np.random.default_rng(1).normal(size=(120, 1, 8, 8)).astype(np.float32)
    config = OptimizeConfig(
        budget=Budget.parse("macs=0.1"),
        space="nat",
        evaluations=4,
        candidates=1,
        finetune=FinetuneConfig(steps=0),
        measure_latency=False,
        progress=False,
        calibration_samples=32,
        max_drop=0.0,
        rungs=(),
    )
    with pytest.raises(QualityError) as info:
        optimize(graph, (Dataset([x]), None), config)
    report = info.value.result.report
    assert report["accepted"] is False
    assert report["quality_guard"]["drop_points"] > 0
    assert info.value.result.onnx_path is None
    assert info.value.exit_status == 3


def test_the_size_of_an_onnx_file_counts_its_external_data(tmp_path):
    import onnx

    from natopt.pipeline.verify_export import onnx_file_bytes

    root = resources.files("natopt") / "data"
    model = onnx.load(str(root / "example_mnist.onnx"))
    inline = tmp_path / "inline.onnx"
    onnx.save_model(model, str(inline))
    split = tmp_path / "split.onnx"
    onnx.save_model(model, str(split), save_as_external_data=True, location="split.onnx.data",
                    size_threshold=0)  # fmt: skip
    assert split.stat().st_size < inline.stat().st_size / 4
    assert onnx_file_bytes(inline) == inline.stat().st_size
    assert abs(onnx_file_bytes(split) - inline.stat().st_size) < 0.1 * inline.stat().st_size
