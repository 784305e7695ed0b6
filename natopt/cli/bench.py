"""``natopt bench MODEL.onnx [MODEL2.onnx ...]``: latency with onnxruntime.

Prints one line per model (median, p90, p99, IQR, speed-up against the first model: the
median over rounds of the per-round ratio) and the execution provider used. ``--json FILE``
writes the figures for ``natopt report``; ``--json`` alone (or ``-``) prints them on stdout
and the table on stderr (``natopt.cli.json_output``).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from natopt._console import console_for, new_table
from natopt.bench import BenchResult, bench_models
from natopt.cli import SUMMARIES
from natopt.cli.json_output import add_json_option, check_json_target, emit_json, json_to_stdout
from natopt.errors import BenchError

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["NAME", "register", "run", "format_result"]

NAME = "bench"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        NAME,
        parents=[common],
        help=SUMMARIES[NAME],
        description="Measure latency with onnxruntime (CUDA provider when a GPU is present). "
        "Several models run interleaved, A B A B ..., and are compared to the first one "
        "round by round.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL.onnx", help="ONNX models to compare")
    p.add_argument("--batch", type=int, default=1, help="batch size for the batch axis (1)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--strict", action="store_true", help="fail instead of falling back to CPU")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per model (10)")
    p.add_argument("--min-runs", type=int, default=20, help="timed rounds at least (20)")
    p.add_argument("--max-runs", type=int, default=1000, help="timed rounds at most (1000)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="time limit (10 s)")
    add_json_option(p, "the figures (for natopt report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Benchmark, print the table, and write ``--json`` if asked."""
    check_json_target(args.json, args.models, BenchError)
    result = bench_models(
        args.models,
        batch=args.batch,
        threads=args.threads,
        provider=args.provider,
        strict=args.strict,
        warmup=args.warmup,
        min_runs=args.min_runs,
        max_seconds=args.max_seconds,
        max_runs=args.max_runs,
    )
    console_for(sys.stderr if json_to_stdout(args.json) else sys.stdout).print(
        format_result(result)
    )
    if args.json is not None:
        emit_json(args.json, result.to_dict(), BenchError)
    return 0


def format_result(result: BenchResult) -> RenderableType:
    """A rich table of ``result``, one row per model, headed by the provider actually used."""
    from rich.console import Group
    from rich.text import Text

    threads = "default" if result.threads is None else result.threads
    table = new_table()
    table.add_column("model", overflow="fold")
    for header in ("median ms", "p90 ms", "p99 ms", "IQR ms", "speed-up"):
        table.add_column(header, justify="right", no_wrap=True)
    for model in result.models:
        stats = model.stats
        table.add_row(
            model.name,
            *(f"{ms:.3f}" for ms in (stats.median_ms, stats.p90_ms, stats.p99_ms, stats.iqr_ms)),
            f"{model.speedup:.2f}x",
        )
    heading = Text(
        f"provider: {result.provider}  batch: {result.batch}  threads: {threads}  "
        f"rounds: {result.rounds}  onnxruntime: {result.onnxruntime}"
    )
    return Group(heading, table)
