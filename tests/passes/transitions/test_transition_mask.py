"""TransitionMask: validity rules, cost order, level restriction, speed."""

from __future__ import annotations

import gc
import time

import torch

from natopt.ir import Graph, Node, Value
from natopt.passes.transitions import SPACES, VOCABULARY, compute_mask


def _row(mask, unit: str) -> set[str]:
    return set(mask.valid_names(unit))


def test_mask_shape_and_keep_column(residual_graph: Graph) -> None:
    mask = compute_mask(residual_graph)
    assert mask.valid.dtype == torch.bool
    assert mask.valid.shape == (len(mask.units), len(VOCABULARY))
    assert mask.valid[:, 0].all()
    assert mask.unit_names == [
        "stem",
        "block1.conv_a",
        "block1.conv_b",
        "block1.conv_b:branch",
        "block2.conv_a",
        "block2.conv_b",
        "block2.conv_b:branch",
        "head",
    ]


def test_rows_of_a_residual_block(residual_graph: Graph) -> None:
    mask = compute_mask(residual_graph)
    conv3x3 = {"keep", "skip", "conv_1x1", "sep_conv_3x3", "dil_sep_conv_3x3"}
    pools = {"max_pool_3x3", "avg_pool_3x3"}
    assert _row(mask, "block1.conv_a") == conv3x3 | pools  # feeds conv_b: no null
    assert _row(mask, "block1.conv_b") == conv3x3 | pools | {"null"}
    assert _row(mask, "block1.conv_b:branch") == {"keep", "skip", "null"}
    assert _row(mask, "head") == {"keep", "lowrank_1_2", "lowrank_1_4", "lowrank_1_8"}


def test_skip_needs_equal_shapes_and_pooling_equal_channels(builder) -> None:
    b = builder()
    h = b.conv(b.x, 8, stride=2, source="down")
    h = b.conv(h, 16, source="widen")
    graph = b.done(h)
    mask = compute_mask(graph)
    down, widen = _row(mask, "down"), _row(mask, "widen")
    assert "skip" not in down and "max_pool_3x3" in down
    assert "skip" not in widen and "max_pool_3x3" not in widen and "sep_conv_3x3" in widen
    assert "null" not in down | widen


def test_null_never_offered_on_both_operands_of_an_add(builder) -> None:
    b = builder()
    left = b.conv(b.x, 8, source="left")
    right = b.conv(b.x, 8, 1, source="right")
    graph = b.done(b.op("Relu", b.op("Add", left, right)))
    mask = compute_mask(graph)
    assert all("null" not in _row(mask, u) for u in mask.unit_names)


def test_null_needs_a_live_other_operand(builder) -> None:
    b = builder()
    const = b.graph.add_node("Constant", [], {}, {"value": torch.ones(2, 8, 8, 8)})
    const.output.shape = (2, 8, 8, 8)
    biased = b.op("Add", b.conv(b.x, 8, source="conv"), const.output)
    also_used = b.conv(b.x, 8, source="used_twice")
    out = b.op("Add", b.op("Add", b.x, also_used), b.op("Relu", also_used))
    graph = b.done(b.op("Add", biased, out))
    mask = compute_mask(graph)
    assert "null" not in _row(mask, "conv")  # the other operand is a constant
    assert "null" not in _row(mask, "used_twice")  # also read by a Relu


def test_cost_order_masks_targets_that_cost_more(builder) -> None:
    b = builder((1, 1, 8, 8))
    single = b.conv(b.x, 1, source="single")  # 1 -> 1 channel: separable costs more
    graph = b.done(b.linear(b.op("Flatten", single, start_dim=1), 64, source="square"))
    mask = compute_mask(graph)
    assert "sep_conv_3x3" not in _row(mask, "single") and "conv_1x1" in _row(mask, "single")
    # 64 -> 64 linear at rank 32: 32 * 128 = 64 * 64 weights, not cheaper
    assert _row(mask, "square") == {"keep", "skip", "lowrank_1_4", "lowrank_1_8"}


def test_type_entries_change_the_kernel_only_with_the_kernel_level(builder) -> None:
    b = builder()
    graph = b.done(b.conv(b.x, 16, 5, source="c5"))
    full = _row(compute_mask(graph), "c5")
    assert {"conv_3x3", "sep_conv_5x5", "sep_conv_3x3", "dil_sep_conv_3x3"} <= full
    type_only = _row(compute_mask(graph, VOCABULARY.restrict(["type"])), "c5")
    assert type_only == {"keep", "sep_conv_5x5", "dil_sep_conv_5x5"}
    assert _row(compute_mask(graph, SPACES["nat"]), "c5") == {"keep"}


def test_grouped_and_strided_geometry(builder) -> None:
    b = builder()
    depthwise = b.conv(b.x, 8, 5, groups=8, source="dw")
    graph = b.done(b.conv(depthwise, 8, 3, stride=2, source="strided"))
    mask = compute_mask(graph)
    assert _row(mask, "dw") == {
        "keep",
        "skip",
        "conv_3x3",
        "conv_1x1",
        "max_pool_3x3",
        "avg_pool_3x3",
    }
    assert "skip" not in _row(mask, "strided") and "avg_pool_3x3" in _row(mask, "strided")


def test_plan_from_indices_and_random_plans(residual_graph: Graph) -> None:
    mask = compute_mask(residual_graph)
    index = [mask.vocabulary.index("keep")] * len(mask.units)
    index[mask.unit_names.index("head")] = mask.vocabulary.index("lowrank_1_2")
    assert mask.plan(index).transitions == {"head": "lowrank_1_2"}
    index[0] = mask.vocabulary.index("null")
    try:
        mask.plan(index)
    except ValueError as exc:
        assert "null is masked for unit stem" in str(exc)
    else:
        raise AssertionError("a masked index must be refused")
    plan = mask.random_plan(torch.Generator().manual_seed(3))
    for unit, name in plan.transitions.items():
        assert name in mask.valid_names(unit)
    assert plan == mask.random_plan(torch.Generator().manual_seed(3))


def _chain_graph(blocks: int) -> Graph:
    """``blocks`` residual blocks with shapes set by hand (no inference: build fast)."""
    graph = Graph("chain")
    x = graph.add_input("x", (1, 16, 8, 8))
    weight = torch.zeros(16, 16, 3, 3)
    attrs = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}

    def add(op: str, inputs: list[Value], **kw) -> Node:
        node = graph.add_node(op, inputs, **kw)
        node.output.shape = (1, 16, 8, 8)
        return node

    for i in range(blocks):
        a = add("Conv", [x], attrs=attrs, weights={"weight": weight}, source=f"b{i}.a")
        r = add("Relu", [a.output])
        c = add("Conv", [r.output], attrs=attrs, weights={"weight": weight}, source=f"b{i}.c")
        x = add("Add", [c.output, x]).output
    graph.set_outputs([x])
    return graph


def test_mask_of_a_thousand_units_is_fast() -> None:
    # the best of three, after a collection: in the full suite one call took 1.08 s and
    # 1.19 s (the other tests' garbage collected mid-call), alone 0.09 to 0.16 s
    graph = _chain_graph(340)
    gc.collect()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        mask = compute_mask(graph)
        times.append(time.perf_counter() - start)
    elapsed = min(times)
    assert len(mask.units) >= 1000
    assert mask.counts()["null"] == 2 * 340
    assert elapsed < 1.0, f"mask of {len(mask.units)} units took {elapsed:.2f}s"
