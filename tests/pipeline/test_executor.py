"""The executor seam: the in-process executor, failed tasks in the rungs' schedule, and
what happens without Ray (the Ray executor itself: ``test_ray_executor.py``)."""

from __future__ import annotations

import sys

import pytest

from natopt.cli.main import main
from natopt.errors import ExecutorError
from natopt.pipeline import fidelity
from natopt.pipeline.executor import InProcessExecutor, TaskResult, executor_for
from natopt.pipeline.finetune import FinetuneConfig


def square_or_fail(offset: int, task: int) -> int:
    if task < 0:
        raise ValueError(f"task {task} is negative")
    return task * task + offset


def test_in_process_runs_every_task_in_order_and_reports_each():
    seen: list[tuple[int, TaskResult]] = []
    executor = InProcessExecutor()
    shared = executor.share(10)
    results = executor.map(square_or_fail, [3, -1, 2], shared, lambda i, r: seen.append((i, r)))
    assert [r.value for r in results] == [19, None, 14]
    assert [r.error for r in results] == [None, "ValueError: task -1 is negative", None]
    assert [r.ok for r in results] == [True, False, True]
    assert all(r.seconds >= 0 and r.retries == 0 for r in results)
    assert [i for i, _ in seen] == [0, 1, 2] and [r for _, r in seen] == results
    assert executor.describe()["kind"] == "in-process"


def test_executor_for_picks_in_process_without_workers_or_address():
    with executor_for() as executor:
        assert isinstance(executor, InProcessExecutor)
    with pytest.raises(ExecutorError, match="at least 1 worker"), executor_for(workers=0):
        pass


def rungs(problem, pool, executor=None):
    return fidelity.successive_halving(
        problem,
        pool,
        problem.splits.finetune,
        problem.reference["finetune"],
        ((4, 3), (2, 3)),
        FinetuneConfig(steps=1),
        executor=executor,
    )


def test_a_failed_candidate_is_reported_and_never_advances(problem, pool, monkeypatch):
    real = fidelity.train_candidate
    broken = pool[1]

    def fails_for_one_plan(inputs, task):
        if task.plan == broken:
            raise RuntimeError("out of luck")
        return real(inputs, task)

    monkeypatch.setattr(fidelity, "train_candidate", fails_for_one_plan)
    chosen, records = rungs(problem, pool)
    failed = [r for r in records if r.error is not None]
    assert [r.plan for r in failed] == [broken]
    assert failed[0].error == "RuntimeError: out of luck" and failed[0].scores == []
    assert len(failed[0].seconds) == 1  # it took part in rung 1 only
    assert chosen != broken
    assert sorted(len(r.scores) for r in records) == [0, 1, 2, 2]
    assert failed[0].to_dict()["error"] == "RuntimeError: out of luck"


def test_every_candidate_failing_stops_with_their_errors(problem, pool, monkeypatch):
    def always_fails(inputs, task):
        raise RuntimeError(f"cannot train {task.plan}")

    monkeypatch.setattr(fidelity, "train_candidate", always_fails)
    with pytest.raises(ExecutorError, match="every candidate of fine-tuning rung 1 failed"):
        rungs(problem, pool)


def test_critical_path_sums_each_rungs_longest_task():
    def candidate(*seconds: float) -> fidelity.Candidate:
        return fidelity.Candidate({}, 0.0, 0, seconds=list(seconds))

    assert fidelity.critical_path([candidate(1.0, 5.0), candidate(3.0), candidate(2.0, 4.0)]) == 8
    assert fidelity.critical_path([]) == 0


def test_without_ray_workers_name_the_extra_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    with pytest.raises(ExecutorError, match=r"pip install 'natopt\[ray\]'"), executor_for(2):
        pass
    status = main(["optimize", "--example", "--workers", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == [
        "natopt: error: --workers and --ray-address run on Ray, which is not installed: "
        "pip install 'natopt[ray]'"
    ]


def test_zero_workers_is_one_error_line(capsys):
    assert main(["optimize", "--example", "--workers", "0", "--quiet"]) == 2
    assert capsys.readouterr().err == "natopt: error: --workers 0: give at least 1 worker\n"


def test_a_latency_resource_without_ray_is_one_error_line(capsys):
    with pytest.raises(ExecutorError, match="give --ray-address"), executor_for(None, None, "gpu"):
        pass
    assert main(["optimize", "--example", "--latency-resource", "gpu", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "natopt: error: --latency-resource gpu times latency on the Ray nodes that offer it: "
        "give --ray-address too\n"
    )
