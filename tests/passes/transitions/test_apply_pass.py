"""ApplyPlanPass under a PassManager: the rewrite, verification, timing, log, dumps, errors."""

from __future__ import annotations

import pytest
import torch

from natopt.errors import PlanError
from natopt.ir import Graph, format_graph, run_graph
from natopt.passes import PassContext, PassManager, RemoveIdentityPass, base
from natopt.passes.transitions import ApplyPlanPass, apply_plan

PLAN = {"block1.conv_a": "sep_conv_3x3", "block2.conv_b": "null"}


def test_the_pass_gives_what_apply_plan_gives_and_leaves_its_input(residual_graph, monkeypatch):
    verified = []
    monkeypatch.setattr(base, "verify", lambda g, **kw: verified.append((g, kw)))
    before = format_graph(residual_graph)
    calibration = [torch.randn(4, 8, 8, 8)]
    ctx = PassContext()
    result = PassManager([ApplyPlanPass(PLAN, calibration=calibration)]).run(residual_graph, ctx)
    want = apply_plan(residual_graph, PLAN, calibration=calibration)
    assert result.changed and result.graph is not residual_graph
    assert format_graph(result.graph) == format_graph(want)
    assert result.graph.meta["transitions"].applied == PLAN
    assert format_graph(residual_graph) == before
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(run_graph(result.graph, [x])[0], run_graph(want, [x])[0])
    assert ctx.log == ["ApplyPlanPass"] and ctx.timings["ApplyPlanPass"] > 0
    assert verified == [(result.graph, {"check_shapes": True})]


def test_a_plan_of_keeps_changes_nothing(residual_graph: Graph):
    result = ApplyPlanPass({"stem": "keep"})(residual_graph)
    assert not result.changed
    assert format_graph(result.graph) == format_graph(residual_graph)


def test_dumps_the_graph_before_and_after(residual_graph: Graph, tmp_path):
    ctx = PassContext(dump_dir=tmp_path)
    PassManager([RemoveIdentityPass(), ApplyPlanPass(PLAN)]).run(residual_graph, ctx)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000-RemoveIdentityPass-after.txt",
        "000-RemoveIdentityPass-before.txt",
        "001-ApplyPlanPass-after.txt",
        "001-ApplyPlanPass-before.txt",
    ]
    before = (tmp_path / "001-ApplyPlanPass-before.txt").read_text()
    after = (tmp_path / "001-ApplyPlanPass-after.txt").read_text()
    assert before.count("Conv(") == 5 and after.count("Conv(") == 4  # +1 separable, -2 nulled
    assert before.count("Add(") == 2 and after.count("Add(") == 1


def test_a_plan_error_names_the_pass(residual_graph: Graph):
    manager = PassManager([RemoveIdentityPass(), ApplyPlanPass({"block9.conv_a": "skip"})])
    with pytest.raises(PlanError, match=r"^pass ApplyPlanPass failed after RemoveIdentityPass: "):
        manager.run(residual_graph, PassContext())


def test_another_exception_keeps_its_type_and_message(residual_graph: Graph):
    wrong_channels = [torch.randn(2, 3, 8, 8)]
    manager = PassManager([ApplyPlanPass(PLAN, calibration=wrong_channels)])
    with pytest.raises(RuntimeError) as info:
        manager.run(residual_graph, PassContext())
    assert type(info.value) is RuntimeError and "pass ApplyPlanPass" not in str(info.value)
