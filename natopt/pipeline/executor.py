"""Where independent units of work run: the seam between a schedule and its workers.

A schedule (``natopt.pipeline.fidelity``) hands an executor one batch of tasks and gets one
``TaskResult`` per task back, in task order, not knowing where each ran::

    shared = executor.share(inputs)            # the big inputs, sent to workers once
    results = executor.map(fn, tasks, shared)  # fn(inputs, task) for every task
    results[i].value | results[i].error, .seconds, .retries

``fn`` must be a module-level function (workers import it by name) and a pure function of
``(inputs, task)``: its randomness comes from the task, so the answer does not depend on the
worker. A task that raises gives a result with ``error`` (``"TypeName: message"``) and no
value; the schedule decides what that means. An executor that loses work it cannot recover
(a cluster gone, a task whose worker died more often than its retries) raises
``ExecutorError``: the run stops rather than answer differently because of where it ran.

``InProcessExecutor`` (the default) runs the tasks one after another in this process, with
this process's threads; it imports nothing new. ``natopt.pipeline.ray_executor.RayExecutor``
runs them as Ray tasks (``executor_for`` builds it for ``workers`` / ``address``).

An executor also says where latency is timed: ``measure_latency(before, after)`` times two
ONNX files interleaved (``natopt.pipeline.verify_export.measure_latency``). The in-process
executor times them here; ``optimize`` asks only between batches, while no tasks are in
flight. A Ray executor with a latency resource times them on a node that offers it, one
timing per node at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from natopt.errors import ExecutorError
from natopt.pipeline.verify_export import LatencyPair, measure_latency

__all__ = [
    "Executor",
    "InProcessExecutor",
    "TaskResult",
    "executor_for",
    "run_task",
]

OnResult = Callable[[int, "TaskResult"], None]


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One task's outcome: its value, or the error it raised; the wall time it ran in its
    worker; how often it was retried after losing its worker (``None``: not known)."""

    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    retries: int | None = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs ``fn(shared, task)`` for a batch of tasks; see the module docstring."""

    def share(self, value: Any) -> Any:
        """A handle to ``value`` that ``map`` passes to every task (sent to workers once)."""
        ...

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Any],
        shared: Any,
        on_result: OnResult | None = None,
    ) -> list[TaskResult]:
        """One result per task, in task order; ``on_result(index, result)`` is called in
        this process as each task finishes."""
        ...

    def measure_latency(self, before: Path, after: Path, **options: Any) -> LatencyPair:
        """``before`` and ``after`` timed interleaved (``options``: those of
        ``verify_export.measure_latency``); ``node`` says where, when not in this process."""
        ...

    def describe(self) -> dict[str, Any]:
        """``{"kind": ..., "workers": ..., "address": ...}`` for the report."""
        ...


def run_task(
    fn: Callable[[Any, Any], Any],
    shared: Any,
    task: Any,
    threads: int | None = None,
    retries: int | None = 0,
) -> TaskResult:
    """``fn(shared, task)`` timed, its exception (if any) turned into the result's error;
    ``threads``: torch's intra-op threads for the task (``None``: leave them)."""
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        value = fn(shared, task)
    except Exception as exc:  # the task's own failure: reported, the schedule goes on
        return TaskResult(None, _describe(exc), time.perf_counter() - start, retries)
    return TaskResult(value, None, time.perf_counter() - start, retries)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class InProcessExecutor:
    """Every task in this process, one after another, in order (no new dependency)."""

    def share(self, value: Any) -> Any:
        return value

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Any],
        shared: Any,
        on_result: OnResult | None = None,
    ) -> list[TaskResult]:
        results = []
        for index, task in enumerate(tasks):
            result = run_task(fn, shared, task)
            results.append(result)
            if on_result is not None:
                on_result(index, result)
        return results

    def measure_latency(self, before: Path, after: Path, **options: Any) -> LatencyPair:
        return measure_latency(before, after, **options)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "in-process",
            "workers": 1,
            "address": None,
            "threads_per_task": torch.get_num_threads(),
        }


@contextmanager
def executor_for(
    workers: int | None = None, address: str | None = None, latency_resource: str | None = None
) -> Iterator[Executor]:
    """The in-process executor when neither ``workers`` nor ``address`` is given, else a Ray
    executor (``workers`` local Ray workers, or the cluster at ``address``; latency timed on
    its nodes that offer ``latency_resource``, when given), shut down on leaving the block."""
    if workers is None and address is None:
        if latency_resource is not None:
            raise ExecutorError(
                f"--latency-resource {latency_resource} times latency on the Ray nodes that "
                "offer it: give --ray-address too"
            )
        yield InProcessExecutor()
        return
    if workers is not None and workers < 1:
        raise ExecutorError(f"--workers {workers}: give at least 1 worker")
    from natopt.pipeline.ray_executor import RayExecutor

    executor = RayExecutor.start(
        workers=workers, address=address, latency_resource=latency_resource
    )
    try:
        yield executor
    finally:
        executor.close()
