"""to_torch gives a real trainable module that computes the graph's function."""

from __future__ import annotations

import torch

from natopt.backends import load_weights_into_graph, to_torch
from natopt.ir import Graph, InputRef, infer_shapes, run_graph, verify


def residual_graph() -> Graph:
    g = Graph("residual")
    x = g.add_input("x", ("batch", 4, 6, 6))
    conv = g.add_node(
        "Conv",
        [x],
        {"padding": (1, 1), "stride": (1, 1), "dilation": (1, 1)},
        {"weight": torch.randn(4, 4, 3, 3), "bias": torch.randn(4)},
        source="layer1.0.conv1",
    )
    bn = g.add_node(
        "BatchNorm",
        [conv.output],
        {},
        {
            "weight": torch.rand(4),
            "bias": torch.rand(4),
            "running_mean": torch.rand(4),
            "running_var": torch.rand(4) + 0.5,
        },
        source="layer1.0.bn1",
    )
    halves = g.add_node("Split", [bn.output], {"axis": 1, "sizes": (2, 2)})
    cat = g.add_node("Concat", [halves.outputs[1], halves.outputs[0]], {"axis": 1})
    scale = g.add_node("Constant", [], {}, {"value": torch.tensor(0.5)}, name="scale")
    scaled = g.add_node("Mul", [cat.output, scale.output])
    cumsum = g.add_node(
        "Opaque", [scaled.output], {"target": torch.cumsum, "args": (InputRef(0), 1), "kwargs": {}}
    )
    add = g.add_node("Add", [cumsum.output, x])
    g.set_outputs([add.output])
    infer_shapes(g)
    verify(g, check_shapes=True)
    return g


def test_module_matches_graph_and_is_trainable():
    g = residual_graph()
    module = to_torch(g)
    x = torch.randn(3, 4, 6, 6)
    torch.testing.assert_close(module(x), run_graph(g, [x])[0])
    names = dict(module.named_parameters())
    assert set(names) == {
        "layer1.0.conv1.weight",
        "layer1.0.conv1.bias",
        "layer1.0.bn1.weight",
        "layer1.0.bn1.bias",
    }
    buffers = dict(module.named_buffers())
    assert {"layer1.0.bn1.running_mean", "layer1.0.bn1.running_var", "scale.value"} <= set(buffers)
    module.train()
    module(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_training_the_module_leaves_the_graph_until_weights_are_loaded_back():
    g = residual_graph()
    before = g.node("conv").weights["weight"].clone()
    module = to_torch(g)
    with torch.no_grad():
        module.get_parameter("layer1.0.conv1.weight").add_(1.0)
    torch.testing.assert_close(g.node("conv").weights["weight"], before)
    load_weights_into_graph(g, module)
    torch.testing.assert_close(g.node("conv").weights["weight"], before + 1.0)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(module(x), run_graph(g, [x])[0])


def test_multiple_outputs_return_a_tuple():
    g = Graph("two")
    x = g.add_input("x", (2, 6))
    split = g.add_node("Split", [x], {"axis": 1, "sizes": (2, 4)})
    g.set_outputs(split.outputs)
    infer_shapes(g)
    a, b = to_torch(g)(torch.arange(12.0).reshape(2, 6))
    assert a.shape == (2, 2) and b.shape == (2, 4)


def test_sources_that_name_each_others_tensors_get_their_own_paths():
    """A Constant whose source is ``blk.value`` beside a node whose weights live at ``blk``
    (and the other way round), as folded ONNX initializers can name them."""
    g = Graph("paths")
    x = g.add_input("x", (2, 3))
    first = g.add_node("Constant", [], {}, {"value": torch.randn(3)}, source="blk")
    second = g.add_node("Constant", [], {}, {"value": torch.randn(3)}, source="blk.value")
    third = g.add_node("Constant", [], {}, {"value": torch.randn(3)}, source="top.sub.value")
    fourth = g.add_node("Constant", [], {}, {"value": torch.randn(3)}, source="top.sub")
    total = x
    for node in (first, second, third, fourth):
        total = g.add_node("Add", [total, node.output]).output
    g.set_outputs([total])
    infer_shapes(g)
    module = to_torch(g)
    inputs = [torch.randn(2, 3)]
    assert torch.allclose(module(*inputs), run_graph(g, inputs)[0])
    assert len(dict(module.named_buffers())) == 4
