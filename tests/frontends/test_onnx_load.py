"""Reading ONNX files: bad input is one clear error naming the file; external data stays in
the model's folder; the user's file and ModelProto are never modified."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from natopt.backends import to_onnx, to_torch
from natopt.errors import FrontendError
from natopt.frontends.onnx import lift_onnx
from natopt.frontends.onnx import load as load_module

WEIGHT = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)


def conv_model(opset: int = 13) -> onnx.ModelProto:
    """``y = relu(conv(x, W))`` on ``x[batch, 3, 8, 8]``."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "stem.conv.weight"], ["h"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [numpy_helper.from_array(WEIGHT, "stem.conv.weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def expected_output(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(torch.nn.functional.conv2d(x, torch.from_numpy(WEIGHT), padding=1))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(path: Path, *words: str) -> None:
    with pytest.raises(FrontendError) as info:
        lift_onnx(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message


def test_missing_file(tmp_path: Path):
    assert_one_line_error(tmp_path / "absent.onnx", "no such file")


def test_directory_is_not_a_model(tmp_path: Path):
    assert_one_line_error(tmp_path, "not a file")


def test_text_file_is_not_a_model(tmp_path: Path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is a README, not a neural network\n" * 20)
    assert_one_line_error(path, "ONNX")


def test_truncated_file(tmp_path: Path):
    path = tmp_path / "cut.onnx"
    data = conv_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(path)


def test_model_the_checker_rejects(tmp_path: Path):
    model = conv_model()
    model.graph.node[1].input[0] = "undefined_value"
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    assert_one_line_error(path, "onnx.checker")


def test_file_and_proto_are_left_untouched_and_meta_records_the_source(tmp_path: Path):
    path = tmp_path / "old.onnx"
    onnx.save(conv_model(opset=11), path)  # converted to opset 13 in memory only
    before, mtime = digest(path), os.stat(path).st_mtime_ns
    graph = lift_onnx(path)
    assert digest(path) == before and os.stat(path).st_mtime_ns == mtime
    assert graph.meta["source_path"] == str(path.resolve())
    assert graph.meta["onnx_opset"] == 13 and graph.name == "old"

    proto = conv_model(opset=11)
    serialized = proto.SerializeToString()
    lift_onnx(proto, name="from_proto")
    assert proto.SerializeToString() == serialized


def test_symbolic_dims_names_and_source_of_a_lifted_file(tmp_path: Path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(), path)
    graph = lift_onnx(path)
    assert graph.inputs[0].shape == ("batch", 3, 8, 8)
    assert graph.outputs[0].shape == ("batch", 4, 8, 8)
    assert graph.find("Conv")[0].source == "stem.conv"
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(to_torch(graph)(x), expected_output(x))
    again = onnx.load(to_onnx(graph, tmp_path / "again.onnx"))
    assert [o.name for o in again.graph.output] == ["y"]  # the model's names come back
    assert [i.name for i in again.graph.input] == ["x"]
    assert again.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_unnamed_dynamic_dim_gets_a_name(tmp_path: Path):
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    graph = lift_onnx(model)
    assert graph.inputs[0].shape == ("x_0", 3, 8, 8)
    assert graph.outputs[0].shape[0] == "x_0"


def save_external(folder: Path, location: str | None = None) -> Path:
    """Save with the weight in ``w.data``; then point the tensor at ``location``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        conv_model(), path, save_as_external_data=True, location="w.data", size_threshold=0
    )
    if location is not None:
        model = onnx.load(path, load_external_data=False)
        for entry in model.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save(model, path)
    return path


def test_external_data_is_loaded_from_the_model_folder(tmp_path: Path):
    path = save_external(tmp_path / "models")
    assert (tmp_path / "models" / "w.data").exists()
    graph = lift_onnx(path)
    np.testing.assert_array_equal(graph.find("Conv")[0].weights["weight"].numpy(), WEIGHT)


@pytest.mark.parametrize("escape", ["absolute", "dotdot", "symlink"])
def test_escaping_external_data_is_refused_before_reading(tmp_path, monkeypatch, escape: str):
    outside = tmp_path / "secret"
    outside.mkdir()
    save_external(outside)  # a real data file outside the model's folder
    target = outside / "w.data"
    folder = tmp_path / "models"
    folder.mkdir()
    if escape == "symlink":
        (folder / "link.data").symlink_to(target)
    location = {"absolute": str(target), "dotdot": "../secret/w.data", "symlink": "link.data"}
    path = save_external(folder, location[escape])

    def must_not_read(*args, **kwargs):
        raise AssertionError("external data was read before the location was checked")

    monkeypatch.setattr(
        load_module.external_data_helper, "load_external_data_for_model", must_not_read
    )
    assert_one_line_error(path, "outside the model's folder")


def test_initializers_listed_as_inputs_are_weights_not_inputs():
    model = conv_model()
    model.ir_version = 3  # before IR 4, every initializer was listed among the inputs too
    model.graph.input.append(
        helper.make_tensor_value_info("stem.conv.weight", TensorProto.FLOAT, list(WEIGHT.shape))
    )
    graph = lift_onnx(model)
    assert [v.name for v in graph.inputs] == ["x"]
    assert graph.outputs[0].shape == ("batch", 4, 8, 8)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(to_torch(graph)(x), expected_output(x))


def test_input_names_that_are_not_identifiers_keep_their_names(tmp_path: Path):
    model = conv_model()
    model.graph.input[0].name = "input.1"  # the legacy exporter's default input name
    model.graph.node[0].input[0] = "input.1"
    graph = lift_onnx(model)
    assert graph.inputs[0].name == "input.1"
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(to_torch(graph)(x), expected_output(x))
    written = onnx.load(to_onnx(graph, tmp_path / "named.onnx"))
    assert written.graph.input[0].name == "input.1"
