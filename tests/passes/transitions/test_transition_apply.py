"""apply_plan on toy graphs: each rewrite, numerics, determinism, errors, nesting, refits."""

from __future__ import annotations

import pytest
import torch

from natopt.backends import to_torch
from natopt.errors import PlanError
from natopt.ir import Graph, format_graph, graph_cost, run_graph
from natopt.passes.transitions import Plan, apply_plan, compute_mask
from natopt.passes.transitions.inherit import relative_error


def _out(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    return run_graph(graph, [x])[0]


def test_input_graph_is_untouched_and_plans_are_deterministic(residual_graph: Graph) -> None:
    before = format_graph(residual_graph)
    plan = Plan({"block1.conv_a": "sep_conv_3x3", "block2.conv_b": "null", "head": "lowrank_1_4"})
    first = apply_plan(residual_graph, plan)
    second = apply_plan(residual_graph, Plan.from_json(plan.to_json()))
    assert format_graph(residual_graph) == before
    assert format_graph(first) == format_graph(second)
    for a, b in zip(first.nodes, second.nodes, strict=True):
        assert a.weights.keys() == b.weights.keys()
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_each_rewrite_gives_the_expected_ops(residual_graph: Graph) -> None:
    counts = residual_graph.op_counts()
    assert counts["Conv"] == 5 and counts["Add"] == 2
    cases = {
        "block1.conv_a": ("sep_conv_3x3", {"Conv": 6}),
        "block1.conv_b": ("null", {"Conv": 3, "Add": 1}),
        "block2.conv_b:branch": ("skip", {"Conv": 3, "Add": 2}),
        "stem": ("avg_pool_3x3", {"Conv": 4, "AvgPool": 1}),
        "head": ("lowrank_1_2", {"Linear": 2}),
    }
    for unit, (transition, expected) in cases.items():
        after = apply_plan(residual_graph, {unit: transition})
        got = after.op_counts()
        assert {op: got.get(op, 0) for op in expected} == expected, (unit, transition)
        assert after.meta["transitions"].applied == {unit: transition}


def test_function_preserving_inheritance(builder) -> None:
    b = builder()
    centre = torch.zeros(8, 8, 5, 5)
    centre[..., 1:4, 1:4] = torch.randn(8, 8, 3, 3)
    separable = torch.randn(8, 8, 1, 1) * torch.randn(8, 3, 3)[None]
    low_rank = torch.randn(12, 2) @ torch.randn(2, 8 * 8 * 8)
    h = b.conv(b.x, 8, 5, weight=centre, source="centre")
    h = b.conv(h, 8, 3, weight=separable, source="separable")
    graph = b.done(b.linear(b.op("Flatten", h, start_dim=1), 12, weight=low_rank, source="fc"))
    plan = {"centre": "conv_3x3", "separable": "sep_conv_3x3", "fc": "lowrank_1_4"}  # rank 3
    after = apply_plan(graph, plan)
    x = torch.randn(2, 8, 8, 8)
    want = _out(graph, x)
    assert relative_error(_out(after, x), want) < 1e-5
    assert relative_error(to_torch(after)(x), want) < 1e-5
    assert graph_cost(after).params < graph_cost(graph).params


def test_rewritten_units_keep_their_names_and_get_their_own_transitions(builder) -> None:
    b = builder()
    graph = b.done(b.conv(b.x, 16, 5, source="c"))
    sep = apply_plan(graph, {"c": "sep_conv_5x5"})
    row = compute_mask(sep).valid_names("c")
    assert row == ["keep", "sep_conv_3x3", "dil_sep_conv_3x3"]  # dil_sep_5x5: same cost
    dil = apply_plan(sep, {"c": "dil_sep_conv_3x3"})
    assert [n.attrs["dilation"] for n in dil.find("Conv")] == [(2, 2), (1, 1)]
    assert compute_mask(dil).valid_names("c") == ["keep"]
    low = apply_plan(apply_plan(graph, {"c": "conv_1x1"}), {"c": "lowrank_1_2"})
    assert compute_mask(low).valid_names("c") == ["keep", "lowrank_1_4", "lowrank_1_8"]


def test_plan_errors_name_the_unit_and_the_transition(residual_graph: Graph) -> None:
    with pytest.raises(PlanError, match="'block9.conv_a'.*'skip'"):
        apply_plan(residual_graph, {"block9.conv_a": "skip"})
    with pytest.raises(PlanError, match="stem.*'conv_2x2'"):
        apply_plan(residual_graph, {"stem": "conv_2x2"})
    with pytest.raises(PlanError, match="null is invalid for unit block1.conv_a"):
        apply_plan(residual_graph, {"block1.conv_a": "null"})
    with pytest.raises(PlanError, match="lowrank_1_2 is invalid for unit stem"):
        apply_plan(residual_graph, {"stem": "lowrank_1_2"})


def test_plan_json_round_trip_and_version() -> None:
    plan = Plan({"b": "skip", "a": "null"})
    text = plan.to_json()
    assert text.index('"a"') < text.index('"b"')
    assert Plan.from_json(text) == plan
    with pytest.raises(PlanError, match="version 2"):
        Plan.from_json('{"version": 2, "transitions": {}}')
    with pytest.raises(PlanError, match="JSON"):
        Plan.from_json("{not json")
    with pytest.raises(PlanError, match="strings"):
        Plan.from_json('{"version": 1, "transitions": {"a": 3}}')


def test_outer_branch_null_wins_over_nested_units(residual_graph: Graph) -> None:
    plan = {
        "block1.conv_b:branch": "null",
        "block1.conv_a": "sep_conv_3x3",
        "block1.conv_b": "conv_1x1",
        "block2.conv_a": "conv_1x1",
    }
    after = apply_plan(residual_graph, plan)
    report = after.meta["transitions"]
    assert report.overridden == {
        "block1.conv_a": "block1.conv_b:branch",
        "block1.conv_b": "block1.conv_b:branch",
    }
    assert set(report.applied) == {"block1.conv_b:branch", "block2.conv_a"}
    assert after.op_counts()["Conv"] == 3 and after.op_counts()["Add"] == 1
    assert not any((n.source or "").startswith("block1") for n in after.nodes)


def test_calibration_refit_reduces_the_reconstruction_error(builder) -> None:
    b = builder((64, 16))
    graph = b.done(b.linear(b.x, 32, source="fc"))
    basis = torch.randn(4, 16)
    calibration = [torch.randn(64, 4) @ basis]  # inputs in a 4-dim subspace
    after = apply_plan(graph, {"fc": "lowrank_1_4"}, calibration=calibration)
    report = after.meta["transitions"]
    assert report.inherited_errors["fc"] > 0.2
    # the ridge objective at its optimum is at most its value at the inherited weights
    assert report.errors["fc"] < report.inherited_errors["fc"]
    after = apply_plan(graph, {"fc": "lowrank_1_4"}, calibration=calibration, ridge=1e-9)
    assert after.meta["transitions"].errors["fc"] < 1e-4  # rank 4 on a 4-dim input: exact
    held_out = torch.randn(8, 4) @ basis
    torch.testing.assert_close(_out(after, held_out), _out(graph, held_out), atol=1e-2, rtol=1e-2)


def test_calibration_errors_for_every_kind(residual_graph: Graph) -> None:
    plan = {
        "stem": "conv_1x1",
        "block1.conv_a": "sep_conv_3x3",
        "block1.conv_b": "null",
        "block2.conv_a": "max_pool_3x3",
        "block2.conv_b": "skip",
        "head": "lowrank_1_2",
    }
    calibration = [torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)]
    report = apply_plan(residual_graph, plan, calibration=calibration).meta["transitions"]
    assert set(report.errors) == set(plan)
    assert report.errors["block1.conv_b"] == 1.0
    for unit in ("stem", "block1.conv_a", "head"):
        assert report.errors[unit] <= report.inherited_errors[unit] + 1e-6
    assert report.errors["block2.conv_a"] == report.inherited_errors["block2.conv_a"]
    assert apply_plan(residual_graph, plan).meta["transitions"].errors == {}


def test_mask_costs_match_the_rewritten_graphs(residual_graph: Graph, builder) -> None:
    b = builder()
    h = b.conv(b.x, 8, 5, source="c5")
    h = b.conv(h, 16, 1, stride=2, source="c1")
    graphs = [residual_graph, b.done(b.conv(h, 16, 3, groups=4, source="grouped"))]
    checked = 0
    for graph in graphs:
        mask = compute_mask(graph)
        before = graph_cost(graph)
        for row, state in enumerate(mask.states):
            for name in mask.valid_names(row):
                entry = mask.vocabulary.get(name)
                if entry.level == "depth":
                    continue
                target = mask.target(row, name)
                after = graph_cost(apply_plan(graph, {state.unit.name: name}))
                assert before.params - after.params == state.cost.params - target.cost.params
                assert before.macs - after.macs == state.cost.macs - target.cost.macs
                checked += 1
    assert checked > 25
