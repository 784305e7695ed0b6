"""apply_plan with width entries: exact slicing, refits, interplay, real-model plans.

Exactness: narrowing a group computes exactly what the original computes with the pruned
channels zeroed at every producer (and the per-channel biases of its followers), because a
kept channel's producer rows are untouched and a consumer's dropped input columns only ever
multiplied zeros. So the narrowed graph is compared with such a zeroed copy of the original.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from plan_checks import PLAN_SETTINGS, check_plan, masked_plans

from natopt.ir import Graph, format_graph, graph_cost, run_graph
from natopt.passes.transitions import VOCABULARY, Plan, apply_plan, compute_mask
from natopt.passes.transitions.state import transition_units
from natopt.passes.width import IMPORTANCE, WidthOptions, channel_groups, kept_channels
from natopt.passes.width.importance import Evidence

WIDTHS = ("width_3_4", "width_1_2", "width_1_4")


def _zeroed(graph: Graph, plan: dict[str, str]) -> Graph:
    """``graph`` with the channels ``plan``'s width entries drop (by L1 importance) zeroed."""
    analysis = channel_groups(graph, transition_units(graph))
    copy = graph.copy()
    nodes = {n.name: n for n in copy.nodes}
    for leader, entry in plan.items():
        group = analysis.led[leader]
        kept = kept_channels(
            IMPORTANCE["l1"]([group], Evidence(graph, None))[0],
            group.kept(VOCABULARY.get(entry).fraction or 1),
        )
        dropped = torch.ones(group.channels, dtype=torch.bool)
        dropped[kept] = False
        for use in group.uses:
            node = nodes[use.node.name]
            names = {"produce": ("weight", "bias"), "follow": ("bias", "value")}.get(use.role, ())
            for name in names:
                if name in node.weights:
                    axis = use.layout.axis if name == "value" else 0
                    tensor = node.weights[name].clone()
                    tensor.index_fill_(axis, dropped.nonzero().flatten(), 0.0)
                    node.weights[name] = tensor
    return copy


PLANS = {
    "resnet18": {
        "conv1": "width_1_2",
        "layer2.0.conv1": "width_1_4",
        "layer4.0.conv2": "width_3_4",
    },
    "mobilenet_v2": {
        "features.0.0": "width_1_2",
        "features.4.conv.0.0": "width_1_4",
        "features.18.0": "width_1_2",
    },
}


@pytest.mark.parametrize(("model", "plan"), list(PLANS.items()))
def test_narrowing_equals_zeroing_the_dropped_channels(model, plan, request) -> None:
    graph = request.getfixturevalue(model)
    after = apply_plan(graph, plan)
    x = torch.randn(2, 3, 64, 64)
    want = run_graph(_zeroed(graph, plan), [x])[0]
    torch.testing.assert_close(run_graph(after, [x])[0], want, atol=1e-4, rtol=1e-4)
    assert graph_cost(after).macs < graph_cost(graph).macs


def test_concat_flatten_and_layer_scale_are_sliced_consistently(toy) -> None:
    b = toy(shape=(2, 4, 3, 3))
    left, right = b.conv(b.x, 32, name="left"), b.conv(b.x, 16, name="right")
    joined = b.op("Relu", b.op("Concat", left, right, axis=1))
    gamma = b.constant(torch.rand(32, 1, 1) + 0.5, "gamma")
    scaled = b.op("Mul", b.conv(joined, 32, name="mix"), gamma)
    flat = b.op("Flatten", b.op("Relu", scaled), start_dim=1)
    graph = b.done(b.linear(flat, 3, name="head"))
    plan = {"left": "width_1_2", "mix": "width_1_2"}
    after = apply_plan(graph, plan)
    shapes = {
        n.source: tuple(n.weights[next(iter(n.weights))].shape) for n in after.nodes if n.source
    }
    assert shapes["mix"] == (16, 32, 3, 3) and shapes["head"] == (3, 16 * 9)
    assert shapes["gamma"] == (16, 1, 1)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(run_graph(after, [x])[0], run_graph(_zeroed(graph, plan), [x])[0])


def test_refit_lowers_the_reconstruction_error_on_the_trained_example(example) -> None:
    graph, batches, x_test, y_test = example
    mask = compute_mask(graph, VOCABULARY.restrict(["width"]))
    rows = [
        (u.name, [n for n in mask.valid_names(i) if n in WIDTHS]) for i, u in enumerate(mask.units)
    ]
    plan = {name: widths[-1] for name, widths in rows if widths}  # every group, narrowest
    assert len(plan) >= 3
    refit = apply_plan(graph, plan, calibration=batches)
    sliced = apply_plan(graph, plan, calibration=batches, width=WidthOptions(refit=False))
    report = refit.meta["transitions"]
    assert set(report.errors) == set(plan)
    for leader in plan:
        assert report.errors[leader] < 0.8 * report.inherited_errors[leader], leader
    for layer, (before, after) in report.layer_errors.items():
        assert after < before, layer
    assert sliced.meta["transitions"].errors == sliced.meta["transitions"].inherited_errors
    x = torch.from_numpy(x_test)

    def accuracy(g: Graph) -> float:
        return float((run_graph(g, [x])[0].argmax(1).numpy() == y_test).mean())

    assert accuracy(refit) > accuracy(sliced)


def test_width_first_then_other_transitions_checked_again(toy) -> None:
    b = toy(shape=(1, 3, 8, 8))
    a = b.op("Relu", b.conv(b.x, 32, name="a"))
    same = b.op("Relu", b.conv(a, 32, name="same"))  # 32 -> 32: skip and pooling are valid
    graph = b.done(b.conv(same, 4, name="out"))
    plan = {"a": "width_1_2", "same": "skip"}
    after = apply_plan(graph, plan)
    report = after.meta["transitions"]
    assert report.applied == {"a": "width_1_2"}
    assert report.overridden["same"].startswith("width: skip needs")
    kept = apply_plan(graph, {"a": "width_1_2", "same": "sep_conv_3x3"})
    assert kept.meta["transitions"].applied == {"a": "width_1_2", "same": "sep_conv_3x3"}
    assert int(kept.find("Conv")[1].attrs["groups"]) == 16  # the depthwise half, narrowed
    assert format_graph(kept) == format_graph(
        apply_plan(graph, {"a": "width_1_2", "same": "sep_conv_3x3"})
    )


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_sampled_width_plans_verify_run_export_and_cost_less(model, request, tmp_path) -> None:
    graph = request.getfixturevalue(model)
    mask = compute_mask(graph)
    widths: list[int] = []

    @PLAN_SETTINGS
    @given(plan=masked_plans(mask, prefer=WIDTHS))
    def check(plan: Plan) -> None:
        widths.append(sum(t in WIDTHS for t in plan.transitions.values()))
        after = check_plan(graph, plan, tmp_path)
        if any(t in WIDTHS for t in after.meta["transitions"].applied.values()):
            assert graph_cost(after).macs < graph_cost(graph).macs

    check()
    assert max(widths) >= 6  # many groups narrowed at once, with other transitions around


def test_ridge_refit_dual_form_equals_the_primal_solution() -> None:
    """A flattened classifier refit on fewer images than input columns uses the dual form."""
    from natopt.passes.calibration import ridge_refit, solve_each

    torch.manual_seed(0)
    for rows, columns in ((50, 200), (300, 40)):
        a, y, w0 = (
            torch.randn(2, rows, columns),
            torch.randn(2, rows, 5),
            torch.randn(2, columns, 5),
        )
        ad = a.double()
        lam = 1e-2 * (ad.transpose(1, 2) @ ad).diagonal(dim1=1, dim2=2).mean(dim=1)
        lhs = ad.transpose(1, 2) @ ad + lam[:, None, None] * torch.eye(columns, dtype=ad.dtype)
        rhs = ad.transpose(1, 2) @ y.double() + lam[:, None, None] * w0.double()
        want = solve_each(lhs, rhs).float()
        torch.testing.assert_close(ridge_refit(a, y, w0, 1e-2), want, atol=1e-5, rtol=1e-5)
