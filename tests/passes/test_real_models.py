"""Canonicalisation and computational units on real torchvision / timm models (random weights).

BatchNorm statistics and affine parameters are randomised first, so that folding them is not
close to the identity it is at initialisation.
"""

from __future__ import annotations

import time

import pytest
import timm
import torch
import torchvision
from torch import nn

from natopt.backends import to_torch
from natopt.frontends import lift
from natopt.ir import Graph, Value, infer_node, run_graph
from natopt.passes import canonicalize, find_units

MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(weights=None),
    "vit_b_16": lambda: torchvision.models.vit_b_16(weights=None),
    "convnext_atto": lambda: timm.create_model("convnext_atto", pretrained=False),
}


def randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            channels = module.num_features
            module.running_mean.copy_(0.2 * torch.randn(channels, generator=generator))
            module.running_var.copy_(0.5 + 1.5 * torch.rand(channels, generator=generator))
            module.weight.data.copy_(0.5 + torch.rand(channels, generator=generator))
            module.bias.data.copy_(0.2 * torch.randn(channels, generator=generator))


@pytest.fixture(scope="module")
def lifted():
    """name -> (model, example input, lifted graph, canonical graph), built once per name."""
    cache: dict[str, tuple[nn.Module, torch.Tensor, Graph, Graph]] = {}

    def get(name: str):
        if name not in cache:
            generator = torch.Generator().manual_seed(0)
            model = MODELS[name]().eval()
            with torch.no_grad():
                randomise_batchnorm(model, generator)
            x = torch.randn(1, 3, 224, 224, generator=generator)
            graph = lift(model, (x,))
            cache[name] = (model, x, graph, canonicalize(graph))
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_canonical_graph_has_no_batchnorm_and_matches_the_model(lifted, name):
    model, x, graph, canonical = lifted(name)
    assert graph.op_counts()["BatchNorm"] > 0, "canonicalize must not edit its input"
    counts = canonical.op_counts()
    assert not {"BatchNorm", "Dropout", "Identity"} & set(counts)
    assert counts["Conv"] == graph.op_counts()["Conv"]
    with torch.no_grad():
        expected = model(x)
        lowered = to_torch(canonical)(x)
    (interpreted,) = run_graph(canonical, [x])
    scale = max(1.0, float(expected.abs().max()))
    assert float(expected.abs().max()) > 1e-2  # the comparison is not between two near-zeros
    assert float((lowered - expected).abs().max()) <= 1e-4 * scale
    assert float((interpreted - expected).abs().max()) <= 1e-4 * scale


def kinds(units) -> dict[str, int]:
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.kind] = counts.get(unit.kind, 0) + 1
    return counts


def assert_layer_units_partition_main_ops(graph: Graph, units) -> None:
    layer_units = [u for u in units if u.kind != "branch"]
    owned = [id(n) for u in layer_units for n in u.nodes]
    assert len(owned) == len(set(owned)), "conv/linear/pool units overlap"
    mains = {id(n) for n in graph.nodes if n.op in {"Conv", "Linear", "MaxPool", "AvgPool"}}
    assert [id(u.main) for u in layer_units if id(u.main) in mains] == [
        id(u.main) for u in layer_units
    ]
    assert {id(u.main) for u in layer_units} == mains
    names = [u.name for u in units]
    assert len(names) == len(set(names))


def test_resnet18_units(lifted):
    graph = lifted("resnet18")[3]
    units = find_units(graph)
    assert kinds(units) == {"conv": 20, "pool": 1, "linear": 1, "branch": 11}
    branches = {u.name: u for u in units if u.kind == "branch"}
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    shortcuts = [f"layer{i}.0.downsample.0" for i in range(2, 5)]
    assert set(branches) == {f"{b}.conv2:branch" for b in blocks} | {
        f"{s}:branch" for s in shortcuts
    }
    adds = graph.find("Add")
    assert len(adds) == 8 and {id(u.merge) for u in branches.values()} == {id(a) for a in adds}
    block = branches["layer1.0.conv2:branch"]
    assert [n.op for n in block.nodes] == ["Conv", "Relu", "Conv"]
    assert [n.source for n in block.nodes if n.source] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert block.input is block.merge.inputs[1]  # the identity shortcut reads the fork
    shortcut = branches["layer2.0.downsample.0:branch"]
    assert shortcut.input is branches["layer2.0.conv2:branch"].input
    assert_layer_units_partition_main_ops(graph, units)


def test_mobilenet_v2_units(lifted):
    graph = lifted("mobilenet_v2")[3]
    units = find_units(graph)
    assert kinds(units) == {"conv": 52, "linear": 1, "branch": 10}
    for branch in (u for u in units if u.kind == "branch"):
        assert [n.op for n in branch.nodes] == ["Conv", "Relu6", "Conv", "Relu6", "Conv"]
    assert_layer_units_partition_main_ops(graph, units)


def test_efficientnet_b0_branches_hold_the_squeeze_excitation(lifted):
    graph = lifted("efficientnet_b0")[3]
    units = find_units(graph)
    assert kinds(units) == {"conv": 81, "linear": 1, "branch": 9}
    for branch in (u for u in units if u.kind == "branch"):
        assert {"AdaptiveAvgPool", "Sigmoid", "Mul"} <= {n.op for n in branch.nodes}
    assert_layer_units_partition_main_ops(graph, units)


def test_vit_b_16_has_an_attention_and_an_mlp_branch_per_layer(lifted):
    graph = lifted("vit_b_16")[3]
    units = find_units(graph)
    assert kinds(units) == {"conv": 1, "linear": 49, "branch": 24}
    branches = [u for u in units if u.kind == "branch"]
    layers = [f"encoder.layers.encoder_layer_{i}" for i in range(12)]
    assert [u.name for u in branches] == [
        name
        for layer in layers
        for name in (f"{layer}.self_attention.out_proj:branch", f"{layer}.mlp.3:branch")
    ]
    for attention, mlp in zip(branches[::2], branches[1::2], strict=True):
        assert attention.nodes[0].op == "LayerNorm" and "Attention" in {
            n.op for n in attention.nodes
        }
        assert [n.op for n in mlp.nodes] == ["LayerNorm", "Linear", "Gelu", "Linear"]
        assert mlp.input is attention.merge.output
    assert_layer_units_partition_main_ops(graph, units)


def test_convnext_atto_branches_own_their_layer_scale(lifted):
    graph = lifted("convnext_atto")[3]
    units = find_units(graph)
    assert kinds(units) == {"conv": 40, "linear": 1, "branch": 12}
    for branch in (u for u in units if u.kind == "branch"):
        assert branch.main.op == "Mul"
        assert "Constant" in {n.op for n in branch.nodes}
        assert branch.name.startswith("stages.")
    assert_layer_units_partition_main_ops(graph, units)


def test_find_units_is_fast_on_a_thousand_node_graph():
    g = Graph("deep_residual")
    x: Value = g.add_input("x", (1, 4, 8, 8))

    def add(op, inputs, weights=None) -> Value:
        node = g.add_node(op, inputs, {"padding": (1, 1)} if op == "Conv" else None, weights)
        infer_node(node)
        return node.output

    weight = {"weight": torch.randn(4, 4, 3, 3)}
    for _ in range(250):
        h = add("Conv", [add("Relu", [add("Conv", [x], weight)])], weight)
        x = add("Add", [h, x])
    g.set_outputs([x])
    start = time.perf_counter()
    units = find_units(g)
    elapsed = time.perf_counter() - start
    assert kinds(units) == {"conv": 500, "branch": 250}
    assert elapsed < 2.0  # a sanity bound (typically ~0.02 s), not a benchmark
