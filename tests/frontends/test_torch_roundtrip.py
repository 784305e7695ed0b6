"""Round trip on real models: lift_torch -> to_torch computes the same function as the model.

Every model is torchvision/timm with random weights, eval mode, batch 2; each test also
checks the weights' module paths and the parameter count of the lowered module.
"""

from __future__ import annotations

import pytest
import torch
from torch_support import MODELS, assert_close, make_model, param_count

from natopt.backends import to_torch
from natopt.frontends.torch import lift_torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_same_function_sources_and_parameters(name: str):
    model, x = make_model(name)
    graph = lift_torch(model, x)
    module = to_torch(graph)
    with torch.no_grad():
        expected = model(x)
        assert expected.abs().max() > 1e-3  # the check below is not vacuous
        assert_close(expected, module(x))

    assert "Opaque" not in graph.op_counts(), [n.attrs["target"] for n in graph.find("Opaque")]
    state = model.state_dict()
    weighted = graph.find("Conv") + graph.find("Linear")
    assert weighted
    for node in weighted:
        assert node.source is not None, node.name
        keys = [f"{node.source}.{k}" for k in ("weight", "in_proj_weight")]
        assert any(k in state and torch.equal(state[k], node.weights["weight"]) for k in keys), (
            node.name,
            node.source,
        )
    assert param_count(module) == param_count(model)
