"""ONNX frontend on small models written with onnx.helper, as other tools write them.

Each model is lifted, lowered with ``to_torch`` and compared with onnxruntime on the same
file; most go on through ``to_onnx`` and onnxruntime again. The IR is checked too: which ops
the lift produced, their attributes, weights and sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_support import F, check, rand, save

from natopt.errors import FrontendError, UnsupportedOpError
from natopt.frontends.onnx import lift_onnx, supported_ops


def test_gemm_opset13_trans_b0_alpha_beta_becomes_linear(tmp_path: Path):
    w, c = rand(8, 5), rand(5)
    node = helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], alpha=0.5, beta=2.0)
    path = save(
        tmp_path / "g.onnx",
        [node],
        [("x", [3, 8])],
        [("y", [3, 5])],
        [
            ("fc.weight", w),
            ("fc.bias", c),
        ],
    )
    graph = check(path, {"x": rand(3, 8)})
    (linear,) = graph.find("Linear")
    assert linear.source == "fc"
    np.testing.assert_allclose(linear.weights["weight"].numpy(), 0.5 * w.T)
    np.testing.assert_allclose(linear.weights["bias"].numpy(), 2.0 * c)


def test_matmul_with_constant_b_is_linear_and_add_becomes_its_bias(tmp_path: Path):
    w, b = rand(6, 4), rand(4)
    nodes = [
        helper.make_node(
            "MatMul", ["x", "onnx::MatMul_7"], ["h"], name="/blocks/blocks.0/fc/MatMul"
        ),
        helper.make_node("Add", ["blocks.0.fc.bias", "h"], ["y"], name="/blocks/blocks.0/fc/Add"),
    ]
    path = save(
        tmp_path / "m.onnx",
        nodes,
        [("x", [2, 3, 6])],
        [("y", [2, 3, 4])],
        [
            ("onnx::MatMul_7", w),
            ("blocks.0.fc.bias", b),
        ],
    )
    graph = check(path, {"x": rand(2, 3, 6)})
    assert graph.op_counts() == {"Linear": 1}
    (linear,) = graph.find("Linear")
    assert linear.source == "blocks.0.fc"  # from the exporter's scope in the node name
    np.testing.assert_allclose(linear.weights["weight"].numpy(), w.T)


def test_layer_normalization_opset17(tmp_path: Path):
    node = helper.make_node(
        "LayerNormalization", ["x", "ln.weight", "ln.bias"], ["y"], epsilon=1e-6
    )
    inits = [("ln.weight", rand(8)), ("ln.bias", rand(8))]
    path = save(tmp_path / "ln.onnx", [node], [("x", [2, 4, 8])], [("y", [2, 4, 8])], inits, 17)
    graph = check(path, {"x": rand(2, 4, 8)})
    (norm,) = graph.find("LayerNorm")
    assert norm.attrs["normalized_shape"] == (8,) and norm.source == "ln"


def test_decomposed_layer_norm_and_gelu(tmp_path: Path):
    c = helper.make_node
    scalars = [("two", np.array(2.0, np.float32)), ("eps", np.array(1e-5, np.float32))]
    scalars += [("sqrt2", np.array(np.sqrt(2.0), np.float32)), ("one", np.array(1.0, np.float32))]
    scalars += [("half", np.array(0.5, np.float32)), ("gamma", rand(8)), ("beta", rand(8))]
    nodes = [
        c("ReduceMean", ["x"], ["mean"], axes=[-1]),
        c("Sub", ["x", "mean"], ["d"]),
        c("Pow", ["d", "two"], ["d2"]),
        c("ReduceMean", ["d2"], ["var"], axes=[-1]),
        c("Add", ["var", "eps"], ["ve"]),
        c("Sqrt", ["ve"], ["std"]),
        c("Div", ["d", "std"], ["n"]),
        c("Mul", ["n", "gamma"], ["s"]),
        c("Add", ["s", "beta"], ["ln"]),
        c("Div", ["ln", "sqrt2"], ["q"]),
        c("Erf", ["q"], ["e"]),
        c("Add", ["e", "one"], ["e1"]),
        c("Mul", ["ln", "e1"], ["g"]),
        c("Mul", ["g", "half"], ["y"]),
    ]
    path = save(tmp_path / "dec.onnx", nodes, [("x", [2, 5, 8])], [("y", [2, 5, 8])], scalars)
    graph = check(path, {"x": rand(2, 5, 8)})
    assert {"ReduceMean", "Pow", "Sqrt", "Erf"} <= set(graph.op_counts())


def test_dynamic_batch_shape_chain_becomes_reshape_attribute(tmp_path: Path):
    c = helper.make_node
    inits = [("zero", np.array(0, np.int64)), ("axes0", np.array([0], np.int64))]
    inits += [("rest", np.array([-1], np.int64))]
    nodes = [
        c("Shape", ["x"], ["s"]),
        c("Gather", ["s", "zero"], ["n"], axis=0),
        c("Unsqueeze", ["n", "axes0"], ["n1"]),
        c("Concat", ["n1", "rest"], ["target"], axis=0),
        c("Reshape", ["x", "target"], ["y"]),
    ]
    graph_inputs = [("x", ["batch", 3, 4, 4])]
    path = save(tmp_path / "dyn.onnx", nodes, graph_inputs, [("y", ["batch", 48])], inits)
    for batch in (1, 4):
        graph = check(path, {"x": rand(batch, 3, 4, 4)}, round_trip=batch == 4)
    assert graph.op_counts() == {"Reshape": 1}
    (reshape,) = graph.find("Reshape")
    assert reshape.attrs["shape"] == (0, -1)
    assert graph.inputs[0].shape == ("batch", 3, 4, 4)
    assert graph.outputs[0].shape == ("batch", 48)


def test_dynamic_expand_uses_a_run_time_shape(tmp_path: Path):
    c = helper.make_node
    inits = [("zero", np.array([0], np.int64)), ("ones", np.array([1, 1], np.int64))]
    inits += [("cls", rand(1, 1, 6))]
    nodes = [
        c("Shape", ["x"], ["s"]),
        c("Gather", ["s", "zero"], ["n"], axis=0),
        c("Concat", ["n", "ones"], ["target"], axis=0),
        c("Expand", ["cls", "target"], ["tok"]),
        c("Concat", ["tok", "x"], ["y"], axis=1),
    ]
    path = save(tmp_path / "exp.onnx", nodes, [("x", ["b", 3, 6])], [("y", ["b", 4, 6])], inits)
    for batch in (1, 3):
        graph = check(path, {"x": rand(batch, 3, 6)})
    assert graph.outputs[0].shape == ("b", 4, 6)
    assert graph.find("Constant")[0].meta.get("trainable") is True  # "cls" reads as a param


def test_asymmetric_conv_pads_become_pad_then_conv(tmp_path: Path):
    node = helper.make_node("Conv", ["x", "conv.weight"], ["y"], pads=[0, 1, 2, 1], strides=[2, 2])
    path = save(
        tmp_path / "c.onnx",
        [node],
        [("x", [1, 2, 7, 7])],
        [("y", [1, 3, 4, 4])],
        [("conv.weight", rand(3, 2, 3, 3))],
    )
    graph = check(path, {"x": rand(1, 2, 7, 7)})
    assert [n.op for n in graph.nodes] == ["Pad", "Conv"]
    assert graph.find("Conv")[0].attrs["padding"] == (0, 0)
    assert graph.find("Conv")[0].source == "conv"


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_conv_and_maxpool(tmp_path: Path, auto_pad: str):
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["h"], auto_pad=auto_pad, strides=[2, 2]),
        helper.make_node("MaxPool", ["h"], ["y"], auto_pad=auto_pad, kernel_shape=[2, 2]),
    ]
    path = save(
        tmp_path / "a.onnx",
        nodes,
        [("x", [1, 2, 8, 9])],
        [("y", [1, 3, "h", "w"])],
        [
            ("w", rand(3, 2, 4, 4)),
            ("b", rand(3)),
        ],
    )
    check(path, {"x": rand(1, 2, 8, 9)})


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("include_pad", [0, 1])
def test_auto_pad_average_pool_counts_only_real_elements(
    tmp_path: Path, auto_pad: str, include_pad: int
):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h"], auto_pad=auto_pad, strides=[1, 2]),
        helper.make_node(
            "AveragePool",
            ["h"],
            ["y"],
            auto_pad=auto_pad,
            kernel_shape=[2, 3],
            strides=[2, 1],
            count_include_pad=include_pad,
        ),
    ]
    path = save(
        tmp_path / "p.onnx",
        nodes,
        [("x", [1, 2, 7, 8])],
        [("y", [1, 3, "h", "w"])],
        [("w", rand(3, 2, 3, 2))],
    )
    graph = check(path, {"x": rand(1, 2, 7, 8)})
    if auto_pad != "VALID" and not include_pad:  # the even kernel pads one side more
        assert [n.op for n in graph.nodes if n.op != "Constant"][-3:] == ["Pad", "AvgPool", "Div"]


@pytest.mark.parametrize(
    "attrs",
    [
        {"auto_pad": "SAME_UPPER"},
        {"auto_pad": "SAME_LOWER"},
        {"auto_pad": "VALID"},
        {"pads": [0, 1, 2, 1]},
        {"output_shape": [9, 10]},
        {"output_shape": [8, 11], "output_padding": [1, 1]},
    ],
)
def test_conv_transpose_auto_pad_output_shape_and_asymmetric_pads(tmp_path: Path, attrs: dict):
    node = helper.make_node(
        "ConvTranspose", ["x", "up.weight", "up.bias"], ["y"], strides=[2, 2], **attrs
    )
    inits = [("up.weight", rand(2, 3, 3, 4)), ("up.bias", rand(3))]
    path = save(
        tmp_path / "ct.onnx", [node], [("x", [1, 2, 4, 5])], [("y", [1, 3, "h", "w"])], inits
    )
    graph = check(path, {"x": rand(1, 2, 4, 5)})
    assert graph.find("ConvTranspose")[0].source == "up"


def test_constant_identity_and_clip_bounds(tmp_path: Path):
    c = helper.make_node
    nodes = [
        c("Constant", [], ["six"], value=numpy_helper.from_array(np.array(6.0, np.float32))),
        c("Constant", [], ["zero"], value_float=0.0),
        c("Identity", ["six"], ["six2"]),
        c("Clip", ["x", "zero", "six2"], ["r6"]),
        c("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(-0.5, np.float32))),
        c("Clip", ["r6", "lo"], ["low"]),
        c("Identity", ["low"], ["y"]),
    ]
    path = save(tmp_path / "k.onnx", nodes, [("x", [4, 4])], [("y", [4, 4])])
    graph = check(path, {"x": 5 * rand(4, 4)})
    assert graph.op_counts() == {"Relu6": 1, "Clip": 1, "Identity": 1}
    assert graph.find("Clip")[0].attrs == {"min": -0.5, "max": None}


def test_gather_on_initializer_is_embedding(tmp_path: Path):
    table = rand(10, 4)
    node = helper.make_node("Gather", ["embed.tokens.weight", "ids"], ["y"], axis=0)
    graph = helper.make_graph(
        [node],
        "emb",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info("y", F, [2, 3, 4])],
        [numpy_helper.from_array(table, "embed.tokens.weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "e.onnx")
    lifted = check(tmp_path / "e.onnx", {"ids": np.array([[1, 2, 9], [0, 0, 3]], np.int64)})
    (embedding,) = lifted.find("Embedding")
    assert embedding.source == "embed.tokens"


def test_split_slice_transpose_and_pooling(tmp_path: Path):
    c = helper.make_node
    inits = [("sizes", np.array([2, 4], np.int64)), ("st", np.array([1], np.int64))]
    inits += [("en", np.array([5], np.int64)), ("ax", np.array([3], np.int64))]
    nodes = [
        c("Split", ["x", "sizes"], ["a", "b"], axis=1),
        c("Slice", ["b", "st", "en", "ax"], ["bs"]),
        c("AveragePool", ["a"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        c("Slice", ["ap", "st", "en", "ax"], ["aps"]),
        c("Concat", ["aps", "bs"], ["cat"], axis=1),
        c("Transpose", ["cat"], ["t"], perm=[0, 2, 3, 1]),
        c("GlobalAveragePool", ["cat"], ["g"]),
        c("Flatten", ["g"], ["y"], axis=1),
        c("Softmax", ["t"], ["z"], axis=-1),
    ]
    outputs = [("y", [2, 6]), ("z", [2, 6, 4, 6])]
    path = save(tmp_path / "s.onnx", nodes, [("x", [2, 6, 6, 6])], outputs, inits)
    graph = check(path, {"x": rand(2, 6, 6, 6)})
    assert graph.find("AvgPool")[0].attrs["count_include_pad"] is False


def test_batchnorm_and_sources_from_weight_names(tmp_path: Path):
    names = ["layer1.0.bn1.weight", "layer1.0.bn1.bias"]
    names += ["layer1.0.bn1.running_mean", "layer1.0.bn1.running_var"]
    inits = [(names[0], rand(3)), (names[1], rand(3)), (names[2], rand(3))]
    inits += [(names[3], np.abs(rand(3)) + 0.5)]
    node = helper.make_node("BatchNormalization", ["x", *names], ["y"], name="bn")
    path = save(tmp_path / "bn.onnx", [node], [("x", [2, 3, 4, 4])], [("y", [2, 3, 4, 4])], inits)
    graph = check(path, {"x": rand(2, 3, 4, 4)})
    assert graph.find("BatchNorm")[0].source == "layer1.0.bn1"


@pytest.mark.parametrize("op", ["Det", "NonMaxSuppression"])
def test_unsupported_op_names_op_node_and_supported_ops(tmp_path: Path, op: str):
    inputs = ["x"] if op == "Det" else ["x", "scores"]
    node = helper.make_node(op, inputs, ["y"], name="odd_node")
    graph_inputs = [helper.make_tensor_value_info("x", F, [1, 3, 3] if op == "Det" else [1, 4, 4])]
    if op == "NonMaxSuppression":
        graph_inputs.append(helper.make_tensor_value_info("scores", F, [1, 1, 4]))
    out_type, out_shape = (F, [1]) if op == "Det" else (TensorProto.INT64, ["k", 3])
    output = helper.make_tensor_value_info("y", out_type, out_shape)
    graph = helper.make_graph([node], "bad", graph_inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError) as info:
        lift_onnx(model)
    message = str(info.value)
    assert f"op {op}" in message and "odd_node" in message
    assert ", ".join(supported_ops()) in message
    assert supported_ops() == sorted(supported_ops()) and "Conv" in supported_ops()


def test_transposed_conv_instance_and_group_norm(tmp_path: Path):
    c = helper.make_node
    inits = [("up.weight", rand(4, 6, 3, 3)), ("up.bias", rand(6))]
    inits += [("in.scale", rand(6)), ("in.bias", rand(6))]
    inits += [("gn.scale", rand(6)), ("gn.bias", rand(6))]
    nodes = [
        c("ConvTranspose", ["x", "up.weight", "up.bias"], ["u"], strides=[2, 2], pads=[1, 1, 1, 1]),
        c("InstanceNormalization", ["u", "in.scale", "in.bias"], ["i"], epsilon=1e-4),
        c("LeakyRelu", ["i"], ["l"], alpha=0.1),
        c("GroupNormalization", ["l", "gn.scale", "gn.bias"], ["g"], num_groups=3),
        c("HardSigmoid", ["g"], ["y"]),
    ]
    path = save(tmp_path / "t.onnx", nodes, [("x", [2, 4, 5, 5])], [("y", [2, 6, 9, 9])], inits, 21)
    graph = check(path, {"x": rand(2, 4, 5, 5)})
    assert graph.find("GroupNorm")[0].attrs["num_groups"] == 6  # instance norm: one per channel
    assert graph.find("GroupNorm")[1].source == "gn"
    assert graph.find("HardSigmoid")[0].attrs == {"alpha": 0.2, "beta": 0.5}


def test_reductions_comparisons_and_casts(tmp_path: Path):
    c = helper.make_node
    inits = [("axes", np.array([1], np.int64)), ("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1]))]
    nodes = [
        c("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
        c("ReduceMax", ["x"], ["m"], axes=[2, 3], keepdims=0),
        c("ReduceMean", ["x"], ["all"], keepdims=0),
        c("Greater", ["x", "s"], ["gt"]),
        c("Less", ["x", "all"], ["lt"]),
        c("Equal", ["gt", "lt"], ["eq"]),
        c("Cast", ["eq"], ["eqf"], to=TensorProto.FLOAT),
        c("Where", ["gt", "x", "eqf"], ["w"]),
        c("Pad", ["w", "pads"], ["p"], mode="reflect"),
        c("Flatten", ["p"], ["f"], axis=2),
        c("LogSoftmax", ["f"], ["y"], axis=0),
        c("Dropout", ["m"], ["z"]),
    ]
    outputs = [("y", [6, 56]), ("z", [2, 3])]
    path = save(tmp_path / "r.onnx", nodes, [("x", [2, 3, 4, 5])], outputs, inits, 13)
    graph = check(path, {"x": rand(2, 3, 4, 5)})
    assert graph.find("ReduceMean")[0].attrs == {"axes": (0, 1, 2, 3), "keepdims": False}
    assert graph.find("Pad")[0].attrs["pads"] == (2, 1, 1, 2)


def test_gelu_op_and_static_expand_at_opset20(tmp_path: Path):
    c = helper.make_node
    inits = [("shape", np.array([2, 3, 4], np.int64))]
    nodes = [
        c("Gelu", ["x"], ["g"], approximate="tanh"),
        c("Expand", ["g", "shape"], ["e"]),
        c("Softmax", ["e"], ["y"], axis=1),
    ]
    path = save(tmp_path / "g.onnx", nodes, [("x", [3, 1])], [("y", [2, 3, 4])], inits, 20)
    graph = check(path, {"x": rand(3, 1)})
    assert graph.find("Expand")[0].attrs["shape"] == (2, -1, 4)
    assert graph.find("Gelu")[0].attrs["approximate"] == "tanh"


def test_fixed_split_of_a_dynamic_batch_is_a_clear_error(tmp_path: Path):
    """A model traced at batch 2 that splits its batch into [1, 1] cannot run at batch 3."""
    inits = [("sizes", np.array([1, 1], np.int64))]
    node = helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=0, name="per_image")
    outputs = [("a", [1, 4]), ("b", [1, 4])]
    path = save(tmp_path / "s.onnx", [node], [("x", ["batch", 4])], outputs, inits)
    with pytest.raises(FrontendError, match=r"node per_image \(Split\).*exported for size 2"):
        lift_onnx(path)


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ([-1], [np.iinfo(np.int64).min], [1], [-1]),  # reverse, as torch.flip exports
        ([5, 0], [0, 4], [2, 1], [-2, 1]),
        ([100, -2], [-100, 1], [3, 2], [-3, -1]),
    ],
)
def test_negative_step_slices(tmp_path: Path, starts, ends, axes, steps):
    inits = [
        (name, np.array(v, np.int64))
        for name, v in zip(("st", "en", "ax", "sp"), (starts, ends, axes, steps), strict=True)
    ]
    node = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])
    path = save(
        tmp_path / "n.onnx", [node], [("x", [2, 5, 6, 7])], [("y", ["a", "b", "c", "d"])], inits
    )
    check(path, {"x": rand(2, 5, 6, 7)})
