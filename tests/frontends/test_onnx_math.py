"""ONNX activations, variadic element-wise ops, Tile/Range/CumSum/Einsum, reductions and
normalisations as other tools write them, each lifted and compared with onnxruntime through
``to_torch`` and ``to_onnx`` (max abs difference within 1e-5 of the output's scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_support import check, rand, save

from natopt.errors import UnsupportedOpError
from natopt.frontends.onnx import lift_onnx, supported_ops

c = helper.make_node
X = ("x", [2, 3, 4, 5])

ACTIVATIONS = [
    ("Softplus", {}, "Softplus", 13),
    ("Softsign", {}, "Softsign", 13),
    ("Elu", {"alpha": 0.7}, "Elu", 13),
    ("Selu", {}, "Selu", 13),
    ("Selu", {"alpha": 1.5, "gamma": 0.9}, "Selu", 13),
    ("Celu", {"alpha": 2.0}, "Celu", 13),
    ("ThresholdedRelu", {"alpha": 0.3}, "ThresholdedRelu", 13),
    ("Mish", {}, "Mish", 18),
    ("Floor", {}, "Floor", 13),
    ("Ceil", {}, "Ceil", 13),
    ("Round", {}, "Round", 13),
    ("Sign", {}, "Sign", 13),
    ("Sin", {}, "Sin", 13),
    ("Cos", {}, "Cos", 13),
]


@pytest.mark.parametrize(("op", "attrs", "ir_op", "opset"), ACTIVATIONS)
def test_unary_op(tmp_path: Path, op: str, attrs: dict, ir_op: str, opset: int):
    path = save(tmp_path / "a.onnx", [c(op, ["x"], ["y"], **attrs)], [X], [X], (), opset)
    x = 3 * rand(2, 3, 4, 5)
    x[0, 0, 0, :2] = [0.5, -2.5]  # ties for Round
    graph = check(path, {"x": x})
    assert graph.op_counts() == {ir_op: 1}


def test_prelu_with_channel_slope_keeps_its_source(tmp_path: Path):
    inits = [("act.weight", rand(3, 1, 1))]
    node = c("PRelu", ["x", "act.weight"], ["y"])
    graph = check(save(tmp_path / "p.onnx", [node], [X], [X], inits), {"x": rand(2, 3, 4, 5)})
    (prelu,) = graph.find("PRelu")
    assert prelu.source == "act" and tuple(prelu.weights["weight"].shape) == (3, 1, 1)


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic_ops_broadcast_several_inputs(tmp_path: Path, op: str):
    inputs = [("a", [2, 3, 4]), ("b", [3, 1]), ("d", [4])]
    nodes = [c(op, ["a", "b", "d"], ["y"]), c(op, ["a"], ["z"])]
    path = save(tmp_path / "v.onnx", nodes, inputs, [("y", [2, 3, 4]), ("z", [2, 3, 4])])
    graph = check(path, {"a": rand(2, 3, 4), "b": rand(3, 1), "d": rand(4)})
    expected = {"Max": {"Max": 2}, "Min": {"Min": 2}, "Sum": {"Add": 2, "Identity": 1}}
    expected["Mean"] = {"Add": 2, "Identity": 1, "Div": 2, "Constant": 2}
    assert graph.op_counts() == expected[op]


def test_where_comparisons_and_logic_broadcast(tmp_path: Path):
    nodes = [
        c("LessOrEqual", ["a", "b"], ["le"]),
        c("GreaterOrEqual", ["a", "zero"], ["ge"]),
        c("And", ["le", "ge"], ["both"]),
        c("IsNaN", ["a"], ["nan"]),
        c("Or", ["le", "ge"], ["some"]),
        c("Or", ["some", "nan"], ["either"]),
        c("Where", ["both", "a", "b"], ["w"]),
        c("Where", ["either", "w", "zero"], ["y"]),
    ]
    inits = [("zero", np.array(0.0, np.float32))]
    path = save(
        tmp_path / "w.onnx", nodes, [("a", [2, 3, 4]), ("b", [3, 1])], [("y", [2, 3, 4])], inits
    )
    check(path, {"a": rand(2, 3, 4), "b": rand(3, 1)})


def test_tile_expand_cumsum_and_reductions(tmp_path: Path):
    inits = [("reps", np.array([1, 2, 1, 3], np.int64)), ("axis", np.array(-1, np.int64))]
    inits += [("shape", np.array([2, 1, 1, 1], np.int64)), ("ax1", np.array([1], np.int64))]
    nodes = [
        c("Tile", ["x", "reps"], ["t"]),
        c("CumSum", ["t", "axis"], ["s"]),
        c("CumSum", ["t", "axis"], ["se"], exclusive=1, reverse=1),
        c("Expand", ["se", "shape"], ["e"]),
        c("Add", ["s", "e"], ["y"]),
        c("ReduceMin", ["y", "ax1"], ["mn"], keepdims=0),
        c("ReduceL2", ["y", "ax1"], ["l2"], keepdims=1),
    ]
    outputs = [("y", [2, 6, 4, 15]), ("mn", [2, 4, 15]), ("l2", [2, 1, 4, 15])]
    graph = check(
        save(tmp_path / "t.onnx", nodes, [X], outputs, inits, 18), {"x": rand(2, 3, 4, 5)}
    )
    assert graph.find("Tile")[0].attrs["repeats"] == (1, 2, 1, 3)
    cumsums = graph.find("CumSum")
    assert [(n.attrs["axis"], n.attrs["exclusive"], n.attrs["reverse"]) for n in cumsums] == [
        (3, False, False),
        (3, True, True),
    ]


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_max_and_min_with_ties(tmp_path: Path, op: str, last: int):
    nodes = [
        c("Round", ["x"], ["r"]),  # small integers: ties
        c(op, ["r"], ["y"], axis=-1, keepdims=0, select_last_index=last),
        c(op, ["r"], ["z"], axis=1),
    ]
    outputs = [("y", [2, 3, 4], TensorProto.INT64), ("z", [2, 1, 4, 5], TensorProto.INT64)]
    graph = check(save(tmp_path / "a.onnx", nodes, [X], outputs), {"x": rand(2, 3, 4, 5)})
    assert graph.find(op)[0].attrs == {
        "axis": 3,
        "keepdims": False,
        "select_last_index": bool(last),
    }


@pytest.mark.parametrize("largest", [0, 1])
def test_top_k_values_and_indices(tmp_path: Path, largest: int):
    inits = [("k", np.array([3], np.int64))]
    node = c("TopK", ["x", "k"], ["values", "indices"], axis=2, largest=largest)
    outputs = [("values", [2, 3, 3, 5]), ("indices", [2, 3, 3, 5], TensorProto.INT64)]
    graph = check(save(tmp_path / "k.onnx", [node], [X], outputs, inits), {"x": rand(2, 3, 4, 5)})
    assert graph.find("TopK")[0].attrs == {
        "k": 3,
        "axis": 2,
        "largest": bool(largest),
        "sorted": True,
    }


@pytest.mark.parametrize(
    ("equation", "shapes", "out"),
    [
        ("bij,bjk->bik", [[2, 3, 4], [2, 4, 5]], [2, 3, 5]),
        ("bhqd,bhkd->bhqk", [[2, 2, 3, 4], [2, 2, 5, 4]], [2, 2, 3, 5]),
        ("ij->ji", [[3, 4]], [4, 3]),
        ("...ii->...i", [[2, 3, 3]], [2, 3]),
        ("i,j->ij", [[3], [4]], [3, 4]),
    ],
)
def test_einsum(tmp_path: Path, equation: str, shapes, out):
    names = [f"in{i}" for i in range(len(shapes))]
    node = c("Einsum", names, ["y"], equation=equation)
    path = save(tmp_path / "e.onnx", [node], list(zip(names, shapes, strict=True)), [("y", out)])
    graph = check(path, {n: rand(*s) for n, s in zip(names, shapes, strict=True)})
    assert graph.find("Einsum")[0].attrs["equation"] == equation


def test_range_over_a_dynamic_dim_and_a_static_one(tmp_path: Path):
    inits = [("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64))]
    inits += [("idx1", np.array(1, np.int64)), ("three", np.array(3, np.int64))]
    nodes = [
        c("Shape", ["x"], ["s"]),
        c("Gather", ["s", "zero"], ["n"]),  # the dynamic batch
        c("Range", ["zero", "n", "one"], ["r"]),
        c("Gather", ["s", "idx1"], ["k"]),  # a static dim: folded
        c("Range", ["one", "k", "three"], ["rk"]),
        c("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
        c("Unsqueeze", ["rf", "one"], ["col"]),
        c("Add", ["x", "col"], ["y"]),
    ]
    outputs = [("y", ["b", 7]), ("rk", [2], TensorProto.INT64)]
    path = save(tmp_path / "r.onnx", nodes, [("x", ["b", 7])], outputs, inits)
    for batch in (1, 4):
        graph = check(path, {"x": rand(batch, 7)})
    (range_,) = graph.find("Range")
    assert range_.output.shape == ("b",)


def test_gather_elements_with_constant_and_negative_indices(tmp_path: Path):
    inits = [("idx", np.array([[0, -1, 2], [1, 1, -3]], np.int64))]
    nodes = [c("Abs", ["x"], ["a"]), c("GatherElements", ["a", "idx"], ["y"], axis=1)]
    graph = check(
        save(tmp_path / "g.onnx", nodes, [("x", [2, 4])], [("y", [2, 3])], inits), {"x": rand(2, 4)}
    )
    assert graph.find("GatherElements")[0].attrs["axis"] == 1


def test_layer_norm_over_two_axes_without_bias(tmp_path: Path):
    node = c("LayerNormalization", ["x", "ln.weight"], ["y"], axis=-2, epsilon=1e-3)
    path = save(tmp_path / "l.onnx", [node], [X], [X], [("ln.weight", rand(4, 5))], 17)
    graph = check(path, {"x": rand(2, 3, 4, 5)})
    assert graph.find("LayerNorm")[0].attrs["normalized_shape"] == (4, 5)


def test_instance_norm_then_group_norm_opset21(tmp_path: Path):
    inits = [("inorm.scale", rand(6)), ("inorm.bias", rand(6))]
    inits += [("gn.scale", rand(6)), ("gn.bias", rand(6))]
    nodes = [
        c("InstanceNormalization", ["x", "inorm.scale", "inorm.bias"], ["i"], epsilon=1e-3),
        c("GroupNormalization", ["i", "gn.scale", "gn.bias"], ["y"], num_groups=3),
    ]
    x = ("x", [2, 6, 4, 5])
    path = save(tmp_path / "n.onnx", nodes, [x], [x], inits, 21)
    graph = check(path, {"x": rand(2, 6, 4, 5)})
    assert [n.attrs["num_groups"] for n in graph.find("GroupNorm")] == [6, 3]


@pytest.mark.parametrize("op", ["Det", "Unique"])
def test_an_unsupported_op_is_one_clear_error(tmp_path: Path, op: str):
    node = c(op, ["x"], ["y"], name="the_node")
    path = save(
        tmp_path / "u.onnx", [node], [("x", [3, 3])], [("y", ["k"] if op == "Unique" else [])]
    )
    with pytest.raises(UnsupportedOpError) as info:
        lift_onnx(path)
    message = str(info.value)
    assert f"op {op} (node the_node) is not supported" in message
    assert "Resize" in supported_ops() and "Einsum" in message


def test_constant_of_shape_over_a_dynamic_shape_and_a_static_one(tmp_path: Path):
    inits = [("fixed", np.array([1, 7], np.int64))]
    fill = helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5])
    nodes = [
        c("Shape", ["x"], ["s"]),
        c("ConstantOfShape", ["s"], ["ones"], value=fill),  # [batch, 7] of 1.5
        c("ConstantOfShape", ["fixed"], ["zeros"]),  # the default: float zeros
        c("Mul", ["x", "ones"], ["m"]),
        c("Add", ["m", "zeros"], ["y"]),
    ]
    outputs = [("y", ["b", 7])]
    path = save(tmp_path / "cos.onnx", nodes, [("x", ["b", 7])], outputs, inits)
    for batch in (1, 3):
        graph = check(path, {"x": rand(batch, 7)})
    assert len(graph.find("Expand")) == 1  # the static one folds to a constant
