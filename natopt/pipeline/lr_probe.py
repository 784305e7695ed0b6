"""The learning-rate probe: fine-tuning must not damage the original architecture.

Adam at 1e-3 suits a small network trained from scratch, and ruins a pretrained ImageNet
network whose BatchNorm has been folded into its convolutions: torchvision's mobilenet_v2,
fine-tuned on augmented photographs by distillation from itself, kept 21% top-1 agreement
with itself after 30 steps at 1e-3, 83% at 1e-4 and 93% at 2e-5. Every plan fine-tuned at
such a step size collapses, and so does the control, so the guard refuses every run.

So before the search, the original itself is fine-tuned for the opening ``steps`` of the
run's schedule (the step size where a full run has it then) and scored on the validation
split. If it loses more than ``tolerance`` points, the step size is divided by ``factor``
and tried again, at most ``tries`` times; the largest step size that keeps the original
within the tolerance is kept (if none does, the one that lost least, the smaller of a tie).
Every later fine-tune (the rungs, the final model, the control) trains at it. A step size
that passes the first try costs ``steps`` training steps and changes nothing.

The tolerance tells ruin from Adam's opening transient, not the run's ``--max-drop``: the
original is already at a minimum, so any step size first costs it something, and a good one
wins that back over the run. On the MNIST example 20 steps at 1e-3 cost the original 2.5
points, yet a 600-step fine-tune of its rewrite at 1e-3 ended 0.15 points under the original
and at 1e-4 (which a 0.5-point tolerance chose) 0.30 under. ``TRANSIENT`` points sit between
that and the mobilenet losses above (70 points at 1e-3, 17 at 1e-4).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch

from natopt.backends import to_torch
from natopt.pipeline.data import Dataset
from natopt.pipeline.finetune import FinetuneConfig, finetune
from natopt.pipeline.problem import SearchProblem

__all__ = ["ProbeTry", "probe_lr", "probe_tolerance"]

TRANSIENT = 5.0  # points the original may lose in the probe's opening steps


@dataclass(slots=True, frozen=True)
class ProbeTry:
    lr: float
    steps: int
    val_quality: float
    drop_points: float
    kept: bool = False
    seconds: float = 0.0  # the try's fine-tuning wall time

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def probe_tolerance(val_samples: int) -> float:
    """Points the original may lose in the probe: ``TRANSIENT``, and never under two samples
    of the validation split."""
    return max(TRANSIENT, 200.0 / max(val_samples, 1))


def probe_lr(
    problem: SearchProblem,
    data: Dataset,
    teacher: torch.Tensor,
    config: FinetuneConfig,
    *,
    steps: int,
    tolerance: float,
    seed: int = 0,
    tries: int = 3,
    factor: float = 10.0,
) -> tuple[float, list[ProbeTry]]:
    """The step size to fine-tune at (see the module docstring) and every try, in order."""
    baseline = problem.baseline["val"].quality
    steps = min(steps, config.steps)
    lr, records = config.lr, []
    for _ in range(tries):
        module = to_torch(problem.graph)  # a copy: the graph's weights are not touched
        trial = dataclasses.replace(config, lr=lr)
        start = time.perf_counter()
        finetune(module, data, teacher, trial, seed=seed, stop_after=steps)
        seconds = time.perf_counter() - start
        quality = problem.module_quality(module, "val").quality
        drop = 100.0 * (baseline - quality)
        records.append(ProbeTry(lr, steps, quality, drop, seconds=seconds))
        if records[-1].drop_points <= tolerance:
            break
        lr /= factor
    # the loop stops at the first try within the tolerance; if none is, the one that lost
    # least, and of equal losses the smaller step size
    kept = records[-1]
    if kept.drop_points > tolerance:
        kept = min(records, key=lambda r: (r.drop_points, r.lr))
    records = [dataclasses.replace(r, kept=r is kept) for r in records]
    return kept.lr, records
