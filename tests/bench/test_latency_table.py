"""The latency cost table: segments and signatures, probes, the per-device cache, estimates,
and its use by ``optimize`` for a latency budget (toy models; real models in benchmarks/)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from natopt.bench.latency_table import (
    CACHE_ENV,
    Device,
    LatencyTable,
    MeasureSettings,
    estimate_latency,
)
from natopt.bench.segments import baked_values, graph_segments, probe_graph
from natopt.errors import BenchError
from natopt.frontends import lift
from natopt.frontends.onnx import lift_onnx
from natopt.ir import graph_cost, run_graph, verify
from natopt.passes import canonicalize
from natopt.passes.transitions import VOCABULARY, compute_mask
from natopt.pipeline import executor as executor_module
from natopt.pipeline.budget import Budget, reward
from natopt.pipeline.data import Dataset
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.latency_probes import unit_variants
from natopt.pipeline.objective import Objective
from natopt.pipeline.optimize import OptimizeConfig, _measured_pool, optimize
from natopt.pipeline.problem import plan_key
from natopt.pipeline.verify_export import LatencyPair

FAST = MeasureSettings(chunk=8, warmup=1, min_runs=3, max_runs=5, seconds_per_probe=0.01)


class Blocks(nn.Module):
    """Two identical conv-bn-relu blocks (equal signatures), a residual add, a head."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.head = nn.Linear(c, 4)

    def forward(self, x):
        y = self.b(self.a(x)) + x
        return self.head(y.mean((2, 3)))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def canonical(model: nn.Module, shape=(1, 8, 16, 16), **options):
    torch.manual_seed(0)
    return canonicalize(lift(model.eval(), torch.randn(*shape), **options))


def table(**kwargs) -> LatencyTable:
    return LatencyTable.open(Device.detect("cpu"), settings=FAST, **kwargs)


def test_unit_chains_are_one_segment_and_equal_blocks_share_a_key():
    graph = canonical(Blocks())
    segments = graph_segments(graph)
    ops = [[n.op for n in s.nodes] for s in segments]
    assert ops[:2] == [["Conv", "Relu"], ["Conv", "Relu"]]
    assert segments[0].key == segments[1].key
    assert ["Add"] in ops and ["Linear"] in ops
    assert all(n.op != "Constant" for s in segments for n in s.nodes)
    assert segments[0].text == "Conv+Relu [1,8,16,16] -> [1,8,16,16]"


def test_signatures_see_shapes_attributes_and_symbol_bindings():
    small, wide = canonical(Blocks()), canonical(Blocks(), (1, 8, 32, 32))
    assert graph_segments(small)[0].key != graph_segments(wide)[0].key
    dynamic = canonical(Blocks(), (2, 8, 16, 16), dynamic_batch=True)
    at_one = graph_segments(dynamic)[0]
    at_four = graph_segments(dynamic, {"batch": 4})[0]
    assert at_one.key == graph_segments(small)[0].key
    assert at_four.key != at_one.key and "[4,8,16,16]" in at_four.text


class WithToken(nn.Module):
    """A class token expanded to the (dynamic) batch: a shape tensor computed at run time."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 8))
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return self.proj(torch.cat([self.token.expand(x.shape[0], -1, -1), x], 1))


@pytest.mark.parametrize(
    ("model", "shape"), [(Blocks(), (2, 8, 16, 16)), (WithToken(), (2, 5, 8))], ids=["cnn", "token"]
)
def test_probe_graphs_compute_their_segment_at_concrete_shapes(model, shape):
    graph = canonical(model, shape, dynamic_batch=True)
    segments = graph_segments(graph, {"batch": 2})
    values = baked_values(graph, segments, {"batch": 2})
    x = torch.randn(*shape)
    seen = {}

    def watch(node, args, outs):
        seen[node.name] = (args, outs)

    run_graph(graph, [x], watch=watch)
    for segment in segments:
        probe = probe_graph(segment, values, {"batch": 2})
        verify(probe, check_shapes=True)
        assert all(isinstance(d, int) for v in probe.inputs for d in v.shape)
        first, last = segment.nodes[0], segment.nodes[-1]
        inputs = [
            seen[first.name][0][first.inputs.index(v)]
            for k, v in enumerate(segment.inputs)
            if not segment.needs_value(k)
        ]
        got = run_graph(probe, inputs)[0]
        torch.testing.assert_close(got, seen[last.name][1][0])
    if isinstance(model, WithToken):  # the Expand reads a run-time shape, built in
        expand = next(s for s in segments if s.nodes[0].op == "Expand")
        assert [v.dtype for v in expand.inputs] == ["float32", "int64"]
        assert all(expand.needs_value(k) for k in range(2))


def test_estimate_measures_missing_segments_once_and_caches_them(cache):
    graph = canonical(Blocks())
    first = table()
    ms = estimate_latency(graph, first)
    keys = {s.key for s in graph_segments(graph)}
    assert ms > first.overhead_ms > 0
    assert keys <= set(first.entries) and all(first.entries[k].ms is not None for k in keys)
    files = list((cache / "latency").iterdir())
    assert [f.name for f in files] == [f"{first.device.key}.json"]
    again = table()
    assert set(again.entries) == set(first.entries)
    assert again.pending([graph]) == []
    assert estimate_latency(graph, again, measure_missing=False) == pytest.approx(ms)
    best = estimate_latency(graph, again, statistic="min")
    assert all(again.entries[k].min_ms is not None for k in keys)
    assert best > 0 and best == pytest.approx(
        again.overhead_min_ms + sum(again.entries[s.key].min_ms for s in graph_segments(graph))
    )
    with pytest.raises(BenchError, match="unknown statistic"):
        estimate_latency(graph, again, statistic="mean")


def test_missing_entries_without_measuring_are_an_error():
    with pytest.raises(BenchError, match="no entry for segment Conv\\+Relu"):
        estimate_latency(canonical(Blocks()), table(cache=False), measure_missing=False)


def test_bigger_work_costs_more():
    small = table(cache=False)
    small.settings = MeasureSettings(warmup=2, min_runs=20, max_runs=40, seconds_per_probe=0.05)
    cheap = estimate_latency(canonical(Blocks(4), (1, 4, 8, 8)), small)
    costly = estimate_latency(canonical(Blocks(64), (1, 64, 64, 64)), small)
    assert costly > 5 * cheap


def test_the_cache_is_merged_and_written_atomically(cache):
    one, two = table(), table()
    graph_a, graph_b = canonical(Blocks()), canonical(Blocks(), (1, 8, 8, 8))
    estimate_latency(graph_a, one)
    estimate_latency(graph_b, two)  # two opened before one saved: the file keeps both
    merged = table()
    keys = {s.key for g in (graph_a, graph_b) for s in graph_segments(g)}
    assert keys <= set(merged.entries)
    data = json.loads(merged.path.read_text())
    assert data["device"]["threads"] == 1 and data["device"]["provider"] == "CPUExecutionProvider"
    assert [p.name for p in merged.path.parent.iterdir()] == [merged.path.name]


def test_the_cache_says_its_schema_and_reads_files_that_said_version(cache):
    graph = canonical(Blocks())
    estimate_latency(graph, table())
    path = table().path
    data = json.loads(path.read_text())
    assert data["schema"] == 1 and "version" not in data
    data["version"] = data.pop("schema")  # a cache written before the key was renamed
    path.write_text(json.dumps(data))
    assert table().pending([graph]) == []
    data["version"] = 2  # a future layout is not read
    path.write_text(json.dumps(data))
    assert table().entries == {}


def test_an_unreadable_cache_starts_empty(cache):
    path = cache / "latency" / f"{Device.detect('cpu').key}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert table().entries == {}


def test_device_keys_name_provider_and_threads():
    one = Device("CPUExecutionProvider", "Some CPU @ 2.0GHz", "1.20.1", 1)
    default = Device("CPUExecutionProvider", "Some CPU @ 2.0GHz", "1.20.1", None)
    gpu = Device("CUDAExecutionProvider", "NVIDIA H100 80GB HBM3", "1.20.1", 1)
    assert one.key == "cpu-some-cpu-2.0ghz-ort1.20.1-t1"
    assert default.key.endswith("-tdefault")
    assert gpu.key.startswith("cuda-nvidia-h100")
    with pytest.raises(BenchError, match="unknown provider"):
        Device.detect("tpu")


class WithOpaque(nn.Module):
    def forward(self, x):
        return torch.special.i0(x) + x


def test_segments_without_an_onnx_form_count_zero_and_are_listed():
    graph = canonical(WithOpaque(), (1, 4))
    assert "Opaque" in graph.op_counts()
    t = table(cache=False)
    ms = estimate_latency(graph, t)
    unmeasured = t.unmeasured(graph)
    assert [e.text.split(" ")[0] for e in unmeasured] == ["Opaque"]
    assert unmeasured[0].reason and ms >= t.overhead_ms


def test_unit_variants_cover_every_valid_target_once_per_signature():
    graph = canonical(Blocks())
    mask = compute_mask(graph)
    variants = unit_variants(graph, mask)
    row = mask.unit_names.index("a.0")
    targets = [n for n in mask.valid_names(row) if n not in ("keep", "skip", "null")]
    assert targets and "sep_conv_3x3" in targets
    # a.0 and b.0 have one signature: their targets are built once; the head has its own
    head = [n for n in mask.valid_names(mask.unit_names.index("head")) if n.startswith("low")]
    assert len(variants) == len(targets) + len(head)
    ops = [tuple(n.op for n in v.nodes) for v in variants]
    assert ("Conv", "Conv", "Relu") in ops  # separable: depthwise, pointwise, activation
    for variant in variants:
        verify(variant, check_shapes=True)


def test_budget_ratio_uses_latency_estimates_when_given():
    budget = Budget.parse("latency=0.5")
    from natopt.ir import Cost

    cost, original = Cost(10, 100), Cost(10, 100)
    assert budget.ratio(cost, original) == 1.0  # no estimate: MACs stand in
    assert budget.ratio(cost, original, (3.0, 4.0)) == pytest.approx(0.75)
    over = reward(0.0, cost, original, budget, 0.0, (3.0, 4.0))
    within = reward(0.0, cost, original, budget, 0.0, (1.0, 4.0))
    assert over == pytest.approx(-10 * 0.25) and within == 0.0


def _optimize_blocks(**options):
    """``optimize`` on ``Blocks`` under latency=0.9: a random search of 4 evaluations (random
    weights, no fine-tuning: these tests check latency pricing, so the quality guard is off)."""
    torch.manual_seed(0)
    graph = lift(Blocks().eval(), torch.randn(2, 8, 16, 16), dynamic_batch=True)
    x = np.random.default_rng(0).normal(size=(60, 8, 16, 16)).astype(np.float32)
    defaults = dict(
        search="random",
        budget=Budget.parse("latency=0.9"),
        evaluations=4,
        candidates=1,
        finetune=FinetuneConfig(steps=0),
        progress=False,
        calibration_samples=16,
        max_drop=math.inf,
        rungs=(),
    )
    config = OptimizeConfig(**(defaults | options))
    return optimize(graph, (Dataset([x]), None), config)


def test_optimize_prices_plans_with_the_latency_table(cache):
    result = _optimize_blocks(measure_latency=False)
    assert "latency_table" in result.report["times"]
    rows = result.report["search"]["candidates"]
    assert rows and all(r["latency_ms"] is not None and r["latency_ms"] > 0 for r in rows)
    assert any((cache / "latency").glob("*.json"))


def test_optimize_searches_again_when_the_measured_latency_misses(monkeypatch):
    measured: list[float] = []

    def fake_measure(before, after, **_):  # "measured" = half the MACs ratio: the table
        ratio = 0.5 * graph_cost(lift_onnx(after)).macs / graph_cost(lift_onnx(before)).macs
        measured.append(ratio)  # over-prices every plan twofold
        return LatencyPair(1.0, ratio, 1.0 / ratio, "CPUExecutionProvider", 1, 5)

    monkeypatch.setattr(executor_module, "measure_latency", fake_measure)  # in process
    result = _optimize_blocks(latency_rounds=3)
    rounds = result.report["search"]["latency_rounds"]
    assert len(rounds) >= 2 and rounds[1]["budget"] > rounds[0]["budget"]
    assert [r["measured_ratio"] for r in rounds] == pytest.approx(measured[: len(rounds)])
    (kept,) = [r for r in rounds if r["chosen"]]
    assert result.report["search"]["latency_budget_met"] == (kept["measured_ratio"] <= 0.9 * 1.03)
    assert result.report["latency"]["after_ms"] == pytest.approx(kept["measured_ratio"])


def test_a_latency_budget_sends_the_rungs_only_plans_measured_within_it(monkeypatch):
    def fake_measure(before, after, **_):  # "measured" = 1.3 x the parameters' ratio
        ratio = 1.3 * graph_cost(lift_onnx(after)).params / graph_cost(lift_onnx(before)).params
        return LatencyPair(1.0, ratio, 1.0 / ratio, "CPUExecutionProvider", 1, 5)

    monkeypatch.setattr(executor_module, "measure_latency", fake_measure)
    result = _optimize_blocks(latency_rounds=3, rungs=((3, 1),), evaluations=8)
    search = result.report["search"]
    pool = search["latency_pool"]
    ratios = [row["measured_ratio"] for row in pool]
    assert pool and all(r <= 0.9 * 1.03 for r in ratios)
    assert ratios[0] == max(ratios)  # the closest to the target first
    # every round's plans compete, not only the kept round's
    rounds = search["latency_rounds"]
    assert len(rounds) >= 2
    assert all(r["measured_ratio"] in ratios for r in rounds if r["measured_ratio"] <= 0.9)
    tuned = [c["plan"] for c in search["fidelity"]["candidates"]]
    assert tuned == [row["plan"] for row in pool]
    assert result.plan.transitions in tuned
    assert result.report["latency"]["after_ms"] <= 0.9 * 1.03


def test_the_latency_pool_holds_each_hopeful_levels_best_beside_the_closest_plan():
    """Plans measured in the rounds (none timed again here): the pool takes the plan closest
    to the target, then each level's best by search quality unless hopeless (below half
    the best's), then the best of the rest; never a plan over the target."""
    joint = [{"a": "width_1_2", "b": f"sep_conv_{k}x{k}"} for k in (3, 5, 7)]
    typed, depth, width = {"a": "sep_conv_3x3"}, {"a": "skip"}, {"b": "width_1_2"}
    over = {"a": "width_1_4", "b": "sep_conv_3x3"}
    measured = {
        **{plan_key(p): r for p, r in zip(joint, (0.50, 0.49, 0.48), strict=True)},
        plan_key(typed): 0.40,
        plan_key(depth): 0.45,
        plan_key(width): 0.60,  # over the target: never in the pool
        plan_key(over): 0.70,
    }
    quality = {plan_key(p): q for p, q in zip(joint, (0.90, 0.93, 0.92), strict=True)}
    quality |= {plan_key(typed): 0.91, plan_key(depth): 0.10, plan_key(width): 0.99}
    quality[plan_key(over)] = 0.95
    problem = SimpleNamespace(
        evaluated=[
            {"split": "search", "plan": p, "quality": quality[plan_key(p)]}
            for p in [*joint, typed, depth, width, over]
        ],
        mask=SimpleNamespace(vocabulary=VOCABULARY),
        original_latency=None,  # no latency table: nothing is predicted to meet the target
    )
    pools = [[joint[0], typed, width], [joint[1], depth, over], [joint[2]]]
    objective = Objective("budget", math.inf, 1.0)
    pool = _measured_pool(0.5, pools, measured, (None, None), problem, None, 3, objective)
    # closest, the type level's best (the depth level's is hopeless), the best of the rest
    assert pool == [joint[0], typed, joint[1]]
    assert _measured_pool(0.3, pools, measured, (None, None), problem, None, 3, objective) == []


def test_a_latency_pool_short_of_the_first_rung_is_filled_with_plans_predicted_to_meet(
    monkeypatch,
):
    """The rounds' pools hold one plan under the target of a first rung of three: the
    search's other plans are ranked by search quality among those whose table latency,
    scaled by the measured / table ratio, predicts they meet it, and timed; those that
    measure within the target join the pool."""
    import natopt.pipeline.optimize as optimize_module

    chosen, under = {"a": "width_1_2"}, {"a": "skip"}
    slow, fast, faster, miss = (
        {"b": "width_1_2"},
        {"b": "sep_conv_3x3"},
        {"b": "skip"},
        {"b": "sep_conv_5x5"},
    )
    table = {  # the table's estimate, in ms of an original at 10 ms
        plan_key(chosen): 5.0,
        plan_key(under): 3.0,
        plan_key(slow): 6.0,  # predicted 0.6 x 1.1 = 0.66: over, never timed
        plan_key(fast): 4.0,
        plan_key(faster): 3.5,
        plan_key(miss): 4.4,  # predicted 0.48, but measures 0.60
    }
    truth = {plan_key(fast): 0.45, plan_key(faster): 0.40, plan_key(miss): 0.60}
    quality = {plan_key(slow): 0.99, plan_key(miss): 0.95, plan_key(fast): 0.9}
    quality |= {plan_key(faster): 0.8, plan_key(chosen): 0.93, plan_key(under): 0.5}
    problem = SimpleNamespace(
        evaluated=[
            {
                "split": "search",
                "plan": p,
                "quality": quality[plan_key(p)],
                "latency_ms": table[plan_key(p)],
            }
            for p in (chosen, under, slow, fast, faster, miss)
        ],
        mask=SimpleNamespace(vocabulary=VOCABULARY),
        original_latency=10.0,
    )
    timed = []

    def fake_ratio(problem, plan, paths, executor, max_seconds):
        timed.append(plan)
        return truth[plan_key(plan)]

    monkeypatch.setattr(optimize_module, "_measured_ratio", fake_ratio)
    measured = {plan_key(chosen): 0.55, plan_key(under): 0.33}  # 1.1 x the table
    objective = Objective("budget", math.inf, 1.0)
    pool = _measured_pool(
        0.5, [[chosen, under]], measured, (None, None), problem, None, 3, objective
    )
    assert timed == [miss, fast, faster]  # best quality first, up to 2 x the shortfall of 2
    assert pool[0] == fast  # the closest to the target under it
    assert set(map(plan_key, pool)) == {plan_key(p) for p in (fast, under, faster)}
    assert measured[plan_key(miss)] == 0.60  # timed and left out
