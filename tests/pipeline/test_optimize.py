"""The optimisation pipeline end to end on a small residual CNN (unit level: toy model).

The real-data run (the shipped MNIST example) is in tests/pipeline/test_example.py; the
quality guard and the control in tests/pipeline/test_guard.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from natopt.cli.main import main
from natopt.errors import BudgetError, PlanError
from natopt.frontends import lift
from natopt.ir import format_graph
from natopt.passes.transitions import Plan
from natopt.pipeline.budget import Budget
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.optimize import OptimizeConfig, optimize


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = Block(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.block(torch.relu(self.stem(x)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyResNet().eval()
    x = np.random.default_rng(0).normal(size=(120, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    path = tmp_path_factory.mktemp("data") / "data.npz"
    np.savez(path, x=x, y=y)
    return model, path


def small_config(**overrides) -> OptimizeConfig:
    base = dict(
        evaluations=6,
        candidates=2,
        finetune=FinetuneConfig(steps=5),
        measure_latency=False,
        progress=False,
        calibration_samples=32,
        rungs=((2, 3),),
    )
    return OptimizeConfig(**{**base, **overrides})


def graph_of(model):
    return lift(model, torch.randn(2, 1, 12, 12), dynamic_batch=True)


def test_budgeted_search_meets_the_budget_and_exports(model_and_data, tmp_path):
    model, data = model_and_data
    out = tmp_path / "opt.onnx"
    result = optimize(
        graph_of(model), data, small_config(budget=Budget.parse("macs=0.6")), output=out
    )
    before, after = result.report["before"], result.report["after"]
    assert after["macs"] <= 0.6 * before["macs"]
    assert after["params"] <= before["params"]
    assert result.plan.transitions, "a 0.6 MAC budget needs at least one transition"
    assert result.report["search"]["evaluations"] == 6
    assert result.report["onnx_max_abs_diff"] <= 1e-4 * 10
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probe = np.random.default_rng(1).normal(size=(3, 1, 12, 12)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: probe})[0]
    want = result.module(torch.from_numpy(probe)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("search", ["grow", "knapsack"])
def test_the_budgeted_solvers_run_through_optimize_and_meet_the_budget(model_and_data, search):
    model, data = model_and_data
    config = small_config(search=search, budget=Budget.parse("macs=0.7"), evaluations=12)
    result = optimize(graph_of(model), data, config)
    before, after = result.report["before"], result.report["after"]
    assert after["macs"] <= 0.7 * before["macs"]
    assert result.report["search"]["method"] == search
    assert 1 <= result.report["search"]["evaluations"] <= 12


def test_a_budget_is_a_cap_even_when_a_plan_over_it_scores_better():
    """The over-budget penalty is finite: on the MNIST example, random search (seed 0) at
    macs=0.75 validated a plan at 0.755 of the MACs that outscored every plan within the
    budget. The plan handed on is the best within it."""
    from importlib import resources

    from natopt.frontends.onnx import lift_onnx

    root = resources.files("natopt") / "data"
    config = small_config(
        search="random",
        budget=Budget.parse("macs=0.75"),
        evaluations=48,
        candidates=6,
        calibration_samples=128,
        rungs=(),
        finetune=FinetuneConfig(steps=0),
        max_drop=float("inf"),
    )
    graph = lift_onnx(str(root / "example_mnist.onnx"))
    result = optimize(graph, str(root / "example_mnist.npz"), config)
    assert result.report["after"]["macs"] <= 0.75 * result.report["before"]["macs"]


@pytest.mark.parametrize("search", ["nat", "grow", "random", "greedy", "knapsack"])
def test_same_seed_same_plan(model_and_data, search):
    model, data = model_and_data
    graph = graph_of(model)
    config = small_config(
        search=search, budget=Budget.parse("macs=0.7"), seed=3, finetune=FinetuneConfig(steps=0)
    )
    first = optimize(graph, data, config).plan
    second = optimize(graph, data, config).plan
    assert first.transitions == second.transitions


def test_a_budget_no_plan_meets_is_refused(model_and_data):
    model, data = model_and_data
    config = small_config(budget=Budget.parse("params=0.01"), space="nat")
    with pytest.raises(BudgetError, match="no valid plan meets the budget params=0.01") as info:
        optimize(graph_of(model), data, config)
    assert info.value.cheapest is not None and 0.01 < info.value.cheapest <= 1.0
    assert f"still costs {info.value.cheapest:.3f}" in str(info.value)


def test_a_plan_for_another_model_is_refused(model_and_data):
    model, data = model_and_data
    config = small_config(plan=Plan({"layer9.conv1": "skip"}))
    with pytest.raises(PlanError, match=r"layer9\.conv1"):
        optimize(graph_of(model), data, config)


def test_budget_parsing():
    assert Budget.parse("macs=0.6") == Budget("macs", 0.6)
    for bad in ("macs", "flops=0.5", "macs=2", "macs=x"):
        with pytest.raises(BudgetError, match="METRIC=FRACTION"):
            Budget.parse(bad)


def export_model(model, path):
    torch.onnx.export(
        model,
        (torch.randn(1, 1, 12, 12),),
        str(path),
        dynamo=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )


def test_cli_replays_a_saved_plan_and_writes_report_and_model(model_and_data, tmp_path, capsys):
    model, data = model_and_data
    onnx_path = tmp_path / "tiny.onnx"
    export_model(model, onnx_path)
    plan = tmp_path / "plan.json"
    plan.write_text(Plan({"block.conv1": "conv_3x3"}).to_json())
    out, report = tmp_path / "tiny.opt.onnx", tmp_path / "report.json"
    code = main(
        [
            "optimize",
            str(onnx_path),
            "--data",
            str(data),
            "-o",
            str(out),
            "--plan",
            str(plan),
            "--report",
            str(report),
            "--finetune-steps",
            "3",
            "--quiet",
            "--no-latency",
        ]
    )
    assert code == 0
    written = json.loads(report.read_text())
    assert written["plan"] == {"block.conv1": "conv_3x3"}
    assert written["after"]["macs"] < written["before"]["macs"]
    assert out.is_file()
    printed = capsys.readouterr().out
    assert "block.conv1" in printed and "MACs" in printed
    assert "\x1b[" not in printed and max(map(len, printed.splitlines())) <= 120  # piped


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "macs=7"], "METRIC=FRACTION"),
        (["--plan", "missing.json"], "cannot read plan file"),
        (["--budget", "latency=0.8", "--latency-rounds", "0"], "--latency-rounds must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    model_and_data, tmp_path, capsys, extra, message
):
    model, data = model_and_data
    onnx_path = tmp_path / "tiny.onnx"
    export_model(model, onnx_path)
    before = onnx_path.read_bytes()
    out = tmp_path / "never.onnx"
    code = main(
        ["optimize", str(onnx_path), "--data", str(data), "-o", str(out), "--quiet", *extra]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not out.exists() and onnx_path.read_bytes() == before


def test_cli_refuses_to_overwrite_the_input(model_and_data, tmp_path, capsys):
    model, data = model_and_data
    onnx_path = tmp_path / "tiny.onnx"
    export_model(model, onnx_path)
    code = main(["optimize", str(onnx_path), "--data", str(data), "-o", str(onnx_path), "--quiet"])
    assert code == 2 and "would overwrite an input" in capsys.readouterr().err


def test_python_api_takes_a_torch_module(model_and_data):
    import natopt

    model, data = model_and_data
    result = natopt.optimize(
        model,
        data,
        example_inputs=torch.randn(2, 1, 12, 12),
        budget="macs=0.8",
        evaluations=4,
        candidates=1,
        finetune=FinetuneConfig(steps=2),
        measure_latency=False,
        progress=False,
        calibration_samples=32,
    )
    assert set(result.report) >= {"before", "after", "plan", "search", "times"}
    assert result.report["after"]["macs"] <= 0.8 * result.report["before"]["macs"]
    assert result.plan.transitions == result.report["plan"]
    out = result.module(torch.randn(3, 1, 12, 12))
    assert out.shape == (3, 4)


def test_the_run_passes_are_verified_timed_listed_and_dumped(model_and_data, tmp_path):
    model, data = model_and_data
    dumps = tmp_path / "ir"
    config = small_config(plan=Plan({"block.conv1": "conv_3x3"}), dump_ir=dumps)
    result = optimize(graph_of(model), data, config)
    ran = ["RemoveIdentityPass", "FoldBatchNormPass", "DeadCodePass", "ApplyPlanPass"]
    passes = result.report["passes"]
    assert passes["ran"] == ran and set(passes["times"]) == set(ran)
    assert {"canonicalize", "finetune"} <= set(result.report["times"])
    stages = ("after", "before")
    want = [f"{i:03d}-{name}-{stage}.txt" for i, name in enumerate(ran) for stage in stages]
    assert sorted(p.name for p in dumps.iterdir()) == sorted(want)
    assert "BatchNorm" in (dumps / "001-FoldBatchNormPass-before.txt").read_text()
    assert "BatchNorm" not in (dumps / "001-FoldBatchNormPass-after.txt").read_text()
    applied = (dumps / "003-ApplyPlanPass-after.txt").read_text()
    assert applied == format_graph(result.graph) + "\n"  # weights show as shapes only


def test_cli_dump_ir_writes_the_passes_ir(model_and_data, tmp_path):
    model, data = model_and_data
    onnx_path = tmp_path / "tiny.onnx"
    export_model(model, onnx_path)
    plan, report, dumps = tmp_path / "plan.json", tmp_path / "report.json", tmp_path / "ir"
    plan.write_text(Plan({"block.conv1": "conv_3x3"}).to_json())
    argv = ["optimize", str(onnx_path), "--data", str(data), "--plan", str(plan)]
    argv += ["--report", str(report), "--dump-ir", str(dumps), "--finetune-steps", "2"]
    assert main([*argv, "--rungs", "none", "--quiet", "--no-latency"]) == 0
    ran = json.loads(report.read_text())["passes"]["ran"]
    assert ran[-1] == "ApplyPlanPass"
    assert len(list(dumps.iterdir())) == 2 * len(ran)


def test_a_search_given_no_evaluations_scores_every_single_change_of_a_large_space(
    model_and_data, monkeypatch
):
    """The default evaluations grow with the space: the full vocabulary has
    more single changes than 48 evaluations can score beside the DP's plans (a toy ResNet of
    three blocks), and every one of them is scored (the knapsack solver prices its plans
    from them)."""
    from natopt.passes import canonicalize
    from natopt.passes.transitions import compute_mask, vocabulary_for
    from natopt.pipeline.optimize import MIN_SEARCH, default_evaluations
    from natopt.pipeline.problem import SearchProblem

    scored = []
    evaluate = SearchProblem.evaluate

    def recording(self, plan, split="search"):
        scored.append({unit: t for unit, t in plan.items() if t != "keep"})
        return evaluate(self, plan, split)

    monkeypatch.setattr(SearchProblem, "evaluate", recording)
    _, data = model_and_data
    torch.manual_seed(0)
    deeper = TinyResNet().eval()
    deeper.block = nn.Sequential(Block(8), Block(8), Block(8)).eval()
    graph = graph_of(deeper)
    config = small_config(evaluations=None, space="full", budget=Budget.parse("macs=0.6"))
    result = optimize(graph, data, config)
    mask = compute_mask(canonicalize(graph), vocabulary_for("full"))
    changes = [
        {unit: name}
        for unit in mask.unit_names
        for name in mask.valid_names(unit)
        if name != "keep"
    ]
    assert result.report["search"]["evaluations"] == default_evaluations(mask) > MIN_SEARCH
    assert len(changes) + 1 > MIN_SEARCH * 2 / 3  # 48 would have left some unscored
    assert all(change in scored for change in changes)
