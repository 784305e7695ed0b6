"""The transition space of the NAT pass: vocabulary, masked softmax, validity mask, rewrites."""

from __future__ import annotations

from natopt.passes.transitions.masked_softmax import (
    BMSoftmax,
    masked_entropy,
    masked_log_prob,
    masked_log_softmax,
    masked_sample,
    masked_softmax,
)

__all__ = [
    "BMSoftmax",
    "masked_entropy",
    "masked_log_prob",
    "masked_log_softmax",
    "masked_sample",
    "masked_softmax",
]
