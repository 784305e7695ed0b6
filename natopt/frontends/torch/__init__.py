"""The torch frontend: lift an ``nn.Module``, an fx ``GraphModule`` or an ``ExportedProgram``.

``lift_torch`` exports the model with ``torch.export`` (eval semantics, the user's module left
as it was) and lifts the ATen graph through one table of adapters keyed by target; where
export is not possible it traces with ``torch.fx.symbolic_trace`` and lifts the torch-level
graph. Ops without an IR form become ``Opaque`` nodes that keep the original callable.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn
from torch.export import ExportedProgram

from natopt.errors import FrontendError
from natopt.frontends.torch.export import (
    as_input_tuple,
    check_inputs_fit,
    eval_mode,
    export_module,
    reason,
)
from natopt.frontends.torch.graph_module import lift_graph_module, lift_torch_level
from natopt.frontends.torch.program import lift_program
from natopt.ir import Graph, infer_shapes, verify

__all__ = ["lift_torch"]


def lift_torch(
    model: Any,
    example_inputs: Any = None,
    *,
    dynamic_batch: bool = False,
    name: str | None = None,
) -> Graph:
    """Lift ``model`` into a verified IR graph.

    - ``ExportedProgram``: lifted as exported (its symbolic dim 0 becomes ``"batch"``).
    - ``fx.GraphModule`` (from ``torch.compile`` or ``symbolic_trace``): exported when
      ``example_inputs`` allow, else its torch-level graph is lifted.
    - ``nn.Module``: exported in eval mode (the module's flags are restored); with
      ``dynamic_batch`` dim 0 of every input is the symbol ``"batch"``.
    """
    if isinstance(model, ExportedProgram):
        graph = lift_program(model, name or "exported_program")
        if dynamic_batch and any(isinstance(v.shape[0], int) for v in graph.inputs if v.shape):
            raise FrontendError(
                "this ExportedProgram has a static batch: export it with dynamic_shapes "
                "(dim 0 = torch.export.Dim('batch')) or lift the nn.Module with dynamic_batch=True"
            )
    elif isinstance(model, fx.GraphModule):
        graph = lift_graph_module(model, example_inputs, dynamic_batch, name or "graph_module")
    elif isinstance(model, nn.Module):
        graph = _lift_module(model, example_inputs, dynamic_batch, name or type(model).__name__)
    else:
        raise FrontendError(
            f"cannot lift a {type(model).__name__}: give an nn.Module, an fx.GraphModule or a "
            "torch.export.ExportedProgram"
        )
    infer_shapes(graph)
    verify(graph)
    return graph


def _lift_module(model: nn.Module, example_inputs: Any, dynamic_batch: bool, name: str) -> Graph:
    """Export in eval mode; where export fails (and the inputs fit), symbolic_trace instead."""
    inputs = as_input_tuple(model, example_inputs)
    with eval_mode(model):
        try:
            program = export_module(model, inputs, dynamic_batch=dynamic_batch)
        except Exception as export_error:
            check_inputs_fit(model, inputs)
            if dynamic_batch:
                raise FrontendError(
                    f"dynamic_batch needs torch.export, which failed for {name}: "
                    f"{reason(export_error)}"
                ) from export_error
            return _lift_traced(model, inputs, name, export_error)
    return lift_program(program, name)


def _lift_traced(model: nn.Module, inputs: tuple, name: str, export_error: Exception) -> Graph:
    try:
        traced = fx.symbolic_trace(model)
    except Exception as trace_error:
        raise FrontendError(
            f"{name} neither exports ({reason(export_error)}) nor traces with "
            f"torch.fx.symbolic_trace ({reason(trace_error)}); make its forward traceable"
        ) from trace_error
    return lift_torch_level(traced, inputs, name)
