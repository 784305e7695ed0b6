"""Torch-Pruning against natopt on trained MNIST CNNs, on the same work at matched latency.

For each model (``mnist_zoo``: the shipped residual example, a residual ResNet8 and the
3-conv CNN, all trained on real MNIST) the script compares, on the same data:

- Torch-Pruning (``torch-pruning``, the ``bench`` extra): ``MetaPruner`` with L1 magnitude
  importance removes half of every layer's channels (the classifier kept);
- natopt: ``optimize`` with the NAT policy over the full vocabulary (depth, type, kernel,
  low rank, width) at Torch-Pruning's measured batch-1 latency ratio, and natopt restricted
  to each level (``nat`` = depth, ``nat++`` = depth + type + kernel, and each single level
  with ``keep``) so the table shows what each level contributes. The search prices plans
  with the device's latency table, whose error is tens of percent, and ``optimize`` meets a
  latency budget on measurements (up to ``--rounds`` searches, each chosen model timed
  against the original). A level that cannot reach the latency runs at its cheapest plan
  instead, and is marked.

Same data: the 4,000 training images every model was held out from (search, validation and
fine-tuning), the official 10,000 test images for accuracy. Same fine-tuning for every row:
``natopt.pipeline.finetune`` (Adam, cosine schedule, distillation from the original's
logits + labels), ``--finetune-steps`` steps of 64 images (default 188, three epochs of
4,000). natopt searches with fine-tuning off, then the chosen model is fine-tuned exactly as
Torch-Pruning's is. Every model is exported by natopt's ONNX backend (Torch-Pruning's
through ``lift_torch``, so BatchNorm is folded for both) and timed by ``bench_models``:
onnxruntime CPU, one thread, interleaved, batch 1 and batch 64. Accuracy is onnxruntime's.

It also compares the channel-importance scores of width transitions (``l1``, ``activation``,
``taylor``): every group narrowed to half (``width_1_2``, else the narrowest valid entry),
refit on 256 calibration images; test accuracy before and after a short fine-tune. Width
entries round kept channels to the channel block measured on this device
(``natopt.bench.channel_block``).

    python benchmarks/vs_torch_pruning.py            # ~15 min on 2 free cores (first run
                                                     # trains two CNNs, cached afterwards)
    python benchmarks/vs_torch_pruning.py --quick    # example model, full and width rows,
                                                     # small budgets, 2,000 test images
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mnist_zoo  # noqa: E402

from natopt.backends import load_weights_into_graph, to_torch  # noqa: E402
from natopt.backends.onnx import to_onnx  # noqa: E402
from natopt.bench import bench_models  # noqa: E402
from natopt.bench.channel_block import measured_rounding  # noqa: E402
from natopt.errors import BudgetError  # noqa: E402
from natopt.frontends.onnx import lift_onnx  # noqa: E402
from natopt.frontends.torch import lift_torch  # noqa: E402
from natopt.ir import Graph, graph_cost  # noqa: E402
from natopt.passes import canonicalize  # noqa: E402
from natopt.passes.transitions import VOCABULARY, Vocabulary, apply_plan, compute_mask  # noqa: E402
from natopt.passes.width import IMPORTANCE, ChannelRounding, WidthOptions  # noqa: E402
from natopt.pipeline.budget import Budget  # noqa: E402
from natopt.pipeline.data import Dataset  # noqa: E402
from natopt.pipeline.finetune import FinetuneConfig, finetune  # noqa: E402
from natopt.pipeline.latency_budget import meets  # noqa: E402
from natopt.pipeline.optimize import OptimizeConfig, optimize  # noqa: E402
from natopt.pipeline.problem import calibration_batches, graph_outputs  # noqa: E402
from natopt.pipeline.verify_export import MAX_ROUNDS  # noqa: E402

SPACES: dict[str, tuple[str, ...]] = {  # row name -> levels ("keep" + those entries)
    "full": ("depth", "type", "kernel", "lowrank", "width"),
    "nat++": ("depth", "type", "kernel"),
    "nat": ("depth",),
    "type": ("type",),
    "kernel": ("kernel",),
    "lowrank": ("lowrank",),
    "width": ("width",),
}
QUICK_SPACES = ("full", "width")


@dataclass(slots=True)
class Row:
    """One model variant of one source model."""

    model: str
    method: str
    accuracy: float = 0.0
    latency_b1_ms: float = 0.0
    latency_b64_ms: float = 0.0
    macs: int = 0
    params: int = 0
    plan: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""
    ratio: float | None = None  # Torch-Pruning's channel ratio this row is matched to
    # a natopt row's batch-1 latency within Torch-Pruning's at its ratio (timing noise
    # allowed), measured in the final interleaved timing; None for the other rows
    matched: bool | None = None


def _vocabulary(levels: tuple[str, ...]) -> Vocabulary:
    keep = VOCABULARY.get("keep")
    return Vocabulary((keep, *(e for e in VOCABULARY if e.level in levels and e is not keep)))


def _onnx_accuracy(path: Path, data: Dataset, batch: int = 1000) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = 0
    for xs, ys in data.batches(batch):
        (logits,) = session.run(None, {name: xs[0].numpy()})
        correct += int((logits.argmax(1) == ys.numpy()).sum())
    return 100.0 * correct / len(data)


def _finetuned(graph: Graph, data: Dataset, teacher: torch.Tensor, config: FinetuneConfig):
    module = to_torch(graph)
    finetune(module, data, teacher, config)
    load_weights_into_graph(graph, module)
    return graph


def torch_pruning(module: nn.Module, ratio: float) -> nn.Module:
    """Torch-Pruning's L1-magnitude MetaPruner, ``ratio`` of every layer's channels removed."""
    import torch_pruning as tp

    pruned = copy.deepcopy(module).eval()
    pruner = tp.pruner.MetaPruner(
        pruned,
        torch.randn(1, 1, 28, 28),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[pruned.fc],
    )
    pruner.step()
    return pruned


@dataclass(slots=True)
class Bench:
    """One source model: its canonical graph, data, teacher outputs and output folder."""

    name: str
    module: nn.Module
    graph: Graph
    held: Dataset
    test: Dataset
    teacher: torch.Tensor
    folder: Path
    finetune: FinetuneConfig
    rounding: ChannelRounding
    rows: list[Row] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def exported(self, method: str, graph: Graph) -> tuple[Path, float]:
        """``graph`` exported by natopt's ONNX backend, and its onnxruntime test accuracy."""
        path = to_onnx(graph, self.folder / f"{self.name}-{method}.onnx")
        return path, _onnx_accuracy(path, self.test)

    def add(self, method: str, graph: Graph, **extra: Any) -> Row:
        """A row of the comparison table (timed later with the model's other rows)."""
        path, accuracy = self.exported(method, graph)
        cost = graph_cost(graph)
        row = Row(self.name, method, accuracy, macs=cost.macs, params=cost.params, **extra)
        self.rows.append(row)
        self.files[method] = path
        return row


def _lifted(module: nn.Module) -> Graph:
    return canonicalize(lift_torch(module.eval(), torch.randn(2, 1, 28, 28), dynamic_batch=True))


def _measured_ratio(bench: Bench, graph: Graph, max_seconds: float = 3.0) -> float:
    """Batch-1 onnxruntime latency of ``graph`` over the original's (one thread, interleaved)."""
    path = to_onnx(graph, bench.folder / f"{bench.name}-probe.onnx")
    timing = bench_models(
        [bench.files["original"], path],
        batch=1,
        threads=1,
        min_runs=40,
        max_seconds=max_seconds,
        max_runs=MAX_ROUNDS,
    )
    return timing.models[1].ratio_to_first


def _method(name: str, ratio: float, primary: float) -> str:
    """A row's method name: ``name`` at the primary ratio, ``name@ratio`` at the others."""
    return name if ratio == primary else f"{name}@{ratio:g}"


def run_torch_pruning(bench: Bench, ratio: float, primary: float) -> float:
    """Prune, fine-tune, export; returns the measured batch-1 latency ratio to the original."""
    start = time.perf_counter()
    pruned = torch_pruning(bench.module, ratio)
    finetune(pruned, bench.held, bench.teacher, bench.finetune)
    graph = _lifted(pruned)
    method = _method("torch-pruning", ratio, primary)
    bench.add(method, graph, seconds=time.perf_counter() - start, ratio=ratio)
    return _measured_ratio(bench, graph, max_seconds=6.0)


def _search(bench: Bench, config: OptimizeConfig) -> tuple[Any, str]:
    """``optimize`` under ``config``; a budget the space cannot reach is relaxed to its
    cheapest plan (and said so in the returned note)."""
    small_test = bench.test.subset(np.arange(500))
    try:
        return optimize(bench.graph, (bench.held, small_test), config), ""
    except BudgetError as exc:
        reachable = 1.02 * exc.cheapest if exc.cheapest is not None else 1.0
        if reachable >= 1.0:
            relaxed, note = None, "no plan of this space is faster than the original"
        else:
            relaxed = Budget("latency", reachable)
            note = f"budget relaxed to latency={reachable:.2f} (the space's cheapest plan)"
        config = replace(config, budget=relaxed)
        return optimize(bench.graph, (bench.held, small_test), config), note


def run_natopt(
    bench: Bench,
    space: str,
    target: float,
    evaluations: int | None,
    seed: int,
    rounds: int,
    search: str,
    method: str,
    ratio: float,
) -> None:
    """Search ``space`` for the measured latency ratio ``target``, then fine-tune.

    ``optimize`` meets a latency budget on measurements (``natopt.pipeline.latency_budget``:
    up to ``rounds`` searches, each chosen model timed against the original); the table
    budget and the measured ratio of the kept search go into the row's note."""
    config = OptimizeConfig(
        search=search,
        budget=Budget("latency", target),
        space=_vocabulary(SPACES[space]),  # type: ignore[arg-type]  (a Vocabulary is accepted)
        evaluations=evaluations,
        candidates=max(2, evaluations // 8) if evaluations else OptimizeConfig().candidates,
        finetune=replace(bench.finetune, steps=0),
        # the benchmark fine-tunes the chosen model itself, as it does Torch-Pruning's, and
        # reports what that gives; the guard would judge the model before that fine-tune
        max_drop=math.inf,
        latency_rounds=rounds,
        progress=False,
        seed=seed,
        rounding=bench.rounding,
    )
    start = time.perf_counter()
    result, note = _search(bench, config)
    for entry in result.report["search"].get("latency_rounds", []):
        print(
            f"  [{bench.name}] {space}: table budget {entry['budget']:.3f} -> measured "
            f"{entry['measured_ratio']:.3f} (target {target:.3f})"
            + ("  kept" if entry["chosen"] else ""),
            flush=True,
        )
        if entry["chosen"] and not note:
            note = (
                f"table budget {entry['budget']:.2f}, measured {entry['measured_ratio']:.2f} "
                f"before fine-tuning"
            )
    note += f"; {result.report['search']['evaluations']} evaluations a search"
    graph = _finetuned(result.graph, bench.held, bench.teacher, bench.finetune)
    seconds = time.perf_counter() - start
    bench.add(method, graph, plan=result.plan.transitions, seconds=seconds, note=note, ratio=ratio)


def importance_rows(bench: Bench, steps: int) -> list[dict[str, Any]]:
    """Every group narrowed to about half with each importance score; accuracy before/after
    ``steps`` fine-tuning steps and the pooled reconstruction error of the consumers."""
    mask = compute_mask(
        bench.graph, VOCABULARY.restrict(["width"]), width=WidthOptions(rounding=bench.rounding)
    )
    plan = {}
    for row, unit in enumerate(mask.units):
        widths = [n for n in mask.valid_names(row) if n.startswith("width")]
        if widths:
            plan[unit.name] = "width_1_2" if "width_1_2" in widths else widths[-1]
    calibration = calibration_batches(bench.held, 256)
    rows = []
    for method in IMPORTANCE:
        start = time.perf_counter()
        options = WidthOptions(rounding=bench.rounding, importance=method)
        narrowed = apply_plan(bench.graph, plan, calibration=calibration, width=options)
        seconds = time.perf_counter() - start
        errors = narrowed.meta["transitions"].errors
        before = bench.exported(f"importance-{method}", narrowed)[1]
        tuned = _finetuned(
            narrowed, bench.held, bench.teacher, replace(bench.finetune, steps=steps)
        )
        after = bench.exported(f"importance-{method}-ft", tuned)[1]
        rows.append(
            {
                "model": bench.name,
                "importance": method,
                "groups": len(plan),
                "accuracy_refit": before,
                "accuracy_finetuned": after,
                "mean_error": float(np.mean(list(errors.values()))),
                "seconds": seconds,
            }
        )
    return rows


def measure_latency(bench: Bench, quick: bool) -> None:
    methods = [r.method for r in bench.rows]
    for batch, key in ((1, "latency_b1_ms"), (64, "latency_b64_ms")):
        timing = bench_models(
            [bench.files[m] for m in methods],
            batch=batch,
            threads=1,
            warmup=5,
            min_runs=20 if quick else 40,
            max_seconds=(3.0 if quick else 8.0) * (1 if batch == 1 else 2),
            max_runs=MAX_ROUNDS,
        )
        for row, model in zip(bench.rows, timing.models, strict=True):
            setattr(row, key, model.stats.median_ms)
    pruned = {r.ratio: r for r in bench.rows if r.method.startswith("torch-pruning")}
    for row in bench.rows:
        if row.method.startswith("natopt") and row.ratio in pruned:
            row.matched = meets(row.latency_b1_ms / pruned[row.ratio].latency_b1_ms, 1.0)


def prepare(
    name: str,
    data: mnist_zoo.Mnist,
    folder: Path,
    config: FinetuneConfig,
    rounding: ChannelRounding,
    test_images: int,
) -> Bench:
    if name == "example":
        module = mnist_zoo.example_module()
        graph = canonicalize(lift_onnx(mnist_zoo.EXAMPLE_ONNX))
    else:
        module = mnist_zoo.trained(name, data, epochs=1)
        graph = _lifted(module)
    held = Dataset([data.x_held], data.y_held)
    test = Dataset([data.x_test[:test_images]], data.y_test[:test_images])
    teacher = graph_outputs(graph, held)
    bench = Bench(name, module, graph, held, test, teacher, folder, config, rounding)
    bench.add("original", graph)
    return bench


def _table(rows: list[Row]) -> str:
    head = (
        f"{'model':9} {'method':16} {'acc %':>6} {'b1 ms':>7} {'b64 ms':>8} {'x b1':>5} "
        f"{'MACs':>10} {'params':>8} {'time s':>6} {'<=TP':>4}  note"
    )
    lines = [head]
    base: dict[str, Row] = {}
    for row in rows:
        base.setdefault(row.model, row)
        speed = base[row.model].latency_b1_ms / max(row.latency_b1_ms, 1e-9)
        lines.append(
            f"{row.model:9} {row.method:16} {row.accuracy:6.2f} {row.latency_b1_ms:7.3f} "
            f"{row.latency_b64_ms:8.2f} {speed:5.2f} {row.macs:10,} {row.params:8,} "
            f"{row.seconds:6.0f} {_matched(row):>4}  {row.note}"
        )
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    """The comparison as a Markdown table (speed-ups against each model's original)."""
    lines = [
        "| model | method | test acc. % | batch 1 ms | batch 64 ms | speed-up b1 / b64 "
        "| MACs | params | time s | b1 <= Torch-Pruning's |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    base: dict[str, Row] = {}
    for row in rows:
        first = base.setdefault(row.model, row)
        b1 = first.latency_b1_ms / max(row.latency_b1_ms, 1e-9)
        b64 = first.latency_b64_ms / max(row.latency_b64_ms, 1e-9)
        lines.append(
            f"| {row.model} | {row.method} | {row.accuracy:.2f} | {row.latency_b1_ms:.3f} "
            f"| {row.latency_b64_ms:.2f} | {b1:.2f}x / {b64:.2f}x | {row.macs:,} | {row.params:,} "
            f"| {row.seconds:.0f} | {_matched(row)} |"
        )
    return "\n".join(lines)


def _matched(row: Row) -> str:
    return "" if row.matched is None else ("yes" if row.matched else "no")


def plot(rows: list[Row], folder: Path) -> list[Path]:
    """One accuracy-vs-latency figure per model: Torch-Pruning and natopt's ``full`` space
    at each ratio as two lines, the single levels (first ratio) as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        base = mine[0].latency_b1_ms
        figure, axes = plt.subplots(figsize=(6, 4))
        for prefix, style in (("torch-pruning", "o-"), ("natopt-full", "s-")):
            line = sorted(
                (r for r in mine if r.method.split("@")[0] == prefix),
                key=lambda r: r.latency_b1_ms,
            )
            axes.plot(
                [r.latency_b1_ms / base for r in line],
                [r.accuracy for r in line],
                style,
                label=prefix,
            )
        for r in mine:
            if r.method.startswith("natopt-") and "@" not in r.method and r.method != "natopt-full":
                axes.plot(r.latency_b1_ms / base, r.accuracy, "x", label=r.method)
        axes.axhline(mine[0].accuracy, color="grey", lw=0.8, ls="--", label="original")
        axes.set_xlabel("batch-1 latency / original (onnxruntime CPU, 1 thread)")
        axes.set_ylabel("test accuracy %")
        axes.set_title(f"{model}: accuracy against measured latency")
        axes.legend(fontsize=7)
        path = folder / f"vs_torch_pruning_{model}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def _save(
    args: argparse.Namespace,
    spaces: tuple[str, ...],
    rounding: Any,
    rows: list[Row],
    importance: list[dict[str, Any]],
    start: float,
) -> None:
    report = {
        "kind": "natopt.vs_torch_pruning",
        "settings": vars(args) | {"spaces": list(spaces), "rounding": asdict(rounding)},
        "rows": [asdict(r) for r in rows],
        "importance": importance,
        "seconds": time.perf_counter() - start,
    }
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")  # paths as text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="example model, small budgets")
    parser.add_argument("--models", default="example,resnet8,cnn3")
    parser.add_argument("--spaces", default=",".join(SPACES), help="natopt rows to run")
    parser.add_argument(
        "--evaluations",
        type=int,
        default=None,
        help="plan evaluations per search (default: optimize's, which grow with the space)",
    )
    parser.add_argument("--finetune-steps", type=int, default=188)
    parser.add_argument(
        "--ratios",
        default="0.5,0.25,0.75",
        help="Torch-Pruning's channel ratios; every space runs at the first, --other-spaces "
        "at the rest",
    )
    parser.add_argument("--other-spaces", default="full", help="natopt rows at the other ratios")
    parser.add_argument(
        "--search", default=OptimizeConfig().search, help="natopt's search (default: optimize's)"
    )
    parser.add_argument("--plots", type=Path, default=None, help="folder for one PNG per model")
    parser.add_argument(
        "--rounds", type=int, default=5, help="searches per row to match the measured latency"
    )
    parser.add_argument(
        "--no-importance", action="store_true", help="skip the channel-importance comparison"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (training)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("vs_torch_pruning.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = ["example"] if args.quick else args.models.split(",")
    evaluations = 8 if args.quick else args.evaluations
    steps = 40 if args.quick else args.finetune_steps
    spaces = QUICK_SPACES if args.quick else tuple(args.spaces.split(","))
    ratios = [float(r) for r in args.ratios.split(",")]
    other_spaces = tuple(s for s in args.other_spaces.split(",") if s)
    config = FinetuneConfig(steps=steps, batch_size=64, lr=1e-3)
    start = time.perf_counter()
    data = mnist_zoo.mnist(args.seed)
    rounding = measured_rounding()
    print(f"channel rounding measured on this device: {rounding}", flush=True)
    rows: list[Row] = []
    importance: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vs-tp-") as tmp:
        for name in models:
            bench = prepare(name, data, Path(tmp), config, rounding, 2000 if args.quick else 10000)
            for tp_ratio in ratios:
                target = run_torch_pruning(bench, tp_ratio, ratios[0])
                print(
                    f"[{name}] torch-pruning {tp_ratio:g}: latency ratio {target:.3f}", flush=True
                )
                for space in spaces if tp_ratio == ratios[0] else other_spaces:
                    method = _method(f"natopt-{space}", tp_ratio, ratios[0])
                    run_natopt(
                        bench,
                        space,
                        target,
                        evaluations,
                        args.seed,
                        args.rounds,
                        args.search,
                        method,
                        tp_ratio,
                    )
                    row = bench.rows[-1]
                    print(
                        f"[{name}] {row.method}: {row.accuracy:.2f}% ({row.seconds:.0f} s)",
                        flush=True,
                    )
            if not (args.quick or args.no_importance):
                importance += importance_rows(bench, steps // 3)
            measure_latency(bench, args.quick)
            rows += bench.rows
            print(_table(bench.rows), flush=True)
            _save(args, spaces, rounding, rows, importance, start)  # an interrupted run keeps it
    print("\n" + _table(rows))
    print("\n" + markdown(rows))
    if importance:
        print("\nwidth importance (every group to about half, 256 calibration images):")
    for item in importance:
        print(
            f"  {item['model']:8} {item['importance']:10} refit {item['accuracy_refit']:6.2f}%  "
            f"fine-tuned {item['accuracy_finetuned']:6.2f}%  mean error {item['mean_error']:.3f}"
        )
    _save(args, spaces, rounding, rows, importance, start)
    if args.plots is not None:
        for path in plot(rows, args.plots):
            print(f"wrote {path}")
    print(f"\nwrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
