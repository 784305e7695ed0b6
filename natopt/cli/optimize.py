"""``natopt optimize``: search, fine-tune and export a cheaper model, with the evidence.

    natopt optimize model.onnx -o model.opt.onnx --data data.npz [--budget macs=0.6]
    natopt optimize --example

With no --budget and no --objective it returns the fastest model, by measured latency, whose
fine-tuned quality stays within --max-drop points of the original's; --budget METRIC=F asks
for the best quality at that cost, --objective accuracy for NAT's own objective.

Prints a progress bar per phase, then a before/after table with the control (the original
architecture fine-tuned the same way) and the plan; ``--report`` writes the same as JSON and
``--save-plan`` the plan, each file whole or not at all. The input model is never written to.

Exit status: 0 when the model is written; 2 for bad input; 3 when the fine-tuned, exported
model drops more than ``--max-drop`` points of quality on the test split (no model and no
plan written; ``--report`` is still written, with ``"accepted": false``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from natopt._console import console_for, new_table
from natopt._files import write_whole
from natopt.cli import SUMMARIES
from natopt.cli.models import load_model
from natopt.errors import NatoptError, QualityError
from natopt.passes.transitions import Plan
from natopt.pipeline.budget import Budget
from natopt.pipeline.fidelity import DEFAULT_RUNGS
from natopt.pipeline.finetune import FinetuneConfig
from natopt.pipeline.guard import DEFAULT_MAX_DROP, parse_max_drop
from natopt.pipeline.objective import OBJECTIVES, resolve_objective
from natopt.pipeline.optimize import SEARCHES, OptimizeConfig, optimize
from natopt.pipeline.schedule import DEFAULT_TIME_BUDGET

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

__all__ = ["register", "run", "format_comparison"]

NAME = "optimize"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        NAME,
        parents=[common],
        help=SUMMARIES[NAME],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="ONNX file or Python module:attr")
    p.add_argument("-o", "--output", help="where to write the optimised ONNX model")
    p.add_argument("--data", help=".npz with inputs (model input names or x), labels y")
    p.add_argument(
        "--example",
        action="store_true",
        help="run on the built-in MNIST example (model and data ship with natopt)",
    )
    p.add_argument(
        "--search",
        choices=SEARCHES,
        default=OptimizeConfig().search,
        help="knapsack (the default): per-unit sensitivities solved as a multiple-choice "
        "knapsack; nat: NAT's GCN policy; grow: the growing policy; random; greedy",
    )
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help="fastest (the default without --budget): the fastest model, by measured latency, "
        "whose fine-tuned quality stays within --max-drop; accuracy: NAT's objective, best "
        "quality, never costlier",
    )
    p.add_argument(
        "--budget",
        help="best quality at a cost: METRIC=FRACTION of the original, METRIC one of macs, "
        "params, latency (not with --objective)",
    )
    p.add_argument(
        "--space",
        choices=["nat", "nat++", "full"],
        default="nat++",
        help="transition vocabulary (nat: keep/skip/null; nat++: + type and kernel)",
    )
    p.add_argument(
        "--transitions",
        help="levels of the full vocabulary to search (overrides --space), e.g. "
        "depth,type,kernel (NAT++), depth,width, depth,type,kernel,lowrank,width",
    )
    p.add_argument(
        "--evaluations",
        type=int,
        default=None,
        help="plan evaluations per search (default: every single change of the space and "
        "half as many again, at least 48)",
    )
    p.add_argument("--candidates", type=int, default=6, help="plans validated at the end (K)")
    p.add_argument("--finetune-steps", type=int, default=600)
    p.add_argument(
        "--lr",
        type=float,
        default=FinetuneConfig().lr,
        help="fine-tuning step size (Adam) to start from; the probe lowers it by 10x while "
        f"fine-tuning damages the original model (default {FinetuneConfig().lr:g})",
    )
    p.add_argument(
        "--lr-probe-steps",
        type=int,
        default=OptimizeConfig().lr_probe_steps,
        help="steps the original is fine-tuned to check the step size before the search "
        f"(0: no probe, fine-tune at --lr; default {OptimizeConfig().lr_probe_steps})",
    )
    p.add_argument(
        "--time-budget",
        default=f"{DEFAULT_TIME_BUDGET:g}",
        help="seconds the whole run may take: when the schedule (--evaluations, --rungs, "
        "--finetune-steps and the control) is estimated to take longer on this model and "
        "machine, all of it is scaled down by one factor; none: the schedule as given "
        f"(default {DEFAULT_TIME_BUDGET:g})",
    )
    p.add_argument(
        "--shared-steps",
        type=int,
        default=0,
        help="shared-weight training steps per sampled plan during the search",
    )
    p.add_argument(
        "--score-steps",
        type=int,
        default=0,
        help="fine-tuning steps before each plan the search samples is scored (0: score its "
        "least-squares refit as it is; more: a slower search that ranks plans by what "
        "fine-tuning makes of them)",
    )
    p.add_argument(
        "--max-drop",
        default=str(DEFAULT_MAX_DROP),
        help="largest accepted quality drop on the test split, in points of the quality "
        "metric (accuracy, agreement or cosine x 100); a model that drops more is not written "
        f"and natopt exits 3; inf accepts any (default {DEFAULT_MAX_DROP})",
    )
    p.add_argument(
        "--rungs",
        default=_format_rungs(DEFAULT_RUNGS),
        help="successive halving on fine-tuned quality before the final fine-tune: "
        "PLANSxSTEPS per rung, comma-separated, later rungs resuming (none: choose on the "
        f"refit score alone; default {_format_rungs(DEFAULT_RUNGS)})",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="fine-tune the rungs' candidates on a local Ray with N workers (needs natopt[ray])",
    )
    p.add_argument(
        "--ray-address",
        help="... or on the Ray cluster at ADDR (auto: the one `ray start --head` started here)",
    )
    p.add_argument(
        "--latency-resource",
        metavar="NAME",
        help="with Ray: time latency only on nodes offering the custom resource NAME, one "
        "timing per node at a time (give each such node `ray start --resources "
        "'{\"NAME\": 1}'`); the report names the node",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plan", help="apply this saved plan (JSON) instead of searching")
    p.add_argument("--save-plan", help="write the chosen plan as JSON")
    p.add_argument("--report", help="write the before/after report as JSON")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        help="example input shape for module:attr models, e.g. 1,3,224,224",
    )
    p.add_argument(
        "--latency-rounds",
        type=int,
        default=3,
        help="with --budget latency=F: searches to meet F on measured latency (1: trust the "
        "latency table's estimate)",
    )
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument(
        "--dump-ir",
        metavar="DIR",
        help="write the IR before and after each pass of the run (canonicalisation, the "
        "final plan's application) into DIR, as NNN-<pass>-before.txt / -after.txt",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _format_rungs(rungs: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{n}x{steps}" for n, steps in rungs) or "none"


def _parse_rungs(text: str) -> tuple[tuple[int, int], ...]:
    """``"4x50,2x150"`` -> ((4, 50), (2, 150)); ``"none"`` -> ()."""
    if text.strip().lower() == "none":
        return ()
    rungs = []
    for part in text.split(","):
        plans, _, steps = part.strip().partition("x")
        if not (plans.isdigit() and steps.isdigit() and int(plans) >= 1 and int(steps) >= 1):
            raise NatoptError(
                f"--rungs {text!r}: write PLANSxSTEPS per rung, comma-separated, each >= 1 "
                "(e.g. 4x50,2x150), or none"
            )
        rungs.append((int(plans), int(steps)))
    return tuple(rungs)


def _example_files() -> tuple[Path, Path]:
    root = resources.files("natopt") / "data"
    return Path(str(root / "example_mnist.onnx")), Path(str(root / "example_mnist.npz"))


def _outputs(args: argparse.Namespace, model: str) -> dict[str, Path]:
    """Output paths, checked before any work: never the input, folders must exist."""
    inputs = {Path(p).resolve() for p in (model, args.data, args.plan) if p}
    outputs = {}
    for flag in ("output", "report", "save_plan"):
        value = getattr(args, flag)
        if not value:
            continue
        path = Path(value)
        if path.resolve() in inputs:
            raise NatoptError(f"--{flag.replace('_', '-')} {value} would overwrite an input file")
        if not path.parent.is_dir():
            raise NatoptError(
                f"--{flag.replace('_', '-')} {value}: folder {path.parent} does not exist"
            )
        outputs[flag] = path
    return outputs


def _config(args: argparse.Namespace) -> OptimizeConfig:
    levels = tuple(x.strip() for x in args.transitions.split(",")) if args.transitions else None
    if (
        min(args.candidates, args.latency_rounds) < 1
        or (args.evaluations is not None and args.evaluations < 1)
        or min(args.finetune_steps, args.score_steps, args.lr_probe_steps) < 0
    ):
        raise NatoptError(
            "--evaluations, --candidates and --latency-rounds must be >= 1, --finetune-steps, "
            "--score-steps and --lr-probe-steps >= 0"
        )
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise NatoptError(f"--lr {args.lr}: give a positive, finite step size")
    parsed = Budget.parse(args.budget) if args.budget else None
    resolve_objective(args.objective, parsed)  # refuses --objective with --budget
    if args.workers is not None and args.workers < 1:
        raise NatoptError(f"--workers {args.workers}: give at least 1 worker")
    if args.workers is not None or args.ray_address or args.latency_resource:
        from natopt.pipeline.ray_executor import require_ray

        require_ray()  # before any work: say which extra to install
    time_budget = _time_budget(args.time_budget)
    dump_ir = Path(args.dump_ir) if args.dump_ir else None
    if dump_ir is not None and dump_ir.exists() and not dump_ir.is_dir():
        raise NatoptError(f"--dump-ir {args.dump_ir}: a file is there; give a folder")
    return OptimizeConfig(
        search=args.search,
        objective=args.objective,
        budget=parsed,
        space=args.space,
        levels=levels,
        evaluations=args.evaluations,
        candidates=args.candidates,
        shared_steps=args.shared_steps,
        score_steps=args.score_steps,
        finetune=FinetuneConfig(steps=args.finetune_steps, lr=args.lr),
        lr_probe_steps=args.lr_probe_steps,
        seed=args.seed,
        progress=not args.quiet,
        measure_latency=not args.no_latency,
        latency_rounds=args.latency_rounds,
        plan=Plan.load(args.plan) if args.plan else None,
        max_drop=parse_max_drop(args.max_drop),
        rungs=_parse_rungs(args.rungs),
        workers=args.workers,
        ray_address=args.ray_address,
        latency_resource=args.latency_resource,
        dump_ir=dump_ir,
        time_budget=time_budget,
    )


def _time_budget(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise NatoptError(f"--time-budget {text}: give a positive number of seconds, or none")
    return seconds


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return f"{value:,}"
    if kind == "ms":
        return f"{value:.3f} ms"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "bytes":
        return f"{value / 1024:.1f} KiB"
    return f"{value:.4f}"


def _ratio(before: Any, after: Any) -> str:
    if not before or after is None:
        return ""
    return f"x{after / before:.3f}"


def _before_after(report: dict[str, Any]) -> Table:
    """Every figure measured before, after and for the control; ratios after/before; then the
    op counts that changed."""
    before, after = report["before"], report["after"]
    control = report.get("control") or {}
    metric = before.get("quality_metric", "quality")
    rows = [
        ("parameters", "params", "int"),
        ("MACs (batch 1)", "macs", "int"),
        ("ONNX size", "size_bytes", "bytes"),
        (f"latency (onnxruntime, {report.get('provider') or 'not measured'})", "latency_ms", "ms"),
        (f"quality ({metric}, test split)", "quality", "pct"),
    ]
    if "accuracy" in before and metric != "accuracy":
        rows.append(("accuracy (test split)", "accuracy", "pct"))
    table = new_table()
    table.add_column("")
    for header in ("before", "after", "control", "after/before"):
        table.add_column(header, justify="right")
    for label, key, kind in rows:
        b, a, c = before.get(key), after.get(key), control.get(key)
        table.add_row(label, _fmt(b, kind), _fmt(a, kind), _fmt(c, kind), _ratio(b, a))
    ops = sorted(set(before["ops"]) | set(after["ops"]))
    changed = [op for op in ops if before["ops"].get(op, 0) != after["ops"].get(op, 0)]
    if changed:
        table.add_section()
    for op in changed:
        table.add_row(f"{op} ops", str(before["ops"].get(op, 0)), str(after["ops"].get(op, 0)))
    return table


def _verdict(report: dict[str, Any]) -> Table:
    """The objective, the measured speed-up, the control's verdict and the quality guard's."""
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    objective = report.get("objective")
    if objective:
        table.add_row("objective", objective["description"])
    latency = report.get("latency")
    if latency:
        node = latency.get("node")
        where = f", on Ray node {node['ip']}" if node else ""
        table.add_row(
            "speed-up",
            f"{latency['speedup']:.3f}x (median of {latency['rounds']} interleaved rounds{where})",
        )
    versus = report.get("versus_control")
    if versus:
        table.add_row("versus control", versus["summary"])
    guard = report.get("quality_guard")
    if guard:
        verdict = (
            Text("accepted", style="green")
            if guard["accepted"]
            else Text("REFUSED", style="bold red")
        )
        table.add_row(
            "quality guard",
            Text.assemble(
                verdict,
                f" (drop {guard['drop_points']:.2f} points of {guard['metric']}, "
                f"--max-drop {guard['max_drop_points']:g})",
            ),
        )
    return table


def _times(report: dict[str, Any]) -> Table:
    """Seconds per phase, and per plan evaluation of the search."""
    table = new_table(title="time")
    cells = []
    for phase, seconds in report["times"].items():
        table.add_column(phase, justify="right")
        cells.append(f"{seconds:.1f}s")
    per_evaluation = report.get("search", {}).get("seconds_per_evaluation")
    if per_evaluation is not None:
        table.add_column("per plan evaluation", justify="right")
        cells.append(f"{per_evaluation:.2f}s")
    table.add_row(*cells)
    return table


def format_comparison(report: dict[str, Any]) -> RenderableType:
    """The before/after table with the control, the verdict lines and the time per phase."""
    from rich.console import Group
    from rich.text import Text

    return Group(_before_after(report), Text(""), _verdict(report), Text(""), _times(report))


def _format_plan(plan: dict[str, str]) -> RenderableType:
    """The chosen transition per unit (units kept as they are are not listed)."""
    from rich.text import Text

    if not plan:
        return Text("plan: keep every unit (no transition helped)")
    table = new_table(title="plan")
    table.add_column("unit")
    table.add_column("transition")
    for unit, transition in sorted(plan.items()):
        table.add_row(unit, transition)
    return table


def run(args: argparse.Namespace) -> int:
    if args.example:
        if args.model or args.data:
            raise NatoptError("--example brings its own model and data; drop MODEL and --data")
        model_path, data_path = _example_files()
        model, data = str(model_path), str(data_path)
    else:
        if not args.model or not args.data:
            raise NatoptError("give MODEL and --data DATA.npz (or --example)")
        model, data = args.model, args.data
    outputs = _outputs(args, model)
    config = _config(args)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    graph = load_model(model, args.input_shape, dynamic_batch=True)
    baseline = model if Path(model).suffix == ".onnx" else None
    try:
        result = optimize(
            graph, data, config, output=outputs.get("output"), baseline_onnx=baseline, log=log
        )
    except QualityError as refused:
        _write_report(outputs, refused.result.report, model)  # CI shows why
        _print_result(refused.result.report, refused.result.plan)
        raise
    _write_report(outputs, result.report, model)
    if "save_plan" in outputs:
        write_whole(outputs["save_plan"], result.plan.to_json() + "\n", NatoptError)
    _print_result(result.report, result.plan)
    if result.onnx_path is not None:
        print(f"wrote {result.onnx_path}")
    return 0


def _print_result(report: dict[str, Any], plan: Plan) -> None:
    """The comparison and the plan on stdout (plain text, 120 columns, when not a terminal)."""
    console = console_for()
    console.print(format_comparison(report))
    console.print()
    console.print(_format_plan(plan.transitions))


def _write_report(outputs: dict[str, Path], report: dict[str, Any], model: str) -> None:
    if "report" in outputs:
        text = json.dumps(dict(report, model=model), indent=1, default=str) + "\n"
        write_whole(outputs["report"], text, NatoptError)
