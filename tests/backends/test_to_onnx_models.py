"""to_onnx of real models lifted by the torch frontend (dynamic batch) vs the torch model.

Every model is torchvision/timm with random weights and random batch-norm statistics, eval
mode; the ONNX file must be emitted op by op (no torch-exporter fallback), keep the batch
symbolic, and match the model at batch 1, 2 and 4 within 1e-4 * max(1, max |output|).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "frontends"))  # the shared model zoo
from torch_support import MODELS, make_model  # noqa: E402

from natopt.backends import to_onnx  # noqa: E402
from natopt.frontends import lift  # noqa: E402

CASES = [
    pytest.param(name, marks=[pytest.mark.slow] if name == "vit_b_16" else []) for name in MODELS
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", CASES)
def test_torch_lifted_graph_to_onnx_matches_the_model(tmp_path: Path, name: str):
    model, x = make_model(name)
    graph = lift(model, x, dynamic_batch=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = to_onnx(graph, tmp_path / f"{name}.onnx")
    assert not [w for w in caught if "torch.onnx.export" in str(w.message)]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 2, 4):
        xb = x if batch == 2 else torch.randn(batch, *x.shape[1:])
        with torch.no_grad():
            expected = model(xb).numpy()
        assert np.abs(expected).max() > 1e-3
        got = session.run(None, {session.get_inputs()[0].name: xb.numpy()})[0]
        assert got.shape == expected.shape
        diff = float(np.abs(got - expected).max())
        assert diff <= 1e-4 * max(1.0, float(np.abs(expected).max())), diff
