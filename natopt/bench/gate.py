"""CI gates: ``--fail-if "speedup<1.2"`` fails the report when the condition holds.

A gate is ``METRIC OP NUMBER`` with OP one of ``< <= > >= ==``, read by a regular
expression, never evaluated as code. Every result yields one or more *subjects* (an
optimised model, or a benchmarked model compared to the first model of its bench) and each
subject its metrics; a gate fails when its condition holds for any subject that has the
metric. The metrics and their meanings are ``METRICS``. A gate no subject answers is an
error that says why each file lacks it (an ``optimize --no-latency`` report and ``speedup``,
a bench of one model and ``speedup``, unlabelled data and ``accuracy``), so
``report optimize.json bench.json --fail-if speedup<1.2`` gates on the bench's figure when
the report has none.

``speedup`` means the same everywhere: the median over interleaved rounds of the per-round
latency ratio, before / after (bench: first model / this model). Rounds alternate A B A B,
so drift of the machine between rounds cancels out of each ratio; it is not the ratio of the
two medians.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
    "speedup": "latency before / after: the median over interleaved rounds of the per-round "
    "ratio (bench: first model / this model, round by round)",
    "latency_ms": "median latency after optimisation (bench: this model's median), ms",
    "latency_before_ms": "median latency before optimisation (bench: first model's median), ms",
    "latency_ratio": "latency after / before, 1 / speedup (bench: median per-round ratio, "
    "this model / first model)",
    "p90_ms": "bench only: this model's 90th-percentile latency, ms",
    "p99_ms": "bench only: this model's 99th-percentile latency, ms",
    "quality": "quality after optimisation on the test split (accuracy or agreement, 0-1)",
    "quality_drop": "quality before - after (0-1; 0.005 is half a point)",
    "accuracy": "accuracy after optimisation (needs labelled data)",
    "accuracy_drop": "accuracy before - after (needs labelled data)",
    "accepted": "1 when the quality guard accepted the optimised model, 0 when it refused it "
    "(optimize exit 3)",
    "params": "parameters after optimisation",
    "params_ratio": "parameters after / before",
    "macs": "multiply-adds after optimisation (batch 1)",
    "macs_ratio": "multiply-adds after / before",
}

_BENCH_METRICS = frozenset(
    {"speedup", "latency_ms", "latency_before_ms", "latency_ratio", "p90_ms", "p99_ms"}
)
_OPTIMIZE_METRICS = frozenset(METRICS) - {"p90_ms", "p99_ms"}
_NO_LATENCY = (
    "the report has no latency (written with optimize --no-latency); "
    "measure it with natopt bench ORIGINAL.onnx OPTIMISED.onnx --json and gate on that file"
)
_NO_LABELS = "the report has no accuracy (the data had no labels y); gate on quality instead"
_ONE_MODEL = (
    "the bench measured one model, so there is nothing to compare; "
    "bench the original first, then the optimised model"
)

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
    """Something a gate is checked on: a label (model and file) and its metrics.

    ``missing`` maps the metrics a result of this kind can have but this one lacks to why.
    """

    label: str
    metrics: dict[str, float]
    missing: dict[str, str] = field(default_factory=dict)


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
        metrics = _optimize_metrics(result)
        missing = {name: _why_missing(name) for name in _OPTIMIZE_METRICS - set(metrics)}
        return [Subject(f"{result.model} ({source})", metrics, missing)]
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
        missing = dict.fromkeys(_BENCH_METRICS - set(metrics), _ONE_MODEL)
        subjects.append(Subject(label, metrics, missing))
    return subjects


def check_gates(gates: Sequence[Gate], subjects: Sequence[Subject]) -> list[GateFailure]:
    """Every (gate, subject) whose condition holds. A gate no subject can answer is a
    ``ReportError`` that says why each lacks the metric."""
    failures = []
    for gate in gates:
        measured = [(s.label, s.metrics[gate.metric]) for s in subjects if gate.metric in s.metrics]
        if not measured:
            raise ReportError(f"--fail-if {gate}: {_unanswered(gate.metric, subjects)}")
        failures += [
            GateFailure(gate, label, value) for label, value in measured if gate.holds(value)
        ]
    return failures


def _unanswered(metric: str, subjects: Sequence[Subject]) -> str:
    reasons = [
        f"{s.label} has no {metric}: {s.missing[metric]}" for s in subjects if metric in s.missing
    ]
    if reasons:
        return "; ".join(reasons)
    kind = "bench" if metric in _BENCH_METRICS - _OPTIMIZE_METRICS else "optimize"
    return f"no result reports the metric '{metric}'; it is in natopt {kind} results"


def _optimize_metrics(result: OptimizeResult) -> dict[str, float]:
    before, after = result.before, result.after
    metrics = {
        "quality": after.quality,
        "quality_drop": before.quality - after.quality,
        "params": float(after.params),
        "params_ratio": _ratio(after.params, before.params),
        "macs": float(after.macs),
        "macs_ratio": _ratio(after.macs, before.macs),
    }
    if result.speedup is not None:
        metrics["speedup"] = result.speedup
        metrics["latency_ratio"] = _ratio(1.0, result.speedup)
    if after.latency_ms is not None:
        metrics["latency_ms"] = after.latency_ms
    if before.latency_ms is not None:
        metrics["latency_before_ms"] = before.latency_ms
    if result.accepted is not None:
        metrics["accepted"] = float(result.accepted)
    if after.accuracy is not None:
        metrics["accuracy"] = after.accuracy
        if before.accuracy is not None:
            metrics["accuracy_drop"] = before.accuracy - after.accuracy
    return metrics


def _why_missing(metric: str) -> str:
    if metric in _BENCH_METRICS:
        return _NO_LATENCY
    if metric.startswith("accuracy"):
        return _NO_LABELS
    return "the report does not say whether the quality guard accepted the model"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.inf
