"""A latency budget met on measured latency: the budget loop's arithmetic, and ``optimize``
searching again when the measured ratio misses the target (measurement faked: MACs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from natopt.bench.latency_table import CACHE_ENV
from natopt.frontends import lift
from natopt.frontends.onnx import lift_onnx
from natopt.ir import graph_cost
from natopt.pipeline import optimize as optimize_module
from natopt.pipeline.budget import Budget
from natopt.pipeline.data import Dataset
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.latency_budget import LatencyRound, choose_round, next_budget
from natopt.pipeline.optimize import OptimizeConfig, optimize
from natopt.pipeline.verify_export import LatencyPair


def _round(budget: float, measured: float, quality: float = 0.0) -> LatencyRound:
    return LatencyRound(budget, measured, quality)


def test_a_close_enough_round_stops_the_loop() -> None:
    assert next_budget(0.5, [_round(0.5, 0.49)]) is None
    assert next_budget(0.5, [_round(0.5, 0.51)]) is None  # within timing noise


def test_the_budget_scales_by_target_over_measured() -> None:
    assert next_budget(0.5, [_round(0.5, 0.25)]) == pytest.approx(0.99)  # capped
    assert next_budget(0.5, [_round(0.5, 0.4)]) == pytest.approx(0.625)
    assert next_budget(0.5, [_round(0.5, 0.625)]) == pytest.approx(0.4)


def test_a_scaled_budget_outside_the_bracket_is_bisected() -> None:
    rounds = [_round(0.5, 0.3), _round(0.6, 0.8)]  # 0.5 measures under 0.5, 0.6 over
    assert next_budget(0.5, rounds) == pytest.approx(0.55)  # scaling would give 0.375
    rounds = [_round(0.5, 0.3), _round(0.8, 0.55)]  # 0.8 * 0.5 / 0.55 = 0.727: inside
    assert next_budget(0.5, rounds) == pytest.approx(0.8 * 0.5 / 0.55)
    assert next_budget(0.5, [_round(0.99, 0.3)]) is None  # nothing new to try


def test_the_best_quality_round_within_the_target_is_kept_else_the_fastest() -> None:
    rounds = [_round(0.5, 0.3, 0.90), _round(0.8, 0.55, 0.99), _round(0.65, 0.45, 0.95)]
    assert choose_round(0.5, rounds) is rounds[2]  # 0.55 misses 0.5 even with noise
    assert choose_round(0.5, rounds[1:2]) is rounds[1]  # none meets: the fastest
    tie = [_round(0.5, 0.3, 0.9), _round(0.6, 0.45, 0.9)]
    assert choose_round(0.5, tie) is tie[1]


class Blocks(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.head = nn.Linear(c, 4)

    def forward(self, x):
        return self.head((self.b(self.a(x)) + x).mean((2, 3)))


def test_optimize_searches_again_when_the_measured_latency_misses(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    measured: list[float] = []

    def fake_measure(before, after, **_):  # "measured" = half the MACs ratio: the table
        ratio = 0.5 * graph_cost(lift_onnx(after)).macs / graph_cost(lift_onnx(before)).macs
        measured.append(ratio)  # over-prices every plan twofold
        return LatencyPair(1.0, ratio, 1.0 / ratio, "CPUExecutionProvider", 1, 5)

    monkeypatch.setattr(optimize_module, "measure_latency", fake_measure)
    torch.manual_seed(0)
    graph = lift(Blocks().eval(), torch.randn(2, 8, 16, 16), dynamic_batch=True)
    x = np.random.default_rng(0).normal(size=(60, 8, 16, 16)).astype(np.float32)
    config = OptimizeConfig(
        search="random",
        budget=Budget.parse("latency=0.9"),
        evaluations=4,
        candidates=1,
        finetune=FinetuneConfig(steps=0),
        progress=False,
        calibration_samples=16,
        latency_rounds=3,
    )
    result = optimize(graph, (Dataset([x]), None), config)
    rounds = result.report["search"]["latency_rounds"]
    assert len(rounds) >= 2 and rounds[1]["budget"] > rounds[0]["budget"]
    assert [r["measured_ratio"] for r in rounds] == pytest.approx(measured[: len(rounds)])
    (kept,) = [r for r in rounds if r["chosen"]]
    assert result.report["search"]["latency_budget_met"] == (kept["measured_ratio"] <= 0.9 * 1.03)
    assert result.report["latency"]["after_ms"] == pytest.approx(kept["measured_ratio"])
