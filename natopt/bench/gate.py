"""CI gates: ``--fail-if "speedup<1.2"`` fails the report when the condition holds.

A gate is ``METRIC OP NUMBER`` with OP one of ``< <= > >= ==``, read by a regular
expression, never evaluated as code. Every result yields one or more *subjects* (an
optimised model, or a benchmarked model compared to the first model of its bench) and each
subject its metrics; a gate fails when its condition holds for any subject that has the
metric. The metrics are listed in ``METRICS``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from natopt.bench.report import OptimizeResult
from natopt.bench.results import BenchResult
from natopt.errors import ReportError

__all__ = [
    "METRICS",
    "Gate",
    "GateFailure",
    "Subject",
    "parse_gate",
    "subject_metrics",
    "check_gates",
]

METRICS: dict[str, str] = {
    "speedup": "latency before / after (bench: median per-round ratio, first model / this)",
    "latency_ms": "latency after optimisation (bench: this model's median), ms",
    "latency_before_ms": "latency before optimisation (bench: first model's median), ms",
    "latency_ratio": "latency after / before (bench: median per-round ratio to first model)",
    "p90_ms": "bench only: this model's 90th-percentile latency, ms",
    "p99_ms": "bench only: this model's 99th-percentile latency, ms",
    "quality": "quality after optimisation",
    "quality_drop": "quality before - after",
    "accuracy": "accuracy after optimisation (when reported)",
    "accuracy_drop": "accuracy before - after (when both are reported)",
    "params": "parameters after optimisation",
    "params_ratio": "parameters after / before",
    "macs": "multiply-adds after optimisation",
    "macs_ratio": "multiply-adds after / before",
}

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": lambda left, right: math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12),
}

_GATE = re.compile(
    r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
)


@dataclass(slots=True, frozen=True)
class Gate:
    """A parsed condition ``metric op threshold``; the gate fails when it holds."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    def holds(self, value: float) -> bool:
        """Whether the condition holds for a measured ``value``."""
        return _OPERATORS[self.op](value, self.threshold)


@dataclass(slots=True, frozen=True)
class Subject:
    """Something a gate is checked on: a label (model and file) and its metrics."""

    label: str
    metrics: dict[str, float]


@dataclass(slots=True, frozen=True)
class GateFailure:
    """A gate whose condition held, with the subject and the measured value."""

    gate: Gate
    subject: str
    value: float

    def __str__(self) -> str:
        return f"{self.gate} for {self.subject}: measured {self.gate.metric} = {self.value:.6g}"


def parse_gate(expression: str) -> Gate:
    """Parse ``"speedup<1.2"``; a malformed expression or unknown metric is a ``ReportError``."""
    match = _GATE.fullmatch(expression)
    if match is None:
        raise ReportError(
            f"cannot parse --fail-if {expression!r}: expected METRIC OP NUMBER "
            "with OP one of < <= > >= ==, e.g. 'speedup<1.2'"
        )
    metric = match["metric"]
    if metric not in METRICS:
        raise ReportError(
            f"unknown metric {metric!r} in --fail-if {expression!r}; "
            f"known metrics: {', '.join(METRICS)}"
        )
    return Gate(metric, match["op"], float(match["value"]))


def subject_metrics(result: OptimizeResult | BenchResult, source: str) -> list[Subject]:
    """The subjects of one result (``source`` is its file name, used in labels)."""
    if isinstance(result, OptimizeResult):
        return [Subject(f"{result.model} ({source})", _optimize_metrics(result))]
    first = result.models[0]
    subjects = []
    for model in result.models[1:] or result.models:
        metrics = {
            "latency_ms": model.stats.median_ms,
            "p90_ms": model.stats.p90_ms,
            "p99_ms": model.stats.p99_ms,
        }
        label = f"{model.name} ({source})"
        if model is not first:
            label = f"{model.name} vs {first.name} ({source})"
            metrics |= {
                "speedup": model.speedup,
                "latency_ratio": model.ratio_to_first,
                "latency_before_ms": first.stats.median_ms,
            }
        subjects.append(Subject(label, metrics))
    return subjects


def check_gates(gates: Sequence[Gate], subjects: Sequence[Subject]) -> list[GateFailure]:
    """Every (gate, subject) whose condition holds; a gate no subject can answer is an error."""
    failures = []
    for gate in gates:
        measured = [(s.label, s.metrics[gate.metric]) for s in subjects if gate.metric in s.metrics]
        if not measured:
            raise ReportError(f"--fail-if {gate}: no result reports the metric '{gate.metric}'")
        failures += [
            GateFailure(gate, label, value) for label, value in measured if gate.holds(value)
        ]
    return failures


def _optimize_metrics(result: OptimizeResult) -> dict[str, float]:
    before, after = result.before, result.after
    metrics = {
        "speedup": result.speedup,
        "latency_ms": after.latency_ms,
        "latency_before_ms": before.latency_ms,
        "latency_ratio": _ratio(after.latency_ms, before.latency_ms),
        "quality": after.quality,
        "quality_drop": before.quality - after.quality,
        "params": float(after.params),
        "params_ratio": _ratio(after.params, before.params),
        "macs": float(after.macs),
        "macs_ratio": _ratio(after.macs, before.macs),
    }
    if after.accuracy is not None:
        metrics["accuracy"] = after.accuracy
        if before.accuracy is not None:
            metrics["accuracy_drop"] = before.accuracy - after.accuracy
    return metrics


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.inf
