"""to_onnx on small IR graphs: every emitter against the IR interpreter, through onnxruntime;
the torch fallback; symbolic dims; atomic, checked writes that never overwrite the input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from natopt.backends import to_onnx
from natopt.backends.onnx import write as write_module
from natopt.errors import BackendError
from natopt.frontends.onnx import lift_onnx
from natopt.ir import Graph, InputRef, Value, infer_node, run_graph


def ort_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check(graph: Graph, inputs: list[torch.Tensor], path: Path, opset: int = 18) -> onnx.ModelProto:
    """Write ``graph``; onnxruntime must compute what the IR interpreter computes."""
    written = to_onnx(graph, path, opset=opset)
    session = ort_session(written)
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
    got = session.run(None, feeds)
    want = run_graph(graph, inputs)
    for expected, actual in zip(want, got, strict=True):
        np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-4, atol=1e-5)
    return onnx.load(written)


def single_op(
    op: str, shapes: list[tuple], attrs: dict | None = None, weights: dict | None = None, **kw
) -> tuple[Graph, list[torch.Tensor]]:
    """A graph of one ``op`` node on float inputs of ``shapes`` (and random inputs for it)."""
    graph = Graph(op.lower())
    inputs = [graph.add_input(f"x{i}", shape) for i, shape in enumerate(shapes)]
    node = graph.add_node(op, inputs, attrs, weights, **kw)
    infer_node(node)
    graph.set_outputs(node.outputs)
    torch.manual_seed(0)
    return graph, [torch.randn(*shape) for shape in shapes]


def chain(x_shape: tuple, *steps: tuple[str, dict]) -> tuple[Graph, list[torch.Tensor]]:
    graph = Graph("chain")
    value: Value = graph.add_input("x", x_shape)
    for op, attrs in steps:
        node = graph.add_node(op, [value], attrs)
        infer_node(node)
        value = node.output
    graph.set_outputs([value])
    torch.manual_seed(0)
    return graph, [torch.randn(*(d if isinstance(d, int) else 2 for d in x_shape))]


@pytest.mark.parametrize("opset", [13, 17, 18, 20])
def test_norms_and_activations_at_each_opset(tmp_path: Path, opset: int):
    c = 6
    graph, xs = chain(
        (2, c, 5, 5),
        ("GroupNorm", {"num_groups": 3, "eps": 1e-5}),
        ("Gelu", {"approximate": "tanh"}),
        ("Transpose", {"perm": (0, 2, 3, 1)}),
        ("LayerNorm", {"normalized_shape": (c,), "eps": 1e-6}),
        ("Gelu", {}),
        ("Silu", {}),
        ("HardSwish", {}),
        ("Relu6", {}),
        ("Clip", {"min": 0.1}),
    )
    torch.manual_seed(1)
    for node in graph.find("GroupNorm") + graph.find("LayerNorm"):
        node.weights = {"weight": torch.rand(c) + 0.5, "bias": torch.randn(c)}
    model = check(graph, xs, tmp_path / "n.onnx", opset=opset)
    ops = {n.op_type for n in model.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert ("Gelu" in ops) == (opset >= 20)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"scale": 0.3}, {"is_causal": True}, {"mask": "float"}, {"mask": "bool"}],
)
def test_attention_decomposition_runs_in_onnxruntime(tmp_path: Path, kwargs: dict):
    shapes = [(2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 8)]
    if kwargs.get("is_causal"):
        shapes[1] = shapes[2] = (2, 3, 5, 8)
    mask = kwargs.pop("mask", None)
    graph = Graph("attention")
    inputs = [graph.add_input(f"x{i}", shape) for i, shape in enumerate(shapes)]
    torch.manual_seed(0)
    feeds = [torch.randn(*shape) for shape in shapes]
    if mask is not None:
        inputs.append(graph.add_input("mask", (5, 7), "bool" if mask == "bool" else "float32"))
        feeds.append(torch.rand(5, 7) > 0.3 if mask == "bool" else torch.randn(5, 7))
        feeds[-1][:, 0] = True if mask == "bool" else feeds[-1][:, 0]  # no fully masked row
    node = graph.add_node("Attention", inputs, kwargs)
    infer_node(node)
    graph.set_outputs([node.output])
    model = check(graph, feeds, tmp_path / "a.onnx")
    assert "Softmax" in {n.op_type for n in model.graph.node}


def test_weighted_layers_and_initializer_names(tmp_path: Path):
    graph = Graph("layers")
    x = graph.add_input("x", ("batch", 3, 8, 8))
    torch.manual_seed(0)
    conv = graph.add_node(
        "Conv",
        [x],
        {"stride": (2, 2), "padding": (1,), "dilation": (1,), "groups": 1},
        {"weight": torch.randn(4, 3, 3, 3), "bias": torch.randn(4)},
        source="layer1.0.conv2",
    )
    bn_weights = {"running_mean": torch.randn(4), "running_var": torch.rand(4) + 0.5}
    bn = graph.add_node("BatchNorm", [conv.output], {}, bn_weights, source="layer1.0.bn2")
    up = graph.add_node(
        "ConvTranspose", [bn.output], {"stride": (2, 2)}, {"weight": torch.randn(4, 2, 2, 2)}
    )
    pool = graph.add_node("AdaptiveAvgPool", [up.output], {"output_size": (2, 2)})
    flat = graph.add_node("Flatten", [pool.output], {"start_dim": 2})
    seq = graph.add_node("Transpose", [flat.output], {"perm": (0, 2, 1)})
    fc = graph.add_node("Linear", [seq.output], weights={"weight": torch.randn(5, 2)}, source="fc")
    fc.weights["bias"] = torch.randn(5)
    for node in graph.nodes:
        infer_node(node)
    graph.set_outputs([fc.output])
    model = check(graph, [torch.randn(3, 3, 8, 8)], tmp_path / "l.onnx")
    names = {t.name for t in model.graph.initializer}
    assert {"layer1.0.conv2.weight", "layer1.0.conv2.bias", "fc.weight", "fc.bias"} <= names
    assert {"layer1.0.bn2.running_mean", "layer1.0.bn2.running_var"} <= names
    ops = [n.op_type for n in model.graph.node]
    assert "AveragePool" in ops and "MatMul" in ops and "Gemm" not in ops  # rank-3 Linear
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_data_movement_ops(tmp_path: Path):
    graph, xs = chain(
        (2, 3, 4, 5),
        ("Pad", {"pads": (1, 2, 0, 1), "mode": "reflect"}),
        ("Pad", {"pads": (1, 1, 0, 0), "mode": "replicate"}),
        ("Pad", {"pads": (0, 1, 2, 0), "value": 0.5}),
        ("Slice", {"starts": (1, 0), "ends": (3, 2**63 - 1), "axes": (1, 3), "steps": (1, 2)}),
        ("Reshape", {"shape": (0, -1, 2)}),
        ("Unsqueeze", {"axes": (1,)}),
        ("Expand", {"shape": (-1, 3, -1, -1)}),
        ("Flatten", {"start_dim": 0, "end_dim": 1}),
        ("Select", {"axis": 2, "index": -1}),
        ("ReduceMean", {"axes": (1,), "keepdims": False}),
        ("Squeeze", {"axes": None}),
        ("Cast", {"dtype": "float64"}),
        ("ReduceSum", {"axes": None}),
    )
    check(graph, xs, tmp_path / "d.onnx")


def test_split_concat_gather_and_softmax(tmp_path: Path):
    graph = Graph("split")
    x = graph.add_input("x", (2, 6, 3))
    idx = graph.add_input("idx", (4,), "int64")
    split = graph.add_node("Split", [x], {"axis": 1, "sizes": (2, 4)})
    joined = graph.add_node("Concat", [split.outputs[1], split.outputs[0]], {"axis": 1})
    picked = graph.add_node("Gather", [joined.output, idx], {"axis": 1})
    out = graph.add_node("LogSoftmax", [picked.output], {"axis": 1})
    for node in graph.nodes:
        infer_node(node)
    graph.set_outputs([out.output, split.outputs[0]])
    check(graph, [torch.randn(2, 6, 3), torch.tensor([5, 0, 2, 2])], tmp_path / "s.onnx")


def test_unlowerable_graph_falls_back_to_torch_export_with_a_warning(tmp_path: Path):
    graph = Graph("opaque")
    x = graph.add_input("x", ("batch", 4))
    cumsum = graph.add_node(
        "Opaque", [x], {"target": torch.cumsum, "args": (InputRef(0),), "kwargs": {"dim": 1}}
    )
    out = graph.add_node("Relu", [cumsum.output])
    cumsum.outputs[0].shape = ("batch", 4)
    infer_node(out)
    graph.set_outputs([out.output])
    with pytest.warns(UserWarning, match="torch.onnx.export"):
        written = to_onnx(graph, tmp_path / "o.onnx")
    session = ort_session(written)
    assert session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        x_in = torch.randn(batch, 4)
        got = session.run(None, {session.get_inputs()[0].name: x_in.numpy()})[0]
        np.testing.assert_allclose(got, torch.relu(torch.cumsum(x_in, 1)).numpy(), rtol=1e-5)


def test_adaptive_pool_to_a_size_that_does_not_divide_falls_back(tmp_path: Path):
    graph, xs = chain((1, 2, 7, 7), ("AdaptiveAvgPool", {"output_size": (3, 3)}))
    with pytest.warns(UserWarning, match="AdaptiveAvgPool"):
        check(graph, xs, tmp_path / "p.onnx")


def test_failed_fallback_is_a_backend_error_and_writes_nothing(tmp_path: Path):
    graph, _ = chain((1, 2, 7, 7), ("AdaptiveMaxPool", {"output_size": (3, 3)}))
    with pytest.warns(UserWarning), pytest.raises(BackendError, match="torch.onnx.export"):
        to_onnx(graph, tmp_path / "p.onnx")
    assert list(tmp_path.iterdir()) == []


def test_dynamic_false_fixes_symbols_to_one(tmp_path: Path):
    graph, _ = chain(("batch", 3), ("Relu", {}))
    model = onnx.load(to_onnx(graph, tmp_path / "s.onnx", dynamic=False))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3]


def test_bad_opset_is_refused(tmp_path: Path):
    graph, _ = chain((2, 3), ("Relu", {}))
    with pytest.raises(BackendError, match="opset 11"):
        to_onnx(graph, tmp_path / "x.onnx", opset=11)


def test_failed_check_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    graph, _ = chain((2, 3), ("Relu", {}))

    def reject(*args, **kwargs):
        raise onnx.checker.ValidationError("rejected for the test")

    monkeypatch.setattr(write_module.onnx.checker, "check_model", reject)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(BackendError, match="rejected for the test"):
        to_onnx(graph, tmp_path / "m.onnx")
    assert sorted(os.listdir(tmp_path)) == before


def test_never_overwrites_the_model_the_graph_came_from(tmp_path: Path):
    graph, _ = chain((2, 3), ("Relu", {}))
    source = to_onnx(graph, tmp_path / "model.onnx")
    data = source.read_bytes()
    lifted = lift_onnx(source)
    (tmp_path / "alias.onnx").symlink_to(source)
    for target in (source, tmp_path / "alias.onnx", tmp_path / "." / "model.onnx"):
        with pytest.raises(BackendError, match="read from"):
            to_onnx(lifted, target)
    assert source.read_bytes() == data
    assert to_onnx(lifted, tmp_path / "copy.onnx").exists()


def test_large_models_keep_external_data_beside_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(write_module, "EXTERNAL_DATA_BYTES", 0)  # as if it were over 2 GB
    weights = {"weight": torch.randn(64, 32)}  # over onnx's 1 KB external-data threshold
    graph, xs = single_op("Linear", [(2, 32)], weights=weights, source="fc")
    model = check(graph, xs, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").is_file()
    stored = onnx.load(tmp_path / "big.onnx", load_external_data=False).graph.initializer
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in stored)
    assert [t.name for t in model.graph.initializer] == ["fc.weight"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]


def test_output_that_is_an_input_or_a_constant_gets_its_own_node(tmp_path: Path):
    graph = Graph("passthrough")
    x = graph.add_input("x", (2,))
    const = graph.add_node("Constant", weights={"value": torch.tensor([1.0, 2.0])})
    infer_node(const)
    graph.set_outputs([x, const.output, x])
    model = check(graph, [torch.randn(2)], tmp_path / "p.onnx")
    assert len({o.name for o in model.graph.output}) == 3


def test_elementwise_ops(tmp_path: Path):
    graph = Graph("elementwise")
    a, b = graph.add_input("a", (3, 4)), graph.add_input("b", (4,))

    def add(op: str, *inputs: Value, **attrs) -> Value:
        node = graph.add_node(op, list(inputs), attrs)
        infer_node(node)
        return node.output

    positive = add("Exp", add("Abs", a))
    mixed = add("Sub", add("Mul", a, b), add("Div", b, positive))
    unary = add("Erf", add("Tanh", add("Sigmoid", add("Neg", mixed))))
    logs = add("Log", add("Sqrt", add("Reciprocal", positive)))
    powered = add("Pow", positive, add("LeakyRelu", b, alpha=0.2))
    chosen = add("Where", add("Not", add("Less", a, b)), unary, logs)
    chosen = add("Where", add("Greater", a, b), chosen, add("HardSigmoid", powered))
    same = add("Where", add("Equal", a, a), chosen, a)
    out = add("Softmax", add("Add", same, add("Relu", a)), axis=0)
    graph.set_outputs([out])
    check(graph, [torch.randn(3, 4), torch.randn(4)], tmp_path / "e.onnx")
