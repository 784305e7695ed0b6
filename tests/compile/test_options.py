"""Options of the compile backend and fx pass: the forms a plan may take, and bad values."""

from __future__ import annotations

import pytest

from natopt.compile import CompileOptions, load_plan
from natopt.errors import NatoptError, PlanError
from natopt.passes.transitions import Plan
from natopt.pipeline.budget import Budget

PLAN = Plan({"layer1.0.conv2": "skip", "fc": "lowrank_1_2"})


def test_every_plan_form_gives_the_same_plan(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(PLAN.to_json())
    as_json = {"version": 1, "transitions": dict(PLAN.transitions)}
    for form in (PLAN, dict(PLAN.transitions), as_json, str(path), path):
        assert load_plan(form) == PLAN


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"fc": 3}, "strings"),
        ({"version": 2, "transitions": {}}, "version 2"),
        (42, "not a int"),
    ],
)
def test_bad_plans_are_plan_errors(form, message):
    with pytest.raises(PlanError, match=message):
        load_plan(form)


def test_options_are_checked():
    parsed = CompileOptions.parse({"search": True, "budget": "latency=0.8", "then": "eager"})
    assert parsed.budget == Budget("latency", 0.8) and parsed.plan is None
    with pytest.raises(NatoptError, match="then='jit'"):
        CompileOptions.parse({"then": "jit"})
    with pytest.raises(NatoptError, match="not both"):
        CompileOptions.parse({"plan": {}, "search": True})
    with pytest.raises(NatoptError, match="evaluations must be >= 1"):
        CompileOptions.parse({"search": True, "evaluations": 0})
