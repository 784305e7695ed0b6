"""``natopt inspect``: unit table, JSON report, IR text, model loading and its errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from natopt._console import plain_text
from natopt.cli.inspect import COLUMNS, Row, format_table
from natopt.cli.main import main
from natopt.cli.models import parse_shape
from natopt.errors import FrontendError

TINY_MODELS = '''
import torch
from torch import nn


class TwoInputs(nn.Module):
    """conv -> bn -> relu on the image, plus a linear on the side input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6, 4)

    def forward(self, image, side):
        h = self.pool(torch.relu(self.bn(self.conv(image))))
        return h.mean((2, 3)) + self.fc(side)


instance = TwoInputs()


def needs_arguments(width):
    return nn.Linear(width, width)


def not_a_model():
    return 42


def deep(blocks=300):
    layers = []
    for _ in range(blocks):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]
    return nn.Sequential(*layers)
'''


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    (tmp_path / "tiny_models.py").write_text(textwrap.dedent(TINY_MODELS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def inspect_json(capsys, *argv: str) -> dict:
    assert main(["inspect", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # nothing but the JSON on stdout


def test_resnet18_json_rows_add_up_to_the_totals(capsys):
    report = inspect_json(capsys, "torchvision.models:resnet18")
    rows, totals = report["nodes"], report["totals"]
    folded_bn_channels = 4_800  # each folded BN's 2*C parameters become its conv's C biases
    assert sum(r["params"] for r in rows) == totals["params"] == 11_689_512 - folded_bn_channels
    assert sum(r["macs"] for r in rows) == totals["macs"]
    assert totals["macs"] > 1_800_000_000
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    kinds = [r["kind"] for r in rows]
    assert (kinds.count("conv"), kinds.count("linear"), kinds.count("pool")) == (20, 1, 1)
    assert "BatchNorm" not in totals["ops"] and totals["nodes"] == sum(totals["ops"].values())
    assert len(report["branches"]) == 11
    first = rows[0]
    assert first["name"] == "conv1" and first["ops"] == ["Conv", "Relu"]
    assert first["input_shape"] == [1, 3, 224, 224] and first["output_shape"] == [1, 64, 112, 112]
    assert first["params"] == 64 * 3 * 7 * 7 + 64


def test_text_table_and_totals(capsys, models_dir):
    argv = ["inspect", "tiny_models:TwoInputs", "--input-shape", "2,3,8,8"]
    assert main([*argv, "--input-shape", "2,6"]) == 0
    out = capsys.readouterr().out
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["name", "kind", "ops"]
    conv = next(line for line in lines if line.startswith("conv "))
    assert "Conv+Relu" in conv and "[2,3,8,8] -> [2,4,8,8]" in conv
    assert any(line.split()[1:3] == ["pool", "MaxPool"] for line in lines)
    assert any(line.startswith("fc ") and "linear" in line for line in lines)
    assert "totals: params 140" in out  # conv 4*3*9+4, fc 6*4+4
    assert "ops: " in out and "BatchNorm" not in out


def test_module_file_path_instance_and_graph_text(capsys, models_dir):
    argv = ["inspect", str(models_dir / "tiny_models.py") + ":instance"]
    assert main([*argv, "--input-shape", "1,3,8,8", "--input-shape", "1,6", "--graph"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph ") and "= Conv(" in out and "totals:" in out


def test_the_other_row_holds_unowned_parameters():
    import torch

    from natopt.cli.inspect import inspect_graph
    from natopt.ir import Graph, infer_shapes

    g = Graph("other")
    x = g.add_input("x", (2, 5, 8))
    pos = g.add_node("Constant", weights={"value": torch.randn(1, 5, 8)}, source="pos")
    h = g.add_node("Add", [x, pos.output]).output
    t = g.add_node("Transpose", [h], {"perm": (0, 2, 1)}).output
    mm = g.add_node("MatMul", [h, t], source="scores").output
    g.set_outputs([mm])
    infer_shapes(g)
    report = inspect_graph(g)
    assert [(r.name, r.kind, r.params, r.macs) for r in report.rows] == [
        ("scores", "op", 0, 2 * 5 * 5 * 8),
        ("other", "other", 40, 0),
    ]
    assert report.totals["params"] == 40 and report.totals["macs"] == 400


def write_tiny_onnx(path) -> None:
    """Conv -> BatchNormalization -> Relu -> Flatten -> Gemm, written with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    tensors = {
        "w": rng.standard_normal((4, 3, 3, 3)),
        "b": rng.standard_normal(4),
        "gamma": rng.random(4) + 0.5,
        "beta": rng.standard_normal(4),
        "mean": rng.standard_normal(4),
        "var": rng.random(4) + 0.5,
        "fc_w": rng.standard_normal((5, 256)),
        "fc_b": rng.standard_normal(5),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node(
            "BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"
        ),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(t.astype(np.float32), name) for name, t in tensors.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_an_onnx_file(capsys, tmp_path):
    path = tmp_path / "tiny.onnx"
    write_tiny_onnx(path)
    report = inspect_json(capsys, str(path))
    assert [(r["kind"], r["ops"]) for r in report["nodes"]] == [
        ("conv", ["Conv", "Relu"]),
        ("linear", ["Linear"]),
    ]
    assert report["totals"]["params"] == 4 * 3 * 9 + 4 + 256 * 5 + 5
    assert report["nodes"][0]["input_shape"] == [1, 3, 8, 8]
    assert main(["inspect", str(path), "--input-shape", "1,3,8,8"]) == 2
    assert "carries its input shapes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing_model.onnx"], "missing_model.onnx: no such ONNX file"),
        (["no_such_module_xyz:Net"], "cannot import 'no_such_module_xyz'"),
        (["tiny_models:Missing"], "has no attribute 'Missing'"),
        (["tiny_models:needs_arguments"], "calling needs_arguments() with no arguments failed"),
        (["tiny_models:not_a_model"], "returned int, not a torch module"),
        (["resnet18"], "neither an existing ONNX file nor a Python 'module:attr'"),
        (["tiny_models:TwoInputs", "--input-shape", "1,x,8"], "--input-shape '1,x,8'"),
        (["tiny_models:TwoInputs", "--input-shape", "0,3"], "positive integers"),
        (["tiny_models:TwoInputs", "--input-dtype", "complex7"], "--input-dtype"),
    ],
)
def test_errors_are_one_clear_line_and_exit_2(capsys, models_dir, argv, message):
    assert main(["inspect", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("natopt: error: ")
    assert message in captured.err


def test_parse_shape():
    assert parse_shape("1,3,224,224") == (1, 3, 224, 224)
    with pytest.raises(FrontendError):
        parse_shape("")


def test_table_columns_are_specs():
    row = Row("a.b", "conv", ["Conv", "Relu"], (1, 3, 4, 4), (1, 8, 4, 4), 224, 1_000, 0.25)
    row.transitions = ["keep", "skip"]
    lines = plain_text(format_table([row], COLUMNS)).splitlines()
    assert lines[0].split() == [
        "name",
        "kind",
        "ops",
        "input",
        "->",
        "output",
        "params",
        "MACs",
        "share",
        "transitions",
    ]
    assert set(lines[1]) == {"─"}
    assert lines[2].split() == [
        "a.b",
        "conv",
        "Conv+Relu",
        "[1,3,4,4]",
        "->",
        "[1,8,4,4]",
        "224",
        "1,000",
        "25.00%",
        "skip",
    ]


@pytest.mark.slow
def test_a_deep_generated_model_runs(capsys, models_dir):
    report = inspect_json(capsys, "tiny_models:deep", "--input-shape", "1,8,16,16")
    assert report["totals"]["nodes"] == 600 and len(report["nodes"]) == 300
