"""Property checks shared by the transition and width tests: plans drawn from a mask, and
what every applied plan must satisfy (verifies, runs the same in the IR, torch and ONNX,
costs no more than the original)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from natopt.backends import to_torch
from natopt.ir import Graph, graph_cost, run_graph
from natopt.passes.transitions import Plan, TransitionMask, apply_plan

PLAN_SETTINGS = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def masked_plans(mask: TransitionMask, prefer: Collection[str] = ()) -> st.SearchStrategy[Plan]:
    """Plans of valid entries, one per unit; a unit offering any of ``prefer`` draws from
    those half the time."""
    rows = []
    for u in range(len(mask.units)):
        valid = mask.valid_names(u)
        preferred = [n for n in valid if n in prefer]
        row = st.sampled_from(valid)
        rows.append(st.sampled_from(preferred) | row if preferred else row)
    names = mask.unit_names
    return st.tuples(*rows).map(
        lambda chosen: Plan({u: t for u, t in zip(names, chosen, strict=True) if t != "keep"})
    )


def check_plan(graph: Graph, plan: Plan, tmp: Path) -> Graph:
    """Apply (``apply_plan`` verifies), compare torch and ONNX to the IR, compare costs;
    returns the rewritten graph."""
    from natopt.backends.onnx import to_onnx

    ort = pytest.importorskip("onnxruntime")
    after = apply_plan(graph, plan)
    before_cost, after_cost = graph_cost(graph), graph_cost(after)
    assert after_cost.params <= before_cost.params
    assert after_cost.macs <= before_cost.macs
    x = torch.randn(*graph.inputs[0].shape)
    want = run_graph(after, [x])[0]
    with torch.no_grad():
        got = to_torch(after)(x)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    path = to_onnx(after, tmp / "plan.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(onnx_out, want.numpy(), atol=1e-3, rtol=1e-3)
    return after
