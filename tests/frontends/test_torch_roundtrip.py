"""Round trip: lift_torch -> to_torch computes the same function as the original model."""

from __future__ import annotations

import pytest
import torch
import torchvision

from natopt.backends import to_torch
from natopt.frontends.torch import lift_torch


def _close(expected: torch.Tensor, actual: torch.Tensor) -> float:
    """Max abs difference, asserted <= 1e-4 * max(1, max |expected|)."""
    diff = (expected - actual).abs().max().item()
    assert diff <= 1e-4 * max(1.0, expected.abs().max().item()), diff
    return diff


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resnet18_round_trip_weights_and_sources():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    graph = lift_torch(model, x)
    module = to_torch(graph)
    with torch.no_grad():
        _close(model(x), module(x))
    assert graph.op_counts()["Conv"] == 20
    assert {n.source for n in graph.find("Conv")} >= {
        "conv1",
        "layer1.0.conv2",
        "layer4.0.downsample.0",
    }
    assert graph.find("Linear")[0].source == "fc"
    count = sum(p.numel() for p in module.parameters())
    assert count == sum(p.numel() for p in model.parameters())
