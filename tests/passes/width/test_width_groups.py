"""Channel dependency groups: layouts through reshapes, toy graphs, and real models.

Expected group counts, by the architecture (random weights, canonical graphs: BN folded):

- resnet18: 8 inner groups (conv1 -> conv2 of each basic block) + 4 stage streams (stem
  and layer1; layer2..4 each tied by its residual adds, downsample included) = 12 prunable;
  the fc output reaches the graph output (blocked).
- mobilenet_v2: the stem group (stem conv -> features.1 depthwise -> its projection), 16
  expanded groups (expand 1x1 -> depthwise -> project of features.2..17), 7 projection
  streams (one per stage: 16, 24, 32, 64, 96, 160, 320 channels), the last 1x1 (1280) = 25.
- efficientnet_b0: 16 MBConv blocks; the stem group (block 1 has no expansion) + 15
  expanded groups, each also holding the squeeze-excitation gate (fc2 produces the gate that
  multiplies the depthwise output) and its pooled read (fc1 consumes it); 16 squeeze
  groups (fc1 -> fc2); 7 stage streams; the head 1x1 = 40.
- convnext_atto (depths 2, 2, 6, 2): 12 MLP hidden groups (fc1 -> fc2) + 4 stage streams
  (stem / downsample conv, every block's fc2 through its layer-scale constant, depthwise
  convs and LayerNorms as followers) = 16.
- vit_tiny: 12 MLP hidden groups + the residual stream (patch embedding, class token and
  position embedding constants, every attn.proj and mlp.fc2, 25 LayerNorms) = 13; the qkv
  outputs are cut into (3, heads, head_dim) by a Reshape, so heads are excluded (blocked).
"""

from __future__ import annotations

import pytest
import torch

from natopt.passes.transitions import transition_units
from natopt.passes.width import Layout, channel_groups, positions, relocate


def test_relocate_follows_the_channel_digit_through_reshapes() -> None:
    conv = Layout(1, (0,))
    flat = relocate(conv, 8, (2, 8, 3, 5), (2, 120))
    assert flat == Layout(1, (0,), inner=15, outer=1)
    assert relocate(flat, 8, (2, 120), (2, 8, 3, 5)) == conv  # the rule is symmetric
    assert relocate(conv, 8, ("batch", 8, 1, 1), ("batch", 8)) == Layout(1, (0,))
    tokens = Layout(2, (0,))
    assert relocate(tokens, 6, (2, 5, 6), (2, 5, 3, 2)) is None  # qkv-style cut of the digit
    merged = relocate(tokens, 6, (2, 5, 6), (10, 6))
    assert merged == Layout(1, (0,))
    assert relocate(tokens, 6, (2, 5, 6), (2, 30)) == Layout(1, (0,), inner=1, outer=5)


def test_positions_of_kept_channels_with_inner_outer_and_concat() -> None:
    sizes = [3, 2]
    kept = {0: torch.tensor([0, 2])}
    inner = positions(Layout(1, (0,), inner=2, outer=2), sizes, kept, lambda s: s)
    assert inner.tolist() == [0, 1, 4, 5, 6, 7, 10, 11]
    joined = positions(Layout(1, (1, 0)), sizes, kept, lambda s: s)
    assert joined.tolist() == [0, 1, 2, 4]


def _summary(lift, name: str):
    graph = lift(name)
    analysis = channel_groups(graph, transition_units(graph))
    prunable = [g for g in analysis.groups if g.prunable]
    return graph, analysis, prunable


def _sources(group, role: str) -> set[str]:
    return {u.node.source or u.node.name for u in group.role(role)}


def test_resnet18_groups(lift) -> None:
    graph, analysis, prunable = _summary(lift, "resnet18")
    assert len(prunable) == 12
    assert all(g.leader is not None for g in prunable)
    streams = {frozenset(_sources(g, "produce")) for g in prunable if len(g.role("produce")) > 1}
    assert frozenset({"conv1", "layer1.0.conv2", "layer1.1.conv2"}) in streams
    assert frozenset({"layer3.0.conv2", "layer3.0.downsample.0", "layer3.1.conv2"}) in streams
    layer4 = next(g for g in prunable if "layer4.1.conv2" in _sources(g, "produce"))
    assert _sources(layer4, "consume") == {"layer4.1.conv1", "fc"}  # through pool + flatten
    (head,) = [g for g in analysis.groups if not g.prunable]
    assert _sources(head, "produce") == {"fc"} and "graph output" in head.reasons[0]


def test_mobilenet_v2_groups_hold_the_depthwise_convs(lift) -> None:
    _, analysis, prunable = _summary(lift, "mobilenet_v2")
    assert len(prunable) == 25
    hidden = [g for g in prunable if g.role("follow")]
    assert len(hidden) == 17  # stem group + 16 expanded groups, each with its depthwise conv
    assert all(u.node.attrs["groups"] == g.channels for g in hidden for u in g.role("follow"))
    streams = sorted(g.channels for g in prunable if len(g.role("produce")) > 1)
    assert streams == [24, 32, 64, 96, 160]  # the 16- and 320-channel stages have one block


def test_efficientnet_b0_squeeze_excitation_gates_join_their_block(lift) -> None:
    _, analysis, prunable = _summary(lift, "efficientnet_b0")
    assert len(prunable) == 40
    block = next(g for g in prunable if "features.2.0.block.0.0" in _sources(g, "produce"))
    assert _sources(block, "produce") == {"features.2.0.block.0.0", "features.2.0.block.2.fc2"}
    assert _sources(block, "consume") == {"features.2.0.block.2.fc1", "features.2.0.block.3.0"}
    assert _sources(block, "follow") == {"features.2.0.block.1.0"}  # the depthwise conv
    squeeze = [g for g in prunable if any("fc1" in s for s in _sources(g, "produce"))]
    assert len(squeeze) == 16 and all(_sources(g, "consume") for g in squeeze)


def test_convnext_atto_streams_take_layer_scales_and_norms(lift) -> None:
    _, analysis, prunable = _summary(lift, "convnext_atto")
    assert len(prunable) == 16
    hidden = [g for g in prunable if all(".fc1" in s for s in _sources(g, "produce"))]
    assert len(hidden) == 12
    stage0 = next(g for g in prunable if "stem.0" in _sources(g, "produce"))
    ops = sorted(u.node.op for u in stage0.role("follow"))
    assert ops.count("Constant") == 2 and ops.count("LayerNorm") == 4 and ops.count("Conv") == 2


def test_vit_tiny_stream_and_mlp_groups_heads_excluded(lift) -> None:
    _, analysis, prunable = _summary(lift, "vit_tiny_patch16_224")
    assert len(prunable) == 13
    mlp = [g for g in prunable if g.leader is not None and g.leader.name.endswith("mlp.fc1")]
    assert len(mlp) == 12 and all(g.channels == 768 for g in mlp)
    (stream,) = [g for g in prunable if "patch_embed.proj" in _sources(g, "produce")]
    assert len(stream.role("produce")) == 25 and len(stream.role("consume")) == 25
    follows = [u.node.op for u in stream.role("follow")]
    assert follows.count("Constant") == 2 and follows.count("LayerNorm") == 25
    qkv = [g for g in analysis.groups if any(".qkv" in s for s in _sources(g, "produce"))]
    assert len(qkv) == 12 and all("splits them" in g.reasons[0] for g in qkv)


def test_toy_rules_block_what_cannot_be_pruned(toy) -> None:
    b = toy(shape=(2, 8, 6, 6))
    a = b.op("Relu", b.conv(b.x, 8, name="a"))
    grouped = b.conv(a, 8, groups=2, name="grouped")  # whole groups: blocks a
    c = b.conv(grouped, 8, name="c")
    scale = b.constant(torch.ones(1, 8, 1, 1), "scale")
    shared = b.op("Mul", c, scale)
    d = b.conv(shared, 8, name="d")
    also = b.op("Add", d, scale)  # the scale constant has two uses: cannot follow c or d
    graph = b.done(b.conv(also, 4, name="out"))
    analysis = channel_groups(graph)
    by_producer = {next(iter(_sources(g, "produce")), "-"): g for g in analysis.groups}
    assert "grouped convolution" in by_producer["a"].reasons[0]
    assert "untracked" in by_producer["c"].reasons[0]
    assert "graph output" in by_producer["out"].reasons[0]
    assert "grouped" not in by_producer  # a grouped conv's outputs are never narrowed
    assert all(u.node.source != "c" for g in analysis.groups for u in g.role("consume"))


def test_toy_concat_flatten_and_layer_scale(toy) -> None:
    b = toy(shape=(2, 4, 3, 3))
    left, right = b.conv(b.x, 8, name="left"), b.conv(b.x, 16, name="right")
    joined = b.op("Concat", left, right, axis=1)
    scaled = b.op("Mul", b.conv(joined, 8, name="mix"), b.constant(torch.ones(8, 1, 1), "gamma"))
    flat = b.op("Flatten", b.op("Relu", scaled), start_dim=1)
    graph = b.done(b.linear(flat, 3, name="head"))
    analysis = channel_groups(graph, transition_units(graph))
    groups = {next(iter(_sources(g, "produce"))): g for g in analysis.groups}
    assert all(groups[n].prunable for n in ("left", "right", "mix"))
    mix_use = next(u for u in groups["left"].role("consume"))
    assert mix_use.node.source == "mix" and len(mix_use.layout.spaces) == 2
    head_use = groups["mix"].role("consume")[0]
    assert head_use.layout.inner == 9 and _sources(groups["mix"], "follow") == {"gamma"}
    assert {g.leader.name for g in analysis.groups if g.leader} == {"left", "right", "mix"}


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_every_prunable_group_has_one_leader_that_produces_it(lift, name: str) -> None:
    graph, analysis, prunable = _summary(lift, name)
    units = transition_units(graph)
    leaders = [u for u in units if not isinstance(analysis.leads(u), str)]
    assert len(leaders) == len(prunable)
    for unit in leaders:
        group = analysis.leads(unit)
        assert {id(n) for n in unit.nodes} & {id(u.node) for u in group.role("produce")}
    followers = [u for u in units if u.kind == "conv" and isinstance(analysis.leads(u), str)]
    assert any("follow" in analysis.leads(u) for u in followers)
