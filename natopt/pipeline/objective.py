"""What ``optimize`` is asked to find, and how the fine-tuning rungs rank candidates for it.

- ``fastest`` (the default): the fastest model whose fine-tuned quality stays within
  ``max_drop`` points of the original's. The search explores the quality-cost trade-off
  with reward = quality gain + ``FASTEST_WEIGHT`` x the fraction of cost saved (a plan
  that saves a quarter of the cost may lose up to a quarter of refit quality, which
  fine-tuning mostly recovers). The rungs' pool is drawn from the front of the plans it
  scored (no cheaper plan scored better), best reward first. At each rung a candidate is
  *within* when its validation quality after the rung's fine-tuning is at most
  ``max_drop`` points under the original's; the within candidates advance cheapest first,
  then the others by quality. A rung's score is short of the final fine-tune's and noisy
  (one standard error of 98% over 800 validation samples is 0.5 points, the whole default
  tolerance), so before the last rung a candidate counts as within up to one standard
  error beyond the tolerance (``hopeful``): on the example the depthwise-separable plan
  scored 0.62 points under the original after the first rung's 50 steps, 0.50 after 200
  and 0.15 on test after the full fine-tune; the strict test cut it in the first rung
  whenever two costlier plans were strictly within. The last rung, and the final
  fine-tune, apply the tolerance as it is.
- ``accuracy`` (NAT's own): best quality, never costlier; reward = quality gain +
  ``cost_weight`` x the fraction of MACs saved, a small tie-breaker.
- ``budget`` (``--budget METRIC=F``): best quality at cost <= F of the original
  (``natopt.pipeline.budget``).

For ``accuracy`` and ``budget`` the rungs rank by validation quality, cheaper first on ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from natopt.errors import NatoptError
from natopt.pipeline.budget import Budget
from natopt.pipeline.guard import drop_within, standard_error

__all__ = ["OBJECTIVES", "FASTEST_WEIGHT", "ACCURACY_WEIGHT", "Objective", "resolve_objective"]

OBJECTIVES = ("fastest", "accuracy")
FASTEST_WEIGHT = 1.0  # reward per unit of cost fraction saved, under the fastest objective
ACCURACY_WEIGHT = 0.005  # NAT's objective: a tie-breaker towards cheaper plans


def resolve_objective(objective: str | None, budget: Budget | None) -> str:
    """``"fastest"``, ``"accuracy"`` or ``"budget"`` from the user's choice and budget."""
    if budget is not None:
        if objective is not None:
            raise NatoptError(
                f"--objective {objective} and --budget {budget} ask for two different things: "
                "--budget already means best quality at that cost; drop one of them"
            )
        return "budget"
    if objective is None:
        return "fastest"
    if objective not in OBJECTIVES:
        raise NatoptError(
            f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)} "
            "(or give --budget METRIC=F)"
        )
    return objective


@dataclass(slots=True, frozen=True)
class Objective:
    """An objective with what the rungs need to rank by it: the tolerance in points, the
    original's quality on the split the rungs score (0..1), and that split's size (0: no
    noise margin before the last rung)."""

    name: str  # "fastest" | "accuracy" | "budget"
    max_drop: float
    baseline: float
    samples: int = 0

    def within(self, quality: float, margin: float = 0.0) -> bool:
        """At most ``max_drop`` + ``margin`` points under the original (``drop_within``)."""
        return drop_within(self.baseline, quality, self.max_drop, margin)

    def hopeful(self, quality: float) -> bool:
        """Within the tolerance widened by one standard error of ``quality`` on the split."""
        margin = 100.0 * standard_error(quality, self.samples) if self.samples else 0.0
        return self.within(quality, margin)

    def rank(self, quality: float, cost: float, last: bool = True) -> tuple[float, ...]:
        """Sort key of a candidate scored ``quality`` at ``cost`` (smaller ranks first),
        after the last rung (``last``) or an earlier one (``hopeful`` counts as within)."""
        if self.name != "fastest":
            return (-quality, cost)
        if self.within(quality) if last else self.hopeful(quality):
            return (0.0, cost, -quality)
        return (1.0, -quality, cost)

    def pool(self, entries: list[dict[str, Any]], size: int) -> list[dict[str, str]]:
        """Up to ``size`` distinct plans of the scored ``entries`` for the rungs, best first:
        by reward, except that ``fastest`` keeps only the front (no cheaper entry scored a
        higher quality), so the pool spreads over the trade-off instead of crowding at one
        cost."""
        chosen = entries
        if self.name == "fastest":
            chosen, best = [], float("-inf")
            for entry in sorted(entries, key=lambda e: (_cost(e), -e["quality"])):
                if entry["quality"] > best:
                    chosen.append(entry)
                    best = entry["quality"]
        plans: list[dict[str, str]] = []
        for entry in sorted(chosen, key=lambda e: -e["reward"]):
            if entry["plan"] not in plans:
                plans.append(entry["plan"])
        return plans[:size]


def _cost(entry: dict[str, Any]) -> float:
    latency = entry.get("latency_ms")
    return float(entry["macs"] if latency is None else latency)
