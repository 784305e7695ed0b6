"""The fine-tuning rungs of the shipped MNIST example in process, on 1 and on 2 Ray workers.

The example's problem (real MNIST, ``macs=0.75``) gives a pool of plans: the best of a
48-evaluation random search by refit score (``fidelity_rank.pool_of_plans``). The same
rungs (default ``4x50,2x150``, ``optimize``'s) then run with each executor, every task on
one torch thread (so the scores can be compared bitwise). For each: the wall time of the
rungs (Ray's start-up apart) and of their batches (the executor's ``map`` calls; the rest is
the driver's refit scores), the chosen plan and the fine-tuned scores (which must be
identical), the sum of task times, and the share of the batches' wall time that is Ray
overhead, ``(wall - task seconds / workers) / wall``.

The projection for 8, 32 and 128 workers is computed, not measured: each rung's measured
task times list-scheduled on W workers (in order, each task to the first free worker), plus
that rung's batch overhead measured on 2 workers (submission, transfer, collection). With
this schedule's 4 and 2 candidates, more than 4 workers cannot help: the rungs then take
their critical path (the sum over rungs of each rung's longest task). A second projection
sizes the schedule to the workers (rung 1: W plans, each later rung half as many), each
task taking its rung's mean measured time, beside what it would take in process: what a
wider pool costs when it fits the workers.

On a machine whose cores are shared, two workers' tasks run slower than one's: the task
seconds say so.

    python benchmarks/ray_executor.py [--rungs 4x50,2x150] [--seed 0]

Writes benchmarks/results/ray_executor.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_rank import pool_of_plans  # noqa: E402
from search_vs_baselines import example_problem  # noqa: E402

from natopt.pipeline.data import concat  # noqa: E402
from natopt.pipeline.executor import executor_for  # noqa: E402
from natopt.pipeline.fidelity import Candidate, critical_path, successive_halving  # noqa: E402
from natopt.pipeline.finetune import FinetuneConfig  # noqa: E402
from natopt.pipeline.problem import graph_outputs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ray_executor.json"
PROJECTED_WORKERS = (8, 32, 128)


def makespan(seconds: list[float], workers: int) -> float:
    """When the last of ``seconds`` ends, each task started in order on the first free worker."""
    free = [0.0] * min(workers, max(len(seconds), 1))
    for duration in seconds:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def rung_seconds(candidates: list[Candidate]) -> list[list[float]]:
    """Each rung's task times, in the order the rung ran them."""
    rungs = max(len(c.seconds) for c in candidates)
    return [[c.seconds[r] for c in candidates if len(c.seconds) > r] for r in range(rungs)]


class TimedBatches:
    """An executor that also keeps the wall time of each batch (``map`` call)."""

    def __init__(self, executor) -> None:
        self.executor, self.batches = executor, []

    def share(self, value: Any) -> Any:
        return self.executor.share(value)

    def map(self, fn, tasks, shared, on_result=None):
        start = time.perf_counter()
        results = self.executor.map(fn, tasks, shared, on_result)
        self.batches.append(time.perf_counter() - start)
        return results

    def measure_latency(self, before, after, **options):
        return self.executor.measure_latency(before, after, **options)

    def describe(self) -> dict[str, Any]:
        return self.executor.describe()


def run(label: str, workers: int | None, problem, pool, data, rungs, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    with executor_for(workers) as executor:
        startup = time.perf_counter() - start
        timed = TimedBatches(executor)
        start = time.perf_counter()
        chosen, candidates = successive_halving(
            problem, pool, *data, rungs, FinetuneConfig(), seed=seed, executor=timed
        )
        wall = time.perf_counter() - start
        description = executor.describe()
    workers = description["workers"]
    task_seconds = sum(sum(c.seconds) for c in candidates)
    batches = sum(timed.batches)
    per_rung = rung_seconds(candidates)
    row = {
        "executor": label,
        "describe": description,
        "startup_s": startup,
        "wall_s": wall,  # the rungs: driver-side refit scores, then the batches
        "batch_wall_s": timed.batches,
        "task_seconds": task_seconds,
        "critical_path_s": critical_path(candidates),
        "rung_task_seconds": per_rung,
        # over the batches: (wall - task seconds / workers) / wall
        "ray_overhead_fraction": (batches - task_seconds / workers) / batches,
        "batch_overhead_s": [
            b - makespan(r, workers) for b, r in zip(timed.batches, per_rung, strict=True)
        ],
        "chosen": chosen,
        "scores": [c.scores for c in candidates],
        "retries": [c.retries for c in candidates],
    }
    print(
        f"{label:<12} rungs {wall:6.1f} s, batches {batches:6.1f} s (start-up {startup:4.1f} s)"
        f"  tasks {task_seconds:6.1f} s  overhead {100 * row['ray_overhead_fraction']:5.1f}%"
        f"  chosen {chosen}",
        flush=True,
    )
    return row


def projection(measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Rung by rung: the measured tasks list-scheduled on W workers, plus the rung's measured
    batch overhead (submission, transfer, collection); and a schedule sized to W."""
    rungs, overheads = measured["rung_task_seconds"], measured["batch_overhead_s"]
    means = [sum(r) / len(r) for r in rungs]
    rows = []
    for workers in PROJECTED_WORKERS:
        sized = [max(1, workers >> i) for i in range(len(rungs))]  # W, W/2, ... plans
        rows.append(
            {
                "workers": workers,
                "this_schedule_s": sum(makespan(r, workers) for r in rungs) + sum(overheads),
                "schedule_sized_to_workers": {
                    "plans_per_rung": sized,
                    "seconds": sum(means) + sum(overheads),
                    "in_process_seconds": sum(n * m for n, m in zip(sized, means, strict=True)),
                },
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", default="4x50,2x150", help="PLANSxSTEPS per rung")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # every executor's tasks on one thread: comparable bitwise
    rungs = tuple(
        (int(n), int(steps)) for n, steps in (r.split("x") for r in args.rungs.split(","))
    )
    start = time.perf_counter()
    problem = example_problem("nat++", 0.75, 384)
    tuning = concat(problem.splits.search, problem.splits.finetune)
    data = (tuning, graph_outputs(problem.graph, tuning))
    pool = pool_of_plans(problem, rungs[0][0], args.seed)
    print(f"pool of {len(pool)} plans, rungs {args.rungs}", flush=True)
    executors = {"in-process": None, "ray x1": 1, "ray x2": 2}
    rows = [run(label, n, problem, pool, data, rungs, args.seed) for label, n in executors.items()]
    identical = all(
        (r["chosen"], r["scores"]) == (rows[0]["chosen"], rows[0]["scores"]) for r in rows
    )
    two = rows[2]
    projected = projection(two)
    print(f"identical plans and scores: {identical}")
    overhead = ", ".join(f"{o:.1f}" for o in two["batch_overhead_s"])
    print(
        "PROJECTION (computed from the measured task times, not measured; each rung's batch "
        f"overhead as measured on 2 workers: {overhead} s):"
    )
    for row in projected:
        sized = row["schedule_sized_to_workers"]
        print(
            f"  {row['workers']:>4} workers: this schedule {row['this_schedule_s']:6.1f} s"
            f" (critical path {two['critical_path_s']:.1f} s); a schedule of "
            f"{'x'.join(map(str, sized['plans_per_rung']))} plans {sized['seconds']:6.1f} s"
            f" (in process {sized['in_process_seconds']:7.1f} s)"
        )
    result = {
        "model": "natopt example (residual CNN, real MNIST), macs=0.75",
        "rungs": args.rungs,
        "seed": args.seed,
        "torch_threads_per_task": 1,
        "pool": pool,
        "runs": rows,
        "identical_plans_and_scores": identical,
        "projection": {
            "note": "computed from measured task times, not measured",
            "rows": projected,
        },
        "wall_s": time.perf_counter() - start,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"wrote {RESULTS} ({result['wall_s']:.0f} s)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
