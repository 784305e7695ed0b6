"""Calibration: activations of the original graph, and least-squares refits on them.

Below both ``width`` and ``transitions`` (it imports only ``natopt.ir``), so either may refit
what it rewrote:

- ``capture``: ``capture`` / ``ActivationCache`` (activations on calibration batches, kept
  across plans) and ``run_chain`` (run a replacement on a captured input);
- ``refit``: ``ridge_refit`` (ridge least squares pulled towards inherited weights),
  ``refit_conv`` / ``refit_last`` (what the transition rules and the width ops refit with).
"""

from __future__ import annotations

from natopt.passes.calibration.capture import ActivationCache, capture, run_chain
from natopt.passes.calibration.refit import (
    MAX_ROWS,
    refit_conv,
    refit_last,
    ridge_refit,
    solve_each,
)

__all__ = [
    "MAX_ROWS",
    "ActivationCache",
    "capture",
    "refit_conv",
    "refit_last",
    "ridge_refit",
    "run_chain",
    "solve_each",
]
