"""Latency of ONNX models with onnxruntime, measured interleaved so machine drift cancels.

``bench_models`` loads every model on one execution provider (CUDA when onnxruntime has it,
CPU otherwise; a CUDA request without CUDA falls back to CPU with a warning on stderr, or
fails with ``strict``), warms each up, then runs rounds ``A B A B ...`` until the count or
time limit. On CUDA the inputs and outputs stay on the device (I/O binding), so host copies
are not part of the figure. onnxruntime is imported on first use, so ``import natopt.bench``
stays fast and ``natopt report`` works without it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from natopt.bench.inputs import make_feeds
from natopt.bench.results import BenchResult, ModelBench
from natopt.bench.stats import paired_ratio, summarise
from natopt.errors import BenchError

__all__ = ["PROVIDERS", "bench_models", "available_providers"]

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

Runner = Callable[[], object]


def bench_models(
    paths: Sequence[str | Path],
    batch: int = 1,
    threads: int | None = None,
    provider: str = "auto",
    strict: bool = False,
    warmup: int = 10,
    min_runs: int = 20,
    max_seconds: float = 10.0,
    max_runs: int = 1000,
) -> BenchResult:
    """Benchmark ``paths`` interleaved; ratios are to the first model, round by round.

    Timed rounds continue until ``max_runs`` rounds, or until ``max_seconds`` have passed
    once at least ``min_runs`` rounds are done. ``provider`` is ``"auto"``, ``"cpu"`` or
    ``"cuda"``; ``threads`` sets onnxruntime's intra-op thread count (None: its default).
    """
    if not paths:
        raise BenchError("no model to benchmark; give at least one .onnx file")
    if batch < 1 or min_runs < 1 or max_runs < min_runs or warmup < 0:
        raise BenchError(
            "need batch >= 1, warmup >= 0 and 1 <= min_runs <= max_runs "
            f"(got batch={batch}, warmup={warmup}, min_runs={min_runs}, max_runs={max_runs})"
        )
    ort = _import_onnxruntime()
    warnings: list[str] = []
    chosen = _choose_provider(ort, provider, strict, warnings)
    loaded = [_load(ort, Path(path), chosen, threads, batch, strict, warnings) for path in paths]
    used = loaded[0][0]
    for _, run, _ in loaded:
        for _ in range(warmup):
            run()
    samples, order = _interleave([run for _, run, _ in loaded], min_runs, max_runs, max_seconds)
    models = []
    for path, (_, _, shapes), own in zip(paths, loaded, samples, strict=True):
        models.append(
            ModelBench(
                path=str(path),
                name=Path(path).stem,
                inputs=shapes,
                stats=summarise(own),
                ratio_to_first=paired_ratio(own, samples[0]),
                speedup=paired_ratio(samples[0], own),
                samples_ms=own,
            )
        )
    return BenchResult(
        provider=used,
        requested_provider=provider,
        batch=batch,
        threads=threads,
        warmup=warmup,
        rounds=len(samples[0]),
        onnxruntime=ort.__version__,
        models=models,
        run_order=order,
        warnings=warnings,
    )


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build offers."""
    return list(_import_onnxruntime().get_available_providers())


def _import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BenchError(
            "natopt bench needs onnxruntime: pip install 'natopt[cpu]' (or 'natopt[gpu]' for CUDA)"
        ) from exc
    return onnxruntime


def _warn(message: str, warnings: list[str]) -> None:
    print(f"natopt: warning: {message}", file=sys.stderr)
    warnings.append(message)


def _choose_provider(ort: ModuleType, provider: str, strict: bool, warnings: list[str]) -> str:
    has_cuda = PROVIDERS["cuda"] in ort.get_available_providers()
    if provider == "auto":
        return PROVIDERS["cuda" if has_cuda else "cpu"]
    if provider not in PROVIDERS:
        raise BenchError(f"unknown provider {provider!r}; use one of auto, cpu, cuda")
    if provider == "cuda" and not has_cuda:
        message = "CUDA was requested but onnxruntime has no CUDAExecutionProvider"
        if strict:
            raise BenchError(f"{message} (install onnxruntime-gpu: pip install 'natopt[gpu]')")
        _warn(f"{message}; running on CPUExecutionProvider", warnings)
        return PROVIDERS["cpu"]
    return PROVIDERS[provider]


def _load(
    ort: ModuleType,
    path: Path,
    provider: str,
    threads: int | None,
    batch: int,
    strict: bool,
    warnings: list[str],
) -> tuple[str, Runner, dict[str, list[int]]]:
    """(provider actually used, a callable running the model once, input shapes fed)."""
    if not path.is_file():
        raise BenchError(f"{path}: no such model file")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{path}: onnxruntime cannot load this model: {first_line}") from exc
    used = session.get_providers()[0]
    if used != provider:
        message = f"{path}: onnxruntime could not start {provider}, it runs on {used}"
        if strict:
            raise BenchError(message)
        _warn(message, warnings)
    feeds = make_feeds(session.get_inputs(), batch, str(path))
    shapes = {name: list(array.shape) for name, array in feeds.items()}
    if used == PROVIDERS["cuda"]:
        return used, _device_runner(ort, session, feeds), shapes
    return used, lambda: session.run(None, feeds), shapes


def _device_runner(ort: ModuleType, session: Any, feeds: dict[str, Any]) -> Runner:
    """Run with inputs and outputs bound on the GPU, so no host copy is timed."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda")

    def run() -> None:
        session.run_with_iobinding(binding)

    return run


def _interleave(
    runners: Sequence[Runner], min_runs: int, max_runs: int, max_seconds: float
) -> tuple[list[list[float]], list[int]]:
    """Time rounds of every runner in turn; per-runner samples (ms) and the run order."""
    samples: list[list[float]] = [[] for _ in runners]
    order: list[int] = []
    start = time.perf_counter()
    for done in range(max_runs):
        if done >= min_runs and time.perf_counter() - start >= max_seconds:
            break
        for index, run in enumerate(runners):
            begin = time.perf_counter_ns()
            run()
            samples[index].append((time.perf_counter_ns() - begin) / 1e6)
            order.append(index)
    return samples, order
