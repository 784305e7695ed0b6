"""Files saved by natopt before ``"schema"`` existed are still read; a later schema is refused.

``saved/`` holds what natopt wrote before schema 1 (commit 3a1cb31), produced with::

    natopt optimize --example --evaluations 4 --finetune-steps 20 --rungs none --quiet \\
        --max-drop inf --report optimize_accepted.json --save-plan plan.json -o opt.onnx
    natopt optimize --example ... --no-latency --report optimize_refused_no_latency.json  # exit 3
    natopt optimize --example --plan plan.json ... --no-latency --max-drop inf \\
        --report optimize_plan_no_latency.json
    natopt bench example_mnist.onnx opt.onnx --warmup 1 --min-runs 5 --max-runs 5 --json bench.json
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from natopt.bench import SCHEMA, BenchResult, OptimizeResult, load_result, render_markdown
from natopt.cli.main import main
from natopt.errors import PlanError, ReportError
from natopt.passes.transitions import Plan

SAVED = Path(__file__).parent / "saved"
RESULTS = sorted(p.name for p in SAVED.glob("*.json") if p.name != "plan.json")


@pytest.mark.parametrize("name", RESULTS)
def test_results_saved_before_schema_are_read(name: str) -> None:
    data = json.loads((SAVED / name).read_text())
    assert "schema" not in data
    result = load_result(SAVED / name)
    assert isinstance(result, BenchResult if name == "bench.json" else OptimizeResult)
    assert "## natopt report" in render_markdown([result])


def test_saved_reports_keep_their_meaning() -> None:
    accepted = load_result(SAVED / "optimize_accepted.json")
    refused = load_result(SAVED / "optimize_refused_no_latency.json")
    replayed = load_result(SAVED / "optimize_plan_no_latency.json")
    assert isinstance(accepted, OptimizeResult) and accepted.accepted is True
    raw = json.loads((SAVED / "optimize_accepted.json").read_text())
    assert accepted.speedup == raw["latency"]["speedup"]
    assert isinstance(refused, OptimizeResult) and refused.accepted is False
    assert refused.speedup is None and refused.after.latency_ms is None
    assert isinstance(replayed, OptimizeResult) and replayed.search.method == "plan"


def test_a_plan_saved_before_schema_is_read_and_saved_with_it() -> None:
    plan = Plan.from_json((SAVED / "plan.json").read_text())
    assert plan.transitions == {"layer1.1.conv2": "null", "layer2.conv2": "avg_pool_3x3"}
    again = json.loads(plan.to_json())
    assert again["schema"] == SCHEMA and Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("name", RESULTS)
def test_a_later_schema_is_refused_in_one_line(name: str, tmp_path: Path) -> None:
    data = json.loads((SAVED / name).read_text()) | {"schema": SCHEMA + 1}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"newer natopt \(schema 2\).*upgrade") as caught:
        load_result(path)
    assert "\n" not in str(caught.value)
    path.write_text(json.dumps(data | {"schema": "one"}))
    with pytest.raises(ReportError, match=r"schema must be 1, got 'one'"):
        load_result(path)


def test_a_later_plan_schema_is_refused() -> None:
    with pytest.raises(PlanError, match="plan schema 2 is not supported"):
        Plan.from_json('{"schema": 2, "transitions": {}}')


@pytest.mark.parametrize("name", RESULTS)
def test_results_written_now_carry_the_schema(name: str, tmp_path: Path) -> None:
    data = load_result(SAVED / name).to_dict()
    assert data["schema"] == SCHEMA
    path = tmp_path / name
    path.write_text(json.dumps(data))
    assert load_result(path).to_dict() == data


def test_report_reads_every_saved_file_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markdown = tmp_path / "r.md"
    files = [str(SAVED / name) for name in RESULTS]
    assert main(["report", *files, "--markdown", str(markdown), "--fail-if", "params<0"]) == 0
    text = markdown.read_text()
    assert "**refused**" in text and "not measured" in text and "× vs example_mnist" in text
    assert capsys.readouterr().err == ""
