"""Which search gives the best *final* model at equal compute?

Every method runs the whole ``optimize`` pipeline on the shipped MNIST example (real MNIST,
its residual CNN), with the same evaluation budget, the same fine-tuning rungs (successive
halving on fine-tuned validation quality) and the same 600-step final fine-tune, so the
methods differ only in which plans they put in front of the rungs. The score is what
``optimize`` ships: the test-split accuracy of the fine-tuned, exported model, run by
onnxruntime, at the same cost budget (``macs=0.75``, the example's). Over several seeds.

    python benchmarks/search_finetuned.py [--seeds 3] [--methods nat,random,greedy]

Prints a table (mean and each seed) and writes benchmarks/results/search_finetuned.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from natopt.errors import QualityError
from natopt.frontends.onnx import lift_onnx
from natopt.pipeline.budget import Budget
from natopt.pipeline.optimize import SEARCHES, OptimizeConfig, optimize

DATA = Path(__file__).resolve().parent.parent / "natopt" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "search_finetuned.json"
BUDGET = "macs=0.75"


def run(method: str, seed: int, evaluations: int) -> dict:
    """One optimize run; the refused runs count too (their model is what would ship)."""
    config = OptimizeConfig(
        search=method,
        budget=Budget.parse(BUDGET),
        evaluations=evaluations,
        seed=seed,
        progress=False,
        measure_latency=False,
        max_drop=float("inf"),
    )
    graph = lift_onnx(DATA / "example_mnist.onnx")
    start = time.perf_counter()
    try:
        report = optimize(graph, DATA / "example_mnist.npz", config).report
    except QualityError as exc:  # not with max_drop=inf; kept so a refusal is recorded
        report = exc.result.report
    before, after, control = report["before"], report["after"], report["control"]
    return {
        "method": method,
        "seed": seed,
        "before": before["quality"],
        "after": after["quality"],
        "control": control["quality"],
        "macs_ratio": after["macs"] / before["macs"],
        "evaluations": report["search"]["evaluations"],
        "finetune_steps": report["finetune"]["steps"],
        "plan": report["plan"],
        "wall_s": time.perf_counter() - start,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(SEARCHES))
    parser.add_argument("--evaluations", type=int, default=48)
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",")]
    rows = []
    for seed in range(args.seeds):
        for method in methods:
            row = run(method, seed, args.evaluations)
            rows.append(row)
            print(
                f"seed {seed} {method:<9} test {100 * row['after']:6.2f}%  control "
                f"{100 * row['control']:6.2f}%  MACs x{row['macs_ratio']:.3f}  "
                f"{row['wall_s']:.0f} s",
                flush=True,
            )
    print(f"\n| method | mean test % | per seed | mean MACs ratio | {BUDGET} |")
    print("|---|---:|---|---:|---|")
    summary = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        mean = statistics.mean(r["after"] for r in mine)
        macs = statistics.mean(r["macs_ratio"] for r in mine)
        seeds = " / ".join(f"{100 * r['after']:.2f}" for r in mine)
        summary[method] = {"mean_after": mean, "mean_macs_ratio": macs}
        print(f"| {method} | {100 * mean:.2f} | {seeds} | {macs:.3f} | |")
    original = rows[0]["before"]
    control = statistics.mean(r["control"] for r in rows)
    print(
        f"\noriginal {100 * original:.2f}%; control (original architecture, same fine-tune) "
        f"{100 * control:.2f}% on average"
    )
    result = {
        "model": "natopt example (residual CNN, real MNIST)",
        "budget": BUDGET,
        "evaluations": args.evaluations,
        "rows": rows,
        "summary": summary,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
