"""Small ONNX models and result files for the bench and report tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def build_matmul_model(path: Path, shape: Sequence[int | str], width: int = 8) -> Path:
    """``y = relu(x @ W)`` with input shape ``shape`` (last axis ``width``), saved to ``path``."""
    weight = np.random.default_rng(1).standard_normal((width, width)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def build_model(tmp_path: Path) -> Callable[[str, Sequence[int | str]], Path]:
    """A factory ``(file name, input shape) -> path`` of MatMul+Relu models in ``tmp_path``."""
    return lambda name, shape: build_matmul_model(tmp_path / name, shape)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A MatMul+Relu model with a symbolic batch axis."""
    return build_matmul_model(tmp_path / "tiny.onnx", ["batch", 8])


@pytest.fixture
def static_model(tmp_path: Path) -> Path:
    """The same model with a static batch of 1."""
    return build_matmul_model(tmp_path / "static.onnx", [1, 8])


def _optimize_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "model": "resnet18.onnx",
        "before": {
            "params": 11689512,
            "macs": 1814073344,
            "latency_ms": 4.2,
            "quality": 1.0,
            "accuracy": 0.6976,
        },
        "after": {
            "params": 8420000,
            "macs": 1290000000,
            "latency_ms": 3.0,
            "quality": 0.997,
            "accuracy": 0.6931,
        },
        "latency": {"before_ms": 4.2, "after_ms": 3.0, "speedup": 1.4, "rounds": 50},
        "plan": {"layer1.0.conv2": "skip"},
        "search": {
            "method": "policy",
            "evaluations": 3,
            "best_reward": 0.012,
            "candidates": [
                {"latency_ms": 3.6, "quality": 0.999, "chosen": False},
                {"latency_ms": 3.0, "quality": 0.997, "chosen": True},
                {"latency_ms": 2.1, "macs": 900000000, "quality": 0.95, "chosen": False},
            ],
        },
        "provider": "CPUExecutionProvider",
        "times": {"lift": 0.5, "search": 12.0},
    }
    record.update(changes)
    return record


@pytest.fixture
def optimize_record() -> Callable[..., dict[str, Any]]:
    """A factory of valid optimisation results (no ``kind``), with top-level changes applied."""
    return _optimize_record


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, object], Path]:
    """Write an object as JSON to ``tmp_path / name`` and return the path."""

    def write(name: str, data: object) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write
