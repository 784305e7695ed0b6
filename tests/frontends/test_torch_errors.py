"""Bad input gives one clear FrontendError; lifting leaves the user's model as it was."""

from __future__ import annotations

import operator
import time

import pytest
import torch
from torch import nn
from torch_support import assert_close

from natopt.backends import to_torch
from natopt.errors import FrontendError
from natopt.frontends import lift
from natopt.frontends.torch import lift_torch
from natopt.frontends.torch.graph_module import lift_torch_level


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(torch.relu(self.bn(self.conv(x))))
        return self.fc(y.mean(dim=(2, 3)))


def _error(model: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(FrontendError) as info:
        lift_torch(model, *args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_wrong_channel_count_names_given_and_expected_shapes():
    message = _error(_Small(), torch.randn(2, 4, 16, 16))
    assert "shape [2, 4, 16, 16] float32" in message
    assert "conv (Conv2d) expects [N, 3, H, W] float32" in message


def test_wrong_dtype_names_given_and_expected_dtypes():
    message = _error(_Small(), torch.zeros(2, 3, 16, 16, dtype=torch.int64))
    assert "int64" in message and "expects [N, 3, H, W] float32" in message


class _TwoArgs(nn.Module):
    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        return x * scale


def test_non_tensor_input_names_the_argument():
    assert "'scale'" in _error(_TwoArgs(), (torch.randn(2), 3.0))


def test_missing_example_inputs_and_unknown_model_types():
    assert "example_inputs" in _error(_Small())
    assert "cannot lift a list" in _error([1, 2])


class _Untraceable(nn.Module):
    """Python control flow on values: neither torch.export nor symbolic_trace can follow it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


def test_model_that_neither_exports_nor_traces_says_why():
    message = _error(_Untraceable(), torch.randn(2, 3))
    assert "neither exports" in message and "symbolic_trace" in message


def test_lift_restores_training_flags_and_lifts_eval_semantics():
    torch.manual_seed(0)
    model = _Small().train()
    model.bn.eval()  # a mixed state must survive as it was
    flags = {name: m.training for name, m in model.named_modules()}
    x = torch.randn(2, 3, 16, 16)
    graph = lift(model, x)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert graph.op_counts()["Dropout"] == 1
    with torch.no_grad():
        assert_close(model.eval()(x), to_torch(graph)(x))


class _Deep(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(350):
            x = torch.relu(x * 0.5 + 1.0)
        return x


def test_lifting_a_thousand_node_graph_takes_seconds():
    start = time.perf_counter()
    graph = lift_torch(_Deep(), torch.randn(2, 8))
    elapsed = time.perf_counter() - start
    assert len(graph) > 1000
    assert elapsed < 30, elapsed


def test_index_writes_in_a_torch_level_graph_are_refused_not_silently_dropped():
    """Dynamo records ``y[:, 0] = 0`` as operator.setitem; without export it cannot be lifted."""
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.call_function(operator.setitem, (x, (slice(None), 0), 0.0))
    graph.output(x)
    module = torch.fx.GraphModule(nn.Module(), graph)
    with pytest.raises(FrontendError, match="writes into a tensor by indexing"):
        lift_torch_level(module, (torch.randn(2, 3),), "setitem")
