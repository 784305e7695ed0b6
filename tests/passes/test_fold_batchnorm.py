"""FoldBatchNormPass: conv/linear -> BatchNorm becomes one conv/linear computing the same."""

from __future__ import annotations

import pytest
import torch

from natopt.ir import Graph, infer_shapes
from natopt.passes import FoldBatchNormPass, PassContext, PassManager


def bn_weights(channels: int) -> dict[str, torch.Tensor]:
    return {
        "weight": torch.rand(channels) + 0.5,
        "bias": torch.randn(channels),
        "running_mean": torch.randn(channels),
        "running_var": torch.rand(channels) + 0.1,
    }


def producer_then_bn(op: str, in_shape, attrs, weights, channels: int) -> Graph:
    g = Graph(f"{op}_bn")
    x = g.add_input("x", in_shape)
    main = g.add_node(op, [x], attrs, weights, name="main", source="block.main")
    bn = g.add_node("BatchNorm", [main.output], {"eps": 1e-3}, bn_weights(channels), name="bn")
    relu = g.add_node("Relu", [bn.output], name="relu")
    g.set_outputs([relu.output])
    infer_shapes(g)
    return g


CASES = {
    "conv": ("Conv", (2, 4, 9, 9), {"padding": (1, 1)}, (8, 4, 3, 3), 8, True),
    "conv_no_bias": ("Conv", (2, 4, 9, 9), {"padding": (1, 1)}, (8, 4, 3, 3), 8, False),
    "grouped_conv": ("Conv", (2, 4, 9, 9), {"groups": 2}, (6, 2, 3, 3), 6, True),
    "depthwise_conv": (
        "Conv",
        (2, 4, 9, 9),
        {"groups": 4, "stride": (2, 2)},
        (4, 1, 3, 3),
        4,
        True,
    ),
    "conv1d": ("Conv", (2, 4, 11), {}, (5, 4, 3), 5, True),
    "conv_transpose": ("ConvTranspose", (2, 4, 5, 5), {"stride": (2, 2)}, (4, 3, 3, 3), 3, True),
    "grouped_conv_transpose": (
        "ConvTranspose",
        (2, 4, 5, 5),
        {"groups": 2, "stride": (2, 2)},
        (4, 3, 2, 2),
        6,
        True,
    ),
    "linear": ("Linear", (3, 7), {}, (5, 7), 5, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fold_matches_the_unfolded_graph(case, assert_same_function):
    op, in_shape, attrs, w_shape, channels, with_bias = CASES[case]
    weights = {"weight": torch.randn(w_shape)}
    if with_bias:
        weights["bias"] = torch.randn(channels)
    before = producer_then_bn(op, in_shape, attrs, weights, channels)
    after = before.copy()
    result = PassManager([FoldBatchNormPass()]).run(after, PassContext())
    assert result.changed
    assert [n.op for n in result.graph.nodes] == [op, "Relu"]
    main = result.graph.node("main")
    assert main.source == "block.main" and main.meta["folded"] == ["bn"]
    assert main.weights["bias"].shape == (channels,)
    assert_same_function(before, result.graph, [torch.randn(in_shape)])


def test_fold_leaves_the_original_weights_alone():
    weights = {"weight": torch.randn(8, 4, 3, 3)}
    before = producer_then_bn("Conv", (1, 4, 6, 6), {}, weights, 8)
    original = before.node("main").weights["weight"].clone()
    FoldBatchNormPass()(before.copy())
    assert torch.equal(before.node("main").weights["weight"], original)


def test_bn_output_as_graph_output_moves_to_the_conv(assert_same_function):
    g = Graph("tail")
    x = g.add_input("x", (1, 3, 5, 5))
    conv = g.add_node("Conv", [x], weights={"weight": torch.randn(4, 3, 1, 1)}, name="conv")
    bn = g.add_node("BatchNorm", [conv.output], weights=bn_weights(4), name="bn")
    g.set_outputs([bn.output])
    infer_shapes(g)
    result = FoldBatchNormPass()(g.copy())
    assert [n.op for n in result.graph.nodes] == ["Conv"]
    assert result.graph.outputs == [result.graph.node("conv").output]
    assert_same_function(g, result.graph, [torch.randn(1, 3, 5, 5)])


def test_no_fold_when_the_conv_output_has_another_use():
    g = Graph("shared")
    x = g.add_input("x", (1, 3, 5, 5))
    conv = g.add_node("Conv", [x], weights={"weight": torch.randn(3, 3, 1, 1)}, name="conv")
    bn = g.add_node("BatchNorm", [conv.output], weights=bn_weights(3), name="bn")
    add = g.add_node("Add", [bn.output, conv.output], name="add")
    g.set_outputs([add.output])
    infer_shapes(g)
    result = FoldBatchNormPass()(g)
    assert not result.changed
    assert [n.op for n in g.nodes] == ["Conv", "BatchNorm", "Add"]


def test_no_fold_after_a_linear_on_3d_inputs():
    g = Graph("seq")
    x = g.add_input("x", (2, 6, 5))
    linear = g.add_node("Linear", [x], weights={"weight": torch.randn(6, 5)}, name="fc")
    bn = g.add_node("BatchNorm", [linear.output], weights=bn_weights(6), name="bn")
    g.set_outputs([bn.output])
    infer_shapes(g)
    assert not FoldBatchNormPass()(g).changed
    assert g.op_counts() == {"Linear": 1, "BatchNorm": 1}
