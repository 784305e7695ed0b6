"""Every search at equal compute on spaces small enough to enumerate: how close to the optimum?

Methods: the factorised NAT policy (``nat``), the growing policy (``grow``), uniform random
search, greedy coordinate ascent and the multiple-choice knapsack solver (``knapsack``), all
with the same budget of plan evaluations (distinct plans scored on the search split, see
``natopt.passes.nat.space``); nat and grow use ``SearchConfig.fast(keep_prior=None)``. Every
plan of each space is scored beforehand, so a method's result is measured against the exact
optimum of the objective it searches:

- ``found``: the best search reward among the plans the method evaluated;
- ``score``: (found − median) / (optimum − median) over all plans (1: the optimum, 0: the
  median plan); ``rank``: how many plans score more than ``found``; ``evaluations``.

Suites:

- ``synthetic``: chain spaces of ``natopt.passes.nat.synthetic`` with exact per-unit
  savings: without a budget (reward = quality − cost), and with a budget of 50 % of the cost
  (reward = quality − 10 · excess), weak and strong pairwise couplings.
- ``example``: the shipped MNIST CNN through the real pipeline (refit scores: least-squares
  refits on calibration activations, accuracy on 512 search samples), ``nat++`` vocabulary,
  budget ``macs=0.7`` (required saving 0.3), restricted to three units (the rest kept), so
  its 210 plans can be scored. Savings are measured per single change (MACs of the graph
  with that change alone); they are not additive here: nulling the residual branch removes
  the convolutions inside it, whose own savings the sum counts again. ``validate`` is the
  search score, so no validation split is spent.

Prints a Markdown table per suite and writes every run and the summary to ``--out``::

    python benchmarks/search_small_space.py --out benchmarks/results/search_small_space.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from natopt.passes.nat import (
    SearchConfig,
    SearchResult,
    SearchSpace,
    greedy_search,
    grow_search,
    knapsack_search,
    nat_search,
    random_search,
    synthetic_problem,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_vs_baselines import _Memo, example_problem, markdown  # noqa: E402

__all__ = ["METHODS", "synthetic_suite", "example_suite", "main"]

FAST = SearchConfig.fast(keep_prior=None)
Search = Callable[[SearchSpace, int, int], SearchResult]
METHODS: dict[str, Search] = {
    "nat": lambda space, budget, seed: nat_search(space, budget, config=FAST, seed=seed),
    "grow": lambda space, budget, seed: grow_search(space, budget, config=FAST, seed=seed),
    "random": lambda space, budget, seed: random_search(space, budget, seed=seed),
    "greedy": lambda space, budget, seed: greedy_search(space, budget, seed=seed),
    "knapsack": lambda space, budget, seed: knapsack_search(space, budget, seed=seed),
}
SYNTHETIC_SETTINGS = {  # name: (units, coupling, budget)
    "6 units, coupling 0.5, no budget": (6, 0.5, None),
    "6 units, coupling 0.5, budget 0.5": (6, 0.5, 0.5),
    "8 units, coupling 1.5, budget 0.5": (8, 1.5, 0.5),
}
EXAMPLE_UNITS = ("layer1.0.conv1", "layer1.0.conv2:branch", "layer2.conv2")
COLUMNS = (
    "setting",
    "method",
    "runs",
    "optimum_found",
    "score",
    "score_min",
    "rank",
    "evaluations",
)


def _row(
    suite: str, setting: str, seed: int, method: str, result: SearchResult, rewards: np.ndarray
) -> dict[str, Any]:
    found = result.history[-1].best_reward
    best, median = float(rewards.max()), float(np.median(rewards))
    return {
        "suite": suite,
        "setting": setting,
        "seed": seed,
        "method": method,
        "plans": int(rewards.size),
        "evaluations": result.evaluations,
        "found": found,
        "optimum": best,
        "score": (found - median) / (best - median),
        "rank": int((rewards > found + 1e-12).sum()),
    }


def synthetic_suite(seeds: int, budget: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for setting, (units, coupling, cost_budget) in SYNTHETIC_SETTINGS.items():
        for seed in range(seeds):
            problem = synthetic_problem(units, seed=seed, coupling=coupling, budget=cost_budget)
            for method, search in METHODS.items():
                result = search(problem.space, budget, seed)
                rows.append(_row("synthetic", setting, seed, method, result, problem.rewards))
        log(f"synthetic: {setting} done")
    return rows


def _restricted_example(eval_samples: int) -> tuple[SearchSpace, np.ndarray, float]:
    """The example's space with only ``EXAMPLE_UNITS`` free, its measured single-change
    savings, and the reward of every plan (and the seconds it took)."""
    from natopt.ir import graph_cost
    from natopt.passes.transitions import apply_plan

    start = time.perf_counter()
    problem = example_problem("nat++", 0.7, eval_samples)
    space = problem.search_space()
    free = torch.tensor([unit in EXAMPLE_UNITS for unit in space.units])
    mask = space.mask & free[:, None]
    mask[:, space.identity_index] = True
    original = graph_cost(problem.graph).macs
    savings = torch.zeros(mask.shape, dtype=torch.float64)
    for u, v in mask.nonzero().tolist():
        if v != space.identity_index:
            change = {space.units[u]: space.vocabulary[v]}
            graph = apply_plan(
                problem.graph, change, vocabulary=problem.mask.vocabulary, width=problem.mask.width
            )
            savings[u, v] = 1.0 - graph_cost(graph).macs / original
    assert problem.budget is not None
    evaluate = _Memo(problem.evaluate)
    space = dataclasses.replace(
        space,
        mask=mask,
        evaluate=evaluate,
        validate=None,
        savings=savings,
        required_saving=1.0 - problem.budget.fraction,
    )
    valid = [row.nonzero().flatten().tolist() for row in mask]
    rewards = np.array(
        [evaluate(space.plan(tuple(actions))).reward for actions in itertools.product(*valid)]
    )
    return space, rewards, time.perf_counter() - start


def example_suite(
    seeds: int, budget: int, eval_samples: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    space, rewards, seconds = _restricted_example(eval_samples)
    log(f"example: scored all {rewards.size} plans in {seconds:.0f} s")
    setting = f"MNIST CNN, 3 free units, macs=0.7, {budget} evaluations"
    rows = []
    for seed in range(seeds):
        for method, search in METHODS.items():
            result = search(space, budget, seed)
            rows.append(_row("example", setting, seed, method, result, rewards))
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (suite, setting, method); ``optimum_found``: the share of seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["suite"], row["setting"], row["method"]), []).append(row)
    summary = []
    for (suite, setting, method), members in groups.items():
        entry: dict[str, Any] = {"suite": suite, "setting": setting, "method": method}
        entry["runs"] = len(members)
        entry["optimum_found"] = sum(m["rank"] == 0 for m in members) / len(members)
        for key in ("score", "rank", "evaluations"):
            entry[key] = statistics.fmean(m[key] for m in members)
        entry["score_min"] = min(m["score"] for m in members)
        summary.append(entry)
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=100, help="evaluations, synthetic suite")
    parser.add_argument("--example-budget", type=int, default=30, help="evaluations, example")
    parser.add_argument("--eval-samples", type=int, default=512)
    parser.add_argument("--suite", choices=("all", "synthetic", "example"), default="all")
    parser.add_argument("--out", type=Path, default=Path("search_small_space.json"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if args.suite in ("all", "synthetic"):
        rows += synthetic_suite(args.seeds, args.budget, print)
    if args.suite in ("all", "example"):
        rows += example_suite(args.seeds, args.example_budget, args.eval_samples, print)
    summary = summarise(rows)
    for suite in dict.fromkeys(row["suite"] for row in summary):
        print(f"\n## {suite}\n")
        print(markdown([row for row in summary if row["suite"] == suite], COLUMNS))
    elapsed = time.perf_counter() - start
    settings = {"seeds": args.seeds, "budget": args.budget, "example_budget": args.example_budget}
    report = {"settings": settings, "seconds": elapsed, "summary": summary, "runs": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{elapsed:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
