"""Graph editing keeps producers and use lists right; copies are independent."""

from __future__ import annotations

import pytest
import torch

from natopt.errors import VerifyError
from natopt.ir import Graph, format_graph, infer_shapes, run_graph, verify


def small_graph() -> Graph:
    g = Graph("small")
    x = g.add_input("x", ("batch", 3, 8, 8))
    conv = g.add_node(
        "Conv",
        [x],
        {"padding": (1, 1), "stride": (1, 1), "dilation": (1, 1)},
        {"weight": torch.randn(3, 3, 3, 3)},
        name="conv",
        source="block.conv",
    )
    relu = g.add_node("Relu", [conv.output], name="relu")
    add = g.add_node("Add", [relu.output, x], name="add")
    g.set_outputs([add.output])
    infer_shapes(g)
    return g


def test_add_node_fills_defaults_and_refuses_unknown_attributes():
    g = small_graph()
    assert g.node("conv").attrs["groups"] == 1
    with pytest.raises(ValueError, match="no attribute"):
        g.add_node("Relu", [g.inputs[0]], {"alpha": 1.0})


def test_use_lists_follow_edits():
    g = small_graph()
    x = g.inputs[0]
    relu, add = g.node("relu"), g.node("add")
    assert {(n.name, i) for n, i in x.uses} == {("conv", 0), ("add", 1)}
    g.replace_all_uses(relu.output, g.node("conv").output)
    assert relu.output.uses == []
    assert add.inputs[0] is g.node("conv").output
    g.remove_node(relu)
    verify(g, check_shapes=True)
    assert [n.op for n in g.nodes] == ["Conv", "Add"]


def test_remove_node_refuses_a_used_node():
    g = small_graph()
    with pytest.raises(ValueError, match="still used"):
        g.remove_node(g.node("conv"))


def test_inputs_are_read_only_and_replace_input_with_keeps_use_lists_right():
    g = small_graph()
    x, conv, add = g.inputs[0], g.node("conv"), g.node("add")
    with pytest.raises((TypeError, AttributeError)):
        add.inputs[1] = conv.output  # type: ignore[index]
    with pytest.raises(AttributeError):
        add.inputs = (conv.output, x)  # type: ignore[misc]
    add.replace_input_with(1, conv.output)
    assert add.inputs == (g.node("relu").output, conv.output)
    assert (add, 1) not in x.uses and (add, 1) in conv.output.uses
    assert conv.output.consumers == [g.node("relu"), add]
    verify(g, check_shapes=True)
    add.replace_input_with(1, conv.output)  # the same value again changes nothing
    assert conv.output.uses.count((add, 1)) == 1
    add.replace_input_with(1, None)
    assert (add, 1) not in conv.output.uses and add.input_values == [g.node("relu").output]


def test_is_graph_output_follows_the_outputs_and_copies():
    g = small_graph()
    relu, add = g.node("relu"), g.node("add")
    assert add.output.is_graph_output() and not relu.output.is_graph_output()
    assert not g.inputs[0].is_graph_output()
    g.replace_all_uses(add.output, relu.output)
    assert relu.output.is_graph_output() and not add.output.is_graph_output()
    clone = g.copy()
    assert clone.node("relu").output.is_graph_output()
    assert clone.node("relu").output.graph is clone and relu.output.graph is g
    g.set_outputs([add.output])
    assert not relu.output.is_graph_output() and clone.node("relu").output.is_graph_output()


def test_sort_restores_topological_order():
    g = small_graph()
    g.nodes.reverse()
    with pytest.raises(VerifyError, match="not produced before"):
        verify(g)
    g.sort()
    verify(g)
    assert [n.name for n in g.nodes] == ["conv", "relu", "add"]


def test_copy_is_structurally_independent():
    g = small_graph()
    clone = g.copy()
    assert format_graph(clone) == format_graph(g)
    clone.replace_all_uses(clone.node("add").output, clone.node("relu").output)
    clone.remove_node(clone.node("add"))
    verify(clone)
    verify(g)
    assert len(g) == 3 and len(clone) == 2
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(run_graph(g, [x])[0], run_graph(clone, [x])[0] + x)


def test_symbolic_dims_survive_inference():
    g = small_graph()
    assert g.node("add").output.shape == ("batch", 3, 8, 8)
    flat = g.add_node("Flatten", [g.node("add").output])
    g.set_outputs([flat.output])
    infer_shapes(g)
    assert flat.output.shape == ("batch", 192)


def test_fresh_names_are_unique_per_namespace():
    g = small_graph()
    node = g.add_node("Relu", [g.inputs[0]], name="relu")
    assert node.name != "relu"
    assert len({n.name for n in g.nodes}) == len(g.nodes)
    assert len({v.name for v in g.values()}) == len(list(g.values()))


def test_run_graph_stops_after_upto_and_watch_sees_only_the_prefix():
    graph = small_graph()
    relu = next(n for n in graph.nodes if n.name == "relu")
    seen: list[str] = []
    out = run_graph(
        graph,
        [torch.randn(2, 3, 8, 8)],
        watch=lambda node, _args, _outs: seen.append(node.name),
        upto=relu,
    )
    assert out == [] and seen == ["conv", "relu"]
    assert len(run_graph(graph, [torch.randn(2, 3, 8, 8)])) == 1
