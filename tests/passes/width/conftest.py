"""Models and toy graphs for the width tests: real torchvision/timm graphs (random weights,
small inputs, canonicalised) and a tiny IR builder with seeded weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from natopt.frontends.torch import lift_torch
from natopt.ir import Graph, Value, infer_node
from natopt.passes import canonicalize

TIMM = ("convnext_atto", "vit_tiny_patch16_224")
SIZES = {"vit_tiny_patch16_224": 224}
EXAMPLE = Path(__file__).resolve().parents[3] / "natopt" / "data"


def lifted(name: str) -> Graph:
    """``name`` from torchvision (or timm), random weights, lifted and canonicalised."""
    torch.manual_seed(0)
    if name in TIMM:
        timm = pytest.importorskip("timm")
        model = timm.create_model(name, pretrained=False).eval()
    else:
        torchvision = pytest.importorskip("torchvision")
        model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():  # zero-initialised heads would make every output the same
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                torch.nn.init.normal_(param, std=0.02)
    size = SIZES.get(name, 64)
    return canonicalize(lift_torch(model, torch.randn(1, 3, size, size)))


@pytest.fixture(scope="session")
def resnet18() -> Graph:
    return lifted("resnet18")


@pytest.fixture(scope="session")
def mobilenet_v2() -> Graph:
    return lifted("mobilenet_v2")


@pytest.fixture(scope="session")
def example() -> tuple[Graph, list[torch.Tensor], np.ndarray, np.ndarray]:
    """The shipped MNIST example: graph, 4 calibration batches of 64 held-out training
    images, and 512 test images with labels."""
    from natopt.frontends.onnx import lift_onnx

    onnx_path, data_path = EXAMPLE / "example_mnist.onnx", EXAMPLE / "example_mnist.npz"
    if not onnx_path.is_file() or not data_path.is_file():
        pytest.skip("the shipped MNIST example is not built")
    graph = canonicalize(lift_onnx(onnx_path))
    with np.load(data_path) as data:
        x, x_test, y_test = data["x"][:256], data["x_test"][:512], data["y_test"][:512]
    batches = [torch.from_numpy(x[i : i + 64]) for i in range(0, 256, 64)]
    return graph, batches, x_test, y_test


class Toy:
    """Adds ops to one graph with inferred shapes and seeded random weights."""

    def __init__(self, shape: tuple[int | str, ...] = (2, 4, 6, 6), seed: int = 0) -> None:
        self.graph = Graph("toy")
        self.x = self.graph.add_input("x", shape)
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen) * 0.3

    def op(self, op: str, *inputs: Value, weights=None, source=None, **attrs) -> Value:
        node = self.graph.add_node(op, list(inputs), attrs, weights, source=source)
        infer_node(node)
        return node.output

    def conv(self, x: Value, c_out: int, k: int = 3, *, groups: int = 1, name: str) -> Value:
        c_in = int(x.shape[1])
        weights = {"weight": self.randn(c_out, c_in // groups, k, k), "bias": self.randn(c_out)}
        attrs = {"padding": (k // 2, k // 2), "groups": groups}
        return self.op("Conv", x, weights=weights, source=name, **attrs)

    def linear(self, x: Value, out: int, *, name: str) -> Value:
        weights = {"weight": self.randn(out, int(x.shape[-1])), "bias": self.randn(out)}
        return self.op("Linear", x, weights=weights, source=name)

    def constant(self, tensor: torch.Tensor, name: str) -> Value:
        return self.op("Constant", weights={"value": tensor}, source=name)

    def done(self, *outputs: Value) -> Graph:
        self.graph.set_outputs(outputs)
        return self.graph


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def toy() -> type[Toy]:
    return Toy


@pytest.fixture(scope="session")
def lift():
    """``lift(name)``: the canonical graph of a torchvision / timm model (see ``lifted``)."""
    return lifted
