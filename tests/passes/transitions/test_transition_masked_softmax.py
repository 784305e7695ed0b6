"""Binary-masked softmax: exact zeros, normalisation, stability, gradients, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from natopt.passes.transitions import (
    BMSoftmax,
    masked_entropy,
    masked_log_prob,
    masked_sample,
    masked_softmax,
)

MASK = torch.tensor(
    [[True, False, True, False], [True, True, True, True], [True, False, False, False]]
)


def test_masked_entries_are_exactly_zero_and_rows_sum_to_one() -> None:
    logits = torch.randn(3, 4)
    p = BMSoftmax()(logits, MASK)
    assert torch.all(p[~MASK] == 0)
    torch.testing.assert_close(p.sum(-1), torch.ones(3))
    assert p[2, 0] == 1


def test_matches_the_formula_on_valid_entries() -> None:
    logits = torch.tensor([[1.0, 5.0, 2.0, -3.0]])
    mask = torch.tensor([[True, False, True, False]])
    expected = torch.tensor([math.exp(1.0), 0.0, math.exp(2.0), 0.0])
    expected /= expected.sum()
    torch.testing.assert_close(masked_softmax(logits, mask)[0], expected)


def test_large_logits_are_stable() -> None:
    logits = torch.tensor([[1e4, 1e4 - 1.0, -1e4, 2e4]])
    mask = torch.tensor([[True, True, True, False]])
    p = masked_softmax(logits, mask)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p[0, 1] / p[0, 0], torch.tensor(math.exp(-1.0)))
    assert p[0, 3] == 0


def test_batched_leading_axes_and_broadcast_mask() -> None:
    logits = torch.randn(2, 3, 4)
    p = masked_softmax(logits, MASK)
    assert p.shape == (2, 3, 4)
    assert torch.all(p[:, ~MASK] == 0)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 3))


def test_gradcheck_and_zero_gradient_into_masked_logits() -> None:
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: masked_softmax(z, MASK), (logits,))
    assert torch.autograd.gradcheck(lambda z: masked_entropy(z, MASK), (logits,))
    (masked_softmax(logits, MASK) * weights).sum().backward()
    assert torch.all(logits.grad[~MASK] == 0)
    assert torch.any(logits.grad[MASK] != 0)


def test_entropy_over_valid_set() -> None:
    logits = torch.zeros(3, 4, requires_grad=True)
    h = masked_entropy(logits, MASK)
    torch.testing.assert_close(h, torch.tensor([math.log(2), math.log(4), 0.0]))
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_log_prob_and_invalid_index() -> None:
    logits = torch.randn(3, 4)
    index = torch.tensor([2, 1, 0])
    lp = masked_log_prob(logits, MASK, index)
    p = masked_softmax(logits, MASK)
    torch.testing.assert_close(lp.exp(), p[torch.arange(3), index])
    with pytest.raises(ValueError, match="masked"):
        masked_log_prob(logits, MASK, torch.tensor([1, 1, 0]))


def test_sample_only_valid_and_reproducible() -> None:
    logits = torch.zeros(3, 4)
    draws = masked_sample(logits.expand(500, 3, 4), MASK, torch.Generator().manual_seed(0))
    assert draws.shape == (500, 3)
    assert MASK[torch.arange(3).expand(500, 3), draws].all()
    again = masked_sample(logits.expand(500, 3, 4), MASK, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    assert set(draws[:, 0].tolist()) == {0, 2}


def test_row_without_valid_entry_is_an_error() -> None:
    mask = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match="no valid entry"):
        masked_softmax(torch.zeros(2, 2), mask)
    with pytest.raises(ValueError, match="torch.bool"):
        masked_softmax(torch.zeros(2, 2), mask.float())
