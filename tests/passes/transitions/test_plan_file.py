"""Plan files: one reader (``Plan.load``) for the CLI and the compile backend; old files load."""

from __future__ import annotations

from pathlib import Path

import pytest

from natopt.compile import load_plan
from natopt.errors import PlanError
from natopt.passes.transitions import Plan

# written by `Plan.to_json()` + "\n" (what `natopt optimize --save-plan` writes) at 3a1cb31
SAVED_BEFORE = Path(__file__).parent / "fixtures" / "plan_v1.json"
EXPECTED = Plan(
    {
        "fc": "lowrank_1_4",
        "layer1.0.conv2": "sep_conv_3x3",
        "layer1.1.conv1": "skip",
        "layer2.1.conv2:branch": "null",
        "layer3.0.conv1": "width_1_2",
    }
)


def test_a_plan_file_saved_by_earlier_code_still_loads():
    assert Plan.load(SAVED_BEFORE) == EXPECTED
    assert Plan.load(str(SAVED_BEFORE)) == load_plan(SAVED_BEFORE) == EXPECTED
    # today's writer differs from that file only in naming its version "schema" (schema 1)
    old = SAVED_BEFORE.read_text(encoding="utf-8")
    assert EXPECTED.to_json() + "\n" == old.replace('"version": 1', '"schema": 1')


def test_a_missing_file_says_how_to_write_one(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(PlanError, match="cannot read plan file") as caught:
        Plan.load(missing)
    message = str(caught.value)
    assert "nope.json does not exist" in message and "--save-plan" in message


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{not json", "JSON"),
        (b'{"version": 7, "transitions": {}}', "version 7"),
        (b"[1]", "JSON object"),
        (b"\xff\xfe", "decode"),
    ],
)
def test_a_malformed_file_is_one_line_naming_the_file(tmp_path, content, detail):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(PlanError, match=f"bad.json is not a natopt plan: .*{detail}") as caught:
        Plan.load(path)
    assert "\n" not in str(caught.value)


def test_the_parsed_form_is_checked_like_the_text():
    assert Plan.from_dict({"version": 1, "transitions": {"fc": "skip"}}) == Plan({"fc": "skip"})
    with pytest.raises(PlanError, match="strings"):
        Plan.from_dict({"version": 1, "transitions": {"fc": 3}})
