"""A toy problem for the fine-tuning rungs and their executors: two residual convolution
branches on 8x8 inputs (fine-tuning it a few steps takes milliseconds), its search problem
on random inputs, and a pool of four plans (the refit order is not the fine-tuned one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from natopt.frontends import lift
from natopt.passes import canonicalize
from natopt.passes.calibration import ActivationCache
from natopt.passes.transitions import compute_mask, vocabulary_for
from natopt.pipeline.data import Dataset, Splits
from natopt.pipeline.problem import SearchProblem


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.a(x)
        x = x + self.b(x)
        return self.head(torch.flatten(x, 1))


@pytest.fixture
def toy_model() -> nn.Module:
    return ToyNet().eval()


@pytest.fixture(scope="module")
def problem() -> SearchProblem:
    graph = canonicalize(lift(ToyNet().eval(), torch.randn(2, 1, 8, 8)))
    x = np.random.default_rng(0).normal(size=(96, 1, 8, 8)).astype(np.float32)
    data = Dataset([x])
    mask = compute_mask(graph, vocabulary_for("nat"))
    calibration = ActivationCache([[torch.from_numpy(x[:32])]])
    return SearchProblem(graph, mask, Splits(data, data, data, data), None, 0.005, calibration)


@pytest.fixture
def pool() -> list[dict[str, str]]:
    return [
        {"a:branch": "null"},
        {"b:branch": "null"},
        {"a": "skip"},
        {"a:branch": "null", "b:branch": "null"},
    ]
