"""Check an exported model with onnxruntime, and measure latency before and after.

``onnx_outputs`` runs an ONNX file with onnxruntime on every sample of a split (the figures
the quality guard judges). ``check_onnx`` runs the ONNX file on real samples and compares it
with the torch module it came from (fp32: max abs diff <= 1e-4 x max(1, |output| max), else
``BackendError``).
``measure_latency`` benchmarks the two files interleaved (A B A B ...), batch 1, so machine
drift cancels; the ratio is the median of per-round ratios. It times up to ``MAX_ROUNDS``
rounds, so on a fast model the time limit governs: capped at bench's default 1000 rounds, a
pair of 0.1 ms MNIST CNNs was timed in 0.3 s, and one burst of machine noise in it moved the
measured ratio of the same pair from 0.47 to 0.56 (six calls: 0.465 to 0.564; uncapped at
1.5 s: 0.466 to 0.471).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from natopt.bench import bench_models
from natopt.errors import BackendError
from natopt.pipeline.data import Dataset

__all__ = [
    "check_onnx",
    "onnx_outputs",
    "onnx_files",
    "onnx_file_bytes",
    "measure_latency",
    "LatencyPair",
]

MAX_ROUNDS = 20_000  # interleaved rounds at most; the time limit ends them first

TOLERANCE = 1e-4


@dataclass(slots=True)
class LatencyPair:
    before_ms: float
    after_ms: float
    speedup: float
    provider: str
    batch: int
    rounds: int
    # where it was timed, when not in this process: {"id": the Ray node id, "ip": its IP}
    node: dict[str, str] | None = None

    def to_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def check_onnx(path: Path, module: torch.nn.Module, data: Dataset, samples: int = 64) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    subset = data.subset(np.arange(min(samples, len(data))))
    feeds = {i.name: a for i, a in zip(session.get_inputs(), subset.inputs, strict=True)}
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        out = module(*subset.tensors())
    want = (out[0] if isinstance(out, tuple) else out).numpy()
    diff = float(np.abs(got - want).max())
    bound = TOLERANCE * max(1.0, float(np.abs(want).max()))
    if diff > bound:
        raise BackendError(
            f"the exported ONNX model {path.name} differs from the torch module by {diff:.3g} "
            f"(bound {bound:.3g}); this is a natopt bug, please report it"
        )
    return diff


def onnx_outputs(path: Path, data: Dataset, batch_size: int = 256) -> torch.Tensor:
    """The first output of the ONNX file at ``path`` on every sample of ``data``, run by
    onnxruntime (CPU provider); a model with a fixed batch size is fed batches of that size."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0].shape
    fixed = bool(first) and isinstance(first[0], int) and first[0] > 0
    batch_size = first[0] if fixed else batch_size
    names = [i.name for i in session.get_inputs()]
    outputs = []
    for start in range(0, len(data), batch_size):
        arrays = [a[start : start + batch_size] for a in data.inputs]
        n = len(arrays[0])
        if fixed and n < batch_size:  # pad the last batch of a fixed-batch model
            pad = batch_size - n
            arrays = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays]
        outputs.append(session.run(None, dict(zip(names, arrays, strict=True)))[0][:n])
    return torch.from_numpy(np.concatenate(outputs))


def onnx_files(path: Path) -> list[Path]:
    """An ONNX model's files on disk: ``path``, then every external-data file it names."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    locations = {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path] + [path.parent / name for name in sorted(locations)]


def onnx_file_bytes(path: Path) -> int:
    """Bytes of an ONNX model on disk: the file and every external-data file it names."""
    return sum(file.stat().st_size for file in onnx_files(path))


def measure_latency(
    before: Path, after: Path, *, batch: int = 1, max_seconds: float = 6.0
) -> LatencyPair:
    result = bench_models(
        [before, after],
        batch=batch,
        threads=1,
        warmup=10,
        min_runs=50,
        max_seconds=max_seconds,
        max_runs=MAX_ROUNDS,
    )
    a, b = result.models
    return LatencyPair(
        a.stats.median_ms, b.stats.median_ms, b.speedup, result.provider, batch, result.rounds
    )
