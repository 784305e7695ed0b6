"""``NatoptFxPass``: the natopt rewrite as a ``torch.fx.passes.infra`` pass.

    pm = PassManager(passes=[NatoptFxPass("plan.json", example_inputs=(x,))])
    result = pm(torch.fx.symbolic_trace(model))   # result.graph_module: the optimised module

``call(gm)`` lifts ``gm`` (``example_inputs``, else the shapes recorded on its placeholders
by ``ShapeProp`` or an exporter), canonicalises it, applies the plan entries whose units it
has (or searches one, ``search=True``) and returns ``PassResult(new_gm, modified)``: a new
``GraphModule`` called like ``gm``, ``modified`` when some entry was applied. A module this
pass produced is marked and left alone when a manager runs the pass again (a plan is applied
once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch.fx.passes.infra.pass_base import PassBase, PassResult

from natopt.compile.options import CompileOptions, PlanLike, load_plan
from natopt.compile.rewrite import Rewritten, rewrite_graph_module
from natopt.errors import FrontendError
from natopt.pipeline.budget import Budget

__all__ = ["NatoptFxPass", "REWRITTEN"]

REWRITTEN = "natopt_rewritten"  # attribute marking a GraphModule this pass produced


def _placeholder_example(node: fx.Node) -> torch.Tensor | None:
    """A random tensor shaped like the placeholder's recorded value, if it has one."""
    val = node.meta.get("val", node.meta.get("example_value"))
    if isinstance(val, torch.Tensor):
        shape, dtype = tuple(int(d) for d in val.shape), val.dtype
    elif "tensor_meta" in node.meta:
        shape, dtype = tuple(node.meta["tensor_meta"].shape), node.meta["tensor_meta"].dtype
    else:
        return None
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)


class NatoptFxPass(PassBase):
    """Rewrite a GraphModule by a plan (module docstring); ``last`` keeps what it did."""

    def __init__(
        self,
        plan: PlanLike | None,
        example_inputs: Sequence[torch.Tensor] | torch.Tensor | None = None,
        *,
        search: bool = False,
        budget: Budget | str | None = None,
        evaluations: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.options = CompileOptions(
            plan=None if plan is None else load_plan(plan),
            then="eager",
            search=search,
            budget=Budget.parse(budget) if isinstance(budget, str) else budget,
            evaluations=evaluations,
            seed=seed,
        )
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = (example_inputs,)
        self.example_inputs = None if example_inputs is None else tuple(example_inputs)
        self.last: Rewritten | None = None

    def _inputs(self, gm: fx.GraphModule) -> tuple[Any, ...]:
        if self.example_inputs is not None:
            return self.example_inputs
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        found = [_placeholder_example(n) for n in placeholders]
        if any(t is None for t in found):
            missing = [n.name for n, t in zip(placeholders, found, strict=True) if t is None]
            raise FrontendError(
                f"NatoptFxPass needs example_inputs for {type(gm).__name__}: placeholder(s) "
                f"{missing} record no shape (pass example_inputs, or run ShapeProp first)"
            )
        return tuple(found)

    def call(self, graph_module: fx.GraphModule) -> PassResult:
        if getattr(graph_module, REWRITTEN, False):
            return PassResult(graph_module, False)
        self.last = rewrite_graph_module(graph_module, self._inputs(graph_module), self.options)
        if not self.last.applied:
            return PassResult(graph_module, False)
        setattr(self.last.module, REWRITTEN, True)
        return PassResult(self.last.module, True)
