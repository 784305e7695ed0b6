"""Every registered op runs in torch, and meta-tensor inference agrees with real execution."""

from __future__ import annotations

import pytest
import torch

from natopt.ir import (
    Graph,
    InputRef,
    get_spec,
    infer_node,
    node_cost,
    ops_of_kind,
    registered_ops,
    run_graph,
)
from natopt.ir.infer import ShapeInferenceError, _by_rule
from natopt.ir.types import from_torch_dtype

F32 = torch.float32


def r(*shape):
    return torch.randn(*shape)


# op -> (inputs, attrs, weights)
CASES = {
    "Conv": (
        [r(2, 4, 9, 9)],
        {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 2},
        {"weight": r(6, 2, 3, 3), "bias": r(6)},
    ),
    "ConvTranspose": (
        [r(2, 4, 5, 5)],
        {"stride": (2, 2), "padding": (1, 1), "output_padding": (1, 1), "dilation": (1, 1)},
        {"weight": r(4, 3, 3, 3)},
    ),
    "Linear": ([r(2, 7, 5)], {}, {"weight": r(3, 5), "bias": r(3)}),
    "MatMul": ([r(2, 4, 5), r(2, 5, 6)], {}, {}),
    "BatchNorm": (
        [r(2, 3, 4, 4)],
        {},
        {"weight": r(3), "bias": r(3), "running_mean": r(3), "running_var": torch.rand(3) + 0.5},
    ),
    "LayerNorm": ([r(2, 5, 8)], {"normalized_shape": (8,)}, {"weight": r(8), "bias": r(8)}),
    "GroupNorm": ([r(2, 4, 3, 3)], {"num_groups": 2}, {"weight": r(4), "bias": r(4)}),
    "Embedding": ([torch.tensor([[1, 2], [0, 3]])], {}, {"weight": r(5, 4)}),
    "Attention": ([r(2, 3, 6, 8), r(2, 3, 7, 8), r(2, 3, 7, 8)], {}, {}),
    "Clip": ([r(3, 4)], {"min": -0.5, "max": 0.5}, {}),
    "Softmax": ([r(3, 4)], {"axis": 0}, {}),
    "LogSoftmax": ([r(3, 4)], {"axis": -1}, {}),
    "Log": ([torch.rand(3, 4) + 0.1], {}, {}),
    "Sqrt": ([torch.rand(3, 4)], {}, {}),
    "Not": ([r(3, 4) > 0], {}, {}),
    "Where": ([r(3, 4) > 0, r(3, 4), r(1, 4)], {}, {}),
    "Pow": ([torch.rand(3, 4), torch.tensor(2.0)], {}, {}),
    "ReduceMean": ([r(2, 3, 4)], {"axes": (1, 2), "keepdims": False}, {}),
    "ReduceSum": ([r(2, 3, 4)], {"axes": (-1,)}, {}),
    "ReduceMax": ([r(2, 3, 4)], {"axes": (0,)}, {}),
    "ReduceMin": ([r(2, 3, 4)], {"axes": (1,), "keepdims": False}, {}),
    "ReduceL2": ([r(2, 3, 4)], {"axes": (0, 2)}, {}),
    "ArgMax": ([torch.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])], {"axis": 1}, {}),
    "ArgMin": (
        [torch.tensor([[1.0, 3.0, 1.0], [2.0, 0.0, 0.0]])],
        {"axis": 1, "keepdims": False, "select_last_index": True},
        {},
    ),
    "TopK": ([r(2, 5, 3)], {"k": 2, "axis": 1, "largest": False}, {}),
    "Max": ([r(2, 3, 4), r(3, 1), r(4)], {}, {}),
    "Min": ([r(2, 3, 4), r(3, 1), r(4)], {}, {}),
    "PRelu": ([r(2, 3, 4)], {}, {"weight": r(3, 1)}),
    "Einsum": ([r(2, 3, 4), r(2, 4, 5)], {"equation": "bij,bjk->bik"}, {}),
    "Tile": ([r(2, 3)], {"repeats": (2, 3)}, {}),
    "CumSum": ([r(2, 3, 4)], {"axis": 1, "exclusive": True, "reverse": True}, {}),
    "Range": ([torch.tensor(1), torch.tensor(9), torch.tensor(3)], {}, {}),
    "Resize": (
        [r(2, 3, 5, 6)],
        {"axes": (2, 3), "scales": (2.0, 0.5), "mode": "cubic", "exclude_outside": True},
        {},
    ),
    "MaxPool": (
        [r(2, 3, 9, 9)],
        {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1)},
        {},
    ),
    "AvgPool": (
        [r(2, 3, 9, 9)],
        {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "ceil_mode": True},
        {},
    ),
    "AdaptiveAvgPool": ([r(2, 3, 9, 9)], {"output_size": (1, 1)}, {}),
    "AdaptiveMaxPool": ([r(2, 3, 9, 9)], {"output_size": (2, 2)}, {}),
    "Reshape": ([r(2, 3, 4)], {"shape": (0, -1)}, {}),
    "Flatten": ([r(2, 3, 4, 5)], {"start_dim": 1}, {}),
    "Transpose": ([r(2, 3, 4)], {"perm": (2, 0, 1)}, {}),
    "Squeeze": ([r(2, 1, 4)], {"axes": (1,)}, {}),
    "Unsqueeze": ([r(2, 4)], {"axes": (0, -1)}, {}),
    "Slice": ([r(6, 8)], {"starts": (1, 0), "ends": (5, 8), "axes": (0, 1), "steps": (2, 3)}, {}),
    "Select": ([r(2, 5, 4)], {"axis": 1, "index": 0}, {}),
    "Gather": ([r(5, 4), torch.tensor([[0, -1], [2, 3]])], {"axis": 0}, {}),
    "GatherElements": ([r(3, 4), torch.tensor([[0, -1], [2, 1]])], {"axis": 1}, {}),
    "Concat": ([r(2, 3), r(2, 5)], {"axis": 1}, {}),
    "Split": ([r(2, 7)], {"axis": 1, "sizes": (3, 4)}, {}),
    "Expand": ([r(1, 3, 1)], {"shape": (2, -1, 4)}, {}),
    "Pad": ([r(1, 2, 3, 3)], {"pads": (1, 2, 0, 1)}, {}),
    "Cast": ([r(2, 3)], {"dtype": "int64"}, {}),
    "Shape": ([r(2, 3)], {}, {}),
    "Constant": ([], {}, {"value": r(2, 2)}),
    "Dropout": ([r(2, 3)], {"p": 0.1}, {}),
    "Opaque": (
        [r(2, 3)],
        {"target": torch.cumsum, "args": (InputRef(0),), "kwargs": {"dim": 1}},
        {},
    ),
}
UNARY = [
    name
    for name, spec in registered_ops().items()
    if name not in CASES and spec.kind in ("activation", "elementwise", "identity")
]
BINARY = ("Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
BOOLEAN = ("And", "Or")
VALUE_DEPENDENT = {"Range"}  # the output length depends on the input values, not only shapes


def build(op: str) -> tuple[Graph, list[torch.Tensor]]:
    if op in CASES:
        inputs, attrs, weights = CASES[op]
    elif op in BINARY:
        inputs, attrs, weights = [r(2, 3, 4), r(3, 1)], {}, {}
    elif op in BOOLEAN:
        inputs, attrs, weights = [r(2, 3, 4) > 0, r(3, 1) > 0], {}, {}
    else:
        inputs, attrs, weights = [r(2, 3, 4)], {}, {}
    g = Graph(op)
    values = [
        g.add_input(f"in{i}", tuple(t.shape), from_torch_dtype(t.dtype))
        for i, t in enumerate(inputs)
    ]
    node = g.add_node(op, values, attrs, weights)
    g.set_outputs(node.outputs)
    return g, inputs


def test_every_op_has_a_case():
    untested = set(registered_ops()) - set(CASES) - set(UNARY) - set(BINARY) - set(BOOLEAN)
    assert not untested


@pytest.mark.parametrize("op", sorted(registered_ops()))
def test_meta_inference_matches_real_execution(op):
    g, inputs = build(op)
    node = g.nodes[0]
    if op in VALUE_DEPENDENT:
        with pytest.raises(ShapeInferenceError):
            infer_node(node)
        (out,) = run_graph(g, inputs)
        node.output.shape, node.output.dtype = tuple(out.shape), from_torch_dtype(out.dtype)
    else:
        infer_node(node)
    outs = run_graph(g, inputs)
    assert len(outs) == len(node.outputs) == get_spec(op).outputs_for(node.attrs)
    for value, tensor in zip(node.outputs, outs, strict=True):
        assert value.shape == tuple(tensor.shape)
        assert value.dtype == from_torch_dtype(tensor.dtype)
    assert node_cost(node).params == sum(w.numel() for w in node.weights.values())


def test_conv_macs_formula():
    g, _ = build("Conv")
    infer_node(g.nodes[0])
    # out [2, 6, 5, 5], each output sums (4/2) * 3 * 3 products
    assert node_cost(g.nodes[0]).macs == 2 * 6 * 5 * 5 * 2 * 9


def test_linear_and_attention_macs():
    g, _ = build("Linear")
    infer_node(g.nodes[0])
    assert node_cost(g.nodes[0]).macs == 2 * 7 * 3 * 5
    g, _ = build("Attention")
    infer_node(g.nodes[0])
    assert node_cost(g.nodes[0]).macs == 2 * (2 * 3 * 6 * 8) * 7


def test_einsum_macs_count_the_contracted_letters():
    g, _ = build("Einsum")
    infer_node(g.nodes[0])
    assert node_cost(g.nodes[0]).macs == 2 * 3 * 5 * 4


def test_symbolic_batch_costs_scale_with_the_bound_symbol():
    g = Graph("sym")
    x = g.add_input("x", ("batch", 4))
    node = g.add_node("Linear", [x], {}, {"weight": r(3, 4)})
    infer_node(node)
    assert node.output.shape == ("batch", 3)
    assert node_cost(node, {"batch": 8}).macs == 8 * node_cost(node).macs


def test_ops_of_kind_reads_the_registry():
    assert ops_of_kind("norm") == {"BatchNorm", "LayerNorm", "GroupNorm"}
    assert ops_of_kind("softmax") == {"Softmax", "LogSoftmax"}
    assert ops_of_kind("identity") == {"Identity", "Dropout"}
    assert {"Relu", "Gelu", "PRelu"} <= ops_of_kind("activation")
    with pytest.raises(ValueError, match="'activations' is not one of"):
        ops_of_kind("activations")


def _meta_shapes(op: str, shapes, weights, attrs):
    spec = get_spec(op)
    args = [torch.empty(s, device="meta") for s in shapes]
    ws = {k: torch.empty(s, device="meta") for k, s in weights.items()}
    outs = spec.impl(*args, **ws, **spec.check_attrs(op, attrs))
    return [tuple(o.shape) for o in (outs if isinstance(outs, tuple) else (outs,))]


SHAPE_RULE_CASES = [
    ("Conv", [(2, 4, 9, 11)], {"weight": (6, 2, 3, 2)}, {"stride": (2, 1), "groups": 2}),
    ("Conv", [(1, 3, 7, 7)], {"weight": (5, 3, 3, 3), "bias": (5,)}, {"padding": (2,)}),
    ("Conv", [(1, 3, 17)], {"weight": (4, 3, 5)}, {"dilation": (3,), "stride": (2,)}),
    ("Linear", [(2, 5, 7)], {"weight": (3, 7), "bias": (3,)}, {}),
    ("BatchNorm", [(2, 4, 3, 3)], {k: (4,) for k in ("running_mean", "running_var")}, {}),
    ("Add", [(2, 1, 5), (3, 1)], {}, {}),
    ("Mul", [(4, 5), ()], {}, {}),
    ("Relu", [(2, 3)], {}, {}),
    ("AdaptiveAvgPool", [(2, 3, 9, 5)], {}, {"output_size": (2, 1)}),
    *[
        (op, [(1, 2, 10, 9)], {}, {"kernel_size": (3, 2), "stride": (s,), "padding": (p,), **c})
        for op, extra in (("MaxPool", {"dilation": (2,)}), ("AvgPool", {}))
        for s in (1, 2, 3)
        for p in (0, 1)
        for c in ({"ceil_mode": False, **extra}, {"ceil_mode": True})
    ],
]


@pytest.mark.parametrize(("op", "shapes", "weights", "attrs"), SHAPE_RULE_CASES)
def test_shape_rules_agree_with_meta_execution(op, shapes, weights, attrs):
    spec = get_spec(op)
    ruled = spec.shape(shapes, weights, spec.check_attrs(op, attrs))
    assert ruled == _meta_shapes(op, shapes, weights, attrs)


@pytest.mark.parametrize(
    ("op", "shapes", "weights", "attrs"),
    [
        ("Conv", [(1, 3, 8, 8)], {"weight": (4, 2, 3, 3)}, {}),  # channels do not match
        ("Linear", [(2, 6)], {"weight": (3, 7)}, {}),
        ("Add", [(2, 3), (4,)], {}, {}),
        ("MaxPool", [(1, 1, 4, 4)], {}, {"kernel_size": (2, 2), "padding": (2,)}),
    ],
)
def test_shape_rules_decline_what_meta_execution_refuses(op, shapes, weights, attrs):
    spec = get_spec(op)
    assert spec.shape(shapes, weights, spec.check_attrs(op, attrs)) is None
    with pytest.raises(RuntimeError):
        _meta_shapes(op, shapes, weights, attrs)


def test_a_lifted_cnn_needs_no_meta_execution():
    """Inferring conv, norm, activation, pooling, add and linear never starts torch's meta
    machinery (which imports torch._dynamo, seconds of start-up)."""
    g = Graph("cnn")
    x = g.add_input("x", ("batch", 3, "h", "w"))
    conv = g.add_node("Conv", [x], {"padding": (1,)}, {"weight": r(4, 3, 3, 3)})
    stats = {k: r(4) for k in ("weight", "bias", "running_mean", "running_var")}
    bn = g.add_node("BatchNorm", [conv.output], {}, stats)
    relu = g.add_node("Relu", [bn.output])
    add = g.add_node("Add", [relu.output, conv.output])
    pool = g.add_node("AdaptiveAvgPool", [add.output], {"output_size": (1, 1)})
    flat = g.add_node("Flatten", [pool.output])
    fc = g.add_node("Linear", [flat.output], {}, {"weight": r(10, 4)})
    g.set_outputs([fc.output])
    for node in g.nodes:
        if node.op != "Flatten":
            assert _by_rule(node, {"batch": 100003, "h": 100019, "w": 100043}) is not None
        infer_node(node)
    assert fc.output.shape == ("batch", 10) and add.output.shape == ("batch", 4, "h", "w")
