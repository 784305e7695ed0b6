"""dynamic_batch: dim 0 stays the symbol "batch" and the lowered module runs at any batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_support import assert_close, make_model

from natopt.backends import to_torch
from natopt.errors import FrontendError
from natopt.frontends.torch import lift_torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_dynamic_batch_lift_runs_at_other_batch_sizes(name: str):
    model, x = make_model(name)
    graph = lift_torch(model, x, dynamic_batch=True)
    assert graph.inputs[0].shape == ("batch", *x.shape[1:])
    assert graph.outputs[0].shape == ("batch", 1000)
    module = to_torch(graph)
    for batch in (1, 3):
        sample = torch.randn(batch, *x.shape[1:])
        with torch.no_grad():
            assert_close(model(sample), module(sample))


class _Tokens(nn.Module):
    """Folds the batch into the token dim and back (a vit-like reshape of the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.cls = nn.Parameter(torch.randn(1, 1, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        y = self.fc(x.reshape(batch * tokens, width)).view(batch, tokens, width)
        y = torch.cat([self.cls.expand(batch, -1, -1), y], dim=1)
        return y.reshape(batch, tokens + 1, 3, 2)


def test_symbolic_products_and_run_time_targets():
    torch.manual_seed(0)
    model = _Tokens().eval()
    graph = lift_torch(model, torch.randn(2, 4, 6), dynamic_batch=True)
    shapes = {v.shape for v in graph.values()}
    assert ("batch*4", 6) in shapes
    assert ("batch", 5, 6) in shapes
    targets = [n.attrs["shape"] for n in graph.find("Reshape")]
    assert targets == [(-1, 6), (-1, 4, 6), (0, 5, 3, 2)]  # 0 copies the batch, -1 infers it
    assert graph.find("Expand")[0].inputs[1] is not None  # target computed at run time
    module = to_torch(graph)
    for batch in (1, 3, 5):
        x = torch.randn(batch, 4, 6)
        with torch.no_grad():
            assert_close(model(x), module(x))


class _FixedBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(2, -1)


def test_dynamic_batch_on_a_model_that_fixes_its_batch_is_an_error():
    with pytest.raises(FrontendError, match="dynamic_batch"):
        lift_torch(_FixedBatch(), torch.randn(2, 3), dynamic_batch=True)


def test_exported_program_keeps_its_symbolic_batch_and_refuses_a_static_one():
    model, x = make_model("resnet10t")
    batch = torch.export.Dim("n")
    dynamic = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    graph = lift_torch(dynamic, dynamic_batch=True)
    assert graph.inputs[0].shape == ("batch", 3, 64, 64)
    sample = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert_close(model(sample), to_torch(graph)(sample))
    with pytest.raises(FrontendError, match="static batch"):
        lift_torch(torch.export.export(model, (x,)), dynamic_batch=True)
