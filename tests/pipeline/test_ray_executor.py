"""The rungs on a real local Ray (two CPUs and one unit of the latency resource
``latency-test``, shared by every test here): the same answer as in process with one and with
two workers, a worker killed mid-task retried with its result unchanged, a task that raises
failing only its candidate, lost work stopping the run, latency timed only as tasks holding
the latency resource, a cluster that cannot be joined stopping the run before any work, and
(a Ray head of the test's own, killed mid-task) a cluster going away stopping it with one line.

Every executor here runs its tasks on one torch thread (the driver is set to one), so the
results are compared bitwise: intra-op reductions reorder with the thread count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from natopt._console import plain_text
from natopt.backends.onnx import to_onnx
from natopt.cli.optimize import format_comparison
from natopt.errors import ExecutorError
from natopt.frontends import lift
from natopt.pipeline import executor as executor_module
from natopt.pipeline import fidelity
from natopt.pipeline import optimize as optimize_module
from natopt.pipeline.data import Dataset
from natopt.pipeline.executor import InProcessExecutor
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.optimize import OptimizeConfig, optimize

ray = pytest.importorskip("ray")

from natopt.pipeline import ray_executor  # noqa: E402
from natopt.pipeline.ray_executor import RayExecutor  # noqa: E402

RUNGS = ((4, 3), (2, 3))
LATENCY = "latency-test"  # the custom resource the shared instance's one node offers once
ROOT = Path(__file__).resolve().parents[2]


def in_a_fresh_process(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` in a fresh interpreter (its own Ray, not this module's), from the
    repository root."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def writing_into(folder: Path) -> list[str]:
    """``optimize`` flags that write a model, a report and a plan into ``folder``."""
    files = {"-o": "out.onnx", "--report": "report.json", "--save-plan": "plan.json"}
    return [item for flag, name in files.items() for item in (flag, str(folder / name))]


@pytest.fixture(scope="module")
def local_ray():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(
        num_cpus=2,
        resources={LATENCY: 1},
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


def rungs(problem, pool, executor):
    chosen, records = fidelity.successive_halving(
        problem,
        pool,
        problem.splits.finetune,
        problem.reference["finetune"],
        RUNGS,
        FinetuneConfig(steps=1, lr=1e-2),
        seed=3,
        executor=executor,
    )
    return chosen, [r.scores for r in records], records


def test_the_same_answer_in_process_and_on_one_and_two_workers(problem, pool, local_ray):
    chosen, scores, _ = rungs(problem, pool, InProcessExecutor())
    for workers in (1, 2):
        executor = RayExecutor.start(workers=workers)
        assert executor.describe()["kind"] == "ray" and executor.describe()["workers"] == workers
        on_ray, ray_scores, records = rungs(problem, pool, executor)
        assert (on_ray, ray_scores) == (chosen, scores)
        assert all(r.retries == [0] * len(r.seconds) and r.error is None for r in records)
        executor.close()  # it joined the running instance: leaves it up
        assert ray.is_initialized()


def toy_optimize(toy_model, **options):
    """``optimize`` on the toy model: 6 random plans, two rungs, any quality drop accepted."""
    graph = lift(toy_model, torch.randn(2, 1, 8, 8), dynamic_batch=True)
    x = np.random.default_rng(1).normal(size=(120, 1, 8, 8)).astype(np.float32)
    config = OptimizeConfig(
        space="nat",
        search="random",
        evaluations=6,
        candidates=2,
        finetune=FinetuneConfig(steps=3),
        measure_latency=False,
        progress=False,
        calibration_samples=32,
        rungs=((3, 3), (1, 3)),
        max_drop=float("inf"),
    )
    return optimize(graph, (Dataset([x]), None), dataclasses.replace(config, **options)).report


def test_optimize_on_two_workers_reports_the_executor_and_the_same_choice(toy_model, local_ray):
    here = toy_optimize(toy_model)
    there = toy_optimize(toy_model, workers=2)
    assert there["plan"] == here["plan"]
    block = there["search"]["fidelity"]
    assert [c["finetuned_quality"] for c in block["candidates"]] == [
        c["finetuned_quality"] for c in here["search"]["fidelity"]["candidates"]
    ]
    assert block["executor"]["kind"] == "ray" and block["executor"]["workers"] == 2
    assert block["task_seconds"] >= block["critical_path_seconds"] > 0


def test_a_worker_killed_mid_task_is_retried_and_the_answer_is_unchanged(
    problem, pool, local_ray, tmp_path, monkeypatch
):
    chosen, scores, _ = rungs(problem, pool, InProcessExecutor())
    real, marker, victim = fidelity.train_candidate, tmp_path / "killed", pool[0]

    def killed_once(inputs, task):  # shipped by value: a closure
        if task.plan == victim and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-task
        return real(inputs, task)

    monkeypatch.setattr(fidelity, "train_candidate", killed_once)
    on_ray, ray_scores, records = rungs(problem, pool, RayExecutor.start(workers=2))
    assert marker.exists()
    assert (on_ray, ray_scores) == (chosen, scores)
    [killed] = [r for r in records if r.plan == victim]
    assert killed.retries[0] == 1 and killed.error is None
    assert all(r.retries[0] == 0 for r in records if r.plan != victim)


def test_a_task_that_raises_fails_its_candidate_and_the_others_go_on(
    problem, pool, local_ray, monkeypatch
):
    real, broken = fidelity.train_candidate, pool[2]

    def raises_for_one(inputs, task):
        if task.plan == broken:
            raise RuntimeError("no memory for this plan")
        return real(inputs, task)

    monkeypatch.setattr(fidelity, "train_candidate", raises_for_one)
    chosen, _, records = rungs(problem, pool, RayExecutor.start(workers=2))
    [failed] = [r for r in records if r.error is not None]
    assert failed.plan == broken and failed.error == "RuntimeError: no memory for this plan"
    assert failed.scores == [] and failed.retries == [0]  # its own error is not retried
    assert chosen != broken and sorted(len(r.scores) for r in records) == [0, 1, 2, 2]


def test_work_ray_cannot_finish_stops_the_run_with_one_error(local_ray):
    def always_dies(_inputs, _task):
        os.kill(os.getpid(), signal.SIGKILL)

    executor = RayExecutor.start(workers=1, max_retries=0)
    with pytest.raises(ExecutorError, match=r"^Ray lost this run's work \(\w+Error: ") as info:
        executor.map(always_dies, [1], executor.share(None))
    assert "\n" not in str(info.value)


def test_an_address_where_no_cluster_answers_is_one_error_before_any_work(tmp_path):
    start = time.perf_counter()
    run = in_a_fresh_process(
        "-m",
        "natopt.cli.main",
        "optimize",
        "--example",
        "--ray-address",
        "127.0.0.1:1",
        "--quiet",
        *writing_into(tmp_path),
        timeout=120,
    )
    seconds = time.perf_counter() - start
    assert run.returncode == 2 and run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith("natopt: error: cannot start or join the Ray cluster at '127.0.0.1:1'")
    assert "nothing answers at" in line
    assert list(tmp_path.iterdir()) == []
    assert seconds < 30  # a fresh interpreter and the model's loading; ray.init alone: minutes


def no_timing_in_this_process(monkeypatch) -> None:
    """Latency timed in this (the driver's) process fails the test; workers import their own
    unpatched modules."""

    def timed_here(*_args, **_options):
        raise AssertionError("latency was timed in the driver")

    monkeypatch.setattr(executor_module, "measure_latency", timed_here)
    monkeypatch.setattr(ray_executor, "measure_latency", timed_here)


def test_latency_is_timed_as_a_task_on_the_node_offering_the_resource(
    problem, pool, local_ray, tmp_path, monkeypatch
):
    before, after = tmp_path / "before.onnx", tmp_path / "after.onnx"
    to_onnx(problem.graph, before)
    to_onnx(problem.build(pool[0], base=problem.graph), after)
    (tmp_path / "weights").mkdir()  # the task gets the external data too, where it is named
    onnx.save_model(onnx.load(str(after)), str(after), save_as_external_data=True,
                    location="weights/after.data", size_threshold=0)  # fmt: skip
    no_timing_in_this_process(monkeypatch)
    executor = RayExecutor.start(workers=2, latency_resource=LATENCY)
    pair = executor.measure_latency(before, after, batch=2, max_seconds=0.1)  # static batch
    assert pair.node == {
        "id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
    }
    assert pair.before_ms > 0 and pair.after_ms > 0 and pair.rounds > 0
    assert executor.describe()["latency_resource"] == LATENCY


def test_a_timing_waiting_for_a_latency_node_that_left_stops_with_one_error(
    problem, local_ray, tmp_path, monkeypatch
):
    model = tmp_path / "model.onnx"
    to_onnx(problem.graph, model)

    def hold() -> None:
        time.sleep(60)

    holder = ray.remote(hold).options(resources={LATENCY: 1}).remote()  # its one unit
    executor = RayExecutor.start(workers=1, latency_resource=LATENCY)
    monkeypatch.setattr(ray_executor, "HEARTBEAT_S", 0.5)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})  # the node left
    try:
        with pytest.raises(ExecutorError, match="^no node of the Ray cluster offers 'latency-"):
            executor.measure_latency(model, model, batch=2)
    finally:
        ray.cancel(holder, force=True)


def test_optimize_times_the_finalists_and_the_final_pair_on_the_latency_node(
    toy_model, local_ray, monkeypatch
):
    no_timing_in_this_process(monkeypatch)
    report = toy_optimize(
        toy_model, workers=2, latency_resource=LATENCY, measure_latency=True, rungs=((3, 2), (2, 2))
    )
    assert len(report["search"]["fidelity"]["measured_latency_ratio"]) == 2  # the finalists
    assert report["latency"]["node"]["id"] == ray.get_runtime_context().get_node_id()
    assert report["latency"]["speedup"] > 0
    text = plain_text(format_comparison(report))
    assert f"rounds, on Ray node {report['latency']['node']['ip']})" in text


def test_a_latency_resource_the_cluster_lacks_stops_optimize_before_any_work(
    toy_model, local_ray, monkeypatch
):
    def canonicalize(_graph):
        raise AssertionError("work began")

    monkeypatch.setattr(optimize_module, "canonicalize", canonicalize)
    with pytest.raises(ExecutorError) as info:
        toy_optimize(toy_model, workers=2, latency_resource="gpu-a100", measure_latency=True)
    message = str(info.value)
    assert message.startswith("--latency-resource gpu-a100: this Ray instance offers no 'gpu-a100'")
    assert f"{LATENCY}" in message and """ray start --resources '{"gpu-a100": 1}'""" in message
    assert "\n" not in message
    assert ray.is_initialized()  # it joined this module's instance: leaves it up


RAY_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\] ")  # [2026-... E 12 34]
HEAD = """
import sys, time, ray
ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1], logging_level="ERROR")
print(ray.get_runtime_context().gcs_address, flush=True)
time.sleep(600)
"""
DRIVER = """
import pathlib, sys, time
from natopt.cli.main import main
from natopt.pipeline import fidelity
marker = pathlib.Path(sys.argv[1])

def hangs(_inputs, _task):  # a closure: shipped by value to the cluster's worker
    marker.touch()
    time.sleep(300)

fidelity.train_candidate = hangs
sys.exit(main(sys.argv[2:]))
"""


def fresh_process(*argv: str, **options) -> subprocess.Popen[str]:
    """``python ARGV`` in its own session (every process it starts shares its session id),
    Ray's token authentication off (the test's cluster and driver only: no token to share)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, RAY_AUTH_MODE="disabled")
    return subprocess.Popen(
        [sys.executable, *argv], text=True, cwd=ROOT, env=env, start_new_session=True, **options
    )


def session_pids(leader: subprocess.Popen[str]) -> list[int]:
    """The live (not zombie) processes of ``leader``'s session: the ones it started."""
    table = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True)
    rows = (line.split() for line in table.stdout.splitlines())
    return [int(pid) for pid, sid, stat in rows if int(sid) == leader.pid and stat[0] != "Z"]


def kill_session(leader: subprocess.Popen[str]) -> None:
    for pid in session_pids(leader):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    leader.wait(timeout=10)


def test_the_cluster_going_away_mid_task_is_one_error_line_and_nothing_written(toy_model, tmp_path):
    """A Ray head of the test's own (a child process and everything it starts, in one
    session), a CLI driver whose rung task hangs there; the head's processes are killed
    while the task runs (about 30 s in all, most of it two interpreters and Ray starting)."""
    model, data = tmp_path / "toy.onnx", tmp_path / "toy.npz"
    to_onnx(lift(toy_model, torch.randn(2, 1, 8, 8), dynamic_batch=True), model)
    np.savez(data, x=np.random.default_rng(1).normal(size=(120, 1, 8, 8)).astype(np.float32))
    temp_dir = tempfile.mkdtemp(prefix="natopt-ray-", dir="/tmp")  # Ray's socket paths are short
    marker, out = tmp_path / "task-started", tmp_path / "out"
    out.mkdir()
    head = fresh_process("-c", HEAD, temp_dir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    driver = None
    try:
        address = head.stdout.readline().strip()  # type: ignore[union-attr]
        assert address, "the test's Ray head did not start"
        driver = fresh_process(
            "-c",
            DRIVER,
            str(marker),
            "optimize",
            str(model),
            "--data",
            str(data),
            "--ray-address",
            address,
            "--search",
            "random",
            "--evaluations",
            "8",
            "--rungs",
            "4x1",
            "--finetune-steps",
            "0",
            "--no-latency",
            "--quiet",
            *writing_into(out),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 90
        while not marker.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), driver.communicate(timeout=10)
        start = time.monotonic()
        kill_session(head)  # the whole cluster: its control store, raylet and workers
        stdout, stderr = driver.communicate(timeout=60)
        seconds = time.monotonic() - start
    finally:
        kill_session(head)
        if driver is not None:
            kill_session(driver)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert driver.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("natopt:")]
    assert len(errors) == 1 and errors[0].startswith("natopt: error: Ray lost this run's work")
    ray_logs = [line for line in stderr.splitlines() if not line.startswith("natopt:")]
    assert all(RAY_LOG_LINE.match(line) for line in ray_logs), stderr  # Ray's C++ core worker
    assert stdout == "" and list(out.iterdir()) == []
    assert seconds < 30  # found by the driver's check of the cluster, every HEARTBEAT_S
