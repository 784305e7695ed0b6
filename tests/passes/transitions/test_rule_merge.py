"""The merge rule (DepthShrinker): consecutive convs without the activations between them
become one conv, composed exactly, priced against what it replaces, then refit."""

from __future__ import annotations

import torch

from natopt.ir import Graph, graph_cost, run_graph
from natopt.passes.transitions import VOCABULARY, Vocabulary, apply_plan, compute_mask
from natopt.passes.transitions.registry import Reason, Target
from natopt.passes.transitions.rules.merge import MergeRule

MERGING = Vocabulary((*VOCABULARY, *MergeRule.entries))


def _relu6(b, h):
    return b.op("Clip", h, min=0.0, max=6.0)


def _inverted_residual(b, act: bool, expand_bias: bool = False) -> Graph:
    """x -> 1x1 8->48 -> relu6 -> depthwise 3x3 -> relu6 -> 1x1 48->8 -> + x (``act``: with
    the two activations, else the same convs with none between them)."""
    h = b.conv(b.x, 48, 1, bias=expand_bias, source="expand")
    h = _relu6(b, h) if act else h
    h = b.conv(h, 48, 3, groups=48, source="dw")
    h = _relu6(b, h) if act else h
    return b.done(b.op("Add", b.conv(h, 8, 1, source="project"), b.x))


def _bottleneck_pair(b, act: bool) -> Graph:
    """x -> 1x1 8->32 -> relu -> 1x1 32->8 -> relu (``act``: the first relu kept)."""
    h = b.conv(b.x, 32, 1, source="wide")
    h = b.op("Relu", h) if act else h
    return b.done(b.op("Relu", b.conv(h, 8, 1, source="narrow")))


def test_merge_is_optional_and_checked_with_reasons(builder) -> None:
    assert "merge_2" not in VOCABULARY.names
    graph = _inverted_residual(builder(), act=True)
    mask = compute_mask(graph, MERGING)
    assert "merge_3" in mask.valid_names("expand")
    row = mask.unit_names.index("expand")
    pair = mask.target(row, "merge_2")  # 1x1 then depthwise 3x3: a dense 3x3 costs more
    assert isinstance(pair, Reason) and "not below" in pair.message
    assert not {"merge_2", "merge_3"} & set(mask.valid_names("dw"))
    last = mask.target(mask.unit_names.index("project"), "merge_2")
    assert isinstance(last, Reason) and "not read by a conv unit" in last.message


def test_a_pair_merges_into_one_conv_exactly(builder, assert_same_function) -> None:
    graph = _bottleneck_pair(builder(), act=True)
    merged = apply_plan(graph, {"wide": "merge_2"}, vocabulary=MERGING)
    assert [n.op for n in merged.nodes] == ["Conv", "Relu"]
    assert merged.nodes[0].weights["weight"].shape == (8, 8, 1, 1)
    without_act = _bottleneck_pair(builder(), act=False)  # same seed: the same weights
    x = torch.randn(2, 8, 8, 8)
    assert_same_function(without_act, merged, [x])


def test_an_inverted_residual_block_merges_into_one_dense_conv(
    builder, assert_same_function
) -> None:
    graph = _inverted_residual(builder(), act=True)
    mask = compute_mask(graph, MERGING)
    row = mask.unit_names.index("expand")
    target = mask.target(row, "merge_3")
    assert isinstance(target, Target)
    merged = apply_plan(graph, {"expand": "merge_3"}, vocabulary=MERGING)
    assert [n.op for n in merged.nodes] == ["Conv", "Add"]
    conv = merged.nodes[0]
    assert conv.weights["weight"].shape == (8, 8, 3, 3) and conv.attrs["groups"] == 1
    assert merged.meta["transitions"].applied == {"expand": "merge_3"}
    saved, after = graph_cost(graph), graph_cost(merged)
    state = mask.states[row]
    assert saved.macs - after.macs == state.cost.macs - target.cost.macs
    assert saved.params - after.params == state.cost.params - target.cost.params
    without_acts = _inverted_residual(builder(), act=False)
    assert_same_function(without_acts, merged, [torch.randn(2, 8, 8, 8)])


def test_the_merge_overrides_the_merged_units_and_is_refit(builder) -> None:
    graph = _inverted_residual(builder(), act=True, expand_bias=True)
    plan = {"expand": "merge_3", "project": "lowrank_1_2"}
    calibration = [torch.randn(16, 8, 8, 8)]
    merged = apply_plan(graph, plan, vocabulary=MERGING, calibration=calibration)
    report = merged.meta["transitions"]
    assert report.overridden == {"project": "expand"}
    assert report.errors["expand"] <= report.inherited_errors["expand"]
    # with an expand bias the composition is exact away from the border only
    without_acts = _inverted_residual(builder(), act=False, expand_bias=True)
    x = torch.randn(2, 8, 8, 8)
    inherited = apply_plan(graph, {"expand": "merge_3"}, vocabulary=MERGING)
    (want,), (got,) = run_graph(without_acts, [x]), run_graph(inherited, [x])
    assert torch.allclose(want[..., 1:-1, 1:-1], got[..., 1:-1, 1:-1], atol=1e-5)
