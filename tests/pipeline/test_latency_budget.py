"""A latency budget met on measured latency: the budget loop's arithmetic (``optimize``
running the loop is tested with the latency table, in tests/bench/test_latency_table.py)."""

from __future__ import annotations

import pytest

from natopt.pipeline.latency_budget import LatencyRound, choose_round, next_budget, under_first


def _round(budget: float, measured: float, quality: float = 0.0) -> LatencyRound:
    return LatencyRound(budget, measured, quality)


def test_a_close_enough_round_stops_the_loop() -> None:
    assert next_budget(0.5, [_round(0.5, 0.49)]) is None
    assert next_budget(0.5, [_round(0.5, 0.51)]) is None  # within timing noise


def test_the_budget_scales_by_target_over_measured() -> None:
    assert next_budget(0.5, [_round(0.5, 0.25)]) == pytest.approx(0.99)  # capped
    assert next_budget(0.5, [_round(0.5, 0.4)]) == pytest.approx(0.625)
    assert next_budget(0.5, [_round(0.5, 0.625)]) == pytest.approx(0.4)


def test_once_a_budget_measures_under_and_one_over_the_next_is_bisected() -> None:
    rounds = [_round(0.5, 0.3), _round(0.6, 0.8)]  # 0.5 measures under 0.5, 0.6 over
    assert next_budget(0.5, rounds) == pytest.approx(0.55)  # scaling would give 0.375
    rounds = [_round(0.5, 0.3), _round(0.8, 0.55)]  # scaling would give 0.727, near 0.8
    assert next_budget(0.5, rounds) == pytest.approx(0.65)
    assert next_budget(0.5, [_round(0.99, 0.3)]) is None  # nothing new to try


def test_a_step_function_of_the_budget_does_not_creep_from_just_over_the_target() -> None:
    # the MNIST example: 0.51 measured 0.41, every budget from 0.53 up measured 0.53
    def measure(budget: float) -> float:
        return 0.41 if budget < 0.53 else 0.531

    rounds = [_round(0.514, 0.41), _round(0.57, 0.531)]
    while (budget := next_budget(0.514, rounds)) is not None and len(rounds) < 8:
        rounds.append(_round(budget, measure(budget)))
    tried = [r.budget for r in rounds[2:5]]  # five rounds in all, as the benchmark runs
    assert tried == pytest.approx([0.542, 0.528, 0.535])  # the bracket halves each time


def test_a_round_in_the_noise_over_the_target_searches_on_when_one_was_under_it() -> None:
    assert next_budget(0.5, [_round(0.5, 0.51)]) is None  # none under: the noise keeps it
    rounds = [_round(0.5, 0.4), _round(0.62, 0.51)]
    assert next_budget(0.5, rounds) == pytest.approx(0.56)


def test_the_round_closest_within_the_target_is_kept_else_the_fastest() -> None:
    rounds = [_round(0.5, 0.3, 0.99), _round(0.8, 0.55, 0.99), _round(0.65, 0.45, 0.90)]
    assert choose_round(0.5, rounds) is rounds[2]  # 0.55 misses 0.5 even with noise
    assert choose_round(0.5, rounds[1:2]) is rounds[1]  # none meets: the fastest
    near = [_round(0.5, 0.451, 0.9), _round(0.6, 0.449, 0.95)]  # equal to 1%: quality
    assert choose_round(0.5, near) is near[1]


def test_a_round_under_the_target_is_kept_over_a_closer_one_in_the_noise_above_it() -> None:
    rounds = [_round(0.5, 0.512, 0.99), _round(0.45, 0.47, 0.95)]  # 0.512: noise-allowed
    assert choose_round(0.5, rounds) is rounds[1]
    assert choose_round(0.5, rounds[:1]) is rounds[0]  # alone, the noise allowance keeps it
    assert under_first(0.5, [0.512, 0.47, 0.49, 0.6]) == [1, 2]
    assert under_first(0.5, [0.512, 0.6]) == [0]
    assert under_first(0.5, [0.6]) == []
