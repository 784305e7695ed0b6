"""The quality guard: whether a fine-tuned, exported model may be handed back at all.

A model's quality is measured with onnxruntime on the held-out test split (accuracy with
labels; top-1 agreement with the original, or output cosine, without). Its *drop* is
``100 * (quality(original) - quality(model))``, in points of that metric. A final model whose
drop exceeds ``--max-drop`` is refused: not written, exit status 3 (``QualityError``).

Every run also fine-tunes a *control*: the original architecture with the same steps, data
and schedule. ``versus_control`` says in words whether the optimised model beats it, ties it
or loses to it. A difference counts only beyond one standard error of the test split's
estimate (for a proportion q over n samples, sqrt(q(1 - q) / n), and at least one sample:
1 / n), so a one-image difference on a small test split reads as a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from natopt.errors import NatoptError

__all__ = [
    "DEFAULT_MAX_DROP",
    "parse_max_drop",
    "Verdict",
    "versus_control",
    "doomed",
    "standard_error",
    "drop_within",
]

DEFAULT_MAX_DROP = 0.5  # points of the quality metric
DOOMED_FACTOR = 10.0  # a pre-fine-tuning drop this many tolerances out ...
DOOMED_POINTS = 5.0  # ... and at least this many points looks doomed (a warning only)
ROUND_OFF = 1e-9  # points: 0.9875 - 0.9825 is 0.5000000000000004 points


def drop_within(before: float, after: float, max_drop: float, margin: float = 0.0) -> bool:
    """Whether quality ``after`` (0..1) is at most ``max_drop`` + ``margin`` points under
    ``before``, up to float round-off: the one comparison the rungs and the final guard
    share, so a drop validation calls within is not refused on test by the last bit."""
    return 100.0 * (before - after) <= max_drop + margin + ROUND_OFF


def parse_max_drop(text: str | float) -> float:
    """``"0.5"`` -> 0.5, ``"inf"`` -> inf; negative or unreadable values are refused."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value) or value < 0:
        raise NatoptError(
            f"--max-drop {text!r}: give a number of points >= 0 (e.g. 0.5), or inf to accept "
            "any drop"
        )
    return value


@dataclass(slots=True, frozen=True)
class Verdict:
    """The guard's decision on the final model, in points of ``metric``."""

    metric: str
    before: float  # quality of the original (0..1)
    after: float  # quality of the optimised, fine-tuned, exported model (0..1)
    max_drop: float  # points
    samples: int  # size of the test split it was measured on

    @property
    def drop(self) -> float:
        return 100.0 * (self.before - self.after)

    @property
    def accepted(self) -> bool:
        return drop_within(self.before, self.after, self.max_drop)

    def refusal(self) -> str:
        """The one line printed when the model is refused."""
        return (
            f"the optimised model lost {self.drop:.2f} points of {self.metric} on the "
            f"{self.samples}-sample test split ({100 * self.before:.2f}% -> "
            f"{100 * self.after:.2f}%), more than --max-drop {self.max_drop:g}; no model "
            "written. Try a looser budget, more --finetune-steps, or more data"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "drop_points": self.drop,
            "max_drop_points": self.max_drop,
            "test_samples": self.samples,
            "accepted": self.accepted,
        }


def standard_error(quality: float, samples: int) -> float:
    """One standard error of a proportion ``quality`` estimated on ``samples`` samples
    (at least one sample's worth), as a fraction."""
    n = max(samples, 1)
    q = min(max(quality, 0.0), 1.0)
    return max(math.sqrt(q * (1.0 - q) / n), 1.0 / n)


def versus_control(after: float, control: float, samples: int) -> dict[str, Any]:
    """``outcome`` ("beats" / "ties" / "loses to"), the difference in points, the margin used,
    and a sentence for the summary."""
    margin = standard_error(control, samples)
    difference = after - control
    outcome = "beats" if difference > 0 else "loses to"
    outcome = "ties" if abs(difference) <= margin else outcome
    sentence = (
        f"the optimised model {outcome} the control (the original architecture fine-tuned "
        f"the same way): {100 * after:.2f}% vs {100 * control:.2f}%, a difference of "
        f"{100 * difference:+.2f} points (one standard error: {100 * margin:.2f})"
    )
    return {
        "outcome": outcome,
        "difference_points": 100.0 * difference,
        "margin_points": 100.0 * margin,
        "summary": sentence,
    }


def doomed(baseline: float, best: float, max_drop: float) -> str | None:
    """A warning when the best plan's score before fine-tuning is far outside the tolerance
    (``None`` otherwise); fine-tuning recovers a lot, so this never refuses by itself."""
    drop = 100.0 * (baseline - best)
    if math.isinf(max_drop) or drop <= max(DOOMED_FACTOR * max_drop, DOOMED_POINTS):
        return None
    return (
        f"warning: the best plan scores {drop:.1f} points below the original before "
        f"fine-tuning, far outside --max-drop {max_drop:g}; fine-tuning may recover it, the "
        "final check decides (a looser budget is likelier to pass)"
    )
