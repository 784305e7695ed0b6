"""What ``natopt optimize`` prints: the before/after table with the control, the verdict lines,
the time per phase and the plan, as rich tables that read plainly when piped (no ANSI codes,
120 columns), every figure of the report on it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from natopt._console import PIPE_WIDTH, plain_text
from natopt.cli.optimize import _format_plan, format_comparison

SAVED = Path(__file__).parents[1] / "bench" / "saved" / "optimize_accepted.json"


def _report(**changes: object) -> dict:
    report = json.loads(SAVED.read_text())
    report["objective"] = {"description": "the fastest model within 0.5 points"}
    return {**report, **changes}


def _row(text: str, label: str) -> list[str]:
    """The cells of the row starting with ``label``, split on runs of two or more spaces."""
    line = next(line for line in text.splitlines() if line.startswith(label))
    return re.split(r"\s{2,}", line.strip())


def test_the_table_holds_every_figure_with_the_control_and_the_ratio():
    text = plain_text(format_comparison(_report()))
    assert "\x1b[" not in text and max(map(len, text.splitlines())) <= PIPE_WIDTH
    assert _row(text, " " * 10)[-4:] == ["before", "after", "control", "after/before"]
    assert _row(text, "parameters") == ["parameters", "40,842", "22,858", "40,842", "x0.560"]
    assert _row(text, "MACs (batch 1)")[1:] == ["18,377,280", "9,747,008", "18,377,280", "x0.530"]
    assert _row(text, "ONNX size")[1:] == ["163.0 KiB", "91.7 KiB", "162.9 KiB", "x0.563"]
    latency = _row(text, "latency (onnxruntime, CPUExecutionProvider)")
    assert latency[1:] == ["0.254 ms", "0.140 ms", "0.254 ms", "x0.551"]
    quality = _row(text, "quality (accuracy, test split)")
    assert quality[1:] == ["99.30%", "40.15%", "91.00%", "x0.404"]
    assert _row(text, "Conv ops")[1:] == ["8", "5"] and _row(text, "AvgPool ops")[1:] == ["0", "1"]
    assert "accuracy (test split)" not in text  # the quality row is the accuracy already


def test_the_verdict_lines_and_the_times():
    text = plain_text(format_comparison(_report()))
    words = " ".join(text.split())  # the control's sentence may wrap
    assert "objective the fastest model within 0.5 points" in words
    assert "speed-up 1.815x (median of 1000 interleaved rounds)" in words
    assert (
        "versus control the optimised model loses to the control (the original architecture "
        "fine-tuned the same way): 40.15% vs 91.00%, a difference of -50.85 points"
    ) in words
    assert "quality guard accepted (drop 59.15 points of accuracy, --max-drop inf)" in words
    header = _row(text, "canonicalize")
    assert header[:4] == ["canonicalize", "prepare", "latency_table", "search"]
    assert header[-1] == "per plan evaluation"
    lines = text.splitlines()
    seconds = lines[lines.index(next(x for x in lines if x.startswith("canonicalize"))) + 2].split()
    assert seconds[3] == "9.2s" and seconds[-1] == "0.92s"


def test_a_refusal_an_unmeasured_latency_and_a_second_metric():
    report = _report(
        latency=None,
        provider=None,
        quality_guard={**_report()["quality_guard"], "accepted": False, "max_drop_points": 0.5},
    )
    for key in ("before", "after", "control"):
        report[key] = {**report[key], "latency_ms": None}
    report["before"] = {**report["before"], "quality_metric": "agreement", "quality": 1.0}
    text = plain_text(format_comparison(report))
    assert _row(text, "latency (onnxruntime, not measured)")[1:] == ["-", "-", "-"]
    assert _row(text, "quality (agreement, test split)")[1] == "100.00%"
    assert _row(text, "accuracy (test split)")[1:] == ["99.30%", "40.15%", "91.00%", "x0.404"]
    assert "quality guard   REFUSED (drop 59.15 points of accuracy, --max-drop 0.5)" in text
    assert "speed-up" not in text


def test_the_plan_is_a_table_of_units_and_transitions():
    lines = plain_text(_format_plan({"layer2.conv2": "avg_pool_3x3", "a[0]": "null"}))
    rows = [line.split() for line in lines.splitlines()]
    assert rows[0] == ["plan"] and rows[1] == ["unit", "transition"]
    assert rows[3:] == [["a[0]", "null"], ["layer2.conv2", "avg_pool_3x3"]]  # no markup eaten
    assert plain_text(_format_plan({})).strip() == "plan: keep every unit (no transition helped)"
