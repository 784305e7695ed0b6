"""``optimize``: the product's main job, top to bottom as one function of named phases.

lift -> canonicalise -> data -> transition mask -> (latency budget: time the graph and every
target of the mask into the latency table) -> search (NAT policy, or a baseline, sharing
one evaluation budget; for a latency budget, repeated until the chosen model's measured
latency meets it: ``natopt.pipeline.latency_budget``) -> fine-tune the chosen model
(distillation + labels) -> ONNX export, checked with onnxruntime -> latency measured
before/after, interleaved -> report.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from natopt.backends import load_weights_into_graph, to_torch
from natopt.bench.latency_table import LatencyTable, estimate_latency
from natopt.errors import BudgetError, PlanError
from natopt.ir import Graph, graph_cost
from natopt.passes import canonicalize
from natopt.passes.nat import (
    SearchConfig,
    SearchResult,
    SearchSpace,
    greedy_search,
    nat_search,
    random_search,
    unit_graph,
)
from natopt.passes.transitions import (
    VOCABULARY,
    Plan,
    TransitionMask,
    Vocabulary,
    compute_mask,
    vocabulary_for,
)
from natopt.passes.width import ChannelRounding, WidthOptions
from natopt.pipeline.budget import Budget
from natopt.pipeline.data import Dataset, concat, load_data, split_data
from natopt.pipeline.finetune import FinetuneConfig, finetune
from natopt.pipeline.latency_budget import LatencyRound, choose_round, next_budget
from natopt.pipeline.latency_probes import unit_variants
from natopt.pipeline.problem import (
    SearchProblem,
    calibration_batches,
    cheapest_plan,
    graph_outputs,
    strip_keep,
)
from natopt.pipeline.progress import ProgressBar
from natopt.pipeline.verify_export import check_onnx, measure_latency

__all__ = ["OptimizeConfig", "Result", "optimize", "SEARCHES"]

SEARCHES = ("nat", "random", "greedy")


@dataclass(slots=True)
class OptimizeConfig:
    """Everything ``optimize`` can be told; the CLI fills it from its flags."""

    search: str = "nat"
    budget: Budget | None = None  # None: the accuracy objective (never costs more)
    space: str = "nat++"  # transition vocabulary: "nat", "nat++", "full"
    levels: tuple[str, ...] | None = None  # the full vocabulary's levels to use (not space)
    evaluations: int = 48
    candidates: int = 6
    eval_samples: int = 384  # samples of the search split scored per evaluation
    calibration_samples: int = 128
    keep_prior: float | None = 0.75  # NAT and random start by keeping each unit this often
    shared_steps: int = 0  # shared-weight steps per sampled plan (0: no weight sharing)
    cost_weight: float = 0.005
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0
    progress: bool = True
    measure_latency: bool = True
    latency_rounds: int = 3  # latency budget: searches to meet it on measured latency
    rounding: ChannelRounding | None = None  # width: None = measured on this device (else CPU)
    plan: Plan | None = None  # apply this plan instead of searching


@dataclass(slots=True)
class Result:
    module: torch.nn.Module
    graph: Graph
    plan: Plan
    report: dict[str, Any]
    onnx_path: Path | None = None


def _search(problem: SearchProblem, config: OptimizeConfig, bar: ProgressBar) -> SearchResult:
    mask = problem.mask
    space = SearchSpace(
        units=mask.unit_names,
        vocabulary=list(mask.vocabulary.names),
        mask=mask.valid,
        graph=unit_graph(problem.graph, mask.units),
        evaluate=problem.evaluate,
        validate=problem.validate,
        train_shared=problem.train_shared if config.shared_steps > 0 else None,
    )

    def progress(done: int, total: int, info: dict[str, Any]) -> None:
        bar.update(done, f"best reward {info.get('best_reward', float('nan')):+.4f}")

    budget, seed = config.evaluations, config.seed
    if config.search == "nat":
        search_config = SearchConfig.fast(
            candidates=config.candidates, keep_prior=config.keep_prior
        )
        return nat_search(space, budget, config=search_config, seed=seed, progress=progress)
    if config.search == "random":
        return random_search(
            space,
            budget,
            seed=seed,
            candidates=config.candidates,
            keep_probability=config.keep_prior,
            progress=progress,
        )
    return greedy_search(space, budget, seed=seed, candidates=config.candidates, progress=progress)


def _vocabulary(config: OptimizeConfig) -> Vocabulary:
    """``config.levels`` of the full vocabulary when given (``depth`` always), else the space."""
    if not config.levels:
        return vocabulary_for(config.space)
    try:
        return VOCABULARY.restrict(config.levels)
    except ValueError as exc:
        raise PlanError(f"cannot restrict the transitions: {exc}") from None


def _width_options(vocabulary: Vocabulary, config: OptimizeConfig) -> WidthOptions | None:
    """Width rounding: the config's, else measured on this device when latency is measured
    (``natopt.bench.channel_block``), else the CPU default."""
    if "width" not in vocabulary.levels:
        return None
    if config.rounding is not None:
        return WidthOptions(rounding=config.rounding)
    if config.measure_latency:
        from natopt.bench.channel_block import measured_rounding

        return WidthOptions(rounding=measured_rounding())
    return WidthOptions()


def _summary(graph: Graph, quality: Any, latency: float | None, onnx_bytes: int | None):
    cost = graph_cost(graph)
    summary: dict[str, Any] = {
        "params": cost.params,
        "macs": cost.macs,
        "latency_ms": latency,
        "quality": quality.quality,
        "quality_metric": quality.metric,
        "size_bytes": onnx_bytes,
        "ops": graph.op_counts(),
    }
    if quality.accuracy is not None:
        summary["accuracy"] = quality.accuracy
    return summary


def _check_budget(problem: SearchProblem, budget: Budget | None) -> None:
    if budget is None:
        return
    cheapest = problem.build(cheapest_plan(problem.mask, budget.metric))
    best = budget.ratio(graph_cost(cheapest), problem.original_cost, problem.latency_pair(cheapest))
    if best > budget.fraction:
        raise BudgetError(
            f"no valid plan meets the budget {budget}: the cheapest plan of this transition "
            f"space still costs {best:.3f} of the original's {budget.metric}; loosen the "
            f"budget to at least {budget.metric}={best:.2f} or allow more transition levels",
            cheapest=best,
        )


def optimize(
    graph: Graph,
    data: str | Path | tuple[Dataset, Dataset | None],
    config: OptimizeConfig | None = None,
    *,
    output: str | Path | None = None,
    baseline_onnx: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Result:
    """Optimise a lifted model: the plan, the fine-tuned module and the before/after report.

    ``graph`` comes from ``natopt.frontends.lift``; ``data`` is an ``.npz`` path (checked
    against the graph's inputs) or already-loaded data. ``output``: where the optimised ONNX
    model is written (whole or not at all); ``baseline_onnx``: the user's original ONNX file,
    benchmarked as "before" (else the canonical graph is exported for it).
    """
    config = config or OptimizeConfig()
    if config.search not in SEARCHES:
        raise PlanError(f"unknown search {config.search!r}; choose one of {', '.join(SEARCHES)}")
    say = log or (lambda _msg: None)
    times: dict[str, float] = {}
    torch.manual_seed(config.seed)

    start = time.perf_counter()
    graph = canonicalize(graph)
    times["canonicalize"] = time.perf_counter() - start

    start = time.perf_counter()
    classes = _num_classes(graph)
    if isinstance(data, tuple):
        dataset, test = data
    else:
        dataset, test = load_data(data, graph.inputs, classes)
    splits = split_data(dataset, test, seed=config.seed)
    vocabulary = _vocabulary(config)
    mask = compute_mask(graph, vocabulary, width=_width_options(vocabulary, config))
    # the final fine-tuning sees every sample but the validation and test ones
    tuning = concat(splits.search, splits.finetune)
    search_split = splits.search.subset(np.arange(min(config.eval_samples, len(splits.search))))
    splits = dataclasses.replace(splits, search=search_split)
    times["prepare"] = time.perf_counter() - start

    start = time.perf_counter()
    estimator = None
    if config.plan is None and config.budget is not None and config.budget.metric == "latency":
        estimator = _latency_estimator(graph, mask, config.progress)
    times["latency_table"] = time.perf_counter() - start

    start = time.perf_counter()
    problem = SearchProblem(
        graph,
        mask,
        splits,
        config.budget,
        config.cost_weight,
        calibration_batches(splits.finetune, config.calibration_samples),
        shared_steps=config.shared_steps,
        seed=config.seed,
        latency=estimator,
    )
    times["prepare"] += time.perf_counter() - start
    say(
        f"{len(mask.units)} units, {int(mask.valid.sum())} valid transitions "
        f"over a vocabulary of {len(vocabulary)}"
    )

    start = time.perf_counter()
    search_info: dict[str, Any]
    if config.plan is not None:
        plan = config.plan
        unknown = set(plan.transitions) - set(mask.unit_names)
        if unknown:
            raise PlanError(
                f"the plan names unit(s) {sorted(unknown)[:5]} that this model does not have; "
                f"its units are {mask.unit_names[:8]}{' ...' if len(mask.units) > 8 else ''}"
            )
        search_info = {"method": "plan", "evaluations": 0, "best_reward": 0.0}
    else:
        _check_budget(problem, config.budget)
        plan, found = _search_plan(problem, config)
        search_info = _search_info(problem, config, plan, found)
        if _calibrates_latency(config):
            plan, search_info = _meet_latency(problem, config, (plan, found), say)
    times["search"] = time.perf_counter() - start

    start = time.perf_counter()
    chosen = problem.build(plan.transitions, base=graph)
    module = to_torch(chosen)
    bar = ProgressBar("finetune", config.finetune.steps, enabled=config.progress)
    losses = finetune(
        module,
        tuning,
        graph_outputs(graph, tuning),
        config.finetune,
        seed=config.seed,
        progress=lambda step, _total, loss: bar.update(step, f"loss {loss:.4f}"),
    )
    load_weights_into_graph(chosen, module)
    times["finetune"] = time.perf_counter() - start

    start = time.perf_counter()
    before_quality = problem.baseline["test"]
    after_quality = problem.quality(chosen, "test")
    with tempfile.TemporaryDirectory(prefix="natopt-") as tmp:
        before_path = Path(baseline_onnx) if baseline_onnx else Path(tmp) / "before.onnx"
        if baseline_onnx is None:
            _to_onnx(graph, before_path)
        after_path = Path(tmp) / "after.onnx"
        _to_onnx(chosen, after_path)
        max_diff = check_onnx(after_path, module, splits.test)
        latency = measure_latency(before_path, after_path) if config.measure_latency else None
        sizes = before_path.stat().st_size, after_path.stat().st_size
        onnx_path = None
        if output is not None:
            onnx_path = Path(output)
            _to_onnx(chosen, onnx_path)
    times["export"] = time.perf_counter() - start

    report = {
        "kind": "natopt.optimize",
        "before": _summary(graph, before_quality, latency and latency.before_ms, sizes[0]),
        "after": _summary(chosen, after_quality, latency and latency.after_ms, sizes[1]),
        "plan": plan.transitions,
        "search": search_info,
        "provider": latency.provider if latency else None,
        "latency": latency.to_dict() if latency else None,
        "onnx_max_abs_diff": max_diff,
        "finetune": {"steps": len(losses), "final_loss": losses[-1] if losses else None},
        "reconstruction_errors": _errors(chosen),
        "times": times,
    }
    return Result(module, chosen, plan, report, onnx_path)


def _search_plan(problem: SearchProblem, config: OptimizeConfig) -> tuple[Plan, SearchResult]:
    bar = ProgressBar("search", config.evaluations, enabled=config.progress)
    found = _search(problem, config, bar)
    bar.close(f"{found.evaluations} evaluations")
    return Plan(strip_keep(found.best_plan)), found


def _search_info(
    problem: SearchProblem, config: OptimizeConfig, plan: Plan, found: SearchResult
) -> dict[str, Any]:
    return {
        "method": config.search,
        "evaluations": found.evaluations,
        "validations": found.validations,
        "best_reward": found.best_evaluation.reward,
        "candidates": _candidates(problem, plan),
    }


def _calibrates_latency(config: OptimizeConfig) -> bool:
    budget = config.budget
    return (
        budget is not None
        and budget.metric == "latency"
        and config.measure_latency
        and config.latency_rounds > 1
    )


def _meet_latency(
    problem: SearchProblem,
    config: OptimizeConfig,
    first: tuple[Plan, SearchResult],
    say: Callable[[str], None],
) -> tuple[Plan, dict[str, Any]]:
    """Search again until the chosen model's measured latency meets the budget
    (``natopt.pipeline.latency_budget``); returns the kept plan and its search info."""
    assert config.budget is not None
    target = config.budget.fraction
    rounds: list[LatencyRound] = []
    with tempfile.TemporaryDirectory(prefix="natopt-latency-") as tmp:
        original, candidate = Path(tmp) / "original.onnx", Path(tmp) / "candidate.onnx"
        _to_onnx(problem.graph, original)
        budget: float | None = target
        plan, found = first
        while budget is not None and len(rounds) < config.latency_rounds:
            if rounds:
                problem.budget = Budget("latency", budget)
                try:
                    _check_budget(problem, problem.budget)
                except BudgetError:
                    break  # the table prices every plan of the space over this budget
                plan, found = _search_plan(problem, config)
            _to_onnx(problem.build(plan.transitions, base=problem.graph), candidate)
            measured = 1.0 / measure_latency(original, candidate, max_seconds=3.0).speedup
            quality = found.best_evaluation.quality
            rounds.append(LatencyRound(budget, measured, quality, (plan, found)))
            say(
                f"latency round {len(rounds)}: table budget {budget:.3f} -> measured "
                f"{measured:.3f} of the original (target {target:.3f})"
            )
            budget = next_budget(target, rounds)
    problem.budget = config.budget
    kept = choose_round(target, rounds)
    plan, found = kept.payload
    info = _search_info(problem, config, plan, found)
    info["latency_rounds"] = [r.to_dict() | {"chosen": r is kept} for r in rounds]
    info["latency_budget_met"] = kept.meets(target)
    if not kept.meets(target):
        say(
            f"warning: no search met latency={target:g} when measured; keeping the fastest "
            f"plan found ({kept.measured:.3f} of the original)"
        )
    return plan, info


def _latency_estimator(
    graph: Graph, mask: TransitionMask, progress: bool
) -> Callable[[Graph], float]:
    """Time the graph and every target of its mask into this device's latency table."""
    table = LatencyTable.open()
    probes = table.pending([graph, *unit_variants(graph, mask)])
    bar = ProgressBar("latency", len(probes), enabled=progress)
    table.measure(probes, progress=bar.update)
    bar.close(f"{len(probes)} segments timed, table {table.path}")
    return partial(estimate_latency, table=table)


def _to_onnx(graph: Graph, path: Path) -> None:
    from natopt.backends.onnx import to_onnx

    to_onnx(graph, path)


def _num_classes(graph: Graph) -> int | None:
    shape = graph.outputs[0].shape or ()
    if len(shape) == 2 and isinstance(shape[1], int) and shape[1] >= 2:
        return shape[1]
    return None


def _errors(graph: Graph) -> dict[str, float]:
    report = graph.meta.get("transitions")
    return dict(getattr(report, "errors", {}) or {})


def _candidates(problem: SearchProblem, chosen: Plan) -> list[dict[str, Any]]:
    rows = []
    for entry in problem.evaluated:
        if entry["split"] != "search":
            continue
        rows.append(
            {
                "macs": entry["macs"],
                "latency_ms": entry["latency_ms"],
                "quality": entry["quality"],
                "reward": entry["reward"],
                "chosen": entry["plan"] == chosen.transitions,
            }
        )
    return rows
