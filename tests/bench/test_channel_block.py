"""The device's channel block, read off a latency staircase (synthetic and measured)."""

from __future__ import annotations

import math

import pytest

from natopt.bench.channel_block import (
    CANDIDATES,
    _largest_free_block,
    measured_rounding,
    probe_pair,
)


def _staircase(step: int, counts: list[int]) -> dict[int, float]:
    return {c: 1.0 + math.ceil(c / step) for c in counts}


@pytest.mark.parametrize("step", [8, 16, 32])
def test_the_largest_block_that_costs_nothing_is_the_staircase_step(step: int) -> None:
    counts = list(range(4, 129, 4))
    assert _largest_free_block(_staircase(step, counts), counts, 0.1) == step


def test_noise_below_the_tolerance_is_ignored_and_a_linear_cost_gives_the_smallest() -> None:
    counts = list(range(4, 65, 4))
    noisy = {c: t * (1.05 if c % 8 else 0.97) for c, t in _staircase(16, counts).items()}
    assert _largest_free_block(noisy, counts, 0.1) == 16
    linear = {c: float(c) for c in counts}
    assert _largest_free_block(linear, counts, 0.1) == 4


def test_probe_pair_narrows_the_middle_width_only() -> None:
    graph = probe_pair(8, 12, 5)
    convs = [n for n in graph.nodes if n.op == "Conv"]
    assert [tuple(n.weights["weight"].shape[:2]) for n in convs] == [(12, 8), (8, 12)]
    assert graph.outputs[0].shape == ("batch", 8, 5, 5)


@pytest.mark.slow
def test_measured_rounding_on_this_machine(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("NATOPT_CACHE_DIR", str(tmp_path))
    rounding = measured_rounding(channels=48)
    assert rounding.block in CANDIDATES and rounding.small_block in CANDIDATES
