"""Helpers shared by the ONNX frontend tests: build a model with onnx.helper, run it with
onnxruntime, and check that the lifted graph (through ``to_torch`` and ``to_onnx``) agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from natopt.backends import to_onnx, to_torch
from natopt.frontends.onnx import lift_onnx
from natopt.ir import Graph

RNG = np.random.default_rng(0)
F = TensorProto.FLOAT


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def save(path: Path, nodes, inputs, outputs, inits=(), opset: int = 13) -> Path:
    """A checked model of ``nodes``; ``inputs``/``outputs`` are float ``(name, shape)`` pairs
    (or ``(name, shape, elem_type)``)."""

    def info(spec):
        name, shape, *elem = spec
        return helper.make_tensor_value_info(name, elem[0] if elem else F, shape)

    graph = helper.make_graph(
        nodes,
        "toy",
        [info(i) for i in inputs],
        [info(o) for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_scaled_close(want: np.ndarray, have: np.ndarray, tolerance: float) -> None:
    """Same shape, max |have - want| <= tolerance * max(1, max |want|)."""
    assert have.shape == want.shape
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(have, want)
        return
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    diff = float(np.abs(have.astype(np.float64) - want).max(initial=0.0))
    assert diff <= tolerance * scale, f"max abs diff {diff:.3g} > {tolerance:g} * {scale:.3g}"


def check(
    path: Path,
    feeds: dict[str, np.ndarray],
    *,
    round_trip: bool = True,
    tolerance: float = 1e-5,
) -> Graph:
    """Lift ``path``; to_torch (and to_onnx) outputs must match onnxruntime on ``path``."""
    expected = ort_run(path, feeds)
    graph = lift_onnx(path)
    with torch.no_grad():
        got = to_torch(graph)(*(torch.from_numpy(feeds[v.name]) for v in graph.inputs))
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    for want, have in zip(expected, got, strict=True):
        assert_scaled_close(want, have.numpy(), tolerance)
    if round_trip:
        again = ort_run(to_onnx(graph, path.with_name(f"{path.stem}.out.onnx")), feeds)
        for want, have in zip(expected, again, strict=True):
            assert_scaled_close(want, have, tolerance)
    return graph


def export_model(model: torch.nn.Module, x: torch.Tensor, path: Path, exporter: str) -> Path:
    """``model`` exported to ``path`` with a dynamic batch by torch's ``dynamo`` or ``legacy``
    exporter (one input ``input``; the legacy export names its output ``out``)."""
    if exporter == "dynamo":
        batch = torch.export.Dim("batch")
        torch.onnx.export(
            model, (x,), path, dynamo=True, input_names=["input"], dynamic_shapes=({0: batch},)
        )
    else:
        torch.onnx.export(
            model,
            (x,),
            path,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["out"],
            dynamic_axes={"input": {0: "batch"}, "out": {0: "batch"}},
        )
    return path
