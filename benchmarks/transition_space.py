"""The transition space on real models: mask counts, timings, costs, reconstruction errors.

For torchvision resnet18, mobilenet_v2, efficientnet_b0, vit_b_16 and timm convnext_atto
(random weights, zero-initialised matrices redrawn so outputs depend on the input; batch 1;
64x64 inputs, 224x224 for the ViT) this lifts and canonicalises
the model, computes its ``TransitionMask`` (best of 5 timings), draws one random plan from
the mask (uniform over each unit's valid transitions, seeded), applies it with calibration
(2 batches of 1 random image: refits and per-unit reconstruction errors), verifies it,
exports it to ONNX and checks onnxruntime against the IR interpreter. It prints:

1. mask counts: per model, how many units may take each transition;
2. timings and costs: mask, apply (+ verify), ONNX export; params and MACs before/after;
3. reconstruction errors on the calibration data (median / max, by transition level);
4. resnet18's all-null plan over every valid residual branch and its parameter count.

The measured rows also go to ``benchmarks/results/transition_space.json`` (``--out``).

    python benchmarks/transition_space.py [--models resnet18 vit_b_16] [--seed 0] [--out F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from natopt.backends.onnx import to_onnx
from natopt.frontends.torch import lift_torch
from natopt.ir import Graph, graph_cost, run_graph
from natopt.passes import canonicalize
from natopt.passes.transitions import VOCABULARY, Plan, apply_plan, compute_mask

__all__ = ["MODELS", "main"]


def _torchvision(name: str, size: int) -> Callable[[], tuple[torch.nn.Module, int]]:
    def build() -> tuple[torch.nn.Module, int]:
        import torchvision

        return getattr(torchvision.models, name)(weights=None), size

    return build


def _timm(name: str, size: int) -> Callable[[], tuple[torch.nn.Module, int]]:
    def build() -> tuple[torch.nn.Module, int]:
        import timm

        return timm.create_model(name, pretrained=False), size

    return build


MODELS: dict[str, Callable[[], tuple[torch.nn.Module, int]]] = {
    "resnet18": _torchvision("resnet18", 64),
    "mobilenet_v2": _torchvision("mobilenet_v2", 64),
    "efficientnet_b0": _torchvision("efficientnet_b0", 64),
    "vit_b_16": _torchvision("vit_b_16", 224),
    "convnext_atto": _timm("convnext_atto", 64),
}


def _best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _onnx_check(graph: Graph, x: torch.Tensor, folder: Path) -> tuple[float, float]:
    import onnxruntime as ort

    start = time.perf_counter()
    path = to_onnx(graph, folder / f"{graph.name}.onnx")
    seconds = time.perf_counter() - start
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    want = run_graph(graph, [x])[0].numpy()
    return seconds, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def _run_model(name: str, seed: int, folder: Path) -> dict[str, object]:
    torch.manual_seed(seed)
    model, size = MODELS[name]()
    model.eval()
    with torch.no_grad():  # a zero-initialised layer (the ViT head) would make outputs constant
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                torch.nn.init.normal_(param, std=0.02)
    x = torch.randn(1, 3, size, size)
    graph = canonicalize(lift_torch(model, x))
    mask_s, mask = _best_of(lambda: compute_mask(graph), 5)
    plan = mask.random_plan(torch.Generator().manual_seed(seed))
    calibration = [torch.randn(1, 3, size, size) for _ in range(2)]
    apply_s, after = _best_of(lambda: apply_plan(graph, plan, calibration=calibration), 1)
    export_s, onnx_err = _onnx_check(after, x, folder)
    report = after.meta["transitions"]
    levels: dict[str, list[tuple[float, float]]] = {}
    for unit, error in report.errors.items():
        level = VOCABULARY.get(plan.transitions[unit]).level
        levels.setdefault(level, []).append((report.inherited_errors[unit], error))
    return {
        "name": name,
        "units": len(mask.units),
        "counts": mask.counts(),
        "mask_ms": mask_s * 1e3,
        "apply_s": apply_s,
        "export_s": export_s,
        "onnx_err": onnx_err,
        "transformed": len(report.applied),
        "overridden": len(report.overridden),
        "before": graph_cost(graph),
        "after": graph_cost(after),
        "levels": levels,
        "graph": graph if name == "resnet18" else None,
    }


RESULTS = Path(__file__).parent / "results" / "transition_space.json"


def _record(result: dict, all_null: str | None) -> dict:
    """A model's result as JSON: costs as fields, no graph."""
    record = {k: v for k, v in result.items() if k != "graph"}
    record["before"], record["after"] = result["before"].to_dict(), result["after"].to_dict()
    if all_null is not None:
        record["all_null"] = all_null
    return record


def _all_null(graph: Graph) -> str:
    mask = compute_mask(graph)
    null = mask.vocabulary.index("null")
    branches = [
        u.name
        for u, ok in zip(mask.units, mask.valid[:, null].tolist(), strict=True)
        if ok and u.kind == "branch"
    ]
    after = apply_plan(graph, Plan({b: "null" for b in branches}))
    return (
        f"resnet18 all-null plan over {len(branches)} branches ({', '.join(branches)}): "
        f"params {graph_cost(graph).params:,} -> {graph_cost(after).params:,}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON of the measured rows")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = [_run_model(name, args.seed, Path(tmp)) for name in args.models]
    names = VOCABULARY.names
    print("## Mask counts (units that may take each transition)\n")
    header = ["model", "units", *names]
    print(
        _table(header, [[r["name"], r["units"], *(r["counts"][n] for n in names)] for r in results])
    )
    print("\n## Timings and costs (one random masked plan, calibrated)\n")
    rows = []
    for r in results:
        b, a = r["before"], r["after"]
        rows.append(
            [
                r["name"],
                f"{r['mask_ms']:.1f} ms",
                f"{r['apply_s']:.2f} s",
                f"{r['export_s']:.2f} s",
                f"{r['onnx_err']:.1e}",
                f"{r['transformed']} (+{r['overridden']} overridden)",
                f"{b.params:,} -> {a.params:,}",
                f"{b.macs / 1e6:.1f}M -> {a.macs / 1e6:.1f}M",
            ]
        )
    header = ["model", "mask", "apply+verify", "ONNX export", "ORT rel. err", "units changed"]
    print(_table([*header, "params", "MACs"], rows))
    print("\n## Reconstruction error on calibration data (inherited -> refit; median / max)\n")
    rows = []
    for r in results:
        for level, pairs in sorted(r["levels"].items()):
            before = [p[0] for p in pairs]
            after = [p[1] for p in pairs]
            rows.append(
                [
                    r["name"],
                    level,
                    len(pairs),
                    f"{statistics.median(before):.3f} -> {statistics.median(after):.3f}",
                    f"{max(before):.3g} -> {max(after):.3g}",
                ]
            )
    print(_table(["model", "level", "units", "median", "max"], rows))
    resnet = next((r for r in results if r["name"] == "resnet18"), None)
    all_null = _all_null(resnet["graph"]) if resnet is not None else None
    if all_null is not None:
        print("\n" + all_null)
    records = [_record(r, all_null if r is resnet else None) for r in results]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "models": records}, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
