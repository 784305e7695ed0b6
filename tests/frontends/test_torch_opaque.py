"""Ops without an IR mapping become Opaque nodes that keep the original callable and run."""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch_support import assert_close, param_count

from natopt.backends import to_torch
from natopt.frontends.torch import lift_torch
from natopt.frontends.torch.graph_module import lift_torch_level
from natopt.ir import InputRef, run_graph


class _Unmapped(nn.Module):
    """cumsum, flip and sort (a two-result op) have no IR op; PReLU has a weight."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.PReLU(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        y = torch.cumsum(y, dim=1) + torch.flip(y, dims=[3])
        values, indices = torch.sort(y, dim=-1)
        return values * indices.float()


def test_unmapped_aten_ops_are_opaque_and_the_model_still_runs():
    torch.manual_seed(0)
    model = _Unmapped().eval()
    x = torch.randn(2, 3, 6, 6)
    graph = lift_torch(model, x)
    aten = torch.ops.aten
    targets = {n.attrs["target"] for n in graph.find("Opaque")}
    assert {aten.cumsum.default, aten.flip.default, aten.sort.default} <= targets
    cumsum = next(n for n in graph.find("Opaque") if n.attrs["target"] is aten.cumsum.default)
    assert cumsum.attrs["args"] == (InputRef(0), 1)
    sort = next(n for n in graph.find("Opaque") if n.attrs["target"] is aten.sort.default)
    assert len(sort.outputs) == 2 and sort.outputs[1].dtype == "int64"
    assert graph.find("Conv")[0].source == "conv"
    module = to_torch(graph)
    with torch.no_grad():
        expected = model(x)
        assert_close(expected, module(x))
        assert_close(expected, run_graph(graph, [x])[0])
    assert param_count(module) == param_count(model)  # the PReLU weight stays a parameter


def test_unknown_module_in_a_traced_graph_keeps_its_parameters():
    torch.manual_seed(0)
    model = _Unmapped().eval()
    x = torch.randn(2, 3, 6, 6)
    graph = lift_torch_level(fx.symbolic_trace(model), (x,), "traced")
    prelu = next(n for n in graph.find("Opaque") if "PReLU" in repr(n.attrs["target"]))
    constant = prelu.inputs[0].producer
    assert constant.op == "Constant" and constant.meta["trainable"] is True
    assert constant.source == "act"
    module = to_torch(graph)
    with torch.no_grad():
        assert_close(model(x), module(x))
    assert param_count(module) == param_count(model)


class _ComputedWeight(nn.Module):
    """A convolution whose weight is computed in the graph cannot be a Conv node."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * 0.5, padding=1)


def test_convolution_with_a_computed_weight_is_opaque():
    torch.manual_seed(0)
    model = _ComputedWeight().eval()
    x = torch.randn(1, 3, 5, 5)
    graph = lift_torch(model, x)
    assert not graph.find("Conv")
    assert [n.attrs["target"] for n in graph.find("Opaque")] == [torch.ops.aten.conv2d.default]
    with torch.no_grad():
        assert_close(model(x), to_torch(graph)(x))


class _WritesThroughViews(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x).clone()
        y[:, 0] = 0.0
        y[:, 1:3].mul_(2.0)
        return torch.relu_(y)


def test_in_place_writes_through_views_keep_their_meaning():
    torch.manual_seed(0)
    model = _WritesThroughViews().eval()
    x = torch.randn(3, 4)
    graph = lift_torch(model, x)
    with torch.no_grad():
        assert_close(model(x), to_torch(graph)(x))
        assert_close(model(x), run_graph(graph, [x])[0])
