"""natopt.bench report library: the result contract, Markdown, gates and the plot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from natopt.bench import (
    BenchResult,
    LatencyStats,
    ModelBench,
    OptimizeResult,
    check_gates,
    load_result,
    parse_gate,
    plot_candidates,
    render_markdown,
    subject_metrics,
)
from natopt.errors import ReportError

Record = Callable[..., dict[str, Any]]
Writer = Callable[[str, object], Path]


def make_bench(medians: list[float]) -> BenchResult:
    """A bench result whose models have the given medians and ratios to the first."""
    models = [
        ModelBench(
            path=f"m{i}.onnx",
            name=f"m{i}",
            inputs={"x": [1, 8]},
            stats=LatencyStats(5, m, m, m * 1.1, m * 1.2, m * 0.9, m * 1.3, 0.1, 0.2),
            ratio_to_first=m / medians[0],
            speedup=medians[0] / m,
        )
        for i, m in enumerate(medians)
    ]
    return BenchResult("CPUExecutionProvider", "auto", 1, None, 1, 5, "1.0", models)


def test_optimize_result_loads_without_kind_and_round_trips(
    optimize_record: Record, write_json: Writer
) -> None:
    result = load_result(write_json("r.json", optimize_record()))
    assert isinstance(result, OptimizeResult)
    assert result.after.params == 8420000 and result.before.accuracy == pytest.approx(0.6976)
    assert result.search.candidates[1].chosen
    assert result.speedup == pytest.approx(1.4)
    data = result.to_dict()
    assert data["kind"] == "natopt.optimize"
    assert load_result(write_json("again.json", data)).to_dict() == data


def test_bench_result_is_recognised_by_kind(write_json: Writer) -> None:
    bench = make_bench([2.0, 1.0])
    loaded = load_result(write_json("b.json", bench.to_dict()))
    assert isinstance(loaded, BenchResult)
    assert loaded.models[1].speedup == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"before": {"params": 1}}, r"r\.json\.before: missing field 'macs'"),
        ({"model": 3}, r"r\.json\.model must be a string, got 3"),
        ({"kind": "natopt.other"}, "unknown result kind 'natopt.other'"),
        ({"times": {"search": "long"}}, r"r\.json\.times\.search must be a number"),
        (
            {"search": {"method": "r", "evaluations": 1, "best_reward": 0, "candidates": [{}]}},
            r"candidates\[0\]: a candidate needs 'latency_ms' or 'macs'",
        ),
    ],
)
def test_malformed_optimize_result_names_the_field(
    optimize_record: Record, write_json: Writer, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ReportError, match=message) as caught:
        load_result(write_json("r.json", optimize_record(**change)))
    assert "\n" not in str(caught.value)


def test_booleans_are_not_integers(optimize_record: Record, write_json: Writer) -> None:
    record = optimize_record()
    record["after"]["params"] = True
    with pytest.raises(ReportError, match=r"after\.params must be an integer"):
        load_result(write_json("r.json", record))


def test_unreadable_files_are_report_errors(tmp_path: Path, write_json: Writer) -> None:
    with pytest.raises(ReportError, match="no such result file"):
        load_result(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportError, match=r"bad\.json: not valid JSON \(line 1"):
        load_result(bad)
    with pytest.raises(ReportError, match="must be an object"):
        load_result(write_json("list.json", [1, 2]))


def test_markdown_holds_the_numbers(optimize_record: Record, write_json: Writer) -> None:
    result = load_result(write_json("r.json", optimize_record()))
    text = render_markdown([result, make_bench([2.0, 1.0])])
    for expected in [
        "resnet18.onnx",
        "11.69M → 8.42M",
        "1.81G → 1.29G",
        "4.200 → 3.000",
        "1.0000 → 0.9970",
        "0.6976 → 0.6931",
        "1.40×",
        "CPUExecutionProvider",
        "| m1 | 1 | CPUExecutionProvider | 1.000 | 1.100 | 1.200 | 0.200 | 5 | 2.00× vs m0 |",
    ]:
        assert expected in text


@pytest.mark.parametrize(
    ("expression", "gate"),
    [
        ("speedup<1.2", ("speedup", "<", 1.2)),
        (" quality_drop >= 5e-3 ", ("quality_drop", ">=", 0.005)),
        ("latency_ms==-.5", ("latency_ms", "==", -0.5)),
        ("macs_ratio>1", ("macs_ratio", ">", 1.0)),
    ],
)
def test_gate_expressions_parse(expression: str, gate: tuple[str, str, float]) -> None:
    parsed = parse_gate(expression)
    assert (parsed.metric, parsed.op, parsed.threshold) == pytest.approx(gate)


@pytest.mark.parametrize(
    "expression",
    ["speedup", "speedup<<1", "speedup<abc", "1<speedup", "__import__('os')<1", "speedup=1"],
)
def test_malformed_gates_are_report_errors(expression: str) -> None:
    with pytest.raises(ReportError, match="cannot parse --fail-if"):
        parse_gate(expression)


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ReportError, match="unknown metric 'speed'.*speedup, latency_ms"):
        parse_gate("speed<1")


def test_gates_fail_with_the_measured_value(optimize_record: Record) -> None:
    result = OptimizeResult.from_dict(optimize_record(), "r.json")
    subjects = subject_metrics(result, "r.json")
    assert (
        check_gates([parse_gate("speedup<1.2"), parse_gate("quality_drop>0.005")], subjects) == []
    )
    (failure,) = check_gates([parse_gate("speedup<1.5")], subjects)
    assert str(failure) == "speedup<1.5 for resnet18.onnx (r.json): measured speedup = 1.4"
    (failure,) = check_gates([parse_gate("accuracy_drop>0.004")], subjects)
    assert failure.value == pytest.approx(0.0045)
    assert subjects[0].metrics["params_ratio"] == pytest.approx(8420000 / 11689512)


def test_gate_on_a_metric_no_result_has_is_an_error(optimize_record: Record) -> None:
    record = optimize_record()
    del record["after"]["accuracy"]
    subjects = subject_metrics(OptimizeResult.from_dict(record, "r.json"), "r.json")
    with pytest.raises(ReportError, match=r"\(r\.json\) has no accuracy_drop: .*no labels"):
        check_gates([parse_gate("accuracy_drop>0.01")], subjects)
    with pytest.raises(ReportError, match="no result reports the metric 'p90_ms'.*bench"):
        check_gates([parse_gate("p90_ms>1")], subjects)


def test_speedup_is_the_reports_paired_figure_not_a_ratio_of_medians(
    optimize_record: Record,
) -> None:
    record = optimize_record(latency={"before_ms": 4.2, "after_ms": 3.0, "speedup": 1.3})
    (subject,) = subject_metrics(OptimizeResult.from_dict(record, "r.json"), "r.json")
    assert subject.metrics["speedup"] == 1.3
    assert subject.metrics["latency_ratio"] == pytest.approx(1 / 1.3)
    assert (subject.metrics["latency_before_ms"], subject.metrics["latency_ms"]) == (4.2, 3.0)


def test_a_report_without_latency_cannot_answer_latency_gates(optimize_record: Record) -> None:
    record = optimize_record(latency=None, provider=None)
    for side in ("before", "after"):
        record[side]["latency_ms"] = None
    result = OptimizeResult.from_dict(record, "r.json")
    assert result.speedup is None and result.before.latency_ms is None
    assert "not measured" in render_markdown([result])
    subjects = subject_metrics(result, "r.json")
    assert check_gates([parse_gate("quality_drop>0.01")], subjects) == []
    for gate in ("speedup<1.1", "latency_ms>1", "latency_ratio>0.9", "latency_before_ms<1"):
        with pytest.raises(ReportError, match=r"has no .*--no-latency.*natopt bench") as caught:
            check_gates([parse_gate(gate)], subjects)
        assert "\n" not in str(caught.value)


def test_the_guard_verdict_is_a_metric(optimize_record: Record) -> None:
    refused = OptimizeResult.from_dict(optimize_record(accepted=False), "r.json")
    (failure,) = check_gates([parse_gate("accepted==0")], subject_metrics(refused, "r.json"))
    assert failure.value == 0.0
    assert "**refused**" in render_markdown([refused])
    with pytest.raises(ReportError, match="quality guard"):
        unknown = OptimizeResult.from_dict(optimize_record(), "r.json")
        check_gates([parse_gate("accepted==0")], subject_metrics(unknown, "r.json"))


def test_a_bench_of_one_model_cannot_answer_speedup() -> None:
    subjects = subject_metrics(make_bench([3.0]), "one.json")
    with pytest.raises(ReportError, match=r"one\.json\) has no speedup: .*one model"):
        check_gates([parse_gate("speedup<1.1")], subjects)


def test_bench_subjects_compare_to_the_first_model() -> None:
    subjects = subject_metrics(make_bench([2.0, 1.0, 4.0]), "b.json")
    assert [s.label for s in subjects] == ["m1 vs m0 (b.json)", "m2 vs m0 (b.json)"]
    (failure,) = check_gates([parse_gate("speedup<1")], subjects)
    assert failure.subject.startswith("m2") and failure.value == pytest.approx(0.5)
    (single,) = subject_metrics(make_bench([3.0]), "one.json")
    assert "speedup" not in single.metrics and single.metrics["latency_ms"] == 3.0


def test_plot_without_matplotlib_says_how_to_install(
    optimize_record: Record, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = OptimizeResult.from_dict(optimize_record(), "r.json")
    with pytest.raises(ReportError, match="pip install matplotlib"):
        plot_candidates([result], tmp_path / "p.png")


def test_plot_writes_a_png(optimize_record: Record, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = [
        OptimizeResult.from_dict(optimize_record(), "a.json"),
        OptimizeResult.from_dict(
            optimize_record(search={"method": "greedy", "evaluations": 0, "best_reward": 0.0}),
            "b.json",
        ),
    ]
    plot_candidates(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
