"""Shared checks for the pass tests: a rewritten graph must compute what the original did."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from natopt.backends import to_torch
from natopt.ir import Graph, run_graph, verify


def _check_same_function(
    before: Graph, after: Graph, inputs: Sequence[torch.Tensor], *, tol: float = 1e-5
) -> None:
    verify(after, check_shapes=True)
    expected = run_graph(before, inputs)
    interpreted = run_graph(after, inputs)
    with torch.no_grad():
        lowered = to_torch(after)(*inputs)
    lowered = list(lowered) if isinstance(lowered, (tuple, list)) else [lowered]
    for want, got_ir, got_torch in zip(expected, interpreted, lowered, strict=True):
        scale = max(1.0, float(want.abs().max()))
        assert float((want - got_ir).abs().max()) <= tol * scale
        assert float((want - got_torch).abs().max()) <= tol * scale


@pytest.fixture
def assert_same_function() -> Callable[..., None]:
    """``assert_same_function(before, after, inputs)``: verifier on, outputs equal.

    ``after`` is checked through ``run_graph`` and through the ``to_torch`` backend.
    """
    return _check_same_function
