"""The ways a torch model reaches the frontend: ExportedProgram, symbolic_trace GraphModule,
a module that only traces, and a GraphModule captured by torch.compile (dynamo)."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn
from torch_support import assert_close, make_model, param_count

from natopt.backends import to_torch
from natopt.frontends.torch import lift_torch
from natopt.frontends.torch.graph_module import (
    INPUT_POSITIONS,
    dynamo_path,
    dynamo_stored_inputs,
    lift_torch_level,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(graph, *inputs):
    with torch.no_grad():
        return to_torch(graph)(*inputs)


def test_exported_program_binds_parameters_buffers_and_sources():
    model, x = make_model("resnet18")
    program = torch.export.export(model, (x,))
    graph = lift_torch(program)
    with torch.no_grad():
        assert_close(model(x), _run(graph, x))
    bn = graph.find("BatchNorm")[0]
    assert bn.source == "bn1"
    assert torch.equal(bn.weights["running_var"], model.bn1.running_var)
    assert [v.shape for v in graph.inputs] == [(2, 3, 64, 64)]


class _ScaledEmbedding(nn.Module):
    """A parameter used as an activation (like a class token) and a constant tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.token = nn.Parameter(torch.randn(1, 1, 8))
        self.register_buffer("offset", torch.full((8,), 0.5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.cat([self.token.expand(x.shape[0], -1, -1), self.proj(x)], dim=1)
        return tokens + self.offset, tokens.mean(dim=1)


def test_parameters_used_as_activations_become_constants_and_tuples_lift():
    torch.manual_seed(0)
    model = _ScaledEmbedding().eval()
    x = torch.randn(2, 5, 8)
    graph = lift_torch(model, x)
    constants = {n.source: n for n in graph.find("Constant")}
    assert constants["token"].meta["trainable"] is True
    assert constants["offset"].meta["trainable"] is False
    assert graph.find("Linear")[0].source == "proj"
    assert len(graph.outputs) == 2
    expected, got = model(x), _run(graph, x)
    for want, have in zip(expected, got, strict=True):
        assert_close(want, have)
    assert param_count(to_torch(graph)) == param_count(model)


def test_symbolic_trace_graph_module_exports_and_round_trips():
    model, x = make_model("mobilenet_v3_small")
    traced = fx.symbolic_trace(model)
    graph = lift_torch(traced, x)
    assert "Opaque" not in graph.op_counts()
    assert graph.find("Conv")[0].source == "features.0.0"
    with torch.no_grad():
        assert_close(model(x), _run(graph, x))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "convnext_atto"])
def test_torch_level_table_lifts_traced_models_without_opaque(name: str):
    model, x = make_model(name)
    graph = lift_torch_level(fx.symbolic_trace(model), (x,), name)
    assert "Opaque" not in graph.op_counts()
    assert all(n.source for n in graph.find("Conv") + graph.find("Linear"))
    module = to_torch(graph)
    with torch.no_grad():
        assert_close(model(x), module(x))
    assert param_count(module) == param_count(model)


@fx.wrap
def _branchy(x: torch.Tensor) -> torch.Tensor:
    """Data-dependent control flow: torch.export refuses it, symbolic_trace keeps it a leaf."""
    if x.sum() > 0:
        return x * 2.0
    return x - 1.0


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = _branchy(y)
        return self.fc(y.mean(dim=(2, 3)))


def test_module_that_does_not_export_is_traced_and_keeps_the_branch_opaque():
    torch.manual_seed(0)
    model = _Branchy().eval()
    x = torch.randn(2, 3, 8, 8)
    graph = lift_torch(model, x)
    assert [n.attrs["target"] for n in graph.find("Opaque")] == [_branchy]
    assert graph.find("Conv")[0].source == "conv"
    assert graph.find("BatchNorm")[0].source == "bn"
    module = to_torch(graph)
    with torch.no_grad():
        for sample in (x, -x.abs() - 1.0):  # both branches
            assert_close(model(sample), module(sample))


def test_dynamo_names_map_to_module_paths():
    name = "L_self_modules_layer1_modules_0_modules_conv1_parameters_weight_"
    assert dynamo_path(name) == "layer1.0.conv1.weight"
    assert dynamo_path("L_self_parameters_class_token_") == "class_token"
    assert dynamo_path("L_x_") is None


def _capture(model: nn.Module, x: torch.Tensor) -> tuple[fx.GraphModule, list]:
    captured: dict = {}

    def backend(gm: fx.GraphModule, example_inputs: list) -> object:
        captured["gm"], captured["inputs"] = gm, example_inputs
        return gm.forward

    torch._dynamo.reset()
    torch.compile(model, backend=backend)(x)
    return captured["gm"], captured["inputs"]


def _natopt_backend(lifted: dict, **options: object):
    """A torch.compile backend: lift the graph, lower it, route the user inputs to it."""

    def backend(gm: fx.GraphModule, example_inputs: list) -> object:
        graph = lift_torch(gm, example_inputs, **options)
        module = to_torch(graph)
        positions = graph.meta[INPUT_POSITIONS]
        lifted["graph"], lifted["module"] = graph, module

        def run(*args: torch.Tensor) -> tuple:
            out = module(*[args[i] for i in positions])
            return out if isinstance(out, tuple) else (out,)

        return run

    return backend


def test_dynamo_backend_lifts_and_runs_the_captured_graph():
    model, x = make_model("resnet18")
    lifted: dict = {}
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=_natopt_backend(lifted))
    with torch.no_grad():
        assert_close(model(x), compiled(x))
    graph = lifted["graph"]
    assert len(graph.inputs) == 1
    sources = {n.source for n in graph.find("Conv")}
    assert {"conv1", "layer1.0.conv1", "layer4.1.conv2", "layer2.0.downsample.0"} <= sources
    assert param_count(lifted["module"]) == param_count(model)
    torch._dynamo.reset()


def test_dynamo_dynamic_shapes_graph_lifts_with_a_symbolic_batch():
    """compile(dynamic=True) passes sizes and BN floats as inputs; they are folded away."""
    model, x = make_model("resnet10t")
    lifted: dict = {}
    torch._dynamo.reset()
    compiled = torch.compile(
        model, backend=_natopt_backend(lifted, dynamic_batch=True), dynamic=True
    )
    with torch.no_grad():
        assert_close(model(x), compiled(x))
        wider = torch.randn(3, 3, 64, 64)
        assert_close(model(wider), compiled(wider))
    assert lifted["graph"].inputs[0].shape == ("batch", 3, 64, 64)
    assert param_count(lifted["module"]) == param_count(model)
    torch._dynamo.reset()


def test_dynamo_graph_lifts_through_the_torch_level_table():
    model, x = make_model("mobilenet_v3_small")
    gm, inputs = _capture(model, x)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    graph = lift_torch_level(gm, inputs, "dynamo", dynamo_stored_inputs(placeholders, inputs))
    assert "Opaque" not in graph.op_counts()
    assert "features.1.block.1.fc1" in {n.source for n in graph.find("Conv")}
    assert graph.find("Linear")[0].source == "classifier.0"
    module = to_torch(graph)
    with torch.no_grad():
        assert_close(model(x), module(x))
    assert param_count(module) == param_count(model)
    torch._dynamo.reset()


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pooled = self.conv(image).mean(dim=(2, 3))
        text = self.embed(tokens).mean(dim=1)
        return pooled * text, text


def test_several_inputs_and_outputs_keep_names_order_and_a_shared_symbolic_batch():
    torch.manual_seed(0)
    model = _TwoInputs().eval()
    image, tokens = torch.randn(2, 3, 9, 9), torch.randint(0, 20, (2, 5))
    graph = lift_torch(model, (image, tokens), dynamic_batch=True, name="two")
    assert graph.name == "two"
    assert [(v.name, v.shape, v.dtype) for v in graph.inputs] == [
        ("image", ("batch", 3, 9, 9), "float32"),
        ("tokens", ("batch", 5), "int64"),
    ]
    assert [v.shape for v in graph.outputs] == [("batch", 8), ("batch", 8)]
    module = to_torch(graph)
    image, tokens = torch.randn(4, 3, 9, 9), torch.randint(0, 20, (4, 5))
    with torch.no_grad():
        for want, got in zip(model(image, tokens), module(image, tokens), strict=True):
            assert_close(want, got)
