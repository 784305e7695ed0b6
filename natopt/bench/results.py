"""Records of a benchmark run: ``BenchResult`` holds one ``ModelBench`` per model.

``to_dict`` writes the bench JSON (``"kind": "natopt.bench"``) and ``from_dict`` reads it back
with validation, so ``natopt report`` accepts exactly what ``natopt bench --json`` writes::

    {"schema": 1, "kind": "natopt.bench", "provider": "CPUExecutionProvider",
     "requested_provider": "auto", "batch": 1, "threads": null, "warmup": 5, "rounds": 50,
     "onnxruntime": "1.20.0",
     "run_order": [0, 1, 0, 1, ...], "warnings": [],
     "models": [{"path": "a.onnx", "name": "a", "inputs": {"x": [1, 3, 224, 224]},
                 "stats": {"runs": 50, "mean_ms": ..., "median_ms": ..., "p90_ms": ...,
                           "p99_ms": ..., "min_ms": ..., "max_ms": ..., "std_ms": ...,
                           "iqr_ms": ...},
                 "ratio_to_first": 1.0, "speedup": 1.0, "samples_ms": [...]}, ...]}

``ratio_to_first`` is the median over rounds of this model's latency / the first model's in
the same round; ``speedup`` the median over rounds of the first model's latency / this one's
(how many times faster than the first model). Paired by round, both cancel machine drift.
A file without ``schema`` (written before it existed) is read as schema 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from natopt.bench._fields import SCHEMA, check_schema, integer, number, require, text
from natopt.bench._fields import field as get_field
from natopt.bench.stats import LatencyStats

__all__ = ["BENCH_KIND", "ModelBench", "BenchResult"]

BENCH_KIND = "natopt.bench"


@dataclass(slots=True)
class ModelBench:
    """Latency of one model; ``inputs`` maps input names to the shapes fed."""

    path: str
    name: str
    inputs: dict[str, list[int]]
    stats: LatencyStats
    ratio_to_first: float
    speedup: float
    samples_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (samples rounded to 0.1 µs)."""
        return {
            "path": self.path,
            "name": self.name,
            "inputs": self.inputs,
            "stats": self.stats.to_dict(),
            "ratio_to_first": self.ratio_to_first,
            "speedup": self.speedup,
            "samples_ms": [round(sample, 4) for sample in self.samples_ms],
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> ModelBench:
        """Read a dict written by ``to_dict``."""
        record = require(data, dict, where)
        inputs = get_field(record, "inputs", dict, where)
        samples = record.get("samples_ms", [])
        return cls(
            path=text(record, "path", where),
            name=text(record, "name", where),
            inputs={
                str(name): [int(dim) for dim in require(shape, list, f"{where}.inputs.{name}")]
                for name, shape in inputs.items()
            },
            stats=LatencyStats.from_dict(record.get("stats"), f"{where}.stats"),
            ratio_to_first=number(record, "ratio_to_first", where),
            speedup=number(record, "speedup", where),
            samples_ms=[float(s) for s in require(samples, list, f"{where}.samples_ms")],
        )


@dataclass(slots=True)
class BenchResult:
    """A benchmark of one or more models, run interleaved on one execution provider.

    ``run_order`` lists the model index of every timed run in the order they ran
    (``[0, 1, 0, 1, ...]`` for two models); ``warnings`` holds what was said on stderr
    (e.g. a CUDA request that fell back to CPU).
    """

    provider: str
    requested_provider: str
    batch: int
    threads: int | None
    warmup: int
    rounds: int
    onnxruntime: str
    models: list[ModelBench]
    run_order: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The bench JSON, with ``"schema": 1`` and ``"kind": "natopt.bench"``."""
        return {
            "schema": SCHEMA,
            "kind": BENCH_KIND,
            "provider": self.provider,
            "requested_provider": self.requested_provider,
            "batch": self.batch,
            "threads": self.threads,
            "warmup": self.warmup,
            "rounds": self.rounds,
            "onnxruntime": self.onnxruntime,
            "run_order": self.run_order,
            "warnings": self.warnings,
            "models": [model.to_dict() for model in self.models],
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> BenchResult:
        """Read the bench JSON; a malformed record raises ``ReportError`` naming the field."""
        record = require(data, dict, where)
        check_schema(record, where)
        threads = record.get("threads")
        models = get_field(record, "models", list, where)
        return cls(
            provider=text(record, "provider", where),
            requested_provider=str(record.get("requested_provider", "auto")),
            batch=integer(record, "batch", where),
            threads=None if threads is None else require(threads, int, f"{where}.threads"),
            warmup=int(record.get("warmup", 0)),
            rounds=integer(record, "rounds", where),
            onnxruntime=str(record.get("onnxruntime", "")),
            models=[
                ModelBench.from_dict(model, f"{where}.models[{index}]")
                for index, model in enumerate(models)
            ],
            run_order=[int(i) for i in require(record.get("run_order", []), list, where)],
            warnings=[str(w) for w in require(record.get("warnings", []), list, where)],
        )
