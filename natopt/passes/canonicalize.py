"""The standard canonicalisation pipeline, run before analysis and before the NAT pass.

``canonicalize(graph)`` returns a canonical copy of ``graph`` (the input is left as it is):

1. ``RemoveIdentityPass``: Identity, Dropout, no-op Cast / Reshape disappear, so that a
   BatchNorm separated from its conv by one of them becomes foldable;
2. ``FoldBatchNormPass``: conv/linear -> BatchNorm becomes one conv/linear;
3. ``DeadCodePass``: whatever no longer reaches an output (shape computations of removed
   reshapes) is dropped.

No step creates work for an earlier one, so a single sweep reaches the fixed point.
"""

from __future__ import annotations

from natopt.ir import Graph
from natopt.passes.base import PassContext, PassManager
from natopt.passes.dead_code import DeadCodePass
from natopt.passes.fold_batchnorm import FoldBatchNormPass
from natopt.passes.remove_identity import RemoveIdentityPass

__all__ = ["canonicalize", "canonical_pipeline"]


def canonical_pipeline() -> PassManager:
    """The passes of ``canonicalize``, as a manager that can be nested in a longer pipeline."""
    return PassManager([RemoveIdentityPass(), FoldBatchNormPass(), DeadCodePass()])


def canonicalize(graph: Graph, ctx: PassContext | None = None) -> Graph:
    """A canonical copy of ``graph``, verified after every pass (unless ``ctx`` says not to)."""
    return canonical_pipeline().run(graph.copy(), ctx or PassContext()).graph
