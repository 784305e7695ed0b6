"""Meeting a latency budget on measured latency, not only on the latency table's estimate.

The search prices plans with the device's latency table (``natopt.bench.latency_table``),
which ranks one unit's alternatives well but misjudges a whole model by tens of percent,
and not by a constant factor: on the MNIST example a search held to 0.54 by the table chose
a model that measured 0.34 of the original's latency, one held to 0.86 a model that
measured 0.86. So ``optimize`` closes the loop: it times the chosen model against the
original (onnxruntime, interleaved), and when the measured ratio misses the target it
searches again with the table budget scaled by target / measured, bisecting between budgets
known to measure under and over the target once scaling would leave that bracket. Of the
rounds measured within the target, the one closest to it is kept; when none is, the
closest within ``NOISE`` over it (timing noise; see ``choose_round``); when none is that,
the fastest, and the report says the budget was missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "LatencyRound",
    "meets",
    "under_first",
    "next_budget",
    "choose_round",
    "NOISE",
    "CLOSE",
]

NOISE = 0.03  # a measured ratio this far over the target still meets it (timing noise)
CLOSE = 0.93  # a ratio at least this share of the target is close enough: stop searching


def meets(measured: float, target: float) -> bool:
    """Whether a measured latency ratio meets ``target``, timing noise allowed."""
    return measured <= target * (1 + NOISE)


@dataclass(slots=True)
class LatencyRound:
    """One search of the loop: the table budget it was held to and what it gave."""

    budget: float  # the latency fraction the search's table estimates were held to
    measured: float  # the chosen model's measured latency / the original's
    quality: float  # the chosen plan's search-time quality (before fine-tuning)
    payload: Any = None  # the caller's (plan and search result)

    def meets(self, target: float) -> bool:
        return meets(self.measured, target)

    def to_dict(self) -> dict[str, float]:
        return {"budget": self.budget, "measured_ratio": self.measured, "quality": self.quality}


def next_budget(target: float, rounds: list[LatencyRound], ceiling: float = 0.99) -> float | None:
    """The table budget of the next search, or ``None`` when the last round is close enough
    (within the target and at least ``CLOSE`` of it)."""
    last = rounds[-1]
    if last.meets(target) and last.measured >= CLOSE * target:
        return None
    below = max((r.budget for r in rounds if r.meets(target)), default=0.0)
    above = min((r.budget for r in rounds if not r.meets(target)), default=float("inf"))
    scaled = last.budget * target / max(last.measured, 1e-9)
    budget = scaled if below < scaled < above else (below + above) / 2
    budget = min(budget, ceiling)
    if any(abs(budget - r.budget) < 1e-3 for r in rounds):
        return None  # nothing new to try
    return budget


def under_first(target: float, measured: list[float]) -> list[int]:
    """Indices of the ``measured`` ratios that meet ``target``: those at or under it when
    any is, else those within the timing noise over it. The budget is a ceiling; the noise
    allowance keeps a round that measured just over it from being thrown away, but a plan
    measured under the target is preferred: in the Torch-Pruning benchmark the example's
    model, kept within the noise over the target, measured 3.7% slower than the model it
    was matched to in the final, longer timing."""
    under = [i for i, m in enumerate(measured) if m <= target]
    return under or [i for i, m in enumerate(measured) if meets(m, target)]


def choose_round(target: float, rounds: list[LatencyRound]) -> LatencyRound:
    """The round that meets the target closest (the better quality on a tie; rounds under
    the target before those within the noise over it, ``under_first``), else the fastest.
    Closest, not best quality: each search already maximised quality under its table
    budget, and its quality is measured before fine-tuning, which ranks deep cuts poorly;
    the plan that spends more of the budget keeps more of the model."""
    meeting = [rounds[i] for i in under_first(target, [r.measured for r in rounds])]
    if meeting:
        return max(meeting, key=lambda r: (round(r.measured, 2), r.quality))
    return min(rounds, key=lambda r: r.measured)
