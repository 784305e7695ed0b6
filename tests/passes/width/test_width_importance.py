"""Channel importance scores: each finds the channel that matters least on a toy graph."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from natopt.passes.calibration import ActivationCache
from natopt.passes.width import IMPORTANCE, channel_groups, kept_channels
from natopt.passes.width.importance import Evidence


def _toy(toy):
    """conv a (8 channels) -> relu -> conv b -> output; channel ``weak`` of a made useless in
    a different way for each score."""
    b = toy(shape=(4, 3, 6, 6))
    a = b.op("Relu", b.conv(b.x, 8, name="a"))
    graph = b.done(b.conv(a, 5, name="b"))
    return graph, channel_groups(graph).groups


def _scores(method: str, graph, group, batches):
    calibration = ActivationCache(batches) if batches else None
    (scores,) = IMPORTANCE[method]([group], Evidence(graph, calibration))
    return scores


def test_l1_ranks_a_zero_filter_last(toy) -> None:
    graph, groups = _toy(toy)
    group = next(g for g in groups if g.prunable)
    producer = group.role("produce")[0].node
    producer.weights["weight"] = (
        producer.weights["weight"].clone().index_fill_(0, torch.tensor([3]), 0)
    )
    scores = _scores("l1", graph, group, [])
    assert int(scores.argmin()) == 3 and torch.allclose(scores.mean().float(), torch.tensor(1.0))


def test_activation_ranks_a_dead_relu_last(toy) -> None:
    graph, groups = _toy(toy)
    group = next(g for g in groups if g.prunable)
    producer = group.role("produce")[0].node
    bias = producer.weights["bias"].clone()
    bias[5] = -100.0  # the ReLU after it is never active
    producer.weights["bias"] = bias
    batches = [torch.randn(4, 3, 6, 6) for _ in range(2)]
    scores = _scores("activation", graph, group, batches)
    assert int(scores.argmin()) == 5 and float(scores[5]) == 0.0
    assert kept_channels(scores, 7).tolist() == [0, 1, 2, 3, 4, 6, 7]


def test_taylor_ranks_a_channel_the_output_ignores_last(toy) -> None:
    graph, groups = _toy(toy)
    group = next(g for g in groups if g.prunable)
    consumer = group.role("consume")[0].node
    consumer.weights["weight"] = (
        consumer.weights["weight"].clone().index_fill_(1, torch.tensor([2]), 0)
    )
    batches = [torch.randn(4, 3, 6, 6)]
    scores = _scores("taylor", graph, group, batches)
    assert float(scores[2]) == 0.0 and bool((scores[torch.arange(8) != 2] > 0).all())
    # the same first-order term computed directly: E_n |Σ_positions a · ∂(½‖y‖²)/∂a|
    first, second = group.role("produce")[0].node, consumer
    a = torch.relu(F.conv2d(batches[0], first.weights["weight"], first.weights["bias"], padding=1))
    a.requires_grad_(True)
    y = F.conv2d(a, second.weights["weight"], second.weights["bias"], padding=1)
    (grad,) = torch.autograd.grad(0.5 * y.pow(2).sum(), [a])
    direct = (a * grad).sum(dim=(2, 3)).abs().mean(dim=0).double()
    torch.testing.assert_close(scores, direct / direct.mean(), rtol=1e-5, atol=1e-7)


def test_kept_channels_are_sorted_and_stable_on_ties() -> None:
    scores = torch.tensor([1.0, 3.0, 1.0, 2.0, 1.0])
    assert kept_channels(scores, 3).tolist() == [0, 1, 3]


def test_first_order_terms_are_computed_once_per_calibration_set_and_weights(toy) -> None:
    graph, groups = _toy(toy)
    group = next(g for g in groups if g.prunable)
    calibration = ActivationCache([torch.randn(4, 3, 6, 6)])
    name = group.role("consume")[0].node.inputs[0].name
    first = Evidence(graph, calibration).first_order({name: 1})[name]
    assert first.shape == (4, 8)
    assert Evidence(graph, calibration).first_order({name: 1})[name] is first
    producer = group.role("produce")[0].node
    producer.weights["weight"] = producer.weights["weight"] * 2  # new weights: computed anew
    assert Evidence(graph, calibration).first_order({name: 1})[name] is not first
