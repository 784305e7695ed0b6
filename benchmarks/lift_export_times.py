"""Lift and export times of the torch and ONNX frontends and the ONNX backend on real models.

For torchvision resnet18, mobilenet_v2, mobilenet_v3_small, efficientnet_b0, vit_b_16 and
timm convnext_atto, resnet10t, vit_tiny_patch16_224 (random weights, eval, batch-norm
statistics randomised, zero-initialised matrices redrawn; 224x224 input, batch 2) this times
(best of ``--repeat``, one thread):

- ``lift torch``: ``lift_torch(model, x, dynamic_batch=True)``;
- ``lift onnx``: ``lift_onnx`` of the model exported by ``torch.onnx.export(dynamo=False)``
  with a dynamic batch (the export itself is not timed);
- ``to_onnx``: ``to_onnx`` of the torch-lifted graph;

and reports onnxruntime's max |diff| against the torch model for both ``to_onnx`` files
(from the torch lift and from the ONNX lift), relative to max |output| in brackets.

The rows also go to ``benchmarks/results/lift_export_times.json`` (``--out``).

    python benchmarks/lift_export_times.py [--models resnet18 vit_tiny_patch16_224] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import timm
import torch
import torchvision
from torch import nn

from natopt.backends import to_onnx
from natopt.frontends.onnx import lift_onnx
from natopt.frontends.torch import lift_torch

RESULTS = Path(__file__).parent / "results" / "lift_export_times.json"

__all__ = ["MODELS", "build", "randomise", "main"]

MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(weights=None),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(weights=None),
    "vit_b_16": lambda: torchvision.models.vit_b_16(weights=None),
    "convnext_atto": lambda: timm.create_model("convnext_atto", pretrained=False),
    "resnet10t": lambda: timm.create_model("resnet10t", pretrained=False),
    "vit_tiny_patch16_224": lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False),
}


def build(name: str) -> nn.Module:
    """The model in eval mode with random statistics, so every layer shows in its output."""
    torch.manual_seed(0)
    return randomise(MODELS[name]().eval())


def randomise(model: nn.Module) -> nn.Module:
    """Random batch-norm statistics and redrawn all-zero matrices (classifier heads)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.normal_(std=0.02)
    return model


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def ort_output(path: Path, x: torch.Tensor) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def measure(name: str, folder: Path, repeat: int) -> dict:
    model = build(name)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x).numpy()
    scale = max(1.0, float(np.abs(expected).max()))

    lift_torch_s, torch_graph = best_time(lambda: lift_torch(model, x, dynamic_batch=True), repeat)
    exported = folder / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            exported,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    lift_onnx_s, onnx_graph = best_time(lambda: lift_onnx(exported), repeat)
    to_onnx_s, from_torch = best_time(
        lambda: to_onnx(torch_graph, folder / f"{name}.torch.onnx"), repeat
    )
    from_onnx = to_onnx(onnx_graph, folder / f"{name}.lifted.onnx")
    diffs = [float(np.abs(ort_output(p, x) - expected).max()) for p in (from_torch, from_onnx)]
    return {
        "model": name,
        "nodes_torch": len(torch_graph),
        "nodes_onnx": len(onnx_graph),
        "lift_torch_s": lift_torch_s,
        "lift_onnx_s": lift_onnx_s,
        "to_onnx_s": to_onnx_s,
        "output_scale": scale,
        "ort_max_diff_torch_lift": diffs[0],
        "ort_max_diff_onnx_lift": diffs[1],
    }


def _cells(row: dict) -> list[str]:
    scale = row["output_scale"]
    diffs = (row["ort_max_diff_torch_lift"], row["ort_max_diff_onnx_lift"])
    return [
        row["model"],
        f"{row['nodes_torch']}/{row['nodes_onnx']}",
        f"{row['lift_torch_s']:.2f}",
        f"{row['lift_onnx_s']:.2f}",
        f"{row['to_onnx_s']:.2f}",
        *(f"{d:.1e} ({d / scale:.0e})" for d in diffs),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeat", type=int, default=2, help="timings are the best of N runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON of the measured rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    header = [
        "model",
        "nodes (torch/onnx)",
        "lift torch s",
        "lift onnx s",
        "to_onnx s",
        "ORT max diff, torch lift",
        "ORT max diff, onnx lift",
    ]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            rows.append(measure(name, Path(folder), args.repeat))
            print(f"done {name}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeat": args.repeat, "rows": rows}, indent=1) + "\n")
    cells = [_cells(row) for row in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *cells]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
