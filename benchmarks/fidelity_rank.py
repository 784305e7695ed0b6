"""Does a fidelity's score rank plans by what fine-tuning makes of them?

On the shipped MNIST example (real MNIST; budget ``macs=0.75``, the example's), a pool of
plans within the budget is drawn: the best plans of a random search by refit score (keep
prior 0.75, as ``optimize`` searches) and plans drawn at random from the same space. Each
plan is scored at every fidelity:

- ``refit``: validation quality with inherited, least-squares-refit weights (the search's
  score; no training);
- ``score10``: validation quality after 10 fine-tuning steps on the search split, exactly
  as the search scores plans with ``--score-steps 10``;
- ``ft50`` / ``ft200``: validation quality after 50, then 200 steps of fine-tuning (the rungs
  of ``natopt.pipeline.fidelity``, resumed as they are there);
- ``final``: test-split quality after a fresh 600-step fine-tune (what ``optimize`` ships).

The table gives Spearman's rank correlation of each fidelity with ``final``, and the final
quality of the plan each fidelity would have chosen against the best final quality of the
pool (regret, points). A fidelity whose correlation is near zero cannot steer a search.

    python benchmarks/fidelity_rank.py [--plans 12] [--seed 0]

Writes benchmarks/results/fidelity_rank.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_vs_baselines import example_problem  # noqa: E402

from natopt.backends import to_torch  # noqa: E402
from natopt.passes.nat import random_search  # noqa: E402
from natopt.pipeline.data import concat  # noqa: E402
from natopt.pipeline.fidelity import RungInputs, TrainTask, train_candidate  # noqa: E402
from natopt.pipeline.finetune import FinetuneConfig, finetune  # noqa: E402
from natopt.pipeline.problem import graph_outputs, strip_keep  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fidelity_rank.json"
FIDELITIES = ("refit", "score10", "ft50", "ft200")


def ranks(values: list[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    array = np.asarray(values, dtype=float)
    order = array.argsort(kind="stable")
    rank = np.empty(len(array))
    rank[order] = np.arange(1, len(array) + 1)
    for value in np.unique(array):
        tied = array == value
        rank[tied] = rank[tied].mean()
    return rank


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def pool_of_plans(problem, count: int, seed: int) -> list[dict[str, str]]:
    """Half the search's best plans within the budget, half random plans within it."""
    space = problem.search_space()
    random_search(space, 48, seed=seed, candidates=1, keep_probability=0.75)
    within = [e for e in problem.evaluated if e["split"] == "search" and e["within_budget"]]
    pool: list[dict[str, str]] = []
    for entry in sorted(within, key=lambda e: -e["reward"]):
        if entry["plan"] not in pool and len(pool) < count // 2:
            pool.append(entry["plan"])
    rest = [e["plan"] for e in within if e["plan"] not in pool]
    random.Random(seed).shuffle(rest)
    for plan in rest:
        if plan not in pool and len(pool) < count:
            pool.append(plan)
    return pool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--final-steps", type=int, default=600)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    problem = example_problem("nat++", 0.75, 384)
    tuning = concat(problem.splits.search, problem.splits.finetune)
    teacher = graph_outputs(problem.graph, tuning)
    pool = pool_of_plans(problem, args.plans, args.seed)
    inputs = RungInputs(problem, tuning, teacher, FinetuneConfig())
    print(f"{len(pool)} plans within macs=0.75; scoring each at every fidelity", flush=True)
    rows = []
    for number, plan in enumerate(pool):
        plan = strip_keep(plan)
        seconds: dict[str, float] = {}
        clock = time.perf_counter()
        row: dict = {"plan": plan, "refit": problem.validate(plan).quality, "seconds": seconds}
        seconds["refit"] = time.perf_counter() - clock
        clock, problem.score_steps = time.perf_counter(), 10
        row["score10"] = problem.validate(plan).quality
        seconds["score10"], problem.score_steps = time.perf_counter() - clock, 0
        weights = None
        for name, steps in (("ft50", 50), ("ft200", 150)):
            clock = time.perf_counter()
            trained = train_candidate(inputs, TrainTask(plan, steps, args.seed, weights))
            row[name], weights = trained.quality, trained.weights
            seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()
        graph = problem.build(plan, base=problem.graph)
        module = to_torch(graph)
        finetune(module, tuning, teacher, FinetuneConfig(steps=args.final_steps), seed=args.seed)
        row["final"] = problem.module_quality(module, "test").quality
        seconds["final"] = time.perf_counter() - clock
        rows.append(row)
        print(
            f"{number + 1:>2}/{len(pool)} "
            + "  ".join(f"{k} {100 * row[k]:6.2f}" for k in (*FIDELITIES, "final"))
            + f"  {plan}",
            flush=True,
        )
    final = [r["final"] for r in rows]
    best = max(final)
    summary = []
    header = f"{'fidelity':<10} {'spearman vs final':>18} {'chosen final %':>15}"
    print(f"\n{header} {'regret pts':>11} {'s / plan':>9}")
    for name in FIDELITIES:
        scores = [r[name] for r in rows]
        chosen = max(range(len(rows)), key=lambda i: scores[i])
        entry = {
            "fidelity": name,
            "spearman": spearman(scores, final),
            "chosen_final": final[chosen],
            "regret_points": 100 * (best - final[chosen]),
            # ft200 resumes ft50's model: its seconds are the 150 extra steps
            "seconds_per_plan": float(np.mean([r["seconds"][name] for r in rows])),
        }
        summary.append(entry)
        print(
            f"{name:<10} {entry['spearman']:>18.3f} {100 * entry['chosen_final']:>15.2f} "
            f"{entry['regret_points']:>11.2f} {entry['seconds_per_plan']:>9.2f}"
        )
    result = {
        "model": "natopt example (residual CNN, real MNIST)",
        "budget": "macs=0.75",
        "seed": args.seed,
        "final_steps": args.final_steps,
        "rows": rows,
        "summary": summary,
        "wall_s": time.perf_counter() - start,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"wrote {RESULTS} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
