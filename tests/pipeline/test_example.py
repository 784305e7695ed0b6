"""``natopt optimize --example``, the README's first command, end to end on real MNIST data.

The shipped example (a residual CNN trained on real MNIST, 2,000 held-out test images) runs
with the defaults (the fastest model within --max-drop); the report is read back: the guard
accepted the model, and the control (the original architecture, fine-tuned the same way) is
measured beside it.
"""

from __future__ import annotations

import json

import pytest

from natopt.cli.main import main
from natopt.pipeline.problem import plan_key


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example")
    report, out = folder / "report.json", folder / "example.opt.onnx"
    status = main(["optimize", "--example", "--quiet", "--report", str(report), "-o", str(out)])
    return status, json.loads(report.read_text()), out


def test_the_example_is_accepted_and_written(example):
    status, report, out = example
    assert status == 0
    assert report["accepted"] is True and report["quality_guard"]["accepted"] is True
    assert out.is_file() and out.stat().st_size == report["after"]["size_bytes"]
    before, after = report["before"], report["after"]
    assert before["quality_metric"] == "accuracy"
    assert report["quality_guard"]["drop_points"] == pytest.approx(
        100 * (before["quality"] - after["quality"])
    )
    assert report["quality_guard"]["drop_points"] <= 0.5
    assert after["macs"] <= 0.75 * before["macs"]
    assert report["latency"]["speedup"] > 1.0


def test_the_example_asks_for_the_fastest_model_within_the_tolerance(example):
    """No flags: the default objective. Of the finalists within --max-drop after the rungs,
    the one with the lowest measured latency is fine-tuned first, and it stayed within."""
    _, report, _ = example
    assert report["objective"]["name"] == "fastest" and report["objective"]["budget"] is None
    fidelity = report["search"]["fidelity"]
    ratios = fidelity["measured_latency_ratio"]
    tries = report["search"]["final_tries"]
    assert tries[-1]["within"] is True and tries[-1]["plan"] == report["plan"]
    if len(ratios) > 1:
        assert ratios[plan_key(tries[0]["plan"])] == min(ratios.values())


def test_the_example_report_has_the_control(example):
    _, report, _ = example
    control, before = report["control"], report["before"]
    for key in ("quality", "accuracy", "params", "macs", "latency_ms"):
        assert control[key] is not None, key
    assert (control["params"], control["macs"]) == (before["params"], before["macs"])
    assert 0.95 < control["accuracy"] <= 1.0
    versus = report["versus_control"]
    assert versus["outcome"] in ("beats", "ties", "loses to")
    assert versus["difference_points"] == pytest.approx(
        100 * (report["after"]["quality"] - control["quality"])
    )
    assert report["times"]["control"] > 0


def test_natopt_report_reads_the_example_report_and_gates_on_it(example, capsys):
    """The speedup gate reads the report's paired figure itself (not before / after medians)."""
    _, report, out = example
    capsys.readouterr()
    gates = ["--fail-if", "accepted==0", "--fail-if", f"speedup=={report['latency']['speedup']!r}"]
    assert main(["report", str(out.parent / "report.json"), *gates]) == 1
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("natopt: gate failed: speedup==")
