"""``ApplyPlanPass``: ``apply_plan`` as a pass, so a pipeline can time, dump and verify it.

Rewrite: ``graph`` -> ``apply_plan(graph, plan, ...)`` (a new graph; the input is left as it
is), with the ``ApplyReport`` in ``graph.meta["transitions"]``. ``changed`` is whether the
plan applied any transition (a plan of keeps, or one whose every entry an outer transition
overrode, changes nothing). Preconditions and errors are ``apply_plan``'s: a plan entry the
graph's units or the vocabulary refuse raises ``PlanError``.

``apply_plan`` stays the function to call for one plan outside a pipeline (the search
applies hundreds); this pass is for the applications a run wants to see in its pass log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from natopt.ir import Graph
from natopt.passes.base import Pass, PassContext, PassResult
from natopt.passes.calibration import ActivationCache
from natopt.passes.transitions.apply import apply_plan
from natopt.passes.transitions.plan import Plan
from natopt.passes.transitions.vocabulary import VOCABULARY, Vocabulary
from natopt.passes.width import WidthOptions

__all__ = ["ApplyPlanPass"]


class ApplyPlanPass(Pass):
    """Apply ``plan`` with ``apply_plan``'s options (``calibration``, ``ridge``,
    ``vocabulary``, ``width``: see ``apply_plan``)."""

    def __init__(
        self,
        plan: Plan | Mapping[str, str],
        *,
        calibration: ActivationCache | Sequence[Tensor | Sequence[Tensor]] | None = None,
        ridge: float = 1e-3,
        vocabulary: Vocabulary = VOCABULARY,
        width: WidthOptions | None = None,
    ) -> None:
        self.plan = Plan.of(plan)
        self.calibration = calibration
        self.ridge = ridge
        self.vocabulary = vocabulary
        self.width = width

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = apply_plan(
            graph,
            self.plan,
            calibration=self.calibration,
            ridge=self.ridge,
            vocabulary=self.vocabulary,
            width=self.width,
        )
        return PassResult(result, bool(result.meta["transitions"].applied))

    def __repr__(self) -> str:
        return f"ApplyPlanPass({len(self.plan.transitions)} transitions)"
