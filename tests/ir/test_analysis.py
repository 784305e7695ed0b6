"""Constant analysis: what is computed from no graph input."""

from __future__ import annotations

import torch

from natopt.ir import Graph, constant_nodes, constant_values


def scaled_conv_graph() -> Graph:
    """``conv(x) * relu(gamma * two)``: a constant sub-graph feeding a real op."""
    g = Graph("scaled")
    x = g.add_input("x", (1, 2, 4, 4))
    conv = g.add_node(
        "Conv",
        [x],
        {"padding": (0, 0), "stride": (1, 1), "dilation": (1, 1)},
        {"weight": torch.randn(2, 2, 1, 1)},
        name="conv",
    )
    gamma = g.add_node("Constant", weights={"value": torch.ones(2, 1, 1)}, name="gamma")
    two = g.add_node("Constant", weights={"value": torch.tensor(2.0)}, name="two")
    scale = g.add_node("Mul", [gamma.output, two.output], name="scale")
    positive = g.add_node("Relu", [scale.output], name="positive")
    g.add_node("Mul", [conv.output, positive.output], name="scaled")
    g.set_outputs([g.node("scaled").output])
    return g


def test_constant_nodes_are_the_constant_sub_graph():
    g = scaled_conv_graph()
    assert {n.name for n in constant_nodes(g)} == {"gamma", "two", "scale", "positive"}


def test_constant_values_are_their_outputs_and_never_a_graph_input():
    g = scaled_conv_graph()
    constant = constant_values(g)
    assert constant == {g.node(n).output for n in ("gamma", "two", "scale", "positive")}
    assert g.inputs[0] not in constant
    assert g.node("conv").output not in constant  # own weights do not make a node constant


def test_the_analysis_follows_edits():
    g = scaled_conv_graph()
    g.node("scale").replace_input_with(1, g.inputs[0])
    assert {n.name for n in constant_nodes(g)} == {"gamma", "two"}
