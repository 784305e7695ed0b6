"""``natopt report RESULT.json [...]``: Markdown, plot and CI gate from result files.

Reads every file ``natopt optimize --report`` writes (with or without latency, a replayed
``--plan``, a refused run) and every file ``natopt bench --json`` writes. The Markdown goes
to ``--markdown`` (stdout otherwise) and is appended to ``$GITHUB_STEP_SUMMARY`` when that
is set. Each ``--fail-if METRIC<OP>NUMBER`` is a gate: when its condition holds for any
result, the failing gates are printed and the exit status is 1. A gate that no file given
answers (``speedup`` on a ``--no-latency`` report alone) is an error, exit 2, and nothing is
written. Metrics: ``natopt.bench.gate.METRICS``, listed with their meanings in ``--help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from natopt._files import refuse_overwrite, write_whole
from natopt.bench import (
    METRICS,
    OptimizeResult,
    check_gates,
    load_result,
    parse_gate,
    plot_candidates,
    render_markdown,
    subject_metrics,
)
from natopt.cli import SUMMARIES
from natopt.errors import ReportError

__all__ = ["NAME", "register", "run"]

NAME = "report"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand."""
    metrics = "\n".join(
        textwrap.fill(text, 88, initial_indent=f"  {name:<18} ", subsequent_indent=" " * 21)
        for name, text in METRICS.items()
    )
    note = textwrap.fill(
        "speedup is never a ratio of medians: rounds run interleaved (before, after, before, "
        "...) and each round gives one ratio, so drift of the machine cancels.",
        88,
    )
    p = subparsers.add_parser(
        NAME,
        parents=[common],
        help=SUMMARIES[NAME],
        description="Turn natopt optimize and natopt bench JSON into a Markdown table and a "
        "plot; --fail-if makes it a CI gate (exit 1 when a condition holds).",
        epilog=f"metrics for --fail-if:\n{metrics}\n\n{note}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RESULT.json")
    p.add_argument("--markdown", type=Path, default=None, metavar="OUT.md")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="needs matplotlib")
    p.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="EXPR",
        help="fail (exit 1) when EXPR holds, e.g. 'speedup<1.2'; repeatable",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load and validate every file, parse and answer the gates, write the outputs, then
    report the gates that failed; nothing is written when a file or gate is bad."""
    gates = [parse_gate(expression) for expression in args.fail_if]
    for output in (args.markdown, args.plot):
        if output is not None:
            refuse_overwrite(output, args.results, ReportError)
    results = [load_result(path) for path in args.results]
    subjects = [
        subject
        for path, result in zip(args.results, results, strict=True)
        for subject in subject_metrics(result, path.name)
    ]
    failures = check_gates(gates, subjects)
    markdown = render_markdown(results)
    if args.markdown is None:
        print(markdown, end="")
    else:
        write_whole(args.markdown, markdown, ReportError)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as file:
                file.write(markdown)
        except OSError as exc:
            raise ReportError(f"{summary} (GITHUB_STEP_SUMMARY): cannot append: {exc}") from None
    if args.plot is not None:
        plot_candidates([r for r in results if isinstance(r, OptimizeResult)], args.plot)
    for failure in failures:
        print(f"natopt: gate failed: {failure}", file=sys.stderr)
    return 1 if failures else 0
