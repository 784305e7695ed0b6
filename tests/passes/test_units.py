"""find_units on small hand-built graphs (real models: test_units_models.py)."""

from __future__ import annotations

import torch

from natopt.ir import Graph, Value, infer_node, infer_shapes
from natopt.passes import find_units
from natopt.passes.units import ACTIVATION_OPS, NORM_OPS


def conv(g: Graph, x: Value, cin: int, cout: int, name: str, **attrs) -> Value:
    weights = {"weight": torch.randn(cout, cin // attrs.get("groups", 1), 3, 3)}
    node = g.add_node("Conv", [x], {"padding": (1, 1), **attrs}, weights, name=name, source=name)
    return node.output


def basic_block(g: Graph, x: Value, prefix: str, downsample: bool) -> Value:
    h = g.add_node("Relu", [conv(g, x, 4, 4, f"{prefix}.conv1")], name=f"{prefix}.relu1").output
    h = conv(g, h, 4, 4, f"{prefix}.conv2")
    shortcut = conv(g, x, 4, 4, f"{prefix}.downsample") if downsample else x
    add = g.add_node("Add", [h, shortcut], name=f"{prefix}.add")
    return g.add_node("Relu", [add.output], name=f"{prefix}.relu").output


def resnet_like() -> Graph:
    g = Graph("resnet_like")
    x = g.add_input("x", (1, 3, 8, 8))
    h = conv(g, x, 3, 4, "stem")
    bn = g.add_node(
        "BatchNorm",
        [h],
        weights={"running_mean": torch.zeros(4), "running_var": torch.ones(4)},
        source="stem_bn",
    )
    h = g.add_node("Relu", [bn.output], source="stem_act").output
    h = g.add_node("MaxPool", [h], {"kernel_size": (2, 2), "stride": (2, 2)}, name="pool").output
    h = basic_block(g, h, "layer1", downsample=False)
    h = basic_block(g, h, "layer2", downsample=True)
    h = g.add_node("AdaptiveAvgPool", [h], name="gap").output
    h = g.add_node("Flatten", [h]).output
    fc = g.add_node("Linear", [h], weights={"weight": torch.randn(5, 4)}, source="fc")
    g.set_outputs([fc.output])
    infer_shapes(g)
    return g


def summary(units):
    return [(u.name, u.kind, [n.name for n in u.nodes]) for u in units]


def test_resnet_like_units():
    g = resnet_like()
    units = find_units(g)
    by_name = {u.name: u for u in units}
    layer_units = [(u.name, u.kind) for u in units]
    assert layer_units == [
        ("stem", "conv"),
        ("pool", "pool"),
        ("layer1.conv1", "conv"),
        ("layer1.conv2", "conv"),
        ("layer1.conv2:branch", "branch"),
        ("layer2.conv1", "conv"),
        ("layer2.conv2", "conv"),
        ("layer2.conv2:branch", "branch"),
        ("layer2.downsample", "conv"),
        ("layer2.downsample:branch", "branch"),
        ("fc", "linear"),
    ]
    stem = by_name["stem"]
    assert [n.op for n in stem.nodes] == ["Conv", "BatchNorm", "Relu"]
    assert stem.input is g.inputs[0] and stem.output is stem.nodes[-1].output
    assert [n.op for n in by_name["layer1.conv1"].nodes] == ["Conv", "Relu"]
    # layer1.conv2's output feeds the Add: no activation belongs to the unit
    assert [n.op for n in by_name["layer1.conv2"].nodes] == ["Conv"]
    branch = by_name["layer1.conv2:branch"]
    assert [n.name for n in branch.nodes] == ["layer1.conv1", "layer1.relu1", "layer1.conv2"]
    assert branch.input is g.node("pool").output
    assert branch.merge is g.node("layer1.add") and branch.output is branch.main.output
    fork = g.node("layer1.relu").output
    for name in ("layer2.conv2:branch", "layer2.downsample:branch"):
        assert by_name[name].input is fork and by_name[name].merge is g.node("layer2.add")
    assert [n.name for n in by_name["layer2.downsample:branch"].nodes] == ["layer2.downsample"]


def test_layer_units_never_overlap_and_cover_every_main_op():
    units = [u for u in find_units(resnet_like()) if u.kind != "branch"]
    owned = [n.name for u in units for n in u.nodes]
    assert len(owned) == len(set(owned))
    mains = sorted(u.main.name for u in units)
    assert mains == sorted(
        n.name for n in resnet_like().nodes if n.op in {"Conv", "Linear", "MaxPool"}
    )


def transformer_block(g: Graph, x: Value, prefix: str, dim: int) -> Value:
    """x + proj(attn(q(ln x), k(ln x), v(ln x))); then x + gamma * fc2(gelu(fc1(ln x)))."""

    def op(name: str, inputs, attrs=None, weights=None, source=None) -> Value:
        node = g.add_node(name, inputs, attrs, weights, source=source and f"{prefix}.{source}")
        infer_node(node)
        return node.output

    def linear(v: Value, out: int, name: str) -> Value:
        weights = {"weight": torch.randn(out, v.shape[-1]), "bias": torch.randn(out)}
        return op("Linear", [v], weights=weights, source=name)

    h = op("LayerNorm", [x], {"normalized_shape": (dim,)}, source="ln1")
    q, k, v = (linear(h, dim, name) for name in ("q", "k", "v"))
    attn = op("Attention", [q, k, v], source="attn")
    x = op("Add", [x, linear(attn, dim, "proj")])
    h = op("LayerNorm", [x], {"normalized_shape": (dim,)}, source="ln2")
    h = linear(op("Gelu", [linear(h, 2 * dim, "fc1")]), dim, "fc2")
    gamma = op("Constant", [], weights={"value": torch.rand(dim)}, source="gamma")
    return op("Add", [op("Mul", [h, gamma], source="scale"), x])


def transformer_like(blocks: int = 2) -> Graph:
    g = Graph("transformer_like")
    x = g.add_input("x", ("batch", 5, 8))
    for i in range(blocks):
        x = transformer_block(g, x, f"blocks.{i}", 8)
    g.set_outputs([x])
    return g


def test_transformer_branches_include_layer_scale_constants():
    g = transformer_like()
    branches = [u for u in find_units(g) if u.kind == "branch"]
    assert [u.name for u in branches] == [
        "blocks.0.proj:branch",
        "blocks.0.scale:branch",
        "blocks.1.proj:branch",
        "blocks.1.scale:branch",
    ]
    attn, mlp = branches[:2]
    assert [n.op for n in attn.nodes] == [
        "LayerNorm",
        "Linear",
        "Linear",
        "Linear",
        "Attention",
        "Linear",
    ]
    assert attn.input is g.inputs[0]
    assert [n.op for n in mlp.nodes] == ["LayerNorm", "Linear", "Gelu", "Linear", "Constant", "Mul"]
    assert mlp.input is attn.merge.output and mlp.merge.inputs[0] is mlp.output
    linears = [u for u in find_units(g) if u.kind == "linear"]
    assert [u.name for u in linears[:6]] == [
        f"blocks.0.{n}" for n in ("q", "k", "v", "proj", "fc1", "fc2")
    ]
    assert [n.op for n in linears[4].nodes] == ["Linear", "Gelu"]


def test_an_operand_whose_region_leaks_is_not_a_branch():
    g = Graph("leak")
    x = g.add_input("x", (1, 4, 6, 6))
    h = conv(g, x, 4, 4, "a")
    r = g.add_node("Relu", [h], name="r").output
    add = g.add_node("Add", [r, x], name="add")
    side = g.add_node("Mul", [add.output, h], name="side")  # h escapes the would-be branch
    g.set_outputs([side.output])
    infer_shapes(g)
    assert [u.kind for u in find_units(g)] == ["conv"]
    assert [n.name for n in find_units(g)[0].nodes] == ["a"]


def test_two_parallel_branches_are_both_reported():
    g = Graph("parallel")
    x = g.add_input("x", (1, 4, 6, 6))
    a, b = conv(g, x, 4, 4, "a"), conv(g, x, 4, 4, "b")
    add = g.add_node("Add", [a, b], name="add")
    g.set_outputs([add.output])
    infer_shapes(g)
    branches = [u for u in find_units(g) if u.kind == "branch"]
    assert [(u.name, u.input, u.merge) for u in branches] == [
        ("a:branch", x, add),
        ("b:branch", x, add),
    ]


def test_an_add_of_a_constant_or_of_two_inputs_is_no_branch():
    g = Graph("adds")
    x = g.add_input("x", (3,))
    y = g.add_input("y", (3,))
    bias = g.add_node("Constant", weights={"value": torch.ones(3)})
    h = g.add_node("Add", [x, bias.output]).output
    g.set_outputs([g.add_node("Add", [h, y]).output])
    infer_shapes(g)
    assert find_units(g) == []


def test_repeated_sources_get_distinct_names():
    g = Graph("shared")
    x = g.add_input("x", (1, 4, 6, 6))
    weight = {"weight": torch.randn(4, 4, 1, 1)}
    a = g.add_node("Conv", [x], weights=weight, source="shared").output
    b = g.add_node("Conv", [a], weights=weight, source="shared").output
    g.set_outputs([b])
    infer_shapes(g)
    assert [u.name for u in find_units(g)] == ["shared", "shared#1"]


def test_the_smooth_activations_of_onnx_files_join_their_unit():
    for op in ("Elu", "Selu", "Softplus", "Mish"):
        g = Graph("smooth")
        x = g.add_input("x", (1, 4, 8, 8))
        h = g.add_node(op, [conv(g, x, 4, 4, "conv")], name="act").output
        g.set_outputs([conv(g, h, 4, 4, "head")])
        infer_shapes(g)
        (unit, _head) = find_units(g)
        assert [n.op for n in unit.nodes] == ["Conv", op], op


def test_the_norms_and_activations_a_unit_absorbs_come_from_the_op_kinds():
    assert {"BatchNorm", "LayerNorm", "GroupNorm"} == NORM_OPS
    assert {"Relu", "Relu6", "Clip", "Gelu", "Silu", "HardSwish", "Mish"} <= ACTIVATION_OPS
    assert ACTIVATION_OPS.isdisjoint({"PRelu", "Softmax", "LogSoftmax"})  # a weight; an axis
    assert len(ACTIVATION_OPS) == 17
