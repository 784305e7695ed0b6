"""ONNX frontend coverage on a corpus of real models, exported by both torch exporters.

Each model (random weights with random batch-norm statistics and no all-zero matrices, as in
``lift_export_times``; eval mode, batch 2, dynamic batch) is exported with
``torch.onnx.export(dynamo=True)`` and with the legacy ``dynamo=False`` (opset 17), then
``lift_onnx`` is tried on each file. A row reports whether it lifted (else the first op the
frontend does not support, or the error), the round trips' max |diff| relative to the
output's scale (max |onnxruntime output|) for ``to_torch(graph)`` and for ``to_onnx(graph)``
(both against onnxruntime on the exported file, at batch 2 and at batch 3 for ``to_onnx``),
and the export and lift times. Models: torchvision classification and segmentation, timm
families (``pretrained=False``), a detector, and, when ``transformers`` is importable, a BERT-style
encoder built from a small config. Results go to ``benchmarks/results/onnx_coverage.json``
after every model, so an interrupted run keeps what it measured.

    python benchmarks/onnx_coverage.py [--models resnet18 lraspp] [--exporters dynamo legacy]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import timm
import torch
import torchvision
from lift_export_times import randomise
from torch import nn

from natopt.backends import to_onnx, to_torch
from natopt.errors import NatoptError, UnsupportedOpError
from natopt.frontends.onnx import lift_onnx

__all__ = ["CORPUS", "Row", "measure", "main"]

RESULTS = Path(__file__).parent / "results" / "onnx_coverage.json"
_MISSING_OP = re.compile(r"op (\S+) \(node ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _clean(message: str, path: Path, limit: int = 160) -> str:
    """One line, no terminal colours, the temporary file named by its file name only."""
    text = _ANSI.sub("", " ".join(message.split())).replace(str(path), path.name)
    return text[:limit]


tv = torchvision.models
seg = torchvision.models.segmentation


def _timm(name: str) -> Callable[[], nn.Module]:
    return lambda: timm.create_model(name, pretrained=False)


def _bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    return BertModel(config)


def _image(side: int) -> Callable[[int], torch.Tensor]:
    return lambda batch: torch.randn(batch, 3, side, side)


def _tokens(batch: int) -> torch.Tensor:
    return torch.randint(0, 1000, (batch, 16))


# name -> (constructor, example input of a batch size)
CORPUS: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]] = {
    "resnet18": (lambda: tv.resnet18(weights=None), _image(64)),
    "mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(weights=None), _image(64)),
    "efficientnet_b0": (lambda: tv.efficientnet_b0(weights=None), _image(64)),
    "convnext_tiny": (lambda: tv.convnext_tiny(weights=None), _image(64)),
    "regnet_y_400mf": (lambda: tv.regnet_y_400mf(weights=None), _image(64)),
    "shufflenet_v2_x0_5": (lambda: tv.shufflenet_v2_x0_5(weights=None), _image(64)),
    "squeezenet1_1": (lambda: tv.squeezenet1_1(weights=None), _image(64)),
    "densenet121": (lambda: tv.densenet121(weights=None), _image(64)),
    "mnasnet0_5": (lambda: tv.mnasnet0_5(weights=None), _image(64)),
    "swin_t": (lambda: tv.swin_t(weights=None), _image(224)),
    "maxvit_t": (lambda: tv.maxvit_t(weights=None), _image(224)),
    "vit_b_16": (lambda: tv.vit_b_16(weights=None), _image(224)),
    "lraspp_mobilenet_v3_large": (
        lambda: seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
        _image(64),
    ),
    "deeplabv3_mobilenet_v3_large": (
        lambda: seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None),
        _image(64),
    ),
    "fcn_resnet50": (
        lambda: seg.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False),
        _image(64),
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        lambda: torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None
        ),
        _image(128),
    ),
    "timm_convnext_atto": (_timm("convnext_atto"), _image(64)),
    "timm_resnet10t": (_timm("resnet10t"), _image(64)),
    "timm_vit_tiny_patch16_224": (_timm("vit_tiny_patch16_224"), _image(224)),
    "timm_efficientvit_b0": (_timm("efficientvit_b0"), _image(64)),
    "timm_mobilevitv2_050": (_timm("mobilevitv2_050"), _image(64)),
    "timm_poolformerv2_s12": (_timm("poolformerv2_s12"), _image(64)),
    "timm_ghostnet_100": (_timm("ghostnet_100"), _image(64)),
    "timm_regnetx_002": (_timm("regnetx_002"), _image(64)),
    "timm_levit_128s": (_timm("levit_128s"), _image(224)),
    "timm_hrnet_w18_small": (_timm("hrnet_w18_small"), _image(64)),
    "timm_nf_resnet26": (_timm("nf_resnet26"), _image(64)),
    "timm_tf_efficientnet_b0": (_timm("tf_efficientnet_b0"), _image(64)),
    "timm_mixnet_s": (_timm("mixnet_s"), _image(64)),
    "timm_mobilenetv4_conv_small": (_timm("mobilenetv4_conv_small"), _image(64)),
    "timm_fastvit_t8": (_timm("fastvit_t8"), _image(64)),
    "timm_coatnet_nano_rw_224": (_timm("coatnet_nano_rw_224"), _image(224)),
    "timm_eva02_tiny_patch14_224": (_timm("eva02_tiny_patch14_224"), _image(224)),
    "bert_tiny_config": (_bert, _tokens),
}


class FirstOutput(nn.Module):
    """The main tensor of a model's output: ``{"out": ...}``, a tuple's or list's first item,
    a dict's first value (``last_hidden_state``, detection ``boxes``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        while not isinstance(out, torch.Tensor):  # detection: [{"boxes": ...}] -> boxes
            if isinstance(out, dict):
                out = out["out"] if "out" in out else next(iter(out.values()))
            else:
                out = out[0]
        return out


@dataclass(slots=True)
class Row:
    model: str
    exporter: str
    lifted: bool
    missing_op: str | None = None
    error: str | None = None
    nodes: int | None = None
    output_scale: float | None = None
    to_torch_rel_diff: float | None = None
    to_onnx_rel_diff: float | None = None
    export_s: float | None = None
    lift_s: float | None = None


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, x: torch.Tensor) -> np.ndarray:
    session = _session(path)
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _rel(expected: np.ndarray, actual: np.ndarray) -> float:
    if expected.shape != actual.shape:
        return float("inf")
    scale = max(float(np.abs(expected).max()), 1e-12)
    return float(np.abs(expected.astype(np.float64) - actual).max()) / scale


def _export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                (x,),
                path,
                dynamo=True,
                input_names=["input"],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                (x,),
                path,
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["out"],
                dynamic_axes={"input": {0: "batch"}, "out": {0: "batch"}},
            )


def measure(name: str, exporter: str, folder: Path) -> Row:
    """Export ``name`` with ``exporter``, lift it and check both round trips."""
    build, example = CORPUS[name]
    torch.manual_seed(0)
    model = FirstOutput(randomise(build().eval()))
    x, x3 = example(2), example(3)
    path = folder / f"{name}.{exporter}.onnx"
    row = Row(name, exporter, lifted=False)
    start = time.perf_counter()
    try:
        _export(model, x, path, exporter)
    except Exception as exc:  # an exporter failure is a row, not a crash
        row.error = f"export failed: {_clean(str(exc), path)}"
        return row
    row.export_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        graph = lift_onnx(path)
    except UnsupportedOpError as exc:
        found = _MISSING_OP.search(str(exc))
        row.missing_op = found.group(1) if found else None
        row.error = _clean(str(exc).split("; supported ops")[0], path, 200)
        return row
    except NatoptError as exc:
        row.error = _clean(str(exc), path, 200)
        return row
    except Exception as exc:  # a natopt bug: recorded, and the corpus goes on
        row.error = f"lift crashed: {type(exc).__name__}: {_clean(str(exc), path)}"
        return row
    row.lift_s = time.perf_counter() - start
    row.lifted, row.nodes = True, len(graph)
    expected = _run(path, x)
    row.output_scale = float(np.abs(expected).max())
    try:
        with torch.no_grad():
            row.to_torch_rel_diff = _rel(expected, to_torch(graph)(x).numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = to_onnx(graph, folder / f"{name}.{exporter}.out.onnx")
        row.to_onnx_rel_diff = max(
            _rel(expected, _run(written, x)), _rel(_run(path, x3), _run(written, x3))
        )
    except Exception as exc:  # a failed round trip is a row, not a crash
        row.error = f"round trip failed: {type(exc).__name__}: {_clean(str(exc), path)}"
    return row


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    header = ["model", "exporter", "lifted", "to_torch rel diff", "to_onnx rel diff"]
    header += ["export s", "lift s"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        status = "yes" if r.lifted else f"no: {r.missing_op or r.error}"
        if r.lifted and r.error:
            status = f"yes; {r.error}"
        cells = [
            r.model,
            r.exporter,
            status,
            *(
                f"{d:.1e}" if d is not None else ""
                for d in (r.to_torch_rel_diff, r.to_onnx_rel_diff)
            ),
            *(f"{t:.1f}" if t is not None else "" for t in (r.export_s, r.lift_s)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _available(name: str) -> bool:
    if name != "bert_tiny_config":
        return True
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CORPUS), choices=list(CORPUS))
    parser.add_argument("--exporters", nargs="+", default=["dynamo", "legacy"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows: list[Row] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            if not _available(name):
                print(f"skip {name}: transformers is not installed", flush=True)
                continue
            for exporter in args.exporters:
                rows.append(measure(name, exporter, Path(folder)))
                print(f"done {name} {exporter}: {rows[-1]}", flush=True)
                args.out.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
