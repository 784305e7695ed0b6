"""How good a model's outputs are: accuracy with labels, agreement with the original without.

- labels given (classifier): quality = top-1 accuracy;
- no labels, classifier output [N, C]: quality = top-1 agreement with the original model;
- otherwise: quality = mean cosine similarity between the model's and the original's outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from natopt.pipeline.data import Dataset

__all__ = ["Quality", "predict", "score", "is_classifier"]


@dataclass(slots=True)
class Quality:
    quality: float
    metric: str  # "accuracy" | "agreement" | "cosine"
    accuracy: float | None = None
    agreement: float | None = None

    def to_dict(self) -> dict[str, float | str | None]:
        return {
            "quality": self.quality,
            "metric": self.metric,
            "accuracy": self.accuracy,
            "agreement": self.agreement,
        }


def is_classifier(outputs: torch.Tensor) -> bool:
    return outputs.dim() == 2 and outputs.shape[1] >= 2


@torch.no_grad()
def predict(
    fn: Callable[[Sequence[torch.Tensor]], torch.Tensor],
    data: Dataset,
    batch_size: int | None = None,
) -> torch.Tensor:
    """The first output of ``fn`` on every sample of ``data``, concatenated (default batches:
    ``Dataset.inference_batch``)."""
    batch_size = batch_size or data.inference_batch()
    return torch.cat([fn(xs) for xs, _ in data.batches(batch_size)])


def score(outputs: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor | None) -> Quality:
    """Compare ``outputs`` with the original model's ``reference`` outputs (and labels)."""
    if is_classifier(outputs):
        predicted = outputs.argmax(1)
        agreement = float((predicted == reference.argmax(1)).float().mean())
        if labels is not None:
            accuracy = float((predicted == labels).float().mean())
            return Quality(accuracy, "accuracy", accuracy, agreement)
        return Quality(agreement, "agreement", None, agreement)
    flat, ref = outputs.flatten(1).double(), reference.flatten(1).double()
    cosine = float(torch.nn.functional.cosine_similarity(flat, ref, dim=1, eps=1e-12).mean())
    return Quality(cosine, "cosine", None, cosine)
