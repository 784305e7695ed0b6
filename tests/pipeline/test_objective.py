"""The objectives: which one a user's flags ask for, and how the rungs rank candidates by it."""

from __future__ import annotations

import pytest

from natopt.cli.main import main
from natopt.errors import NatoptError
from natopt.pipeline.budget import Budget
from natopt.pipeline.objective import Objective, resolve_objective


def test_no_flags_mean_the_fastest_model_and_a_budget_means_best_quality_at_a_cost():
    assert resolve_objective(None, None) == "fastest"
    assert resolve_objective("accuracy", None) == "accuracy"
    assert resolve_objective(None, Budget("macs", 0.5)) == "budget"


@pytest.mark.parametrize("objective", ["accuracy", "fastest"])
def test_an_objective_with_a_budget_is_refused(objective):
    with pytest.raises(NatoptError, match="drop one of them"):
        resolve_objective(objective, Budget("macs", 0.5))


def test_the_cli_refuses_objective_with_budget_in_one_line(tmp_path, capsys):
    report = tmp_path / "r.json"
    status = main(
        ["optimize", "--example", "--objective", "accuracy", "--budget", "macs=0.5"]
        + ["--report", str(report)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("natopt: ")
    assert "--budget" in err[0] and not report.exists()


def test_fastest_ranks_the_cheapest_candidate_within_the_tolerance_first():
    objective = Objective("fastest", max_drop=0.5, baseline=0.99)
    candidates = {
        "slow, good": (0.99, 100.0),
        "fast, within": (0.986, 50.0),
        "fastest, too far": (0.97, 20.0),
        "far, better": (0.98, 40.0),
    }
    order = sorted(candidates, key=lambda name: objective.rank(*candidates[name]))
    assert order == ["fast, within", "slow, good", "far, better", "fastest, too far"]


def test_before_the_last_rung_one_standard_error_beyond_the_tolerance_counts_as_within():
    # one standard error of 0.98125 over 800 samples is 0.48 points
    objective = Objective("fastest", max_drop=0.5, baseline=0.9875, samples=800)
    assert objective.hopeful(0.98125) and not objective.within(0.98125)
    assert not objective.hopeful(0.975)  # 1.25 points down: beyond 0.5 + 0.55
    cheap, costly = (0.98125, 10.0), (0.98875, 20.0)
    assert objective.rank(*cheap, False) < objective.rank(*costly, False)
    assert objective.rank(*cheap) > objective.rank(*costly)  # the last rung: strict
    # without a sample count there is no margin
    assert not Objective("fastest", 0.5, 0.9875).hopeful(0.98125)


def test_a_drop_of_exactly_the_tolerance_is_within_despite_rounding():
    assert Objective("fastest", max_drop=0.5, baseline=0.9875).within(0.9825)


def test_accuracy_and_budget_rank_by_quality_then_cost():
    for name in ("accuracy", "budget"):
        objective = Objective(name, max_drop=0.5, baseline=0.99)
        ranked = sorted(
            [(0.95, 10.0), (0.98, 90.0), (0.98, 50.0)], key=lambda c: objective.rank(*c)
        )
        assert ranked == [(0.98, 50.0), (0.98, 90.0), (0.95, 10.0)]


def entry(plan, quality, macs, reward):
    return {"plan": plan, "quality": quality, "macs": macs, "latency_ms": None, "reward": reward}


def test_the_fastest_pool_keeps_only_the_quality_cost_front():
    entries = [
        entry({"a": "skip"}, 0.90, 50, 0.4),
        entry({"b": "skip"}, 0.80, 60, 0.9),  # dominated: costlier and worse than {"a"}
        entry({"c": "skip"}, 0.95, 80, 0.2),
        entry({"d": "null"}, 0.10, 10, 0.1),
    ]
    pool = Objective("fastest", 0.5, 0.99).pool(entries, 3)
    assert pool == [{"a": "skip"}, {"c": "skip"}, {"d": "null"}]
    # the other objectives take the best rewards, dominated or not
    assert Objective("budget", 0.5, 0.99).pool(entries, 2) == [{"b": "skip"}, {"a": "skip"}]
