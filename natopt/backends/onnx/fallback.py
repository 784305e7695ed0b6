"""The fallback for graphs ``to_onnx`` cannot lower op by op: the torch exporter.

``export_with_torch`` lowers the graph to a torch module (``to_torch``) and exports it with
``torch.onnx.export(..., dynamo=True)``; each symbolic dim of an input becomes a
``torch.export.Dim`` of the same name, so the exported inputs keep it as ``dim_param``.
"""

from __future__ import annotations

import torch
from onnx import ModelProto

from natopt.backends.torch_module import to_torch
from natopt.errors import BackendError
from natopt.ir import Graph
from natopt.ir.types import concrete_shape, to_torch_dtype

__all__ = ["export_with_torch"]

_EXAMPLE_SIZE = 2  # symbolic dims are traced at this size (0 and 1 get specialised)


def export_with_torch(graph: Graph, opset: int, dynamic: bool) -> ModelProto:
    """The ONNX model torch's dynamo exporter makes of ``to_torch(graph)``."""
    symbols = {
        part: _EXAMPLE_SIZE
        for value in graph.inputs
        for dim in value.shape or ()
        if isinstance(dim, str)
        for part in dim.split("*")
        if not part.isdigit()
    }
    examples = tuple(
        torch.zeros(concrete_shape(v.shape or (), symbols), dtype=to_torch_dtype(v.dtype))
        for v in graph.inputs
    )
    dynamic_shapes = None
    if dynamic and symbols:
        dims = {name: torch.export.Dim(name) for name in symbols}
        dynamic_shapes = tuple(
            {
                axis: dims[d]
                for axis, d in enumerate(v.shape or ())
                if isinstance(d, str) and d in dims
            }
            or None
            for v in graph.inputs
        )
    try:
        program = torch.onnx.export(
            to_torch(graph),
            examples,
            dynamo=True,
            opset_version=opset,
            dynamic_shapes=dynamic_shapes,
            input_names=[v.name for v in graph.inputs],
            output_names=[v.name for v in graph.outputs],
            verbose=False,
        )
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BackendError(f"graph {graph.name}: torch.onnx.export failed: {detail}") from exc
    if program is None:
        raise BackendError(f"graph {graph.name}: torch.onnx.export returned no model")
    return program.model_proto
