"""Multi-fidelity selection: the final plan is chosen on quality *after* fine-tuning.

A plan's refit score (fidelity 0: inherited weights, least-squares refits, no training) is
cheap, so the search spends its evaluations on it; but it does not predict what fine-tuning
makes of a plan (``benchmarks/fidelity_rank.py`` measures how well each fidelity ranks
plans by their final quality). So the search's most promising plans go through successive
halving:

    pool (the search's top plans by refit score, best validated first)
      rung 1: fine-tune each for s_1 steps, score on the validation split, keep the best 1/eta
      rung 2: fine-tune the survivors s_2 more steps (resumed), score again ...
      -> the plan with the best fine-tuned validation quality (cost breaks ties)

Each candidate's training in a rung is one independent unit of work (``train_candidate``):
a pure function of the plan, the steps, the seed and the shared inputs, so where it runs does
not change the answer. A rung's candidates go to the executor (``natopt.pipeline.executor``:
in-process, or Ray workers) as one batch; the shared inputs (the problem, the data, the
teacher's outputs) are sent to workers once. A candidate resumed in a later rung gets back
the weights its task returned (a state dict), so every rung trains exactly the steps it
names, the same work wherever it runs, and none is repeated. A task that raises marks its
candidate failed (its error is in the record) and the others go on; a failed candidate never
advances, and a rung whose every candidate failed stops the run. The schedule (who advances)
lives here only. The final model is then fine-tuned from the inherited weights for the full
``FinetuneConfig.steps``, exactly as the control is: the rungs choose, they do not give the
chosen plan extra training. No latency is timed while a batch is in flight.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from natopt.backends import to_torch
from natopt.errors import ExecutorError
from natopt.ir import graph_cost
from natopt.pipeline.data import Dataset
from natopt.pipeline.executor import Executor, InProcessExecutor, TaskResult
from natopt.pipeline.finetune import FinetuneConfig, finetune
from natopt.pipeline.problem import SearchProblem, plan_key, strip_keep

__all__ = [
    "Candidate",
    "RungInputs",
    "TrainTask",
    "Trained",
    "successive_halving",
    "train_candidate",
    "critical_path",
    "DEFAULT_RUNGS",
]

# (candidates entering the rung, fine-tuning steps in it); later rungs resume training
DEFAULT_RUNGS: tuple[tuple[int, int], ...] = ((4, 50), (2, 150))

Weights = dict[str, torch.Tensor]


@dataclass(slots=True)
class Candidate:
    """One plan through the rungs: its refit score, and per rung it entered its validation
    quality, its task's wall time and retries; ``error`` if its task failed."""

    plan: dict[str, str]
    refit_quality: float
    macs: int
    scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    retries: list[int | None] = field(default_factory=list)
    error: str | None = None
    weights: Weights | None = None  # trained so far, resumed by the next rung

    def record(self, result: TaskResult) -> None:
        self.seconds.append(result.seconds)
        self.retries.append(result.retries)
        if result.ok:
            self.scores.append(result.value.quality)
            self.weights = result.value.weights
        else:
            self.error, self.weights = result.error, None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "refit_quality": self.refit_quality,
            "macs": self.macs,
            "finetuned_quality": list(self.scores),
            "seconds": list(self.seconds),
            "retries": list(self.retries),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RungInputs:
    """What every candidate's training reads; shared by all tasks, sent to workers once."""

    problem: SearchProblem
    data: Dataset
    teacher: torch.Tensor  # the original's outputs on ``data``
    config: FinetuneConfig


@dataclass(frozen=True, slots=True)
class TrainTask:
    """One candidate's work in one rung: ``steps`` steps from ``weights`` (None: the
    inherited, refit weights), shuffled by ``seed``."""

    plan: dict[str, str]
    steps: int
    seed: int
    weights: Weights | None = None


@dataclass(frozen=True, slots=True)
class Trained:
    quality: float  # on the validation split
    weights: Weights


def train_candidate(inputs: RungInputs, task: TrainTask) -> Trained:
    """Fine-tune the plan ``task.steps`` steps and score it on the validation split.

    The module is built from the original's weights (refit), then given ``task.weights``
    when the task resumes; torch's global generator is seeded from the task (and restored),
    so nothing but the task and the inputs decides the result."""
    problem = inputs.problem
    module = to_torch(problem.build(task.plan, base=problem.graph))
    if task.weights is not None:
        module.load_state_dict(task.weights)
    config = dataclasses.replace(inputs.config, steps=task.steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task.seed)
        finetune(module, inputs.data, inputs.teacher, config, seed=task.seed)
    return Trained(problem.module_quality(module, "val").quality, module.state_dict())


def successive_halving(
    problem: SearchProblem,
    pool: list[dict[str, str]],
    data: Dataset,
    teacher: torch.Tensor,
    rungs: tuple[tuple[int, int], ...],
    finetune_config: FinetuneConfig,
    *,
    seed: int = 0,
    executor: Executor | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    rank: Callable[[float, float, bool], tuple[float, ...]] | None = None,
) -> tuple[dict[str, str], list[Candidate]]:
    """The plan of ``pool`` that ranks first after the rungs' fine-tuning, and every
    candidate's record. Training distils ``teacher`` (the original's outputs on ``data``);
    each rung's candidates run as one batch on ``executor`` (default: in this process).
    ``rank(quality, macs, last)`` orders candidates after each rung, ``last`` after the
    final one (smaller first; default: the best validation quality, then the cheaper);
    ``pool`` is ordered best first, and ties keep the earlier plan. ``progress(steps done,
    steps in all, text)`` follows every finished task."""
    rank = rank or (lambda quality, macs, _last: (-quality, macs))
    if not pool:
        raise ValueError("successive_halving: the pool is empty")
    executor = executor or InProcessExecutor()
    unique = list({tuple(sorted(strip_keep(p).items())): strip_keep(p) for p in pool}.values())
    alive = [
        Candidate(p, problem.validate(p).quality, graph_cost(problem.build(p)).macs)
        for p in unique[: rungs[0][0] if rungs else 1]
    ]
    everyone = list(alive)
    shared = executor.share(RungInputs(_for_workers(problem), data, teacher, finetune_config))
    counter = _Progress(progress, sum(min(n, len(unique)) * steps for n, steps in rungs))
    for index, (size, steps) in enumerate(rungs):
        alive = alive[: max(1, min(size, len(alive)))]
        # the seed belongs to the unit of work (rung, candidate's plan), not to its order
        tasks = [
            TrainTask(c.plan, steps, seed + 1000 * (index + 1) + _plan_seed(c.plan), c.weights)
            for c in alive
        ]
        tick = counter.rung(index + 1, steps, len(tasks))
        results = executor.map(train_candidate, tasks, shared, tick)
        for candidate, result in zip(alive, results, strict=True):
            candidate.record(result)
        if all(c.error is not None for c in alive):
            failures = "; ".join(f"{c.plan}: {c.error}" for c in alive)
            raise ExecutorError(
                f"every candidate of fine-tuning rung {index + 1} failed: {failures}"
            )
        last = index == len(rungs) - 1
        alive = sorted(
            (c for c in alive if c.error is None),
            key=lambda c: rank(c.scores[-1], c.macs, last),
        )
    for candidate in everyone:
        candidate.weights = None  # free the trained copies: the final fine-tune starts afresh
    best = alive[0] if rungs else everyone[0]
    return best.plan, everyone


def critical_path(candidates: list[Candidate]) -> float:
    """Seconds the rungs take with a worker per candidate: the sum over rungs of the
    longest task in each (a rung's batch ends with its slowest task)."""
    rungs = max((len(c.seconds) for c in candidates), default=0)
    return sum(max(c.seconds[r] for c in candidates if len(c.seconds) > r) for r in range(rungs))


@dataclass(slots=True)
class _Progress:
    """Steps done over steps in all, reported once per finished task."""

    report: Callable[[int, int, str], None] | None
    total: int
    done: int = 0

    def rung(self, number: int, steps: int, size: int) -> Callable[[int, TaskResult], None]:
        finished = 0

        def tick(_index: int, _result: TaskResult) -> None:
            nonlocal finished
            finished += 1
            self.done += steps
            if self.report is not None:
                self.report(self.done, self.total, f"rung {number}: {finished}/{size}")

        return tick


def _for_workers(problem: SearchProblem) -> SearchProblem:
    """``problem`` as the tasks need it: the same graph, data and references, without the
    latency estimator, the log and memo of evaluations or the shared-weight super-network
    (candidates train from the original's weights), so it pickles small and the same for
    every task."""
    twin = copy.copy(problem)
    twin.latency, twin.evaluated, twin.shared = None, [], problem.graph
    twin._scores = {}  # scored on the super-network, which the twin does not hold
    return twin


def _plan_seed(plan: dict[str, str]) -> int:
    """A stable small integer from the plan's content (not Python's salted ``hash``)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(plan_key(plan))) % 997
