"""A measured latency cost table: what each segment of a graph costs on this device.

The table maps a segment signature (``natopt.bench.segments``: a unit's layer chain or one
node, at concrete shapes) to its onnxruntime latency on one device. Each missing segment is
lowered alone (``probe_graph`` -> ``build_model``) and timed with ``bench_models``: probes
are timed in chunks of similar size, interleaved with a reference probe (one ``Neg`` on a
``[batch, 1]`` tensor) whose median is the cost of a session call itself; an entry is the
probe's median minus that overhead (at least 0; the best run minus the reference's best is
kept too, ``min_ms``: on a loaded machine long runs are preempted more than short ones, and
the minimum is the statistic least moved by that). So

    estimate_latency(graph) = overhead + Σ_segments entry[segment]

i.e. one session call plus the time of every segment, with nodes computed from constants
free (onnxruntime folds them). Segments that cannot be timed alone (no ONNX form, such as an
``Opaque`` op, or inputs of different batch sizes) get an entry with ``ms = None`` and the
reason; they count 0 in the estimate (``unmeasured`` lists them), the documented fallback.

Tables are cached per device (``Device.key``: execution provider, CPU model or GPU name,
onnxruntime version, threads) as JSON at ``$NATOPT_CACHE_DIR/latency/<key>.json`` (default
``~/.cache/natopt``), written atomically and merged with what other processes wrote.

The table times graphs; it never applies plans. For a latency budget the pipeline times the
canonical graph and every target of its transition mask up front
(``natopt.pipeline.latency_probes``), so a search only looks entries up; a plan that creates
a segment nobody timed (a skip joining two ops into a new chain) is timed when first
estimated.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean

import onnx
import torch
from onnx import TensorProto, helper

from natopt._files import write_whole
from natopt.backends.onnx import build_model
from natopt.bench.measure import PROVIDERS, available_providers, bench_models
from natopt.bench.segments import Segment, baked_values, graph_segments, probe_graph
from natopt.errors import BenchError
from natopt.ir import Graph, Value, node_cost

__all__ = [
    "CACHE_ENV",
    "Device",
    "LatencyEntry",
    "LatencyTable",
    "MeasureSettings",
    "Probe",
    "STATISTICS",
    "cache_dir",
    "estimate_latency",
]

CACHE_ENV = "NATOPT_CACHE_DIR"
TABLE_VERSION = 1
STATISTICS = ("median", "min")


def cache_dir() -> Path:
    """``$NATOPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/natopt``, else ``~/.cache/natopt``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "natopt"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:60]


@dataclass(frozen=True, slots=True)
class Device:
    """Where entries were measured; ``key`` names the cache file."""

    provider: str  # onnxruntime execution provider, e.g. "CPUExecutionProvider"
    name: str  # CPU model or GPU name
    onnxruntime: str
    threads: int | None  # intra-op threads (None: onnxruntime's default)

    @classmethod
    def detect(cls, provider: str = "auto", threads: int | None = 1) -> Device:
        """This machine: CUDA when onnxruntime has it (``auto``), else CPU."""
        import onnxruntime

        if provider == "auto":
            provider = "cuda" if PROVIDERS["cuda"] in available_providers() else "cpu"
        if provider not in PROVIDERS:
            raise BenchError(f"unknown provider {provider!r}; use one of auto, cpu, cuda")
        name = _cpu_name()
        if provider == "cuda":
            name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda-gpu"
        return cls(PROVIDERS[provider], name, onnxruntime.__version__, threads)

    @property
    def short_provider(self) -> str:
        return next((k for k, v in PROVIDERS.items() if v == self.provider), self.provider)

    @property
    def key(self) -> str:
        threads = "default" if self.threads is None else str(self.threads)
        return _slug(f"{self.short_provider}-{self.name}-ort{self.onnxruntime}-t{threads}")


@dataclass(slots=True)
class LatencyEntry:
    """A segment's median latency in ms (session overhead removed) and its best run
    (``min_ms``); ``None``: not measurable."""

    ms: float | None
    text: str
    runs: int = 0
    reason: str = ""
    min_ms: float | None = None

    def value(self, statistic: str) -> float:
        """``ms`` (statistic ``"median"``) or ``min_ms`` (``"min"``); 0 when not measured."""
        return (self.ms if statistic == "median" else self.min_ms) or 0.0


@dataclass(frozen=True, slots=True)
class MeasureSettings:
    """How probes are timed (``bench_models`` arguments) and how many share a chunk."""

    chunk: int = 8
    warmup: int = 3
    min_runs: int = 10
    max_runs: int = 300
    seconds_per_probe: float = 0.25


@dataclass(slots=True)
class Probe:
    """A segment to time: its probe graph (``None`` with the ``reason`` it cannot be)."""

    key: str
    text: str
    graph: Graph | None
    reason: str = ""
    batch: int = 1
    size: int = 0


@dataclass(slots=True)
class LatencyTable:
    """Entries by segment key for one ``device``; ``symbols`` binds symbolic dims."""

    device: Device
    entries: dict[str, LatencyEntry] = field(default_factory=dict)
    overhead_ms: float = 0.0
    overhead_min_ms: float = 0.0
    symbols: dict[str, int] = field(default_factory=dict)
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    path: Path | None = None

    # ---- cache ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        device: Device | None = None,
        *,
        cache: bool = True,
        symbols: Mapping[str, int] | None = None,
        settings: MeasureSettings | None = None,
    ) -> LatencyTable:
        """The cached table of ``device`` (default: this machine, one thread), or a new one."""
        device = device or Device.detect()
        path = cache_dir() / "latency" / f"{device.key}.json" if cache else None
        table = cls(device, symbols=dict(symbols or {}), path=path)
        if settings is not None:
            table.settings = settings
        if path is not None:
            entries, overheads = _read(path)
            table.entries.update(entries)
            table.overhead_ms, table.overhead_min_ms = overheads
        return table

    def save(self) -> None:
        """Write the table (merged with the file's current entries) atomically."""
        if self.path is None:
            return
        entries, _ = _read(self.path)
        entries.update(self.entries)
        data = {
            "schema": TABLE_VERSION,
            "device": asdict(self.device),
            "overhead_ms": self.overhead_ms,
            "overhead_min_ms": self.overhead_min_ms,
            "entries": {k: asdict(e) for k, e in sorted(entries.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(self.path, json.dumps(data, indent=1))

    # ---- measuring --------------------------------------------------------------------
    def pending(self, graphs: Iterable[Graph]) -> list[Probe]:
        """Probes for the segments of ``graphs`` that have no entry yet (one per key)."""
        probes: dict[str, Probe] = {}
        for graph in graphs:
            todo = [
                s
                for s in graph_segments(graph, self.symbols)
                if s.key not in self.entries and s.key not in probes
            ]
            todo = list({s.key: s for s in todo}.values())
            if not todo:
                continue
            values = baked_values(graph, todo, self.symbols)
            for segment in todo:
                probes[segment.key] = _make_probe(segment, values, self.symbols)
        return list(probes.values())

    def measure(
        self, probes: Sequence[Probe], progress: Callable[[int], object] | None = None
    ) -> None:
        """Time ``probes`` (from ``pending``), add their entries and save the table."""
        measurable = [p for p in probes if p.graph is not None]
        for probe in probes:
            if probe.graph is None:
                self.entries[probe.key] = LatencyEntry(None, probe.text, reason=probe.reason)
        done = len(probes) - len(measurable)
        overheads: list[tuple[float, float]] = []
        with tempfile.TemporaryDirectory(prefix="natopt-latency-") as tmp:
            for chunk in _chunks(measurable, self.settings.chunk):
                overheads += self._measure_chunk(chunk, Path(tmp))
                done += len(chunk)
                if progress is not None:
                    progress(done)
        if overheads:
            self.overhead_ms = mean(o[0] for o in overheads)
            self.overhead_min_ms = mean(o[1] for o in overheads)
        self.save()

    def _measure_chunk(self, chunk: list[Probe], folder: Path) -> list[tuple[float, float]]:
        batch = chunk[0].batch
        reference = _reference_model(folder / f"reference_{batch}.onnx", batch)
        paths = []
        for probe in chunk:
            path = folder / f"{probe.key}.onnx"
            assert probe.graph is not None
            onnx.save(build_model(probe.graph, dynamic=False), path)
            paths.append(path)
        s = self.settings
        try:
            result = bench_models(
                [reference, *paths],
                batch=batch,
                threads=self.device.threads,
                provider=self.device.short_provider,
                warmup=s.warmup,
                min_runs=s.min_runs,
                max_runs=s.max_runs,
                max_seconds=s.seconds_per_probe * len(chunk),
            )
        except BenchError as exc:
            if len(chunk) == 1:
                self.entries[chunk[0].key] = LatencyEntry(None, chunk[0].text, reason=str(exc))
                return []
            return [o for probe in chunk for o in self._measure_chunk([probe], folder)]
        call = result.models[0].stats
        for probe, model in zip(chunk, result.models[1:], strict=True):
            self.entries[probe.key] = LatencyEntry(
                max(0.0, model.stats.median_ms - call.median_ms),
                probe.text,
                model.stats.runs,
                min_ms=max(0.0, model.stats.min_ms - call.min_ms),
            )
        return [(call.median_ms, call.min_ms)]

    # ---- estimating -------------------------------------------------------------------
    def unmeasured(self, graph: Graph) -> list[LatencyEntry]:
        """Entries of ``graph``'s segments that could not be timed (they count 0)."""
        found = (self.entries.get(s.key) for s in graph_segments(graph, self.symbols))
        return [e for e in found if e is not None and e.ms is None]


def _read(path: Path) -> tuple[dict[str, LatencyEntry], tuple[float, float]]:
    """Entries and overheads from a cache file; an unreadable one is treated as empty."""
    try:
        data = json.loads(path.read_text())
        # "schema", as in every other file natopt writes; caches written before it say "version"
        if data.get("schema", data.get("version")) != TABLE_VERSION:
            return {}, (0.0, 0.0)
        entries = {k: LatencyEntry(**v) for k, v in data["entries"].items()}
        overheads = float(data["overhead_ms"]), float(data.get("overhead_min_ms", 0.0))
        return entries, overheads
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, (0.0, 0.0)


def _make_probe(
    segment: Segment, values: Mapping[Value, torch.Tensor], symbols: Mapping[str, int]
) -> Probe:
    try:
        graph = probe_graph(segment, values, symbols)
        build_model(graph, dynamic=False)
    except Exception as exc:  # no ONNX form (Opaque), or an op that needs runtime values
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return Probe(segment.key, segment.text, None, reason)
    leading = {int(v.shape[0]) for v in graph.inputs if v.shape}  # type: ignore[arg-type]
    if len(leading) > 1:
        reason = f"inputs of different leading sizes {sorted(leading)}"
        return Probe(segment.key, segment.text, None, reason)
    size = sum(node_cost(n).macs + node_cost(n).bytes for n in graph.nodes)
    return Probe(segment.key, segment.text, graph, batch=min(leading, default=1), size=size)


def _chunks(probes: list[Probe], size: int) -> list[list[Probe]]:
    """Probes of one batch size and similar cost share a chunk (interleaved rounds)."""
    ordered = sorted(probes, key=lambda p: (p.batch, p.size))
    chunks: list[list[Probe]] = []
    for probe in ordered:
        if chunks and len(chunks[-1]) < size and chunks[-1][0].batch == probe.batch:
            chunks[-1].append(probe)
        else:
            chunks.append([probe])
    return chunks


def _reference_model(path: Path, batch: int) -> Path:
    """``y = -x`` on ``[batch, 1]``: the cost of one session call."""
    if not path.exists():
        graph = helper.make_graph(
            [helper.make_node("Neg", ["x"], ["y"])],
            "reference",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1])],
        )
        opsets = [helper.make_opsetid("", 18)]
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = helper.find_min_ir_version_for(opsets)
        onnx.save(model, path)
    return path


def estimate_latency(
    graph: Graph, table: LatencyTable, *, measure_missing: bool = True, statistic: str = "median"
) -> float:
    """``graph``'s latency in ms: one session call plus the entry of every segment.

    Segments without an entry are timed now (``measure_missing``), else a ``BenchError``
    names the first of them. Entries with ``ms = None`` count 0 (module docstring).
    ``statistic``: ``"median"`` entries, or ``"min"`` (best runs).
    """
    if statistic not in STATISTICS:
        raise BenchError(f"unknown statistic {statistic!r}; use one of {STATISTICS}")
    segments = graph_segments(graph, table.symbols)
    missing = [s for s in segments if s.key not in table.entries]
    if missing:
        if not measure_missing:
            raise BenchError(
                f"graph {graph.name}: the latency table has no entry for segment "
                f"{missing[0].text} ({len(missing)} missing); measure the graph first"
            )
        table.measure(table.pending([graph]))
    overhead = table.overhead_ms if statistic == "median" else table.overhead_min_ms
    return overhead + sum(table.entries[s.key].value(statistic) for s in segments)
