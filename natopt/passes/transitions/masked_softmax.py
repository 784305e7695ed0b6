"""Binary-masked softmax (NAT): a distribution over the valid transitions of each unit only.

For logits ``z`` and a boolean mask ``m`` over the last axis (``True`` = valid transition):

    p_k = m_k · exp(z_k − max_j z_j) / Σ_j m_j · exp(z_j − max_j z_j)

computed as ``softmax(z.masked_fill(~m, −inf))``: masked entries get probability exactly 0 (not
a small number), valid entries sum to 1, large logits (1e4) do not overflow because the maximum
over the valid entries is subtracted, and no gradient reaches a masked logit. Sampling,
log-probability and entropy run over the valid set only.

Preconditions: ``mask`` is a ``torch.bool`` tensor broadcastable to ``logits``; every row
(every index of the leading axes) has at least one valid entry — ``keep`` is always valid, so an
all-false row is a bug in the caller and raises ``ValueError``.

Shapes: logits ``[..., V]``, mask broadcastable to ``[..., V]``; probabilities, log-probabilities
``[..., V]``; entropy, samples and gathered log-probabilities ``[...]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "BMSoftmax",
    "masked_softmax",
    "masked_log_softmax",
    "masked_log_prob",
    "masked_entropy",
    "masked_sample",
]


def _masked_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """``logits`` with every invalid entry set to −inf, after checking the mask."""
    if mask.dtype != torch.bool:
        raise ValueError(f"masked softmax: the mask must be torch.bool, got {mask.dtype}")
    full = mask.expand_as(logits) if mask.shape != logits.shape else mask
    if full.numel() and not bool(full.any(dim=-1).all()):
        raise ValueError(
            "masked softmax: a row of the mask has no valid entry; every unit must at least "
            "allow 'keep'"
        )
    return logits.masked_fill(~mask, float("-inf"))


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Probabilities over the valid entries of the last axis; exactly 0 on masked entries."""
    return torch.softmax(_masked_logits(logits, mask), dim=-1)


def masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Log-probabilities over the valid entries; −inf on masked entries."""
    return torch.log_softmax(_masked_logits(logits, mask), dim=-1)


def masked_log_prob(logits: Tensor, mask: Tensor, index: Tensor) -> Tensor:
    """log p(index) per row; ``index`` ([...], int64) must name a valid entry of its row."""
    index = index.long()
    full = mask.expand_as(logits)
    if not bool(full.gather(-1, index.unsqueeze(-1)).all()):
        raise ValueError("masked_log_prob: an index names a masked (invalid) transition")
    log_p = masked_log_softmax(logits, mask)
    return log_p.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def masked_entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """H = −Σ_k p_k log p_k over the valid entries (masked terms contribute 0, and no NaN)."""
    log_p = masked_log_softmax(logits, mask)
    safe = log_p.masked_fill(~mask, 0.0)
    return -(log_p.exp() * safe).sum(dim=-1)


def masked_sample(logits: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row drawn from the masked distribution (never a masked entry).

    ``generator`` makes the draw reproducible; the result is int64 with the leading shape of
    ``logits``.
    """
    probs = masked_softmax(logits.detach(), mask)
    flat = probs.reshape(-1, probs.shape[-1])
    drawn = torch.multinomial(flat, 1, generator=generator)
    return drawn.reshape(probs.shape[:-1])


class BMSoftmax(nn.Module):
    """Binary-masked softmax as a module: ``forward(logits, mask) -> probabilities``.

    See the module docstring for the formula; ``log_prob``, ``entropy`` and ``sample`` share
    the same mask semantics.
    """

    def forward(self, logits: Tensor, mask: Tensor) -> Tensor:
        return masked_softmax(logits, mask)

    def log_prob(self, logits: Tensor, mask: Tensor, index: Tensor) -> Tensor:
        return masked_log_prob(logits, mask, index)

    def entropy(self, logits: Tensor, mask: Tensor) -> Tensor:
        return masked_entropy(logits, mask)

    def sample(
        self, logits: Tensor, mask: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        return masked_sample(logits, mask, generator)
