"""The merge benchmark's plans (``benchmarks/merge_latency.py``): chains are chosen in graph
order and never share a conv, on two inverted residual blocks back to back."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from natopt.frontends.torch import lift_torch
from natopt.passes import canonicalize
from natopt.passes.transitions import apply_plan, compute_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import merge_latency  # noqa: E402


def _block(c: int, expand: int) -> list[nn.Module]:
    wide = c * expand
    return [
        nn.Conv2d(c, wide, 1), nn.ReLU(),
        nn.Conv2d(wide, wide, 3, padding=1, groups=wide), nn.ReLU(),
        nn.Conv2d(wide, c, 1),
    ]  # fmt: skip


def test_merge_3_chains_do_not_overlap_and_apply() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*_block(8, 6), nn.ReLU(), *_block(8, 6)).eval()
    graph = canonicalize(lift_torch(model, torch.randn(2, 8, 12, 12), dynamic_batch=True))
    mask = compute_mask(graph, merge_latency.MERGE_VOCABULARY)
    taken: set = set()
    plan = merge_latency.non_overlapping(mask, "merge_3", taken)
    assert plan == {"0": "merge_3", "6": "merge_3"}
    assert merge_latency.non_overlapping(mask, "merge_2", taken) == {}
    merged = apply_plan(
        graph, plan, calibration=[torch.randn(16, 8, 12, 12)],
        vocabulary=merge_latency.MERGE_VOCABULARY,
    )  # fmt: skip
    assert [n.op for n in merged.nodes if n.op == "Conv"] == ["Conv", "Conv"]
