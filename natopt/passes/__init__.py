"""Passes over the IR: the pass infrastructure, canonicalisation, computational units.

The transition space and the NAT search live in the ``transitions`` and ``nat`` subpackages.
A pass imports only ``natopt.ir`` (and ``natopt.errors``), never a frontend or a backend.
"""

from natopt.passes.base import Pass, PassContext, PassManager, PassResult
from natopt.passes.canonicalize import canonical_pipeline, canonicalize
from natopt.passes.dead_code import DeadCodePass
from natopt.passes.fold_batchnorm import FoldBatchNormPass
from natopt.passes.remove_identity import RemoveIdentityPass
from natopt.passes.units import Unit, find_units

__all__ = [
    "DeadCodePass",
    "FoldBatchNormPass",
    "Pass",
    "PassContext",
    "PassManager",
    "PassResult",
    "RemoveIdentityPass",
    "Unit",
    "canonical_pipeline",
    "canonicalize",
    "find_units",
]
