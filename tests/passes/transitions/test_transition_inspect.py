"""`natopt inspect` lists each unit's valid transitions (table column and JSON field)."""

from __future__ import annotations

from natopt._console import plain_text
from natopt.cli.inspect import format_table, inspect_graph
from natopt.ir import Graph
from natopt.passes.transitions import apply_plan, compute_mask


def test_rows_carry_the_mask_rows(residual_graph: Graph) -> None:
    report = inspect_graph(residual_graph)
    mask = compute_mask(residual_graph)
    by_name = {r.name: r for r in [*report.rows, *report.branches]}
    for unit in mask.unit_names:
        assert by_name[unit].transitions == mask.valid_names(unit)
    rows = report.to_dict()["nodes"]
    assert next(r for r in rows if r["name"] == "head")["transitions"] == [
        "keep",
        "lowrank_1_2",
        "lowrank_1_4",
        "lowrank_1_8",
    ]
    table = plain_text(format_table(report.branches)).splitlines()
    assert table[0].split()[-1] == "transitions" and table[2].rstrip().endswith("skip, null")


def test_a_separable_pair_is_listed_once_with_its_transitions(builder) -> None:
    b = builder()
    graph = apply_plan(b.done(b.conv(b.x, 16, 5, source="c")), {"c": "sep_conv_5x5"})
    rows = {r.name: r for r in inspect_graph(graph).rows}
    assert rows["c.depthwise"].transitions == compute_mask(graph).valid_names("c")
    assert rows["c.pointwise"].transitions == []
