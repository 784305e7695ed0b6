"""``natopt optimize`` on bad input, through the CLI: every case is exit 2, exactly one line on
stderr starting ``natopt:`` and no traceback, none of ``-o``, ``--report`` or ``--save-plan``
written, and every input file byte for byte as it was.

The inputs are copies of the shipped MNIST example (model and 300 of its samples), broken one
way each. Every case fails before the search starts, so the whole matrix takes seconds.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from natopt.cli.main import main
from natopt.passes.transitions import Plan

EXAMPLE = resources.files("natopt") / "data"
SAMPLES = 300


def _det_model(path: Path) -> None:
    """A valid ONNX file whose only op (Det) natopt cannot lift."""
    square = [1, 28, 28]
    graph = helper.make_graph(
        [helper.make_node("Det", ["x"], ["y"])],
        "det",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, square)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _npz(path: Path, **arrays: np.ndarray) -> None:
    with path.open("wb") as file:
        np.savez(file, **arrays)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with the good model and data and every broken variant."""
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(str(EXAMPLE / "example_mnist.onnx"), folder / "model.onnx")
    with np.load(str(EXAMPLE / "example_mnist.npz")) as data:
        x, y = data["x"][:SAMPLES], data["y"][:SAMPLES]
    _npz(folder / "data.npz", x=x, y=y)
    model_bytes = (folder / "model.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(model_bytes[: len(model_bytes) // 2])
    _det_model(folder / "det.onnx")
    (folder / "other_plan.json").write_text(Plan({"encoder.block3.conv": "skip"}).to_json())
    _npz(folder / "shape.npz", x=x[:, :, :20, :20], y=y)
    _npz(folder / "dtype.npz", x=x.astype(np.complex64), y=y)
    _npz(folder / "label_dtype.npz", x=x, y=y.astype(np.float32))
    _npz(folder / "names.npz", images=x, y=y)
    nan = x.copy()
    nan[3, 0, 5, 5] = np.nan
    _npz(folder / "nan.npz", x=nan, y=y)
    _npz(folder / "labels.npz", x=x, y=np.where(np.arange(SAMPLES) == 7, 10, y))
    (folder / "truncated.npz").write_bytes((folder / "data.npz").read_bytes()[:1000])
    return folder


Case = Callable[[Path], list[str]]


def _with(model: str = "model.onnx", data: str = "data.npz", *extra: str) -> Case:
    return lambda folder: [str(folder / model), "--data", str(folder / data), *extra]


CASES: dict[str, tuple[Case, str]] = {
    "missing model": (_with("missing.onnx"), "missing.onnx: no such ONNX file"),
    "truncated onnx": (_with("truncated.onnx"), "truncated.onnx: not a readable ONNX"),
    "unsupported op": (_with("det.onnx"), "op Det"),
    "unmeetable budget": (
        _with("model.onnx", "data.npz", "--budget", "macs=0.01", "--space", "nat"),
        "no valid plan meets the budget macs=0.01",
    ),
    "plan for another model": (
        _with("model.onnx", "data.npz", "--plan", "{folder}/other_plan.json"),
        "encoder.block3.conv",
    ),
    "missing data": (_with("model.onnx", "missing.npz"), "missing.npz does not exist"),
    "truncated data": (_with("model.onnx", "truncated.npz"), "not a readable .npz"),
    "wrong shape": (_with("model.onnx", "shape.npz"), "axis 2: 20 != 28"),
    "wrong dtype": (_with("model.onnx", "dtype.npz"), "complex64"),
    "wrong label dtype": (_with("model.onnx", "label_dtype.npz"), "integer"),
    "wrong input names": (_with("model.onnx", "names.npz"), "found ['images', 'y']"),
    "NaN": (_with("model.onnx", "nan.npz"), "NaN"),
    "labels out of range": (_with("model.onnx", "labels.npz"), "the model has 10 classes"),
    "objective with a budget": (
        _with("model.onnx", "data.npz", "--objective", "accuracy", "--budget", "macs=0.5"),
        "ask for two different things",
    ),
    "rungs wider than the search": (
        _with("model.onnx", "data.npz", "--rungs", "8x10,2x20"),
        "the first rung fine-tunes 8 plans, but the search scores only 4",
    ),
    "no evaluations": (
        _with("model.onnx", "data.npz", "--evaluations", "0"),
        "--evaluations, --candidates and --latency-rounds must be >= 1",
    ),
    "negative time budget": (
        _with("model.onnx", "data.npz", "--time-budget", "-5"),
        "--time-budget -5: give a positive number of seconds",
    ),
    "dump into a file": (
        _with("model.onnx", "data.npz", "--dump-ir", "{folder}/data.npz"),
        "--dump-ir",
    ),
}


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _run(case: str, inputs: Path, out: Path, *extra: str) -> int:
    """``natopt optimize`` on ``case``'s inputs with every output option aimed into ``out``."""
    build, _ = CASES[case]
    argv = [arg.replace("{folder}", str(inputs)) for arg in build(inputs)]
    outputs = ["-o", str(out / "m.onnx"), "--report", str(out / "r.json")]
    outputs += ["--save-plan", str(out / "p.json")]
    small = ["--evaluations", "4", "--finetune-steps", "5", "--rungs", "none", "--no-latency"]
    return main(["optimize", *outputs, *small, *argv, *extra])  # a case's flags win


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    case: str, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _hashes(inputs)
    status = _run(case, inputs, tmp_path, "--quiet")
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("natopt: error: "), err
    assert CASES[case][1] in lines[0] and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert _hashes(inputs) == before


@pytest.mark.parametrize("case", list(CASES))
def test_without_quiet_the_error_is_still_the_only_line(
    case: str, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _run(case, inputs, tmp_path)
    lines = capsys.readouterr().err.splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("natopt: error: ")
