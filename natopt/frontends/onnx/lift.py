"""Lift an ONNX model into a verified IR graph.

The walk is one pass over the (topologically ordered) ONNX nodes: a node whose outputs are
known before run time is folded (``fold``); every other node goes through its adapter in
``ONNX_ADAPTERS``, and an op with no adapter is an ``UnsupportedOpError`` naming the op, the
node and the supported ops. Graph inputs keep their names and their symbolic dims; at the
end the IR's own shape inference runs over the graph (keeping ONNX's shapes where an op
cannot run on meta tensors) and the verifier checks it.
"""

from __future__ import annotations

import os
from collections import Counter

from onnx import GraphProto, ModelProto

from natopt.errors import FrontendError, UnsupportedOpError
from natopt.frontends.onnx.context import LiftContext
from natopt.frontends.onnx.fold import fold
from natopt.frontends.onnx.load import ir_dtype, load_model
from natopt.frontends.onnx.onnx_table import ONNX_ADAPTERS, supported_ops
from natopt.ir import Graph, Value, infer_shapes, verify

__all__ = ["lift_onnx", "SOURCE_PATH"]

SOURCE_PATH = "source_path"  # graph.meta key: the resolved file a graph was lifted from
OUTPUT_NAMES = "output_names"  # graph.meta key: the model's output names, kept by to_onnx


def lift_onnx(model: str | os.PathLike[str] | ModelProto, *, name: str | None = None) -> Graph:
    """Lift an ONNX file (or ``ModelProto``) into a verified IR graph named ``name``.

    ``graph.meta`` records ``frontend="onnx"``, ``onnx_opset``, ``output_names`` (which
    ``to_onnx`` gives the outputs again) and, for a file, ``source_path`` (so that a backend
    never writes over it).
    """
    loaded = load_model(model)
    onnx_graph = loaded.model.graph
    stem = loaded.path.stem if loaded.path is not None else ""
    graph = Graph(name or stem or onnx_graph.name or "onnx_model")
    graph.meta.update({"frontend": "onnx", "onnx_opset": loaded.opset})
    if loaded.path is not None:
        graph.meta[SOURCE_PATH] = str(loaded.path.resolve())
    cx = LiftContext(
        graph,
        loaded,
        initializers={t.name: t for t in onnx_graph.initializer},
        use_counts=_use_counts(onnx_graph),
    )
    _add_inputs(cx, onnx_graph)
    for node in onnx_graph.node:
        if fold(cx, node):
            continue
        adapter = ONNX_ADAPTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if adapter is None:
            op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
            raise UnsupportedOpError(
                f"{loaded.label}: op {op} (node {node.name or '(unnamed)'}) is not supported "
                f"by the ONNX frontend; supported ops: {', '.join(supported_ops())}"
            )
        result = adapter(cx, node)
        outputs = [result] if isinstance(result, Value) else list(result)
        for index, output in enumerate(node.output):
            if index < len(outputs):
                cx.values[output] = outputs[index]
            elif output and cx.use_counts.get(output, 0):
                raise cx.fail(node, f"its output {index} ({output}) is used but not supported")
    graph.set_outputs(cx.value(output.name) for output in onnx_graph.output)
    graph.meta[OUTPUT_NAMES] = [output.name for output in onnx_graph.output]
    infer_shapes(graph)
    verify(graph)
    return graph


def _use_counts(graph: GraphProto) -> dict[str, int]:
    """How many node inputs and graph outputs read each value."""
    counts = Counter(name for node in graph.node for name in node.input if name)
    counts.update(output.name for output in graph.output)
    return dict(counts)


def _add_inputs(cx: LiftContext, graph: GraphProto) -> None:
    for info in graph.input:
        if info.name in cx.initializers:
            continue
        where = f"{cx.loaded.label}: input {info.name}"
        shape = cx.loaded.shapes.get(info.name)
        if shape is None:
            raise FrontendError(f"{where} has no shape; export the model with input shapes")
        dtype = ir_dtype(info.type.tensor_type.elem_type, where)
        value = cx.graph.add_input(info.name, tuple(shape), dtype)  # type: ignore[arg-type]
        cx.values[info.name] = value
        cx.note_dims(value)
