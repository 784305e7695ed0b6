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

With ``--model mobilenet`` the same table on a real ImageNet network: torchvision's
mobilenet_v2 with its IMAGENET1K_V1 weights, label-free (top-1 agreement with the original)
on augmented real photographs (``mobilenet_guard``'s), plans of 1 to 3 changed units drawn
at random within macs=0.9 (on this network a plan that rewrites a quarter of the units
scores near zero at every fidelity). A training step costs seconds there, so the
fidelities are shorter (``ft20``, ``ft60``, ``final`` 150 steps, batch 16) and the step
size is the one ``natopt.pipeline.lr_probe`` keeps for the model.

    python benchmarks/fidelity_rank.py [--plans 12] [--seed 0] [--model example|mobilenet]

Writes benchmarks/results/fidelity_rank.json (``fidelity_rank_mobilenet.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
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
from natopt.pipeline.lr_probe import probe_lr  # noqa: E402
from natopt.pipeline.problem import graph_outputs, strip_keep  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fidelity_rank.json"


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


def mobilenet_problem(samples: int = 320, test_samples: int = 160):
    """mobilenet_v2 (IMAGENET1K_V1) under macs=0.9, label-free on augmented photographs, as
    ``optimize`` builds its problem (seed 0 splits, 128 calibration samples)."""
    from mobilenet_guard import augmented, mobilenet_v2, photos

    from natopt.frontends import lift
    from natopt.passes import canonicalize
    from natopt.passes.transitions import compute_mask, vocabulary_for
    from natopt.pipeline.budget import Budget
    from natopt.pipeline.data import Dataset, split_data
    from natopt.pipeline.problem import SearchProblem, calibration_batches

    graph = canonicalize(lift(mobilenet_v2(), torch.randn(2, 3, 224, 224), dynamic_batch=True))
    images = photos()
    data = Dataset([augmented(images, samples, seed=0)])
    splits = split_data(data, Dataset([augmented(images, test_samples, seed=1)]), seed=0)
    mask = compute_mask(graph, vocabulary_for("nat++"))
    calibration = calibration_batches(splits.finetune, 128)
    return SearchProblem(graph, mask, splits, Budget("macs", 0.9), 0.02, calibration)


def small_plans(problem, count: int, seed: int) -> list[dict[str, str]]:
    """``count`` distinct plans of 1 to 3 units, each at a random valid non-keep transition,
    within the problem's MAC budget."""
    from natopt.ir import graph_cost

    rng = random.Random(seed)
    mask = problem.mask
    rows = [r for r in range(len(mask.units)) if len(mask.valid_names(r)) > 1]
    pool: list[dict[str, str]] = []
    while len(pool) < count:
        plan = {}
        for row in rng.sample(rows, rng.randint(1, 3)):
            names = [n for n in mask.valid_names(row) if n != "keep"]
            plan[mask.units[row].name] = rng.choice(names)
        cost = graph_cost(problem.build(plan, base=problem.graph))
        if plan not in pool and cost.macs <= problem.budget.fraction * problem.original_cost.macs:
            pool.append(plan)
    return pool


SETTINGS = {
    # fidelities (name, steps added), final steps, batch size, budget text, results file
    "example": ((("ft50", 50), ("ft200", 150)), 600, 64, "macs=0.75", RESULTS),
    "mobilenet": (
        (("ft20", 20), ("ft60", 40)),
        150,
        16,
        "macs=0.9",
        RESULTS.with_name("fidelity_rank_mobilenet.json"),
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=sorted(SETTINGS), default="example")
    parser.add_argument("--final-steps", type=int, default=None)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    rungs, final_steps, batch, budget, results = SETTINGS[args.model]
    final_steps = args.final_steps or final_steps
    fidelities = ("refit", "score10", *(name for name, _ in rungs))
    if args.model == "example":
        problem = example_problem("nat++", 0.75, 384)
    else:
        problem = mobilenet_problem()
    tuning = concat(problem.splits.search, problem.splits.finetune)
    teacher = graph_outputs(problem.graph, tuning)
    tuning_config = FinetuneConfig(batch_size=batch)
    if args.model == "example":
        pool = pool_of_plans(problem, args.plans, args.seed)
    else:
        lr, _ = probe_lr(problem, tuning, teacher, tuning_config, steps=20, tolerance=5.0)
        tuning_config = dataclasses.replace(tuning_config, lr=lr)
        print(f"step size {lr:g} (the probe's)", flush=True)
        pool = small_plans(problem, args.plans, args.seed)
    inputs = RungInputs(problem, tuning, teacher, tuning_config)
    print(f"{len(pool)} plans within {budget}; scoring each at every fidelity", flush=True)
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
        for name, steps in rungs:
            clock = time.perf_counter()
            trained = train_candidate(inputs, TrainTask(plan, steps, args.seed, weights))
            row[name], weights = trained.quality, trained.weights
            seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()
        graph = problem.build(plan, base=problem.graph)
        module = to_torch(graph)
        final_config = dataclasses.replace(tuning_config, steps=final_steps)
        finetune(module, tuning, teacher, final_config, seed=args.seed)
        row["final"] = problem.module_quality(module, "test").quality
        seconds["final"] = time.perf_counter() - clock
        rows.append(row)
        print(
            f"{number + 1:>2}/{len(pool)} "
            + "  ".join(f"{k} {100 * row[k]:6.2f}" for k in (*fidelities, "final"))
            + f"  {plan}",
            flush=True,
        )
    final = [r["final"] for r in rows]
    best = max(final)
    summary = []
    header = f"{'fidelity':<10} {'spearman vs final':>18} {'chosen final %':>15}"
    print(f"\n{header} {'regret pts':>11} {'s / plan':>9}")
    for name in fidelities:
        scores = [r[name] for r in rows]
        chosen = max(range(len(rows)), key=lambda i: scores[i])
        entry = {
            "fidelity": name,
            "spearman": spearman(scores, final),
            "chosen_final": final[chosen],
            "regret_points": 100 * (best - final[chosen]),
            # a later rung resumes the earlier one's model: its seconds are the added steps
            "seconds_per_plan": float(np.mean([r["seconds"][name] for r in rows])),
        }
        summary.append(entry)
        print(
            f"{name:<10} {entry['spearman']:>18.3f} {100 * entry['chosen_final']:>15.2f} "
            f"{entry['regret_points']:>11.2f} {entry['seconds_per_plan']:>9.2f}"
        )
    model = {
        "example": "natopt example (residual CNN, real MNIST)",
        "mobilenet": "torchvision mobilenet_v2 (IMAGENET1K_V1), label-free, augmented photos",
    }[args.model]
    result = {
        "model": model,
        "budget": budget,
        "seed": args.seed,
        "final_steps": final_steps,
        "batch_size": batch,
        "lr": tuning_config.lr,
        "rows": rows,
        "summary": summary,
        "wall_s": time.perf_counter() - start,
    }
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps(result, indent=1))
    print(f"wrote {results} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
