"""Real torchvision models (random weights) exported by torch's two exporters with a dynamic
batch, lifted and checked against onnxruntime: to_torch on the export batch, to_onnx at
batches 1 and 3. They reach the ops that small toy graphs do not: ``Resize`` and
``HardSwish`` in LR-ASPP, ``LayerNormalization``, ``Gelu`` and the ``Range``/``Gather``
index arithmetic of a dynamic-batch ``permute`` in ConvNeXt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from onnx_support import assert_scaled_close, export_model, ort_run
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt

from natopt.backends import to_onnx, to_torch
from natopt.frontends.onnx import lift_onnx

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def small_convnext() -> nn.Module:
    """torchvision's ConvNeXt with convnext_tiny's blocks, narrower and shallower."""
    stages = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)]
    return ConvNeXt(stages, num_classes=10)


def lraspp() -> nn.Module:
    return torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3
    )


# name -> (constructor, input side, exporter, ops the lifted graph must contain)
MODELS: dict[str, tuple[Callable[[], nn.Module], int, str, set[str]]] = {
    "small_convnext": (small_convnext, 32, "dynamo", {"LayerNorm", "Gelu", "Range"}),
    "lraspp_mobilenet_v3_large": (lraspp, 64, "legacy", {"Resize", "HardSwish"}),
    "convnext_tiny": (
        lambda: torchvision.models.convnext_tiny(weights=None),
        64,
        "dynamo",
        {"LayerNorm", "Gelu"},
    ),
    "lraspp_dynamo": (lraspp, 64, "dynamo", {"Resize", "HardSwish"}),
}
SLOW = {"convnext_tiny", "lraspp_dynamo"}


class FirstOutput(nn.Module):
    """A segmentation model's ``{"out": ...}`` as a plain tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["out"] if isinstance(out, dict) else out


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in MODELS]
)
def test_real_model_lifts_and_round_trips(tmp_path: Path, name: str):
    build, side, exporter, ops = MODELS[name]
    torch.manual_seed(0)
    model = FirstOutput(build().eval())
    x = torch.randn(2, 3, side, side)
    source = export_model(model, x, tmp_path / f"{name}.onnx", exporter)
    feeds = {"input": x.numpy()}
    (expected,) = ort_run(source, feeds)
    assert np.abs(expected).max() > 1e-3

    graph = lift_onnx(source)
    assert ops <= set(graph.op_counts()), graph.op_counts()
    assert graph.inputs[0].shape[0] == "batch" and graph.outputs[0].shape[0] == "batch"
    with torch.no_grad():
        assert_scaled_close(expected, to_torch(graph)(x).numpy(), 1e-5)

    written = to_onnx(graph, tmp_path / "out.onnx")
    for batch in (1, 3):
        xb = {"input": torch.randn(batch, 3, side, side).numpy()}
        assert_scaled_close(ort_run(source, xb)[0], ort_run(written, xb)[0], 1e-5)
