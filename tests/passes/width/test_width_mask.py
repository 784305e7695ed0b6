"""Width entries in the transition mask: rounding, leaders only, exact costs, restriction."""

from __future__ import annotations

import pytest
import torch

from natopt.errors import PlanError
from natopt.ir import graph_cost, run_graph
from natopt.passes.transitions import SPACES, VOCABULARY, apply_plan, compute_mask
from natopt.passes.transitions.mask import MaskContext
from natopt.passes.transitions.registry import Reason
from natopt.passes.transitions.state import transition_units
from natopt.passes.width import ChannelRounding, WidthOptions
from natopt.pipeline.optimize import OptimizeConfig, _vocabulary

WIDTHS = ("width_3_4", "width_1_2", "width_1_4")


@pytest.mark.parametrize(
    ("channels", "fraction", "kept"),
    [(64, 0.75, 48), (64, 0.5, 32), (64, 0.25, 16), (40, 0.75, 32), (40, 0.5, 32),
     (40, 0.25, 16), (32, 0.75, 32), (16, 0.5, 8), (12, 0.25, 8), (1000, 0.5, 512)],
)  # fmt: skip
def test_cpu_rounding_keeps_whole_blocks(channels: int, fraction: float, kept: int) -> None:
    assert ChannelRounding().kept(channels, fraction) == kept


def test_width_is_in_the_full_space_only_and_restricts_to_depth_plus_width() -> None:
    assert {n for n in SPACES["full"].names if n.startswith("width")} == set(WIDTHS)
    assert not any(n.startswith("width") for n in SPACES["nat++"].names)
    only = _vocabulary(OptimizeConfig(levels=("width",)))
    assert only.names == ("keep", "skip", "null", *WIDTHS)
    nat_pp = _vocabulary(OptimizeConfig(levels=("depth", "type", "kernel")))
    assert nat_pp.names == SPACES["nat++"].names  # NAT++ reproduced exactly
    assert _vocabulary(OptimizeConfig(space="nat++", levels=("width", "lowrank"))).levels == {
        "depth",
        "width",
        "lowrank",
    }
    with pytest.raises(PlanError, match="unknown level"):
        _vocabulary(OptimizeConfig(levels=("channels",)))


def test_width_rows_on_resnet18(resnet18) -> None:
    mask = compute_mask(resnet18, VOCABULARY.restrict(["width"]))
    assert set(mask.counts()) == {"keep", "skip", "null", *WIDTHS}
    leaders = [u.name for i, u in enumerate(mask.units) if "width_1_2" in mask.valid_names(i)]
    assert len(leaders) == 12
    assert "layer1.0.conv2" not in leaders and "fc" not in leaders  # a follower, the output
    counts = mask.counts()
    assert counts["width_3_4"] == counts["width_1_2"] == counts["width_1_4"] == 12  # >= 64 ch


def test_duplicate_and_useless_roundings_are_masked(toy) -> None:
    b = toy(shape=(1, 3, 8, 8))
    h = b.op("Relu", b.conv(b.x, 40, name="forty"))
    h = b.op("Relu", b.conv(h, 32, name="thirty_two"))
    h = b.op("Relu", b.conv(h, 16, name="sixteen"))
    graph = b.done(b.conv(h, 4, name="out"))
    mask = compute_mask(graph)
    widths = {
        u.name: [n for n in mask.valid_names(i) if n in WIDTHS] for i, u in enumerate(mask.units)
    }
    assert widths == {
        "forty": ["width_3_4", "width_1_4"],  # 1/2 keeps 32 as 3/4 does
        "thirty_two": ["width_1_2"],  # 3/4 rounds to 32; 1/4 keeps 16 as 1/2 does
        "sixteen": ["width_1_2"],
        "out": [],
    }
    units = transition_units(graph)
    ctx = MaskContext.of(graph, units, WidthOptions())
    reason = ctx.check(ctx.state(units[0]), VOCABULARY.get("width_1_2"))
    assert isinstance(reason, Reason) and "same 32 channels as width_3_4" in reason.message
    reason = ctx.check(ctx.state(units[-1]), VOCABULARY.get("width_1_2"))
    assert isinstance(reason, Reason) and "graph output" in reason.message
    coarse = compute_mask(
        graph, width=WidthOptions(rounding=ChannelRounding(block=4, small_block=4))
    )
    assert "width_1_2" in coarse.valid_names("forty")  # 20 channels is a whole block of 4


def test_predicted_group_costs_are_exact(resnet18) -> None:
    mask = compute_mask(resnet18, VOCABULARY.restrict(["width"]))
    before = graph_cost(resnet18)
    checked = 0
    for row, state in enumerate(mask.states):
        for name in mask.valid_names(row):
            if name not in WIDTHS or checked >= 12:
                continue
            group = state.group
            assert group is not None
            kept = group.kept(VOCABULARY.get(name).fraction or 1.0)
            changes = group.costs(kept)
            saved_params = sum(b.params - a.params for b, a in changes.values())
            saved_macs = sum(b.macs - a.macs for b, a in changes.values())
            after = graph_cost(apply_plan(resnet18, {state.unit.name: name}))
            assert (before.params - after.params, before.macs - after.macs) == (
                saved_params,
                saved_macs,
            ), (state.unit.name, name)
            checked += 1
    assert checked == 12


def test_the_leader_carries_the_group_and_other_rows_refuse_width(resnet18) -> None:
    with pytest.raises(PlanError, match="follow"):
        apply_plan(resnet18, {"layer1.0.conv2": "width_1_2"})
    after = apply_plan(resnet18, {"conv1": "width_1_2"})
    widths = {n.source: int(n.weights["weight"].shape[0]) for n in after.find("Conv")}
    assert widths["conv1"] == widths["layer1.0.conv2"] == widths["layer1.1.conv2"] == 32
    ins = {n.source: int(n.weights["weight"].shape[1]) for n in after.find("Conv")}
    assert ins["layer1.0.conv1"] == ins["layer2.0.downsample.0"] == 32
    assert after.meta["transitions"].channels == {"conv1": (64, 32)}
    (logits,) = run_graph(after, [torch.randn(2, 3, 64, 64)])
    assert logits.shape == (2, 1000)


def test_cli_transitions_flag_reaches_the_vocabulary() -> None:
    from natopt.cli.main import build_parser
    from natopt.cli.optimize import _config

    args = build_parser().parse_args(["optimize", "--example", "--transitions", "width"])
    config = _config(args)
    assert config.levels == ("width",)
    assert _vocabulary(config).names == ("keep", "skip", "null", *WIDTHS)
    args = build_parser().parse_args(["optimize", "m.onnx", "--space", "full"])
    assert "width_1_2" in _vocabulary(_config(args)).names
