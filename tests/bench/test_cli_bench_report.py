"""``natopt bench`` and ``natopt report`` through ``natopt.cli.main.main``."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from natopt.bench import METRICS
from natopt.cli import main as cli_main

FAST = ["--warmup", "1", "--min-runs", "3", "--max-runs", "3"]

ort = pytest.importorskip("onnxruntime")
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()

Record = Callable[..., dict[str, Any]]
Writer = Callable[[str, object], Path]


@pytest.fixture
def natopt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run ``natopt ARGS``; returns (exit status, stdout, stderr).

    Only the bench and report subcommands are registered, so these tests do not depend on
    the other subcommands' modules.
    """
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", ("bench", "report"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    def run(*args: str | Path) -> tuple[int, str, str]:
        status = cli_main.main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_bench_prints_provider_and_writes_json(
    natopt: Callable[..., tuple[int, str, str]], tiny_model: Path, tmp_path: Path
) -> None:
    out_json = tmp_path / "bench.json"
    status, out, _ = natopt(
        "bench", tiny_model, tiny_model, "--batch", "2", *FAST, "--json", out_json
    )
    assert status == 0
    assert "provider: CPUExecutionProvider" in out and "batch: 2" in out
    header, rule, *rows = out.splitlines()[1:]
    columns = ["model", "median ms", "p90 ms", "p99 ms", "IQR ms", "speed-up"]
    assert re.split(r"\s{2,}", header.strip()) == columns
    assert set(rule) == {"─"} and len(rows) == 2 and rows[0].split()[-1] == "1.00x"
    assert "\x1b[" not in out
    data = json.loads(out_json.read_text())
    assert data["kind"] == "natopt.bench" and data["run_order"] == [0, 1, 0, 1, 0, 1]
    assert data["models"][0]["inputs"] == {"x": [2, 8]}


def test_unloadable_model_is_one_error_line(
    natopt: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00\x01garbage")
    status, _, err = natopt("bench", broken, *FAST)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("natopt: error: ") and "broken.onnx" in err


def test_static_batch_mismatch_exits_2(
    natopt: Callable[..., tuple[int, str, str]], static_model: Path
) -> None:
    status, _, err = natopt("bench", static_model, "--batch", "8", *FAST)
    assert status == 2 and "static batch of 1" in err


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has CUDA here")
def test_cuda_request_falls_back_or_fails_with_strict(
    natopt: Callable[..., tuple[int, str, str]], tiny_model: Path
) -> None:
    status, out, err = natopt("bench", tiny_model, "--provider", "cuda", *FAST)
    assert status == 0 and "CPUExecutionProvider" in out and "natopt: warning: CUDA" in err
    status, _, err = natopt("bench", tiny_model, "--provider", "cuda", "--strict", *FAST)
    assert status == 2 and "CUDAExecutionProvider" in err


def test_report_writes_markdown_and_appends_step_summary(
    natopt: Callable[..., tuple[int, str, str]],
    optimize_record: Record,
    write_json: Writer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = write_json("r.json", optimize_record())
    status, _, _ = natopt("report", result, "--markdown", tmp_path / "out.md")
    assert status == 0
    markdown = (tmp_path / "out.md").read_text(encoding="utf-8")
    assert "11.69M → 8.42M" in markdown and "4.200 → 3.000" in markdown
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + markdown


def test_report_prints_markdown_without_markdown_option(
    natopt: Callable[..., tuple[int, str, str]], optimize_record: Record, write_json: Writer
) -> None:
    status, out, _ = natopt("report", write_json("r.json", optimize_record()))
    assert status == 0 and out.startswith("## natopt report") and "1.40×" in out


def test_fail_if_passes_and_fails(
    natopt: Callable[..., tuple[int, str, str]], optimize_record: Record, write_json: Writer
) -> None:
    result = write_json("r.json", optimize_record())
    status, _, err = natopt(
        "report", result, "--fail-if", "speedup<1.2", "--fail-if", "quality_drop>0.005"
    )
    assert status == 0 and err == ""
    status, _, err = natopt(
        "report", result, "--fail-if", "speedup<1.2", "--fail-if", "quality_drop>0.001"
    )
    assert status == 1
    assert "quality_drop>0.001" in err and "measured quality_drop = 0.003" in err
    assert "speedup" not in err


@pytest.mark.parametrize("expression", ["speedup<<1.2", "eval('1')<2", "speedup"])
def test_bad_gate_expression_exits_2(
    natopt: Callable[..., tuple[int, str, str]],
    optimize_record: Record,
    write_json: Writer,
    expression: str,
) -> None:
    status, _, err = natopt(
        "report", write_json("r.json", optimize_record()), "--fail-if", expression
    )
    assert status == 2 and err.startswith("natopt: error: cannot parse --fail-if")


def test_malformed_result_exits_2(
    natopt: Callable[..., tuple[int, str, str]], write_json: Writer
) -> None:
    status, _, err = natopt("report", write_json("r.json", {"model": "m"}))
    assert status == 2 and err.count("\n") == 1 and "r.json" in err


def test_plot_without_matplotlib_exits_2(
    natopt: Callable[..., tuple[int, str, str]],
    optimize_record: Record,
    write_json: Writer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = write_json("r.json", optimize_record())
    status, _, err = natopt("report", result, "--plot", tmp_path / "p.png")
    assert status == 2 and "pip install matplotlib" in err


def test_bench_json_feeds_report_gate(
    natopt: Callable[..., tuple[int, str, str]], tiny_model: Path, tmp_path: Path
) -> None:
    bench_json = tmp_path / "bench.json"
    assert natopt("bench", tiny_model, tiny_model, *FAST, "--json", bench_json)[0] == 0
    status, out, _ = natopt("report", bench_json, "--fail-if", "speedup<0.01")
    assert status == 0 and "vs tiny" in out
    status, _, err = natopt("report", bench_json, "--fail-if", "latency_ms>=0")
    assert status == 1 and "tiny vs tiny (bench.json)" in err


def test_outputs_never_overwrite_inputs(
    natopt: Callable[..., tuple[int, str, str]],
    optimize_record: Record,
    write_json: Writer,
    tiny_model: Path,
) -> None:
    result = write_json("r.json", optimize_record())
    status, _, err = natopt("report", result, "--markdown", result)
    assert status == 2 and "would overwrite an input" in err
    assert natopt("bench", tiny_model, *FAST, "--json", tiny_model)[0] == 2
    assert tiny_model.read_bytes().startswith(b"\x08")


def test_a_gate_the_file_cannot_answer_is_one_line_and_writes_nothing(
    natopt: Callable[..., tuple[int, str, str]],
    optimize_record: Record,
    write_json: Writer,
    tmp_path: Path,
) -> None:
    record = optimize_record(latency=None, provider=None)
    for side in ("before", "after"):
        record[side]["latency_ms"] = None
    result = write_json("r.json", record)
    assert natopt("report", result, "--fail-if", "quality_drop>0.01")[0] == 0
    markdown = tmp_path / "r.md"
    status, out, err = natopt("report", result, "--markdown", markdown, "--fail-if", "speedup<1.1")
    assert status == 2 and out == "" and not markdown.exists()
    assert err.count("\n") == 1 and err.startswith("natopt: error: --fail-if speedup<1.1: ")
    assert "--no-latency" in err


def test_help_names_each_metrics_meaning(
    natopt: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        natopt("report", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for name, meaning in METRICS.items():
        assert f"{name} {' '.join(meaning.split())}" in text
    assert "never a ratio of medians" in text
