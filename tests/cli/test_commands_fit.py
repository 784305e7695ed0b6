"""The commands fit together on real files: ``optimize`` writes a model, a report and a plan;
``bench`` times the original against that model; ``report`` reads both and gates on them;
the saved plan replays; a refused run's report is read and gated on too.

The shipped MNIST example's model runs on 600 of its samples with small settings (4 plan
evaluations, 20 fine-tuning steps, no rungs, no latency in ``optimize``: ``bench`` measures
it). So little fine-tuning cannot keep the accuracy, so the accepted run passes
``--max-drop inf``; ``optimize --example`` with its defaults is tests/pipeline/test_example.py.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from natopt.bench import SCHEMA
from natopt.cli.main import main

EXAMPLE = resources.files("natopt") / "data"
ORIGINAL = str(EXAMPLE / "example_mnist.onnx")
# 4 evaluations: too few for the default knapsack search to measure the single changes it
# sums (it keeps the original), so these runs pin NAT's policy, which finds a plan to replay
SMALL = ["--evaluations", "4", "--finetune-steps", "20", "--rungs", "none", "--no-latency"]
SMALL += ["--search", "nat"]
FAST_BENCH = ["--warmup", "2", "--min-runs", "20", "--max-runs", "20"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 samples of the example's data, with labels."""
    path = tmp_path_factory.mktemp("data") / "mnist600.npz"
    with np.load(str(EXAMPLE / "example_mnist.npz")) as full:
        np.savez(path, x=full["x"][:600], y=full["y"][:600])
    return path


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """The folder holding what one accepted ``optimize`` run wrote."""
    folder = tmp_path_factory.mktemp("optimized")
    argv = ["optimize", ORIGINAL, "--data", str(data), *SMALL, "--max-drop", "inf", "--quiet"]
    argv += ["-o", str(folder / "opt.onnx"), "--report", str(folder / "optimize.json")]
    argv += ["--save-plan", str(folder / "plan.json")]
    assert main(argv) == 0
    return folder


def _natopt(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_optimize_then_bench_then_report(
    optimized: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, model = optimized / "optimize.json", optimized / "opt.onnx"
    written = json.loads(report.read_text())
    assert written["schema"] == SCHEMA and written["accepted"] is True
    assert written["latency"] is None and written["before"]["latency_ms"] is None
    bench = optimized / "bench.json"
    status, _, _ = _natopt(capsys, "bench", ORIGINAL, model, *FAST_BENCH, "--json", bench)
    assert status == 0 and json.loads(bench.read_text())["schema"] == SCHEMA
    markdown = optimized / "report.md"
    gates = ["--fail-if", "speedup<0.01", "--fail-if", "macs_ratio>1", "--fail-if", "accepted==0"]
    status, _, err = _natopt(capsys, "report", report, bench, "--markdown", markdown, *gates)
    assert (status, err) == (0, "")
    text = markdown.read_text()
    assert f"{ORIGINAL} " in text and "× vs example_mnist" in text
    status, _, err = _natopt(capsys, "report", report, bench, "--fail-if", "speedup<1000")
    assert status == 1 and err.startswith("natopt: gate failed: speedup<1000 for opt vs ")
    status, _, err = _natopt(capsys, "report", report, "--fail-if", "speedup<1.1")
    assert status == 2 and err.count("\n") == 1 and "--no-latency" in err


def test_the_saved_plan_replays_and_its_report_is_read(
    optimized: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = json.loads((optimized / "plan.json").read_text())
    assert plan["schema"] == SCHEMA and plan["transitions"]
    replayed = tmp_path / "replayed.json"
    argv = ["optimize", ORIGINAL, "--data", data, "--plan", optimized / "plan.json"]
    argv += ["--finetune-steps", "5"]
    argv += ["--no-latency", "--max-drop", "inf", "--quiet", "--report", replayed]
    assert _natopt(capsys, *argv)[0] == 0
    written = json.loads(replayed.read_text())
    assert written["plan"] == plan["transitions"] and written["search"]["method"] == "plan"
    status, out, _ = _natopt(capsys, "report", replayed, "--fail-if", "macs_ratio>=1")
    assert status == 0 and "| Guard |" in out


def test_a_refused_runs_report_is_read_and_gated(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, model = tmp_path / "refused.json", tmp_path / "never.onnx"
    argv = ["optimize", ORIGINAL, "--data", data, "--budget", "macs=0.5", "--evaluations", "4"]
    argv += ["--candidates", "1", "--finetune-steps", "0", "--rungs", "none", "--no-latency"]
    argv += ["--quiet", "-o", model, "--report", report]
    assert _natopt(capsys, *argv)[0] == 3
    assert not model.exists() and json.loads(report.read_text())["accepted"] is False
    status, out, err = _natopt(capsys, "report", report, "--fail-if", "accepted==0")
    assert status == 1 and "**refused**" in out
    assert err.startswith("natopt: gate failed: accepted==0 for ")
