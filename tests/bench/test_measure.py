"""natopt.bench measurement: statistics, inputs, providers, interleaving, errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from natopt.bench import BenchResult, bench_models, paired_ratio, summarise
from natopt.bench.inputs import make_feeds
from natopt.errors import BenchError

FAST = {"warmup": 1, "min_runs": 4, "max_runs": 4, "max_seconds": 0.0}

ort = pytest.importorskip("onnxruntime")
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_summarise_orders_percentiles_and_spread() -> None:
    stats = summarise([5.0, 1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats.runs == 6
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.median_ms == pytest.approx(3.5)
    assert stats.iqr_ms > 0 and stats.std_ms > 0


def test_paired_ratio_cancels_drift() -> None:
    baseline = [1.0, 2.0, 4.0, 8.0, 16.0]
    assert paired_ratio([0.5 * t for t in baseline], baseline) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_bench_reports_cpu_provider_shapes_and_consistent_stats(tiny_model: Path) -> None:
    result = bench_models([tiny_model], batch=3, provider="cpu", **FAST)
    assert result.provider == "CPUExecutionProvider"
    (model,) = result.models
    assert model.inputs == {"x": [3, 8]}
    assert model.stats.runs == result.rounds == 4
    assert model.stats.median_ms <= model.stats.p90_ms <= model.stats.p99_ms
    assert model.ratio_to_first == 1.0


def test_two_models_interleave_and_self_ratio_is_near_one(tiny_model: Path) -> None:
    result = bench_models([tiny_model, tiny_model], threads=1, **FAST)
    assert result.run_order == [0, 1] * result.rounds
    assert result.threads == 1
    assert 0.5 < result.models[1].ratio_to_first < 2.0
    first, second = (np.asarray(m.samples_ms) for m in result.models)
    assert result.models[1].speedup == pytest.approx(float(np.median(first / second)))
    assert result.models[1].ratio_to_first == pytest.approx(float(np.median(second / first)))


def test_time_limit_stops_after_min_runs(tiny_model: Path) -> None:
    result = bench_models([tiny_model], warmup=0, min_runs=2, max_runs=10_000, max_seconds=0.0)
    assert result.rounds == 2


def test_result_round_trips_through_dict(tiny_model: Path) -> None:
    result = bench_models([tiny_model, tiny_model], **FAST)
    data = result.to_dict()
    assert data["kind"] == "natopt.bench"
    again = BenchResult.from_dict(data, "bench")
    assert again.to_dict() == data


def test_static_batch_mismatch_is_an_error(static_model: Path) -> None:
    assert bench_models([static_model], batch=1, **FAST).models[0].inputs == {"x": [1, 8]}
    with pytest.raises(BenchError, match=r"static\.onnx.*static batch of 1.*--batch 1"):
        bench_models([static_model], batch=4, **FAST)


def test_dynamic_non_batch_axis_is_an_error(build_model: Callable[..., Path]) -> None:
    path = build_model("seq.onnx", ["batch", "seq", 8])
    with pytest.raises(BenchError, match="dynamic size 'seq' on axis 1"):
        bench_models([path], **FAST)


def test_int_and_bool_inputs_are_generated() -> None:
    specs = [
        SimpleNamespace(name="ids", shape=[None, 5], type="tensor(int64)"),
        SimpleNamespace(name="mask", shape=["b", 5], type="tensor(bool)"),
        SimpleNamespace(name="x", shape=[2, 3], type="tensor(float)"),
    ]
    feeds = make_feeds(specs, batch=2, model="m.onnx")
    assert feeds["ids"].dtype == np.int64 and set(np.unique(feeds["ids"])) <= {0, 1}
    assert feeds["mask"].all() and feeds["mask"].shape == (2, 5)
    assert feeds["x"].dtype == np.float32
    again = make_feeds(specs, batch=2, model="m.onnx")
    np.testing.assert_array_equal(feeds["x"], again["x"])


def test_unsupported_input_type_names_the_input() -> None:
    spec = SimpleNamespace(name="s", shape=[1], type="tensor(string)")
    with pytest.raises(BenchError, match="input 's' has type tensor\\(string\\)"):
        make_feeds([spec], batch=1, model="m.onnx")


def test_missing_and_unloadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="missing.onnx: no such model file"):
        bench_models([tmp_path / "missing.onnx"], **FAST)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(BenchError, match="garbage.onnx: onnxruntime cannot load") as caught:
        bench_models([garbage], **FAST)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [{"batch": 0}, {"min_runs": 5, "max_runs": 2}, {"provider": "tpu"}],
)
def test_bad_options_are_errors(tiny_model: Path, options: dict[str, object]) -> None:
    with pytest.raises(BenchError):
        bench_models([tiny_model], **{**FAST, **options})


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has CUDA here")
def test_cuda_request_falls_back_to_cpu_with_a_warning(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = bench_models([tiny_model], provider="cuda", **FAST)
    assert result.provider == "CPUExecutionProvider"
    assert result.requested_provider == "cuda"
    assert "CUDA" in capsys.readouterr().err
    assert result.warnings and "CPUExecutionProvider" in result.warnings[0]
    with pytest.raises(BenchError, match="no CUDAExecutionProvider"):
        bench_models([tiny_model], provider="cuda", strict=True, **FAST)


def test_missing_onnxruntime_says_what_to_install(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BenchError, match=r"pip install 'natopt\[cpu\]'"):
        bench_models([tiny_model], **FAST)


def test_import_is_light() -> None:
    code = "import sys, natopt.bench; print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_resnet18_export_benchmarks_at_dynamic_batch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    path = tmp_path / "resnet18.onnx"
    model = torchvision.models.resnet18(weights=None).eval()
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 64, 64),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    result = bench_models([path, path], batch=2, **FAST)
    assert result.models[0].inputs == {"image": [2, 3, 64, 64]}
    assert 0.5 < result.models[1].ratio_to_first < 2.0


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime has no CUDAExecutionProvider")
def test_cuda_provider_with_io_binding(tiny_model: Path) -> None:
    result = bench_models([tiny_model, tiny_model], provider="cuda", strict=True, **FAST)
    assert result.provider == "CUDAExecutionProvider"
    assert result.models[0].stats.runs == 4
