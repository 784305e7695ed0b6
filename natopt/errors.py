"""One small tree of errors: every failure natopt reports to a user is a ``NatoptError``.

The CLI prints ``natopt: error: <message>`` for these and exits with the error's
``exit_status`` (2, or 3 for a model refused by the quality guard); anything else is a
bug and keeps its traceback. A message names the node, file or option at fault and says what
to do about it.
"""

from __future__ import annotations

__all__ = [
    "NatoptError",
    "FrontendError",
    "UnsupportedOpError",
    "VerifyError",
    "BackendError",
    "DataError",
    "BudgetError",
    "PlanError",
    "BenchError",
    "ReportError",
    "QualityError",
    "ExecutorError",
]


class NatoptError(Exception):
    """Base of every error natopt reports to a user; ``exit_status`` is the CLI's (2: bad
    input or an unmeetable request)."""

    exit_status = 2


class FrontendError(NatoptError):
    """A model could not be read or lifted (missing file, bad format, wrong example inputs)."""


class UnsupportedOpError(FrontendError):
    """An operation has no implementation natopt can run (names the op and the node)."""


class VerifyError(NatoptError):
    """A graph broke an IR invariant (names the node and the pass that ran before)."""


class BackendError(NatoptError):
    """A graph could not be lowered to torch or ONNX."""


class DataError(NatoptError):
    """User data does not fit the model (shape, dtype, names, NaNs, labels)."""


class BudgetError(NatoptError):
    """No valid plan meets the requested budget; ``cheapest``, when known, is the fraction of
    the original the space's cheapest plan still costs (the least budget that can be met)."""

    def __init__(self, message: str, cheapest: float | None = None) -> None:
        super().__init__(message)
        self.cheapest = cheapest


class PlanError(NatoptError):
    """A plan does not match the graph it is applied to."""


class BenchError(NatoptError):
    """A model could not be benchmarked (load failure, unavailable provider)."""


class ReportError(NatoptError):
    """A result file could not be read, or a CI gate expression could not be parsed."""


class QualityError(NatoptError):
    """The fine-tuned, exported model dropped more quality than ``--max-drop`` allows; it was
    not written. ``result`` is the ``natopt.pipeline.optimize.Result`` (module, graph, plan
    and the report with ``"accepted": false``), so a caller can still inspect it."""

    exit_status = 3

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result


class ExecutorError(NatoptError):
    """Work handed to an executor could not be done: Ray is not installed or its cluster
    cannot be reached or went away mid-run, a task lost its worker more often than its
    retries allow, or every candidate of a fine-tuning rung failed (their errors named)."""
