"""Start-up times of the ``natopt`` command: ``--help`` and ``inspect`` on a ~250-node ONNX model.

Each command runs in a fresh interpreter (``subprocess``, the way the console script calls
``natopt.cli.main.main``) ``--runs`` times per checkout, the checkouts interleaved run by run so
that the load of a shared machine falls on all alike; the table gives the median wall time
(and its range) and the median CPU time (user + system) in seconds. The ONNX model is written
with ``onnx.helper``: a stem (Conv, BatchNormalization, Relu), ``BLOCKS`` residual blocks of
seven nodes (Conv, BatchNormalization, Relu, Conv, BatchNormalization, Add, Relu) and a head
(GlobalAveragePool, Flatten, Gemm): 251 nodes, 32 channels, 32x32 input.

Results are merged into ``--out`` (default ``benchmarks/results/startup.json``) under each
checkout's label:

    python benchmarks/startup.py before=/path/to/old/checkout after=.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["BLOCKS", "COMMANDS", "Timing", "main", "time_command", "write_model"]

REPO = Path(__file__).resolve().parents[1]
BLOCKS = 35
CHANNELS = 32
MAIN = "import sys; from natopt.cli.main import main; sys.exit(main())"
COMMANDS: dict[str, list[str]] = {
    "natopt --help": ["--help"],
    "natopt inspect --help": ["inspect", "--help"],
    "natopt inspect model.onnx": ["inspect", "{model}"],
}


def write_model(path: Path, blocks: int = BLOCKS, channels: int = CHANNELS) -> int:
    """Write the residual CNN to ``path``; return its node count."""
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []

    def weight(name: str, *shape: int) -> str:
        weights.append(numpy_helper.from_array(rng.standard_normal(shape, np.float32) * 0.1, name))
        return name

    def conv_bn(x: str, name: str, c_in: int) -> str:
        w = weight(f"{name}.w", channels, c_in, 3, 3)
        nodes.append(helper.make_node("Conv", [x, w], [f"{name}.c"], pads=[1, 1, 1, 1]))
        stats = [weight(f"{name}.{s}", channels) for s in ("scale", "bias", "mean")]
        var = numpy_helper.from_array(np.ones(channels, np.float32), f"{name}.var")
        weights.append(var)
        nodes.append(
            helper.make_node("BatchNormalization", [f"{name}.c", *stats, var.name], [f"{name}.b"])
        )
        return f"{name}.b"

    def relu(x: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [f"{x}.r"]))
        return f"{x}.r"

    x = relu(conv_bn("input", "stem", 3))
    for i in range(blocks):
        y = conv_bn(relu(conv_bn(x, f"b{i}.0", channels)), f"b{i}.1", channels)
        nodes.append(helper.make_node("Add", [y, x], [f"b{i}.add"]))
        x = relu(f"b{i}.add")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"]))
    fc_w, fc_b = weight("fc.w", 10, channels), weight("fc.b", 10)
    nodes.append(helper.make_node("Gemm", ["flat", fc_w, fc_b], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "startup_resnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return len(nodes)


@dataclass(slots=True)
class Timing:
    """Wall and CPU (user + system, the child's) seconds of each run of one command."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "median_wall_s": statistics.median(self.wall),
            "median_cpu_s": statistics.median(self.cpu),
            "wall_s": self.wall,
            "cpu_s": self.cpu,
        }


def time_command(args: list[str], root: Path, timing: Timing) -> None:
    """Run ``natopt ARGS`` once in a fresh interpreter importing natopt from ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", MAIN, *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=root, check=True, capture_output=True)  # cwd: sys.path[0]
    timing.wall.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def checkout(text: str) -> tuple[str, Path]:
    label, _, path = text.rpartition("=")
    return label or Path(path).name, Path(path).resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkouts",
        nargs="*",
        type=checkout,
        default=[("current", REPO)],
        metavar="LABEL=PATH",
        help="checkouts natopt is imported from (default: this one, as 'current')",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/startup.json")
    args = parser.parse_args(argv)
    timings = {(label, name): Timing() for label, _ in args.checkouts for name in COMMANDS}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.onnx"
        node_count = write_model(model)
        for _ in range(args.runs):  # interleaved, so that load on the machine hits all alike
            for name, command in COMMANDS.items():
                for label, root in args.checkouts:
                    argv_ = [a.format(model=model) for a in command]
                    time_command(argv_, root, timings[label, name])
    print(f"{node_count}-node ONNX model, {args.runs} runs each, seconds (median, min-max)")
    print(f"{'checkout':<12}{'command':<28}{'wall':>8}{'range':>14}{'cpu':>8}")
    for (label, name), t in timings.items():
        spread = f"{min(t.wall):.2f}-{max(t.wall):.2f}"
        wall, cpu = statistics.median(t.wall), statistics.median(t.cpu)
        print(f"{label:<12}{name:<28}{wall:>8.2f}{spread:>14}{cpu:>8.2f}")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for label, root in args.checkouts:
        results[label] = {
            "root": str(root),
            "nodes": node_count,
            "runs": args.runs,
            "load_average": os.getloadavg()[0],
            "commands": {name: timings[label, name].to_dict() for name in COMMANDS},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
