"""Real models through ONNX: torch.onnx.export -> lift_onnx -> to_torch / to_onnx.

Each torchvision/timm model (random weights, eval, random batch-norm statistics) is exported
with a dynamic batch axis by the legacy exporter (``dynamo=False``; resnet18 and vit_tiny
also by the dynamo exporter). The lifted graph must compute what onnxruntime computes on the
exported file, both lowered to torch and written back with ``to_onnx`` (at batch 1, 2 and
4), with max |diff| <= 1e-4 * max(1, max |output|); weights keep module-path sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx_support import export_model
from torch_support import MODELS, make_model

from natopt.backends import to_onnx, to_torch
from natopt.frontends import lift
from natopt.frontends.onnx import lift_onnx

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
SLOW = {"vit_b_16"}
DYNAMO = ("resnet18", "vit_tiny_patch16_224")
CASES = [
    pytest.param(name, "legacy", marks=[pytest.mark.slow] if name in SLOW else [])
    for name in MODELS
] + [pytest.param(name, "dynamo") for name in DYNAMO]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def assert_close(expected: np.ndarray, actual: np.ndarray) -> None:
    assert expected.shape == actual.shape
    diff = float(np.abs(expected - actual).max())
    assert diff <= 1e-4 * max(1.0, float(np.abs(expected).max())), diff


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_exported_model_lifts_and_round_trips(tmp_path: Path, name: str, exporter: str):
    model, x = make_model(name)
    source = export_model(model, x, tmp_path / f"{name}.onnx", exporter)
    expected = ort_run(source, x.numpy())
    assert np.abs(expected).max() > 1e-3  # the comparisons below are not vacuous

    graph = lift_onnx(source)
    assert graph.inputs[0].shape[0] == "batch" and graph.outputs[0].shape[0] == "batch"
    with torch.no_grad():
        assert_close(expected, to_torch(graph)(x).numpy())

    written = to_onnx(graph, tmp_path / "out.onnx")
    for batch in (1, 2, 4):
        xb = torch.randn(batch, *x.shape[1:]).numpy() if batch != 2 else x.numpy()
        assert_close(ort_run(source, xb), ort_run(written, xb))

    state = model.state_dict()
    weighted = graph.find("Conv") + graph.find("Linear")
    assert weighted
    for node in weighted:
        assert node.source is not None, node.name
        assert any(key.startswith(node.source + ".") for key in state), node.source


def test_units_are_named_alike_from_torch_and_from_onnx(tmp_path: Path):
    model, x = make_model("resnet18")
    from_onnx = lift_onnx(export_model(model, x, tmp_path / "r.onnx", "legacy"))
    from_torch = lift(model, x)
    sources = {g: sorted(n.source for n in g.find("Conv")) for g in (from_onnx, from_torch)}
    assert sources[from_onnx] == sources[from_torch]
