"""Quality against cost of the plans a search evaluated, with the chosen plan marked.

matplotlib is optional: it is imported only here, and its absence is a ``ReportError``
that says how to install it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from natopt._files import write_whole
from natopt.bench.report import OptimizeResult
from natopt.errors import ReportError

__all__ = ["plot_candidates"]


def plot_candidates(results: Sequence[OptimizeResult], path: str | Path) -> None:
    """Write one panel per result: candidates (grey), original (square), chosen (star).

    The x axis is latency (ms) when the model before and after and every candidate of a
    result have it, MACs otherwise (a report written with ``--no-latency``, say).
    """
    if not results:
        raise ReportError("--plot needs at least one optimisation result (natopt optimize)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError("--plot needs matplotlib: pip install matplotlib") from None
    figure, axes = plt.subplots(
        1, len(results), figsize=(5 * len(results), 4), squeeze=False, layout="constrained"
    )
    for axis, result in zip(axes[0], results, strict=True):
        _draw(axis, result)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    plt.close(figure)
    write_whole(Path(path), image.getvalue(), ReportError)


def _draw(axis: Any, result: OptimizeResult) -> None:
    candidates = result.search.candidates
    timed = (result.before, result.after, *candidates)
    by_latency = all(c.latency_ms is not None for c in timed)
    key, label = ("latency_ms", "latency (ms)") if by_latency else ("macs", "MACs")
    points = [(getattr(c, key), c.quality, c.chosen) for c in candidates]
    points = [p for p in points if p[0] is not None]
    axis.scatter(
        [x for x, _, _ in points], [y for _, y, _ in points], s=14, c="0.6", label="candidates"
    )
    axis.scatter(
        [getattr(result.before, key)], [result.before.quality], marker="s", c="k", label="original"
    )
    chosen = [(x, y) for x, y, is_chosen in points if is_chosen]
    if not chosen:
        chosen = [(getattr(result.after, key), result.after.quality)]
    axis.scatter(*zip(*chosen, strict=True), marker="*", s=160, c="tab:red", label="chosen")
    axis.set(xlabel=label, ylabel="quality", title=f"{result.model} ({result.search.method})")
    axis.legend(loc="lower right")
