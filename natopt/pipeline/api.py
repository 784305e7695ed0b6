"""``natopt.optimize``: the Python entry point, for a model in any form natopt lifts.

Usage::

    result = natopt.optimize(model, "data.npz", example_inputs=torch.randn(1, 3, 32, 32),
                             budget="macs=0.6", evaluations=64)
    result.module   # the fine-tuned torch module
    result.graph    # its IR graph
    result.plan     # the transition plan (Plan: JSON-serialisable)
    result.report   # before/after figures, as ``natopt optimize --report`` writes them
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from natopt.frontends import lift
from natopt.ir import Graph
from natopt.pipeline.budget import Budget
from natopt.pipeline.data import Dataset
from natopt.pipeline.optimize import OptimizeConfig, Result
from natopt.pipeline.optimize import optimize as optimize_graph

__all__ = ["optimize"]


def optimize(
    model: Any,
    data: str | Path | tuple[Dataset, Dataset | None],
    config: OptimizeConfig | None = None,
    *,
    example_inputs: Any = None,
    output: str | Path | None = None,
    **options: Any,
) -> Result:
    """Optimise ``model`` (torch module, ONNX path or ModelProto, ExportedProgram, fx graph or
    IR graph) on ``data``; ``options`` override fields of ``OptimizeConfig`` (``budget`` may
    be a string such as ``"macs=0.6"``)."""
    if isinstance(options.get("budget"), str):
        options["budget"] = Budget.parse(options["budget"])
    config = dataclasses.replace(config or OptimizeConfig(), **options)
    baseline = None
    if isinstance(model, Graph):
        graph = model
    elif isinstance(model, (str, os.PathLike)):
        graph, baseline = lift(model), model
    elif type(model).__name__ == "ModelProto":
        graph = lift(model)
    else:
        graph = lift(model, example_inputs, dynamic_batch=True)
    return optimize_graph(graph, data, config, output=output, baseline_onnx=baseline)
