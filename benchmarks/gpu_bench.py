"""Latency of torchvision models (and optional original/optimised ONNX pairs) with natopt.bench.

Exports resnet18, mobilenet_v2 and efficientnet_b0 (``weights=None``, eval, dynamic batch)
to ONNX in a temporary folder, benchmarks each at every ``--batch`` on the CUDA execution
provider when onnxruntime has one (on CPU otherwise, and it says so), benchmarks every
``--pair ORIGINAL.onnx OPTIMIZED.onnx`` interleaved, then prints a Markdown table and writes
one bench JSON per run plus ``report.md`` to ``--out``::

    python benchmarks/gpu_bench.py --batch 1 --batch 32 --pair resnet18.onnx resnet18.opt.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from natopt._files import write_whole
from natopt.bench import BenchResult, available_providers, bench_models, render_markdown
from natopt.errors import BenchError, NatoptError

__all__ = ["MODELS", "export_torchvision", "main"]

MODELS = ("resnet18", "mobilenet_v2", "efficientnet_b0")


def export_torchvision(name: str, folder: Path, image_size: int) -> Path:
    """Export torchvision ``name`` (random weights, eval) with a dynamic batch axis."""
    import torch
    import torchvision

    model = getattr(torchvision.models, name)(weights=None).eval()
    path = folder / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            model,
            (torch.randn(1, 3, image_size, image_size),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: models, batch sizes, ONNX pairs, bench limits, output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, action="append", help="repeatable (default 1)")
    parser.add_argument(
        "--pair",
        nargs=2,
        action="append",
        default=[],
        type=Path,
        metavar=("ORIGINAL", "OPTIMIZED"),
        help="repeatable",
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Export, benchmark, print the table and write the JSON and Markdown."""
    args = parse_args(argv)
    batches = args.batch or [1]
    if "CUDAExecutionProvider" not in available_providers():
        print(
            "gpu_bench: no CUDA execution provider here (no GPU or no onnxruntime-gpu); "
            "running on CPU",
            file=sys.stderr,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    options = {
        "threads": args.threads,
        "provider": args.provider,
        "warmup": args.warmup,
        "min_runs": args.min_runs,
        "max_seconds": args.max_seconds,
    }
    results: list[BenchResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="natopt-bench-") as folder:
            for name in args.models:
                path = export_torchvision(name, Path(folder), args.image_size)
                for batch in batches:
                    result = bench_models([path], batch=batch, **options)
                    results.append(_save(result, args.out / f"{name}_b{batch}.json"))
            for index, (original, optimized) in enumerate(args.pair):
                for batch in batches:
                    result = bench_models([original, optimized], batch=batch, **options)
                    results.append(_save(result, args.out / f"pair{index}_b{batch}.json"))
    except NatoptError as exc:
        print(f"gpu_bench: error: {exc}", file=sys.stderr)
        return 2
    markdown = render_markdown(results)
    print(markdown)
    try:
        write_whole(args.out / "report.md", markdown, BenchError)
    except NatoptError as exc:
        print(f"gpu_bench: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(results)} JSON files and report.md to {args.out}")
    return 0


def _save(result: BenchResult, path: Path) -> BenchResult:
    write_whole(path, json.dumps(result.to_dict(), indent=2) + "\n", BenchError)
    return result


if __name__ == "__main__":
    sys.exit(main())
