"""Fitting a run's schedule into its time budget.

The default schedule (48 plan evaluations, rungs of 4x50 and 2x150 fine-tuning steps, 600
steps for the chosen model and 600 for the control) takes about 75 seconds on the
MNIST example on 2 CPU cores, and would take hours on a 224x224 ImageNet network: one
training step of torchvision's mobilenet_v2 at batch 64 took 4.7 s there, one plan
evaluation 7.4 s. So after the step-size probe ``optimize`` estimates what one evaluation
and one training step cost on this model and machine (``Costs``), and when the schedule's
estimate exceeds the seconds left of ``--time-budget``, every count of it is scaled by the
same factor, down to floors below which a fine-tune or a search means nothing (``fit``).
The report's ``schedule`` says what was estimated, what was planned, and by how much.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = [
    "Costs",
    "Schedule",
    "fit",
    "DEFAULT_TIME_BUDGET",
    "MIN_EVALUATIONS",
    "MIN_RUNG_STEPS",
    "MIN_STEPS",
]

DEFAULT_TIME_BUDGET = 900.0  # seconds: a default run on 2 CPU cores ends within 15 minutes
MIN_EVALUATIONS = 8  # fewer plan evaluations cannot rank a unit's alternatives
MIN_RUNG_STEPS = 5  # fewer steps in a rung tell nothing about a plan
MIN_STEPS = 20  # the chosen model's and the control's fine-tune


@dataclass(frozen=True, slots=True)
class Costs:
    """Estimated seconds of one plan evaluation and one fine-tuning step."""

    evaluation: float
    step: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """The counts of a run that cost time."""

    evaluations: int  # plan evaluations of one search (0: a given plan, no search)
    rungs: tuple[tuple[int, int], ...]  # (plans, steps) per rung
    steps: int  # the chosen model's fine-tune; the control takes as many

    def seconds(self, costs: Costs) -> float:
        """The schedule's estimated seconds under ``costs``."""
        rung_steps = sum(plans * steps for plans, steps in self.rungs)
        return self.evaluations * costs.evaluation + costs.step * (rung_steps + 2 * self.steps)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def fit(schedule: Schedule, costs: Costs, seconds: float) -> tuple[Schedule, float]:
    """``schedule`` scaled to fit ``seconds`` under ``costs``, and the factor (1.0: it fits
    as it is). Every count is scaled by the one factor and rounded, then raised to its floor
    (never above what the schedule asked for); a budget too small for the floors gives the
    floors, and the run takes longer than asked (the caller says so)."""
    needed = schedule.seconds(costs)
    if needed <= seconds:
        return schedule, 1.0
    factor = max(seconds, 0.0) / needed

    def scaled(count: int, floor: int) -> int:
        return min(count, max(floor, round(count * factor)))

    first = schedule.rungs[0][0] if schedule.rungs else 1
    rungs = tuple((plans, scaled(steps, MIN_RUNG_STEPS)) for plans, steps in schedule.rungs)
    fitted = Schedule(
        evaluations=scaled(schedule.evaluations, max(MIN_EVALUATIONS, first)),
        rungs=rungs,
        steps=scaled(schedule.steps, MIN_STEPS),
    )
    return fitted, factor
