"""Frontends lift models into the IR: torch modules, fx graphs, exported programs, ONNX.

``lift`` picks the frontend from the model's type; each frontend only builds IR (it never
imports a backend or a pass).
"""

from __future__ import annotations

import os
from typing import Any

from natopt.ir import Graph

__all__ = ["lift"]


def lift(model: Any, example_inputs: Any = None, **options: Any) -> Graph:
    """Lift ``model`` into a verified IR graph.

    - ``torch.nn.Module`` / ``torch.fx.GraphModule`` / ``torch.export.ExportedProgram``: the
      torch frontend (``example_inputs``: a tensor or a tuple of tensors; required for modules
      that are not ExportedPrograms);
    - an ONNX file path or an ``onnx.ModelProto``: the ONNX frontend.
    """
    if isinstance(model, (str, os.PathLike)) or type(model).__name__ == "ModelProto":
        from natopt.frontends.onnx import lift_onnx

        return lift_onnx(model, **options)
    from natopt.frontends.torch import lift_torch

    return lift_torch(model, example_inputs, **options)
