"""Latency benchmarks with onnxruntime and CI reports of optimisation results.

``bench_models`` measures ONNX models interleaved on one execution provider; ``load_result``
reads bench and optimisation JSON; ``render_markdown``, ``parse_gate`` / ``check_gates`` and
``plot_candidates`` turn results into a Markdown table, a CI gate and a plot. Importing this
package loads numpy only; onnxruntime and matplotlib are imported when first needed.
"""

from __future__ import annotations

from natopt.bench._fields import SCHEMA
from natopt.bench.gate import METRICS, Gate, GateFailure, check_gates, parse_gate, subject_metrics
from natopt.bench.markdown import render_markdown
from natopt.bench.measure import PROVIDERS, available_providers, bench_models
from natopt.bench.plot import plot_candidates
from natopt.bench.report import (
    OPTIMIZE_KIND,
    Candidate,
    ModelSummary,
    OptimizeResult,
    SearchSummary,
    load_result,
    parse_result,
)
from natopt.bench.results import BENCH_KIND, BenchResult, ModelBench
from natopt.bench.stats import LatencyStats, paired_ratio, summarise

__all__ = [
    "BENCH_KIND",
    "METRICS",
    "OPTIMIZE_KIND",
    "PROVIDERS",
    "SCHEMA",
    "BenchResult",
    "Candidate",
    "Gate",
    "GateFailure",
    "LatencyStats",
    "ModelBench",
    "ModelSummary",
    "OptimizeResult",
    "SearchSummary",
    "available_providers",
    "bench_models",
    "check_gates",
    "load_result",
    "paired_ratio",
    "parse_gate",
    "parse_result",
    "plot_candidates",
    "render_markdown",
    "subject_metrics",
    "summarise",
]
