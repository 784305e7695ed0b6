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
a pure function of the plan, the steps and the seed, so where it runs does not change the
answer. The schedule (who advances) lives here only. The final model is then fine-tuned from
the inherited weights for the full ``FinetuneConfig.steps``, exactly as the control is: the
rungs choose, they do not give the chosen plan extra training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from natopt.backends import to_torch
from natopt.ir import graph_cost
from natopt.pipeline.data import Dataset
from natopt.pipeline.finetune import FinetuneConfig, finetune
from natopt.pipeline.problem import SearchProblem, strip_keep

__all__ = ["Candidate", "successive_halving", "train_candidate", "DEFAULT_RUNGS"]

# (candidates entering the rung, fine-tuning steps in it); later rungs resume training
DEFAULT_RUNGS: tuple[tuple[int, int], ...] = ((4, 50), (2, 150))


@dataclass(slots=True)
class Candidate:
    """One plan through the rungs: its refit score and its validation quality per rung."""

    plan: dict[str, str]
    refit_quality: float
    macs: int
    scores: list[float] = field(default_factory=list)
    module: torch.nn.Module | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "refit_quality": self.refit_quality,
            "macs": self.macs,
            "finetuned_quality": list(self.scores),
        }


def train_candidate(
    problem: SearchProblem,
    candidate: Candidate,
    data: Dataset,
    teacher: torch.Tensor,
    config: FinetuneConfig,
    seed: int,
) -> float:
    """Fine-tune ``candidate`` ``config.steps`` more steps (from its inherited weights the first
    time) and return its quality on the validation split."""
    if candidate.module is None:
        candidate.module = to_torch(problem.build(candidate.plan, base=problem.graph))
    finetune(candidate.module, data, teacher, config, seed=seed)
    return problem.module_quality(candidate.module, "val").quality


def successive_halving(
    problem: SearchProblem,
    pool: list[dict[str, str]],
    data: Dataset,
    teacher: torch.Tensor,
    rungs: tuple[tuple[int, int], ...],
    finetune_config: FinetuneConfig,
    *,
    seed: int = 0,
    progress: Any = None,
    rank: Callable[[float, float], tuple[float, ...]] | None = None,
) -> tuple[dict[str, str], list[Candidate]]:
    """The plan of ``pool`` that ranks first after the rungs' fine-tuning, and every
    candidate's record. Training distils ``teacher`` (the original's outputs on ``data``).
    ``rank(quality, macs)`` orders candidates after each rung (smaller first; default: the
    best validation quality, then the cheaper); ``pool`` is ordered best first, and ties
    keep the earlier plan."""
    rank = rank or (lambda quality, macs: (-quality, macs))
    if not pool:
        raise ValueError("successive_halving: the pool is empty")
    unique = list({tuple(sorted(strip_keep(p).items())): strip_keep(p) for p in pool}.values())
    alive = [
        Candidate(p, problem.validate(p).quality, graph_cost(problem.build(p)).macs)
        for p in unique[: rungs[0][0] if rungs else 1]
    ]
    everyone = list(alive)
    total = sum(min(n, len(unique)) * steps for n, steps in rungs)
    done = 0
    for index, (size, steps) in enumerate(rungs):
        alive = alive[: max(1, min(size, len(alive)))]
        config = dataclasses.replace(finetune_config, steps=steps)
        for number, candidate in enumerate(alive):
            # the seed belongs to the unit of work (rung, candidate's plan), not to its order
            work_seed = seed + 1000 * (index + 1) + _plan_seed(candidate.plan)
            score = train_candidate(problem, candidate, data, teacher, config, work_seed)
            candidate.scores.append(score)
            done += steps
            if progress is not None:
                progress(done, total, f"rung {index + 1}: {number + 1}/{len(alive)}")
        alive.sort(key=lambda c: rank(c.scores[-1], c.macs))
    for candidate in everyone:
        candidate.module = None  # free the trained copies: the final fine-tune starts afresh
    best = alive[0] if rungs else everyone[0]
    return best.plan, everyone


def _plan_seed(plan: dict[str, str]) -> int:
    """A stable small integer from the plan's content (not Python's salted ``hash``)."""
    text = ",".join(f"{u}={t}" for u, t in sorted(plan.items()))
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text)) % 997
