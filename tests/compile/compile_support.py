"""Helpers shared by the compile tests."""

from __future__ import annotations

import torch


def assert_close_relative(got: torch.Tensor, want: torch.Tensor, tol: float = 1e-4) -> None:
    diff = float((got - want).abs().max())
    assert diff <= tol * float(want.abs().max()), f"max diff {diff} vs scale {want.abs().max()}"
