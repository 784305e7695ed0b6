"""The transition space of the NAT pass: what each unit may become, and how it becomes it.

- ``vocabulary``: the fixed global vocabulary (``VOCABULARY``, ``SPACES``: nat / nat++ / full);
- ``masked_softmax``: the binary-masked softmax (``BMSoftmax``) and its log-prob, entropy and
  sampling over the valid set;
- ``mask``: ``compute_mask(graph) -> TransitionMask`` (validity and cost order);
- ``plan`` / ``apply``: ``Plan`` (JSON data) and ``apply_plan(graph, plan, calibration=...)``;
  ``apply_pass``: ``ApplyPlanPass``, the same as a pass for a ``PassManager``;
- ``registry`` and ``rules/``: one ``TransitionRule`` per family (keep, skip, null, kernel,
  separable, dilated, pooling, low rank, width), each checking validity (a ``Target`` or a
  ``Reason``), pricing, building and refitting its replacement;
- ``state`` / ``geometry`` / ``rewrite`` / ``inherit``: the unit's current op, the kernel
  and padding arithmetic the conv-like rules share, the rewrite helpers and weight
  inheritance.

Builds on ``natopt.passes.width`` (width transitions) and ``natopt.passes.calibration``
(activation capture and refits); ``natopt.passes.nat`` builds on this package.
"""

from __future__ import annotations

from natopt.passes.transitions.apply import ApplyReport, apply_plan
from natopt.passes.transitions.apply_pass import ApplyPlanPass
from natopt.passes.transitions.mask import TransitionMask, compute_mask
from natopt.passes.transitions.masked_softmax import (
    BMSoftmax,
    masked_entropy,
    masked_log_prob,
    masked_log_softmax,
    masked_sample,
    masked_softmax,
)
from natopt.passes.transitions.plan import PLAN_VERSION, Plan
from natopt.passes.transitions.state import transition_units
from natopt.passes.transitions.vocabulary import (
    LEVELS,
    SPACES,
    VOCABULARY,
    Transition,
    Vocabulary,
    vocabulary_for,
)

__all__ = [
    "LEVELS",
    "PLAN_VERSION",
    "SPACES",
    "VOCABULARY",
    "ApplyPlanPass",
    "ApplyReport",
    "BMSoftmax",
    "Plan",
    "Transition",
    "TransitionMask",
    "Vocabulary",
    "apply_plan",
    "compute_mask",
    "masked_entropy",
    "masked_log_prob",
    "masked_log_softmax",
    "masked_sample",
    "masked_softmax",
    "transition_units",
    "vocabulary_for",
]
