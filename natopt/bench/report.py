"""The optimisation-result contract, and the loader that reads any natopt result file.

``natopt optimize --report`` writes one JSON object; this module reads the part of it that
``natopt report`` needs (``OptimizeResult``) and ignores the rest::

    {
      "schema": 1,                          # absent in files of natopt before schema 1
      "kind": "natopt.optimize",            # optional when reading
      "model": "resnet18.onnx",
      "accepted": true,                     # the quality guard's verdict (false: exit 3)
      "before": {"params": 11689512, "macs": 1814073344, "latency_ms": 4.1,
                 "quality": 1.0, "accuracy": 0.697},        # accuracy optional
      "after":  {"params": 8420000, "macs": 1290000000, "latency_ms": 3.2,
                 "quality": 0.996, "accuracy": 0.694},
      "latency": {"speedup": 1.28, "rounds": 212, ...},    # null with --no-latency
      "plan": {...},                        # free-form: the transition plan applied
      "search": {"method": "policy", "evaluations": 200, "best_reward": 0.012,
                 "candidates": [            # optional: every plan the search evaluated
                   {"latency_ms": 3.4, "quality": 0.991, "chosen": false},
                   {"macs": 1290000000, "quality": 0.996, "chosen": true}]},
      "provider": "CPUExecutionProvider",   # null with --no-latency
      "times": {"lift": 0.8, "search": 120.5, "finetune": 600.0}   # seconds per phase
    }

``params`` and ``macs`` are integers; ``quality``, ``accuracy`` and the candidates' figures
are numbers; ``latency_ms`` is a number or null (not measured); a candidate has
``latency_ms`` or ``macs`` (or both). Quality is higher-is-better (accuracy, or agreement
with the original model). ``latency.speedup`` is the median over interleaved rounds of the
per-round ratio before / after (``natopt.bench.measure``), the same figure ``natopt bench``
reports; the ``speedup`` gate reads it. A file whose ``kind`` is ``"natopt.bench"`` is read
as a ``BenchResult`` instead. A file without ``schema`` is read as schema 1; a later schema
is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from natopt.bench._fields import (
    SCHEMA,
    check_schema,
    integer,
    number,
    optional_number,
    require,
    text,
)
from natopt.bench._fields import field as get_field
from natopt.bench.results import BENCH_KIND, BenchResult
from natopt.errors import ReportError

__all__ = [
    "OPTIMIZE_KIND",
    "ModelSummary",
    "Candidate",
    "SearchSummary",
    "OptimizeResult",
    "load_result",
    "parse_result",
]

OPTIMIZE_KIND = "natopt.optimize"


@dataclass(slots=True)
class ModelSummary:
    """Cost and quality of a model, before or after optimisation."""

    params: int
    macs: int
    latency_ms: float | None
    quality: float
    accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``latency_ms`` null when not measured, ``accuracy`` only when
        known."""
        data: dict[str, Any] = {
            "params": self.params,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
            "quality": self.quality,
        }
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy
        return data

    @classmethod
    def from_dict(cls, data: object, where: str) -> ModelSummary:
        """Validate and read a ``before`` / ``after`` record."""
        record = require(data, dict, where)
        return cls(
            params=integer(record, "params", where),
            macs=integer(record, "macs", where),
            latency_ms=optional_number(record, "latency_ms", where),
            quality=number(record, "quality", where),
            accuracy=optional_number(record, "accuracy", where),
        )


@dataclass(slots=True)
class Candidate:
    """One plan the search evaluated: its cost (latency and/or MACs) and quality."""

    quality: float
    chosen: bool
    latency_ms: float | None = None
    macs: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, without the cost figures that are unknown."""
        data: dict[str, Any] = {"quality": self.quality, "chosen": self.chosen}
        if self.latency_ms is not None:
            data["latency_ms"] = self.latency_ms
        if self.macs is not None:
            data["macs"] = self.macs
        return data

    @classmethod
    def from_dict(cls, data: object, where: str) -> Candidate:
        """Validate and read a candidate record."""
        record = require(data, dict, where)
        latency = optional_number(record, "latency_ms", where)
        macs = optional_number(record, "macs", where)
        if latency is None and macs is None:
            raise ReportError(f"{where}: a candidate needs 'latency_ms' or 'macs'")
        return cls(
            quality=number(record, "quality", where),
            chosen=get_field(record, "chosen", bool, where),
            latency_ms=latency,
            macs=macs,
        )


@dataclass(slots=True)
class SearchSummary:
    """How the plan was found: method, number of evaluations, best reward, candidates."""

    method: str
    evaluations: int
    best_reward: float
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "method": self.method,
            "evaluations": self.evaluations,
            "best_reward": self.best_reward,
            "candidates": [candidate.to_dict() for candidate in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> SearchSummary:
        """Validate and read the ``search`` record."""
        record = require(data, dict, where)
        candidates = require(record.get("candidates", []), list, f"{where}.candidates")
        return cls(
            method=text(record, "method", where),
            evaluations=integer(record, "evaluations", where),
            best_reward=number(record, "best_reward", where),
            candidates=[
                Candidate.from_dict(item, f"{where}.candidates[{index}]")
                for index, item in enumerate(candidates)
            ],
        )


@dataclass(slots=True)
class OptimizeResult:
    """What ``natopt optimize --report`` writes; see the module docstring for the JSON.

    ``speedup`` is ``latency.speedup`` (None when latency was not measured); ``accepted`` is
    the quality guard's verdict (None in a record that does not say).
    """

    model: str
    before: ModelSummary
    after: ModelSummary
    plan: dict[str, Any]
    search: SearchSummary
    provider: str | None
    times: dict[str, float] = field(default_factory=dict)
    speedup: float | None = None
    accepted: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The optimisation JSON (the fields this record holds), with schema and kind."""
        data: dict[str, Any] = {"schema": SCHEMA, "kind": OPTIMIZE_KIND, "model": self.model}
        if self.accepted is not None:
            data["accepted"] = self.accepted
        return data | {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "latency": None if self.speedup is None else {"speedup": self.speedup},
            "plan": self.plan,
            "search": self.search.to_dict(),
            "provider": self.provider,
            "times": self.times,
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> OptimizeResult:
        """Validate and read the optimisation JSON (``kind`` and ``schema`` may be absent)."""
        record = require(data, dict, where)
        check_schema(record, where)
        times = get_field(record, "times", dict, where)
        latency = record.get("latency")
        speedup = None
        if latency is not None:
            block = require(latency, dict, f"{where}.latency")
            speedup = number(block, "speedup", f"{where}.latency")
        accepted = record.get("accepted")
        provider = record.get("provider")
        return cls(
            model=text(record, "model", where),
            before=ModelSummary.from_dict(record.get("before"), f"{where}.before"),
            after=ModelSummary.from_dict(record.get("after"), f"{where}.after"),
            plan=get_field(record, "plan", dict, where),
            search=SearchSummary.from_dict(record.get("search"), f"{where}.search"),
            provider=None if provider is None else text(record, "provider", where),
            times={phase: number(times, phase, f"{where}.times") for phase in times},
            speedup=speedup,
            accepted=None if accepted is None else get_field(record, "accepted", bool, where),
        )


def parse_result(data: object, where: str) -> OptimizeResult | BenchResult:
    """Read a decoded result by its ``kind``; ``where`` names it in errors."""
    record = require(data, dict, where)
    check_schema(record, where)
    kind = record.get("kind", OPTIMIZE_KIND)
    if kind == BENCH_KIND:
        return BenchResult.from_dict(record, where)
    if kind == OPTIMIZE_KIND:
        return OptimizeResult.from_dict(record, where)
    raise ReportError(
        f"{where}: unknown result kind {kind!r}; expected {OPTIMIZE_KIND!r} or {BENCH_KIND!r}"
    )


def load_result(path: str | Path) -> OptimizeResult | BenchResult:
    """Read and validate a result file written by ``natopt optimize`` or ``natopt bench``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such result file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read result file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return parse_result(data, str(path))
