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


def test_a_scaled_budget_outside_the_bracket_is_bisected() -> None:
    rounds = [_round(0.5, 0.3), _round(0.6, 0.8)]  # 0.5 measures under 0.5, 0.6 over
    assert next_budget(0.5, rounds) == pytest.approx(0.55)  # scaling would give 0.375
    rounds = [_round(0.5, 0.3), _round(0.8, 0.55)]  # 0.8 * 0.5 / 0.55 = 0.727: inside
    assert next_budget(0.5, rounds) == pytest.approx(0.8 * 0.5 / 0.55)
    assert next_budget(0.5, [_round(0.99, 0.3)]) is None  # nothing new to try


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
