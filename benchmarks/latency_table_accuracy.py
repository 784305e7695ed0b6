"""How well the latency table's sum predicts a whole model's measured latency.

For each model (random weights, batch 1, 224x224): lift and canonicalise it, time its
segments into a fresh latency table (``natopt.bench.latency_table``; this device, one thread
by default) and compare ``estimate_latency`` with the whole model's median onnxruntime
latency (``bench_models`` on ``to_onnx`` of the same canonical graph, static shapes). On a
shared machine the load drifts, so the two are measured alternately ``--repeats`` times and
the medians compared; the spread of the per-repeat errors is printed beside. The same is
done with best runs (``statistic="min"`` entries vs the whole model's fastest run), which
load preempting long runs more than short ones moves least. Prints a Markdown table:
predicted ms, measured ms, error % = (predicted - measured) / measured.

    python benchmarks/latency_table_accuracy.py [--vit-b-16] [--threads N] [--repeats 3]
        [--provider auto|cpu|cuda] [--models resnet18,convnext_atto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import torch

from natopt.backends import to_onnx
from natopt.bench import bench_models
from natopt.bench.latency_table import Device, LatencyTable, estimate_latency
from natopt.bench.segments import graph_segments
from natopt.frontends import lift
from natopt.passes import canonicalize


def _torchvision(name: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


def _timm(name: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "resnet18": _torchvision("resnet18"),
    "mobilenet_v2": _torchvision("mobilenet_v2"),
    "mobilenet_v3_small": _torchvision("mobilenet_v3_small"),
    "efficientnet_b0": _torchvision("efficientnet_b0"),
    "vit_b_16": _torchvision("vit_b_16"),
    "convnext_atto": _timm("convnext_atto"),
    "resnet10t": _timm("resnet10t"),
    "vit_tiny_patch16_224": _timm("vit_tiny_patch16_224"),
}


def _errors(predicted: list[float], measured: list[float]) -> list[float]:
    return [100.0 * (p - m) / m for p, m in zip(predicted, measured, strict=True)]


def run_model(name: str, device: Device, folder: Path, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = canonicalize(lift(model, torch.randn(1, 3, 224, 224)))
    path = to_onnx(graph, folder / f"{name}.onnx", dynamic=False)
    predicted, measured, seconds, best_predicted, best_measured = [], [], [], [], []
    for _ in range(repeats):
        result = bench_models(
            [path],
            threads=device.threads,
            provider=device.short_provider,
            warmup=5,
            min_runs=15,
            max_seconds=10.0,
        )
        measured.append(result.models[0].stats.median_ms)
        best_measured.append(result.models[0].stats.min_ms)
        table = LatencyTable.open(device, cache=False)
        start = time.perf_counter()
        table.measure(table.pending([graph]))
        seconds.append(time.perf_counter() - start)
        predicted.append(estimate_latency(graph, table, measure_missing=False))
        best_predicted.append(estimate_latency(graph, table, statistic="min"))
    segments = graph_segments(graph)
    errors = _errors(predicted, measured)
    return {
        "model": name,
        "predicted_ms": median(predicted),
        "measured_ms": median(measured),
        "error_pct": 100.0 * (median(predicted) - median(measured)) / median(measured),
        "error_range_pct": [min(errors), max(errors)],
        "min_predicted_ms": min(best_predicted),
        "min_measured_ms": min(best_measured),
        "min_error_pct": 100.0 * (min(best_predicted) - min(best_measured)) / min(best_measured),
        "segments": len(segments),
        "distinct": len({s.key for s in segments}),
        "unmeasured": len(table.unmeasured(graph)),
        "table_seconds": median(seconds),
    }


def markdown(rows: list[dict[str, Any]], device: Device) -> str:
    lines = [
        f"device: {device.provider}, {device.name}, onnxruntime {device.onnxruntime}, "
        f"threads {device.threads}",
        "",
        "| model | predicted ms | measured ms | error % | per-repeat error % | "
        "best: predicted ms | best: measured ms | best: error % | segments (distinct) | "
        "unmeasured | table s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        low, high = r["error_range_pct"]
        lines.append(
            f"| {r['model']} | {r['predicted_ms']:.2f} | {r['measured_ms']:.2f} | "
            f"{r['error_pct']:+.1f} | {low:+.0f} .. {high:+.0f} | {r['min_predicted_ms']:.2f} | "
            f"{r['min_measured_ms']:.2f} | {r['min_error_pct']:+.1f} | {r['segments']} "
            f"({r['distinct']}) | {r['unmeasured']} | {r['table_seconds']:.1f} |"
        )
    lines.append("")
    for label, key in (("median", "error_pct"), ("best-run", "min_error_pct")):
        errors = [abs(float(r[key])) for r in rows]
        if errors:
            mean_error = sum(errors) / len(errors)
            lines.append(f"{label}: mean |error| {mean_error:.1f}%, max {max(errors):.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--vit-b-16", action="store_true", help="include vit_b_16 (slow)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="alternate measurements (3)")
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else [m for m in MODELS if m != "vit_b_16"]
    if args.vit_b_16 and "vit_b_16" not in names:
        names.append("vit_b_16")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}")
    device = Device.detect(args.provider, args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="natopt-accuracy-") as tmp:
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            rows.append(run_model(name, device, Path(tmp), args.repeats))
            row = rows[-1]
            print(
                f"  predicted {row['predicted_ms']:.2f} ms, measured {row['measured_ms']:.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    print(markdown(rows, device))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device.key, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
