"""Lower an IR graph to an ONNX file: ``to_onnx(graph, path, opset=18, dynamic=True)``.

Every node goes through its emitter in ``EMITTERS`` (one table keyed by IR op). Graph inputs
and outputs keep their names and their symbolic dims as ``dim_param`` (``dynamic=False``
fixes every symbol to 1). Where some node has no emitter (an ``Opaque`` op) or its emitter
cannot express it, the whole graph goes through ``torch.onnx.export`` instead, with a
warning. The file is written whole or not at all (``write_model``), never over the file the
graph was lifted from (``graph.meta["source_path"]``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
from onnx import ModelProto, ValueInfoProto, helper

from natopt.backends.onnx.context import EmitContext, NotLowerable, onnx_dtype
from natopt.backends.onnx.fallback import export_with_torch
from natopt.backends.onnx.lower_table import EMITTERS
from natopt.backends.onnx.write import refuse_source, write_model
from natopt.errors import BackendError
from natopt.ir import Graph, Value
from natopt.ir.types import concrete_shape

__all__ = ["to_onnx", "build_model", "MIN_OPSET"]

MIN_OPSET = 13
SOURCE_PATH = "source_path"  # graph.meta key set by frontends: the file a graph came from


def to_onnx(
    graph: Graph, path: str | os.PathLike[str], *, opset: int = 18, dynamic: bool = True
) -> Path:
    """Write ``graph`` as an ONNX model at ``path`` (see the module docstring)."""
    path = Path(path)
    refuse_source(path, graph.meta.get(SOURCE_PATH))
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise BackendError(f"opset {opset} is not supported; choose {MIN_OPSET}..{newest}")
    try:
        model = build_model(graph, opset, dynamic=dynamic)
    except NotLowerable as exc:
        warnings.warn(
            f"to_onnx: graph {graph.name}: {exc}; exporting it with torch.onnx.export "
            "(dynamo) instead",
            stacklevel=2,
        )
        model = export_with_torch(graph, opset, dynamic)
    return write_model(model, path)


def build_model(graph: Graph, opset: int = 18, *, dynamic: bool = True) -> ModelProto:
    """The ONNX model of ``graph``, emitted node by node (``NotLowerable`` if it cannot be)."""
    missing = sorted({node.op for node in graph.nodes if node.op not in EMITTERS})
    if missing:
        raise NotLowerable(f"no ONNX emitter for op(s) {', '.join(missing)}")
    cx = EmitContext(graph, opset)
    for node in graph.nodes:
        try:
            EMITTERS[node.op](cx, node)
        except NotLowerable:
            raise
        except Exception as exc:
            raise BackendError(f"node {node.name} ({node.op}): cannot emit ONNX: {exc}") from exc
    produced = {name for node in cx.nodes for name in node.output}
    outputs: list[ValueInfoProto] = []
    for value in graph.outputs:
        name = cx.name(value)
        if name not in produced or any(o.name == name for o in outputs):
            name = cx.add("Identity", [name], hint=f"{value.name}.output")
        outputs.append(_value_info(name, value, dynamic))
    inputs = [_value_info(cx.name(v), v, dynamic) for v in graph.inputs]
    onnx_graph = helper.make_graph(cx.nodes, graph.name, inputs, outputs, cx.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="natopt")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _value_info(name: str, value: Value, dynamic: bool) -> ValueInfoProto:
    if value.shape is None:
        raise BackendError(f"value {value.name} has no shape; run infer_shapes first")
    shape = list(value.shape) if dynamic else list(concrete_shape(value.shape))
    return helper.make_tensor_value_info(name, onnx_dtype(value.dtype), shape)
