"""natopt inside PyTorch's compilers: a ``torch.compile`` backend and a ``torch.fx`` pass.

- ``torch.compile(model, backend="natopt", options={"plan": "plan.json", "then": "eager"})``
  (registered as a ``torch_dynamo_backends`` entry point), or ``backend=NatoptBackend(...)``;
- ``NatoptFxPass(plan, example_inputs)`` in a ``torch.fx.passes.infra`` ``PassManager``.

Both replay a plan found by ``natopt optimize --save-plan`` on the graphs they are given.
"""

from __future__ import annotations

from natopt.compile.backend import NatoptBackend, natopt_backend
from natopt.compile.fx_pass import NatoptFxPass
from natopt.compile.options import CompileOptions, load_plan
from natopt.compile.rewrite import Rewritten, lower_like, rewrite_graph_module

__all__ = [
    "CompileOptions",
    "NatoptBackend",
    "NatoptFxPass",
    "Rewritten",
    "load_plan",
    "lower_like",
    "natopt_backend",
    "rewrite_graph_module",
]
