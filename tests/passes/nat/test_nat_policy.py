"""NATPolicy: own and neighbour ops reach a unit's logits, masking, determinism."""

from __future__ import annotations

import pytest
import torch

from natopt.passes.nat import FEATURES, OP_TYPES, NATPolicy, UnitGraph

VOCAB = 6


def chain(op_types: list[str], edges: list[tuple[int, int]] | None = None) -> UnitGraph:
    """Units 0 - 1 - ... - n-1 (or the given undirected edges) with fixed numeric features."""
    count = len(op_types)
    pairs = [(u, u + 1) for u in range(count - 1)] if edges is None else edges
    index = [
        [a for a, b in pairs] + [b for a, b in pairs],
        [b for a, b in pairs] + [a for a, b in pairs],
    ]
    return UnitGraph(
        units=[f"u{i}" for i in range(count)],
        op_type=torch.tensor([OP_TYPES.index(op) for op in op_types]),
        features=torch.linspace(0, 1, count * len(FEATURES)).reshape(count, len(FEATURES)),
        edge_index=torch.tensor(index, dtype=torch.long).reshape(2, -1),
    )


def logits(graph: UnitGraph, seed: int = 0) -> torch.Tensor:
    with torch.no_grad():
        return NATPolicy(VOCAB, seed=seed)(graph)


def test_logit_shape():
    assert logits(chain(["conv5", "conv3", "branch"])).shape == (3, VOCAB)


def test_neighbour_op_changes_logits():
    before = logits(chain(["conv5", "conv3", "linear"]))
    after = logits(chain(["conv5", "max_pool", "linear"]))  # unit 1 changes
    assert not torch.allclose(before[0], after[0])  # its neighbour sees it
    assert not torch.allclose(before[2], after[2])


def test_own_op_changes_logits_even_without_neighbours():
    # the reference code's flaw: without self-loops an isolated op never sees itself
    edges = [(1, 2)]
    before = logits(chain(["conv5", "conv3", "linear"], edges))
    after = logits(chain(["sep_conv3", "conv3", "linear"], edges))
    assert not torch.allclose(before[0], after[0])
    torch.testing.assert_close(before[1:], after[1:])  # unconnected units are unaffected


def test_masked_entries_get_exactly_zero_probability():
    graph = chain(["conv5", "conv3", "branch", "linear"])
    mask = torch.tensor(
        [[1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
        dtype=torch.bool,
    )
    with torch.no_grad():
        probs = NATPolicy(VOCAB, seed=3).probabilities(graph, mask)
    assert torch.all(probs[~mask] == 0)
    assert torch.all(probs[mask] > 0)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4))
    assert probs[3, 0] == 1


def test_same_seed_same_policy_and_global_rng_untouched():
    graph = chain(["conv5", "conv3", "branch"])
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = logits(graph, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    torch.testing.assert_close(first, logits(graph, seed=7), rtol=0, atol=0)
    assert not torch.allclose(first, logits(graph, seed=8))


def test_gradients_reach_every_layer():
    graph = chain(["conv5", "conv3", "branch"])
    policy = NATPolicy(VOCAB, layers=3, hidden=32)
    policy(graph).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="vocabulary_size"):
        NATPolicy(0)
    with pytest.raises(ValueError, match="one row per unit"):
        UnitGraph(["a", "b"], torch.tensor([0]), torch.zeros(2, 8), torch.zeros(2, 0))


def test_keep_prior_sets_the_initial_keep_probability():
    graph = chain(["conv5", "conv3", "branch", "linear"])
    mask = torch.tensor(
        [[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]],
        dtype=torch.bool,
    )
    policy = NATPolicy(VOCAB, seed=0)
    policy.set_keep_prior(0, 0.8, mask)
    with torch.no_grad():
        probs = policy.probabilities(graph, mask)
    assert torch.all((probs[:3, 0] - 0.8).abs() < 0.1), probs[:, 0]  # the median row: 3 valid
    assert probs[3, 0] < probs[0, 0]  # more alternatives, less mass on keep
    with pytest.raises(ValueError, match="not in"):
        policy.set_keep_prior(0, 1.0, mask)
