"""Markdown tables of optimisation and bench results, for CI logs and job summaries.

Optimisation results become one table (model, parameters, MACs, latency and quality before
→ after, speed-up, provider, and the quality guard's verdict when the reports carry it; a
figure that was not measured reads ``–``); bench results another, one row per benchmarked
model (batch, provider, median, p90, p99, IQR, runs, and speed-up against the first model
of its bench).
"""

from __future__ import annotations

from collections.abc import Sequence

from natopt.bench.report import OptimizeResult
from natopt.bench.results import BenchResult

__all__ = ["render_markdown", "format_count"]


def render_markdown(results: Sequence[OptimizeResult | BenchResult]) -> str:
    """The whole report: a heading, then the optimisation table and the latency table."""
    optimized = [r for r in results if isinstance(r, OptimizeResult)]
    benches = [r for r in results if isinstance(r, BenchResult)]
    parts = ["## natopt report"]
    if optimized:
        parts.append(_optimize_table(optimized))
    if benches:
        parts.append(_bench_table(benches))
    return "\n\n".join(parts) + "\n"


def format_count(value: float) -> str:
    """``11689512`` → ``11.69M``: parameters and MACs at a glance."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _arrow(before: str, after: str) -> str:
    return f"{before} → {after}"


def _optimize_table(results: Sequence[OptimizeResult]) -> str:
    with_accuracy = any(r.after.accuracy is not None for r in results)
    with_verdict = any(r.accepted is not None for r in results)
    header = ["Model", "Params", "MACs", "Latency (ms)", "Quality"]
    header += ["Accuracy"] if with_accuracy else []
    header += ["Speed-up", "Provider"]
    header += ["Guard"] if with_verdict else []
    rows = []
    for result in results:
        before, after = result.before, result.after
        row = [
            result.model,
            _arrow(format_count(before.params), format_count(after.params)),
            _arrow(format_count(before.macs), format_count(after.macs)),
            _arrow(_optional(before.latency_ms, 3), _optional(after.latency_ms, 3)),
            _arrow(f"{before.quality:.4f}", f"{after.quality:.4f}"),
        ]
        if with_accuracy:
            row.append(_arrow(_optional(before.accuracy), _optional(after.accuracy)))
        speedup = "not measured" if result.speedup is None else f"{result.speedup:.2f}×"
        row += [speedup, result.provider or "–"]
        if with_verdict:
            row.append({True: "accepted", False: "**refused**", None: "–"}[result.accepted])
        rows.append(row)
    return "### Optimisation\n\n" + _table(header, rows)


def _bench_table(benches: Sequence[BenchResult]) -> str:
    header = ["Model", "Batch", "Provider", "Median (ms)", "p90 (ms)", "p99 (ms)", "IQR (ms)"]
    header += ["Runs", "Speed-up"]
    rows = []
    for bench in benches:
        first = bench.models[0]
        for model in bench.models:
            if model is not first:
                speedup = f"{model.speedup:.2f}× vs {first.name}"
            else:
                speedup = "baseline" if len(bench.models) > 1 else "–"
            stats = model.stats
            rows.append(
                [model.name, str(bench.batch), bench.provider]
                + [f"{v:.3f}" for v in (stats.median_ms, stats.p90_ms, stats.p99_ms, stats.iqr_ms)]
                + [str(stats.runs), speedup]
            )
    versions = ", ".join(sorted({b.onnxruntime for b in benches}))
    threads = ", ".join(
        sorted({"default" if b.threads is None else str(b.threads) for b in benches})
    )
    note = f"onnxruntime {versions}; intra-op threads: {threads}"
    return "### Latency\n\n" + _table(header, rows) + "\n\n" + note


def _optional(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
