"""Fine-tune a rewritten model: distillation from the original's outputs, plus labels if given.

loss = T^2 * KL(softmax(teacher / T) || softmax(student / T)) (+ cross-entropy with labels)
for classifiers; mean squared error to the teacher's outputs otherwise. The teacher's outputs
are computed once, before training; the optimiser is Adam with a cosine-decayed step size.
Every shuffle follows ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from natopt.pipeline.data import Dataset
from natopt.pipeline.quality import is_classifier

__all__ = ["FinetuneConfig", "distillation_loss", "finetune"]


@dataclass(slots=True)
class FinetuneConfig:
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    temperature: float = 2.0
    label_weight: float = 0.5  # share of cross-entropy in the loss when labels are given


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor | None,
    config: FinetuneConfig,
) -> torch.Tensor:
    if not is_classifier(teacher):
        return F.mse_loss(student, teacher)
    t = config.temperature
    kd = (
        F.kl_div(
            F.log_softmax(student / t, 1),
            F.log_softmax(teacher / t, 1),
            reduction="batchmean",
            log_target=True,
        )
        * t
        * t
    )
    if labels is None:
        return kd
    ce = F.cross_entropy(student, labels)
    return (1 - config.label_weight) * kd + config.label_weight * ce


def finetune(
    module: torch.nn.Module,
    data: Dataset,
    teacher_outputs: torch.Tensor,
    config: FinetuneConfig,
    *,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    stop_after: int | None = None,
) -> list[float]:
    """Train ``module`` in place for ``config.steps`` steps; returns the loss per step.
    ``stop_after``: stop after that many steps of the same schedule (the step size stays
    where a full run has it then: the learning-rate probe tries the opening steps)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params or config.steps <= 0:
        return []
    total = config.steps if stop_after is None else min(stop_after, config.steps)
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / config.steps))
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    cursor, losses = 0, []
    module.train()
    for step in range(total):
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(data)), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        batch = data.subset(index)
        inputs = batch.tensors()
        labels = None if batch.labels is None else torch.from_numpy(batch.labels)
        loss = distillation_loss(module(*inputs), teacher_outputs[index], labels, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, config.steps, losses[-1])
    module.eval()
    return losses
