"""The width op registry is the one place an op's channel behaviour is described: every
registered op is an IR op, every use the walk records is sliced by its op, every consumer can
be refit, and an op no class handles blocks the channels it reads."""

from __future__ import annotations

import pytest
import torch

from natopt.ir import registered_ops
from natopt.passes.width import WidthOp, channel_groups, width_op, width_ops

ROLES = {"produce", "consume", "follow"}


def _overrides(op: WidthOp, method: str) -> bool:
    return getattr(type(op), method) is not getattr(WidthOp, method)


def test_every_registered_width_op_is_an_ir_op_with_consistent_parts() -> None:
    ops = width_ops()
    assert set(ops) <= set(registered_ops())
    for name, op in ops.items():
        assert name in op.ops and set(op.slices) <= ROLES, name
        assert _overrides(op, "group"), f"{name}: a registered op states its channel rule"
        if "consume" in op.slices:
            assert _overrides(op, "refit"), f"{name} consumes channels but cannot be refit"
        if _overrides(op, "resize"):
            assert "follow" in op.slices, f"{name} resizes attributes but never follows"
        if op.macs_follow_weight:
            assert "produce" in op.slices, name


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_every_use_the_walk_records_is_sliced_by_its_op(request, name: str) -> None:
    analysis = channel_groups(request.getfixturevalue(name))
    uses = [use for group in analysis.groups for use in group.uses]
    assert {"produce", "consume"} <= {use.role for use in uses}
    for use in uses:
        assert use.role in width_op(use.node.op).slices, (use.role, use.node.op)


def test_an_op_no_class_handles_blocks_what_it_reads(toy) -> None:
    assert "Sin" in registered_ops() and "Sin" not in width_ops()
    assert type(width_op("Sin")) is WidthOp and width_op("Sin") is width_op("NoSuchOp")
    b = toy(shape=(2, 4, 6, 6))
    wave = b.op("Sin", b.conv(b.x, 8, name="a"))
    graph = b.done(b.conv(wave, 4, name="out"))
    (group,) = [g for g in channel_groups(graph).groups if g.channels == 8]
    assert not group.prunable and group.reasons[0].startswith("Sin node")
    with pytest.raises(NotImplementedError, match="WidthOp.refit"):
        width_op("Sin").refit(graph.nodes[1], torch.zeros(1), torch.zeros(1), 1e-3)
