"""Does the NAT policy beat random and greedy search at the same evaluation budget?

Every method gets the same budget of plan evaluations (distinct plans scored on the search
split; repeats are free, see ``natopt.passes.nat.space``) and the same final step (at most K
candidates scored on validation). Methods: the NAT policy from the reference's near-uniform
start (``nat``) and from ``optimize``'s keep prior, 0.75 (``nat+prior``: sampled plans start as
small edits of the original), uniform random search and its keep-prior counterpart, and greedy
coordinate ascent from the original. Two suites:

- ``synthetic``: chain-structured spaces with per-unit rewards, pairwise couplings and a cost
  term (``natopt.passes.nat.synthetic``), small enough to enumerate, so each method's plan is
  ranked against the true optimum. Settings: weak / strong coupling, with and without
  evaluation noise (noise: the search sees reward + N(0, σ²); validation is exact).
- ``example``: the shipped MNIST model (``natopt/data/example_mnist.onnx`` and ``.npz``)
  through the real pipeline (canonicalise, mask, ``apply_plan`` with least-squares refits,
  accuracy on the search split, reward = accuracy gain + cost term with a MACs budget).
  In the ``nat`` space (keep / skip / null) every plan is enumerated on the search split, so
  the best plan each method found is ranked exactly against the optimum of the objective it
  searches; in ``nat++`` (kernel, separable, dilated, pooling too) the space is far too big,
  and methods are compared by the validation reward, accuracy and MACs of their plans.

Prints a Markdown table per suite and writes every run to ``--out`` (JSON; default
``benchmarks/results/search_vs_baselines.json``)::

    python benchmarks/search_vs_baselines.py [--seeds 10] [--example-seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from natopt.passes.nat import (
    Choices,
    Evaluation,
    SearchConfig,
    SearchResult,
    SearchSpace,
    greedy_search,
    nat_search,
    random_search,
    synthetic_problem,
)
from natopt.pipeline.optimize import OptimizeConfig

__all__ = ["METHODS", "synthetic_suite", "example_suite", "summarise", "main"]

DATA_DIR = Path(__file__).resolve().parent.parent / "natopt" / "data"
Search = Callable[[SearchSpace, int, int], SearchResult]
KEEP = OptimizeConfig().keep_prior  # the "+prior" variants start where optimize does (0.75)
METHODS: dict[str, Search] = {
    "nat": lambda space, budget, seed: nat_search(
        space, budget, config=SearchConfig.fast(keep_prior=None), seed=seed
    ),
    "nat+prior": lambda space, budget, seed: nat_search(
        space, budget, config=SearchConfig.fast(keep_prior=KEEP), seed=seed
    ),
    "random": lambda space, budget, seed: random_search(space, budget, seed=seed),
    "random+prior": lambda space, budget, seed: random_search(
        space, budget, seed=seed, keep_probability=KEEP
    ),
    "greedy": lambda space, budget, seed: greedy_search(space, budget, seed=seed),
}
SYNTHETIC_SETTINGS = {  # name: (units, coupling, noise)
    "6 units, weak coupling": (6, 0.5, 0.0),
    "8 units, strong coupling": (8, 1.5, 0.0),
    "8 units, strong coupling, noisy": (8, 1.5, 0.5),
}


def synthetic_suite(seeds: int, budget: int) -> list[dict[str, Any]]:
    """One row per (setting, seed, method): rank of the chosen plan among all plans."""
    rows = []
    for setting, (units, coupling, noise) in SYNTHETIC_SETTINGS.items():
        for seed in range(seeds):
            problem = synthetic_problem(units, seed=seed, coupling=coupling, noise=noise)
            spread = problem.best_reward - float(np.median(problem.rewards))
            for method, search in METHODS.items():
                result = search(problem.space, budget, seed)
                truth = (problem.space.validate or problem.space.evaluate)(result.best_plan)
                rows.append(
                    {
                        "suite": "synthetic",
                        "setting": setting,
                        "seed": seed,
                        "method": method,
                        "plans": problem.space.size(),
                        "evaluations": result.evaluations,
                        "rank": problem.rank(truth.reward),
                        "regret": (problem.best_reward - truth.reward) / spread,
                    }
                )
    return rows


class _Memo:
    """Remembers a deterministic scorer's answers across searches (a speed-up only: each
    search still counts its own evaluations)."""

    def __init__(self, score: Callable[[Choices], Evaluation]) -> None:
        self.score = score
        self.known: dict[tuple[tuple[str, str], ...], Evaluation] = {}

    def __call__(self, plan: Choices) -> Evaluation:
        key = tuple(sorted(plan.items()))
        if key not in self.known:
            self.known[key] = self.score(plan)
        return self.known[key]


def example_problem(space_name: str, macs_budget: float, eval_samples: int):
    """The shipped example's ``SearchProblem`` under ``macs=macs_budget``, as ``optimize``
    builds it (seed 0 splits, ``eval_samples`` search samples, 256 calibration samples)."""
    from natopt.frontends import lift
    from natopt.passes import canonicalize
    from natopt.passes.transitions import compute_mask, vocabulary_for
    from natopt.pipeline.budget import Budget
    from natopt.pipeline.data import load_data, split_data
    from natopt.pipeline.problem import SearchProblem, calibration_batches

    graph = canonicalize(lift(DATA_DIR / "example_mnist.onnx"))
    data, test = load_data(DATA_DIR / "example_mnist.npz", graph.inputs, 10)
    splits = split_data(data, test, seed=0)
    search = splits.search.subset(np.arange(min(eval_samples, len(splits.search))))
    splits = dataclasses.replace(splits, search=search)
    mask = compute_mask(graph, vocabulary_for(space_name))
    return SearchProblem(
        graph,
        mask,
        splits,
        Budget("macs", macs_budget),
        0.02,
        calibration_batches(splits.finetune, 256),
    )


def _example_problem(space_name: str, macs_budget: float, eval_samples: int):
    problem = example_problem(space_name, macs_budget, eval_samples)
    return dataclasses.replace(
        problem.search_space(),
        evaluate=_Memo(problem.evaluate),
        validate=_Memo(problem.validate),
    )


def _all_plans(space: SearchSpace) -> list[Choices]:
    valid = [row.nonzero().flatten().tolist() for row in space.mask]
    return [space.plan(tuple(actions)) for actions in itertools.product(*valid)]


def example_suite(
    seeds: int, budget: int, macs_budget: float, eval_samples: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One row per (space, seed, method) on the example model.

    In a space small enough to enumerate (``nat``), ``rank`` is how many plans score more on
    the search split than the best plan the method evaluated (0: it found the optimum of the
    objective it searches), ``regret`` the reward it fell short by.
    """
    rows = []
    for space_name in ("nat", "nat++"):
        start = time.perf_counter()
        space = _example_problem(space_name, macs_budget, eval_samples)
        everything = None
        if space.size() <= 2000:
            everything = np.array([space.evaluate(p).reward for p in _all_plans(space)])
            elapsed = time.perf_counter() - start
            log(f"{space_name}: enumerated {len(everything)} plans in {elapsed:.0f} s")
        for seed in range(seeds):
            for method, search in METHODS.items():
                result = search(space, budget, seed)
                chosen = result.best_evaluation
                row = {
                    "suite": "example",
                    "setting": f"{space_name} space, MACs <= {macs_budget:g}",
                    "seed": seed,
                    "method": method,
                    "plans": space.size(),
                    "evaluations": result.evaluations,
                    "val_reward": chosen.reward,
                    "val_accuracy": chosen.quality,
                    "macs_fraction": chosen.cost,
                    "plan": {u: t for u, t in result.best_plan.items() if t != "keep"},
                }
                if everything is not None:
                    found = result.history[-1].best_reward
                    row["rank"] = int((everything > found + 1e-12).sum())
                    row["regret"] = float(everything.max() - found)
                rows.append(row)
                log(f"{space_name} seed {seed} {method}: val reward {chosen.reward:+.4f}")
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (suite, setting, method) of every numeric column."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["suite"], row["setting"], row["method"]), []).append(row)
    summary = []
    for (suite, setting, method), members in groups.items():
        entry: dict[str, Any] = {"suite": suite, "setting": setting, "method": method}
        entry["runs"] = len(members)
        if "rank" in members[0]:
            entry["optimum_found"] = sum(m["rank"] == 0 for m in members) / len(members)
        for key in ("rank", "regret", "evaluations", "val_reward", "val_accuracy", "macs_fraction"):
            if key in members[0]:
                entry[key] = statistics.fmean(m[key] for m in members)
        summary.append(entry)
    return summary


TABLE_COLUMNS = (
    "setting",
    "method",
    "runs",
    "optimum_found",
    "rank",
    "regret",
    "val_reward",
    "val_accuracy",
    "macs_fraction",
    "evaluations",
)


def markdown(summary: list[dict[str, Any]], order: Sequence[str] = TABLE_COLUMNS) -> str:
    """A Markdown table of the ``order`` columns that some row of ``summary`` has."""
    columns = [key for key in order if any(key in row for row in summary)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in summary:
        cells = []
        for key in columns:
            value = row.get(key, "")
            cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds, synthetic suite")
    parser.add_argument("--example-seeds", type=int, default=3, help="seeds, example suite")
    parser.add_argument("--budget", type=int, default=200, help="evaluations, synthetic suite")
    parser.add_argument("--example-budget", type=int, default=48, help="evaluations, example")
    parser.add_argument("--macs-budget", type=float, default=0.7)
    parser.add_argument("--eval-samples", type=int, default=512)
    parser.add_argument("--suite", choices=("all", "synthetic", "example"), default="all")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "search_vs_baselines.json",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    if args.suite in ("all", "synthetic"):
        rows += synthetic_suite(args.seeds, args.budget)
    if args.suite in ("all", "example"):
        rows += example_suite(
            args.example_seeds, args.example_budget, args.macs_budget, args.eval_samples, print
        )
    summary = summarise(rows)
    for suite in dict.fromkeys(row["suite"] for row in summary):
        print(f"\n## {suite}\n")
        print(markdown([row for row in summary if row["suite"] == suite]))
    args.out.write_text(json.dumps({"summary": summary, "runs": rows}, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
