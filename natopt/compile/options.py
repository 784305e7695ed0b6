"""What the natopt ``torch.compile`` backend and fx pass can be told, read and checked once.

``torch.compile(model, backend="natopt", options={...})`` keys:

- ``plan``: a ``Plan``, a ``{unit: transition}`` mapping, the plan JSON as a dict
  (``{"schema": 1, "transitions": {...}}``) or the path of a plan file written by
  ``natopt optimize --save-plan``;
- ``then``: ``"inductor"`` (default) or ``"eager"``: what runs the rewritten graph;
- ``search``: ``True`` to search a plan on the example inputs instead (label-free, small);
  with ``budget`` (``"macs=0.7"``, ``"latency=0.8"`` ...), ``evaluations`` and ``seed``.

A plan file that is missing or malformed is a ``PlanError`` whose one line names the file
(``Plan.load``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from natopt.errors import NatoptError, PlanError
from natopt.passes.transitions import Plan
from natopt.pipeline.budget import Budget

__all__ = ["CompileOptions", "load_plan", "THEN"]

THEN = ("inductor", "eager")
PlanLike = Plan | Mapping[str, Any] | str | os.PathLike[str]


def load_plan(plan: PlanLike) -> Plan:
    """A ``Plan`` from any of the forms the options accept (module docstring)."""
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, (str, os.PathLike)):
        return Plan.load(plan)
    if isinstance(plan, Mapping):
        if "transitions" in plan:
            return Plan.from_dict(dict(plan))
        bad = [k for k, v in plan.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise PlanError(f"a plan maps unit names to transition names (strings); see {bad}")
        return Plan(dict(plan))
    raise PlanError(
        f"a plan is a Plan, a {{unit: transition}} dict or a plan file path, "
        f"not a {type(plan).__name__}"
    )


@dataclass(frozen=True, slots=True)
class CompileOptions:
    """The checked options (module docstring); ``plan`` is ``None`` with ``search``."""

    plan: Plan | None = None
    then: str = "inductor"
    search: bool = False
    budget: Budget | None = None
    evaluations: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.then not in THEN:
            raise NatoptError(f"natopt backend: then={self.then!r}; choose one of {THEN}")
        if self.search and self.plan is not None:
            raise NatoptError("natopt backend: give a plan or search=True, not both")
        if self.evaluations < 1:
            raise NatoptError(f"natopt backend: evaluations must be >= 1 ({self.evaluations})")

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> CompileOptions:
        """Check a ``torch.compile`` options dict; unknown keys are an error naming them."""
        options = dict(options or {})
        known = {"plan", "then", "search", "budget", "evaluations", "seed"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise NatoptError(
                f"natopt backend: unknown option(s) {unknown}; known: {sorted(known)}"
            )
        plan = options.get("plan")
        budget = options.get("budget")
        return cls(
            plan=None if plan is None else load_plan(plan),
            then=str(options.get("then", "inductor")),
            search=bool(options.get("search", False)),
            budget=Budget.parse(budget) if isinstance(budget, str) else budget,
            evaluations=int(options.get("evaluations", 16)),
            seed=int(options.get("seed", 0)),
        )
