"""Objectives and budgets: what the search maximises and what cost it must stay under.

- ``objective accuracy`` (NAT's own): no plan costs more than the original (the mask already
  guarantees it); reward = quality gain + ``cost_weight`` x the fraction of MACs saved, a
  small tie-breaker towards cheaper plans of equal quality.
- ``budget macs=0.6`` / ``params=0.5`` / ``latency=0.7``: the plan must cost at most that
  fraction of the original, and the best quality within it wins. reward = quality gain +
  ``TIE_BREAK`` x the fraction of MACs saved - ``PENALTY`` x the fraction over budget, so a
  plan over budget always scores below every plan within it, and a cheaper plan beats one
  within the budget only at equal quality: ``TIE_BREAK`` (1e-6) is below the smallest quality
  difference a split can show (one sample in a million), so cost never buys a loss of quality.
  (The accuracy objective's ``cost_weight`` of 0.005 traded up to half a point of quality for
  cost; under a budget that let a much cheaper, worse plan beat one at the budget.)
  Latency is the ratio of the measured latency table's estimates
  (``natopt.bench.latency_table``) when the caller gives them as ``latency = (plan ms,
  original ms)``; without them MACs stand in.
"""

from __future__ import annotations

from dataclasses import dataclass

from natopt.errors import BudgetError
from natopt.ir import Cost

__all__ = ["Budget", "reward", "PENALTY", "TIE_BREAK", "METRICS"]

METRICS = ("macs", "params", "latency")
PENALTY = 10.0
TIE_BREAK = 1e-6


@dataclass(slots=True, frozen=True)
class Budget:
    metric: str  # "macs" | "params" | "latency"
    fraction: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"macs=0.6"`` -> Budget("macs", 0.6)."""
        metric, sep, value = text.partition("=")
        metric = metric.strip().lower()
        try:
            fraction = float(value)
        except ValueError:
            fraction = float("nan")
        if not sep or metric not in METRICS or not 0.0 < fraction <= 1.0:
            raise BudgetError(
                f"cannot read budget {text!r}: write METRIC=FRACTION with METRIC one of "
                f"{', '.join(METRICS)} and 0 < FRACTION <= 1 (e.g. macs=0.6)"
            )
        return cls(metric, fraction)

    def ratio(
        self, cost: Cost, original: Cost, latency: tuple[float, float] | None = None
    ) -> float:
        """The plan's cost as a fraction of the original's, in this budget's metric
        (``latency``: the plan's and the original's estimated ms, for a latency budget)."""
        if self.metric == "latency" and latency is not None:
            return latency[0] / max(latency[1], 1e-12)
        if self.metric == "params":
            return cost.params / max(original.params, 1)
        return cost.macs / max(original.macs, 1)

    def __str__(self) -> str:
        return f"{self.metric}={self.fraction:g}"


def reward(
    quality_gain: float,
    cost: Cost,
    original: Cost,
    budget: Budget | None,
    cost_weight: float,
    latency: tuple[float, float] | None = None,
) -> float:
    """The search's reward; ``cost_weight`` applies without a budget only (the accuracy
    objective's tie-breaker, or the fastest objective's trade-off,
    ``natopt.pipeline.objective``)."""
    saved = 1.0 - cost.macs / max(original.macs, 1)
    if budget is None:
        return quality_gain + cost_weight * saved
    over = max(0.0, budget.ratio(cost, original, latency) - budget.fraction)
    return quality_gain + TIE_BREAK * saved - PENALTY * over
