"""ONNX frontend coverage on a corpus of real models, exported by both torch exporters.

Each model (random weights with random batch-norm statistics and no all-zero matrices, as in
``lift_export_times``; eval mode, batch 2, dynamic batch) is exported with
``torch.onnx.export(dynamo=True)`` and with the legacy ``dynamo=False`` (opset 17), then
``lift_onnx`` is tried on each file. A row reports whether it lifted (else the first op the
frontend does not support, or the error), the round trips' max |diff| relative to the
output's scale (max |onnxruntime output|) for ``to_torch(graph)`` and for ``to_onnx(graph)``
(both against onnxruntime on the exported file, at batch 2 and at batch 3 for ``to_onnx``),
and the export and lift times. Models: every torchvision classification and segmentation
model (``torchvision.models.list_models``), a detector, 25 timm families (``pretrained=False``)
and, when ``transformers`` is importable, a BERT-style encoder built from a small config.
Results go to ``benchmarks/results/onnx_coverage.json``
after every model, so an interrupted run keeps what it measured; ``--resume`` then measures
only what is missing.

    python benchmarks/onnx_coverage.py [--models resnet18 lraspp] [--exporters dynamo legacy]
        [--resume]
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


# Input side per torchvision model: 64 px keeps the big CNNs cheap; models whose position
# embeddings or window partitions fix the size run at it, Inception v3 needs 75 px or more, and
# AlexNet and VGG pool adaptively to 6x6 and 7x7, which the legacy exporter supports only as a
# whole-factor reduction of their 224-px feature maps.
_TV_SIDE = {"inception_v3": 299}
_FIXED_SIZE = ("vit_", "swin_", "maxvit_", "alexnet", "vgg")


def _tv_side(name: str) -> int:
    if name in _TV_SIDE:
        return _TV_SIDE[name]
    return 224 if name.startswith(_FIXED_SIZE) else 64


def _tv_classifier(name: str) -> Callable[[], nn.Module]:
    # the auxiliary heads run only in training; init_weights=False skips a slow scipy init
    aux = name in ("googlenet", "inception_v3")
    extra = {"aux_logits": False, "init_weights": False} if aux else {}
    return lambda: tv.get_model(name, weights=None, **extra)


def _tv_segmentation(name: str) -> Callable[[], nn.Module]:
    extra = {} if name.startswith("lraspp") else {"aux_loss": False}
    return lambda: seg.__dict__[name](weights=None, weights_backbone=None, **extra)


# timm families (one model each; pretrained=False), with the side each one needs
TIMM = {
    "convnext_atto": 64,
    "resnet10t": 64,
    "vit_tiny_patch16_224": 224,
    "efficientvit_b0": 64,
    "mobilevitv2_050": 64,
    "poolformerv2_s12": 64,
    "ghostnet_100": 64,
    "regnetx_002": 64,
    "levit_128s": 224,
    "hrnet_w18_small": 64,
    "nf_resnet26": 64,
    "tf_efficientnet_b0": 64,
    "mixnet_s": 64,
    "mobilenetv4_conv_small": 64,
    "fastvit_t8": 64,
    "coatnet_nano_rw_224": 224,
    "eva02_tiny_patch14_224": 224,
    "repvit_m0_9": 64,
    "edgenext_xx_small": 64,
    "tiny_vit_5m_224": 224,
    "rexnet_100": 64,
    "dla34": 64,
    "cspresnet50": 64,
    "mobileone_s0": 64,
    "deit_tiny_patch16_224": 224,
}


def _corpus() -> dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]]:
    """name -> (constructor, example input of a batch size): every torchvision classification
    and segmentation model, a detector, the timm families and the BERT encoder."""
    corpus: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]] = {}
    for name in torchvision.models.list_models(module=tv):
        corpus[name] = (_tv_classifier(name), _image(_tv_side(name)))
    for name in torchvision.models.list_models(module=seg):
        corpus[name] = (_tv_segmentation(name), _image(64))
    corpus["fasterrcnn_mobilenet_v3_large_320_fpn"] = (
        lambda: torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None
        ),
        _image(128),
    )
    for name, side in TIMM.items():
        corpus[f"timm_{name}"] = (_timm(name), _image(side))
    corpus["bert_tiny_config"] = (_bert, _tokens)
    return corpus


CORPUS = _corpus()


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
                str(path),  # a str: past 2 GiB the legacy exporter writes external data only then
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


def _cell(row: Row | None) -> str:
    """One exporter's outcome in a word and the worst round-trip difference."""
    if row is None:
        return "not run"
    if not row.lifted:
        return f"no: {row.missing_op or row.error}"
    worst = max(d for d in (row.to_torch_rel_diff, row.to_onnx_rel_diff) if d is not None)
    return f"yes ({worst:.0e})" + (f"; {row.error}" if row.error else "")


def summary(rows: list[Row]) -> str:
    """One line per model, one column per exporter (the README's table)."""
    by_model: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_model.setdefault(r.model, {})[r.exporter] = r
    lines = ["| model | dynamo | legacy |", "| --- | --- | --- |"]
    for model, found in by_model.items():
        label = model.replace("timm_", "timm ", 1)
        lines.append(f"| {label} | {_cell(found.get('dynamo'))} | {_cell(found.get('legacy'))} |")
    passed = sum(
        r.lifted and not r.error and max(r.to_torch_rel_diff or 0, r.to_onnx_rel_diff or 0) <= 1e-4
        for r in rows
    )
    models = len(by_model)
    lines.append(f"\n{passed} of {len(rows)} exports of {models} models round-trip within 1e-4")
    return "\n".join(lines)


def _available(name: str) -> bool:
    if name != "bert_tiny_config":
        return True
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _saved(path: Path) -> dict[tuple[str, str], Row]:
    """The rows of an earlier run's JSON, by (model, exporter); none when there is no file."""
    if not path.exists():
        return {}
    return {(r["model"], r["exporter"]): Row(**r) for r in json.loads(path.read_text())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, choices=list(CORPUS))
    parser.add_argument("--exporters", nargs="+", default=["dynamo", "legacy"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --out; measure the models named by --models and, of the "
        "others, only the missing (model, exporter)s",
    )
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=list(CORPUS), help="models to leave out"
    )
    args = parser.parse_args(argv)
    named = set(args.models or ())
    args.models = args.models or list(CORPUS)
    torch.set_num_threads(1)
    kept = _saved(args.out) if args.resume else {}
    rows: dict[tuple[str, str], Row] = dict(kept)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    order = {name: i for i, name in enumerate(CORPUS)}

    def ordered() -> list[Row]:  # corpus order, whatever order they were measured in
        return sorted(rows.values(), key=lambda r: (order.get(r.model, len(order)), r.exporter))

    for name in args.models:
        if name in args.skip:
            continue
        if not _available(name):
            print(f"skip {name}: transformers is not installed", flush=True)
            continue
        for exporter in args.exporters:
            if (name, exporter) in kept and name not in named:
                continue
            with tempfile.TemporaryDirectory() as folder:  # big models' files go at once
                row = measure(name, exporter, Path(folder))
            rows[(name, exporter)] = row
            print(f"done {name} {exporter}: {row}", flush=True)
            args.out.write_text(json.dumps([asdict(r) for r in ordered()], indent=1) + "\n")
    print(table(ordered()))
    print()
    print(summary(ordered()))


if __name__ == "__main__":
    main()
