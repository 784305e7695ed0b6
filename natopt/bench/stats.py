"""Summary statistics of latency samples, and drift-cancelling ratios of interleaved runs.

Pure numpy, no onnxruntime: the report side reads the same records without a runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from natopt.bench._fields import number, require

__all__ = ["LatencyStats", "summarise", "paired_ratio"]


@dataclass(slots=True, frozen=True)
class LatencyStats:
    """Latency of one model over its timed runs, in milliseconds.

    ``iqr_ms`` (p75 - p25) and ``std_ms`` are the spread; ``median_ms <= p90_ms <= p99_ms``.
    """

    runs: int
    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    iqr_ms: float

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str) -> LatencyStats:
        """Read the dict written by ``to_dict``; ``where`` names it in a ``ReportError``."""
        fields = require(data, dict, where)
        return cls(
            runs=int(number(fields, "runs", where)),
            **{name: number(fields, name, where) for name in _FLOAT_FIELDS},
        )


_FLOAT_FIELDS = ("mean_ms", "median_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "iqr_ms")


def summarise(samples_ms: Sequence[float]) -> LatencyStats:
    """Summarise latency samples (at least one) into a ``LatencyStats``."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("summarise needs at least one sample")
    p25, p50, p75, p90, p99 = np.percentile(values, [25, 50, 75, 90, 99])
    return LatencyStats(
        runs=int(values.size),
        mean_ms=float(values.mean()),
        median_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        std_ms=float(values.std()),
        iqr_ms=float(p75 - p25),
    )


def paired_ratio(samples_ms: Sequence[float], baseline_ms: Sequence[float]) -> float:
    """Median over rounds of ``samples_ms[r] / baseline_ms[r]``.

    The two sequences come from the same interleaved rounds, so drift of the machine between
    rounds (clock, temperature, neighbours) divides out of each ratio.
    """
    candidate = np.asarray(samples_ms, dtype=np.float64)
    baseline = np.asarray(baseline_ms, dtype=np.float64)
    if candidate.shape != baseline.shape or candidate.size == 0:
        raise ValueError("paired_ratio needs two equally long, non-empty sample lists")
    return float(np.median(candidate / baseline))
