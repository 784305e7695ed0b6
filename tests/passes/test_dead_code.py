"""DeadCodePass: nodes that reach no graph output are removed, everything else is kept."""

from __future__ import annotations

import torch

from natopt.ir import Graph, infer_shapes
from natopt.passes import DeadCodePass


def test_unreachable_nodes_and_their_private_inputs_go(assert_same_function):
    g = Graph("dead")
    x = g.add_input("x", (1, 3, 6, 6))
    conv = g.add_node("Conv", [x], weights={"weight": torch.randn(3, 3, 1, 1)}, name="conv")
    relu = g.add_node("Relu", [conv.output], name="relu")
    const = g.add_node("Constant", weights={"value": torch.randn(3, 1, 1)}, name="const")
    unused_mul = g.add_node("Mul", [conv.output, const.output], name="unused_mul")
    g.add_node("Sigmoid", [unused_mul.output], name="unused_sigmoid")
    split = g.add_node("Split", [relu.output], {"axis": 1, "sizes": (1, 2)}, name="split")
    g.set_outputs([split.outputs[1]])
    infer_shapes(g)
    after = g.copy()
    result = DeadCodePass()(after)
    assert result.changed
    assert [n.name for n in after.nodes] == ["conv", "relu", "split"]
    assert after.node("conv").output.uses == [(after.node("relu"), 0)]
    assert_same_function(g, after, [torch.randn(1, 3, 6, 6)])


def test_a_live_graph_is_unchanged():
    g = Graph("live")
    x = g.add_input("x", (4,))
    a = g.add_node("Relu", [x], name="a")
    b = g.add_node("Neg", [x], name="b")
    g.set_outputs([a.output, b.output])
    infer_shapes(g)
    assert not DeadCodePass()(g).changed
    assert [n.name for n in g.nodes] == ["a", "b"]
