"""User data for ``natopt optimize``: load an ``.npz``, check it against the model, split it.

The file holds the model's input array(s) under the model's input names (or ``x`` for a
single-input model), optionally integer labels under ``y``, and optionally a held-out test
set under ``x_test`` / ``y_test`` (or ``<input>_test``). Every check fails with one
``DataError`` line naming the array and what is wrong with it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from natopt.errors import DataError
from natopt.ir import Value

__all__ = ["Dataset", "Splits", "concat", "load_data", "split_data", "MIN_SAMPLES"]

MIN_SAMPLES = 30
INFERENCE_ELEMENTS = 32 * 3 * 224 * 224  # input elements per inference batch, at most
TRAINING_ELEMENTS = 16 * 3 * 224 * 224  # input elements per training batch, at most
_FLOAT_KINDS = "f"
_INT_KINDS = "iub"


@dataclass(slots=True)
class Dataset:
    """Input arrays in the model's input order, with optional labels; all share axis 0."""

    inputs: list[np.ndarray]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])

    def subset(self, index: np.ndarray) -> Dataset:
        labels = None if self.labels is None else self.labels[index]
        return Dataset([a[index] for a in self.inputs], labels)

    def batches(self, batch_size: int) -> Iterator[tuple[list[torch.Tensor], torch.Tensor | None]]:
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            xs = [torch.from_numpy(a[start:stop]) for a in self.inputs]
            ys = None if self.labels is None else torch.from_numpy(self.labels[start:stop])
            yield xs, ys

    def inference_batch(self) -> int:
        """A batch size for inference: 256 samples, or fewer when samples are large (at most
        ``INFERENCE_ELEMENTS`` input elements a batch: on 2 CPU cores mobilenet_v2 ran 128
        images at 224x224 30% faster in batches of 32 than in one batch of 128)."""
        return max(1, min(256, INFERENCE_ELEMENTS // self._elements()))

    def training_batch(self, asked: int) -> int:
        """The fine-tuning batch: ``asked``, or fewer when samples are large (at most
        ``TRAINING_ELEMENTS`` input elements a batch: on 2 CPU cores one training step of
        mobilenet_v2 at 224x224 took 0.65 s at batch 16 and 4.7-6.5 s at batch 64, 2-2.5x
        the time per sample)."""
        return max(1, min(asked, TRAINING_ELEMENTS // self._elements()))

    def _elements(self) -> int:
        """Input elements per sample, over every input (at least 1)."""
        return sum(int(np.prod(a.shape[1:])) for a in self.inputs) or 1

    def tensors(self) -> list[torch.Tensor]:
        return [torch.from_numpy(a) for a in self.inputs]


def concat(*parts: Dataset) -> Dataset:
    """The samples of ``parts`` one after another (labels kept only if every part has them)."""
    inputs = [np.concatenate(arrays) for arrays in zip(*(p.inputs for p in parts), strict=True)]
    labelled = all(p.labels is not None for p in parts)
    labels = np.concatenate([p.labels for p in parts]) if labelled else None
    return Dataset(inputs, labels)


@dataclass(slots=True)
class Splits:
    """``search`` trains and scores the policy, ``val`` picks the plan, ``finetune`` trains it,
    ``test`` (the file's own test set, else ``val``) gives the reported figures."""

    search: Dataset
    val: Dataset
    finetune: Dataset
    test: Dataset


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"data file {path} is not a readable .npz archive ({exc})") from None


def _check_input(path: Path, key: str, array: np.ndarray, spec: Value) -> np.ndarray:
    shape = spec.shape or ()
    if array.ndim != len(shape):
        raise DataError(
            f"{path}: array {key!r} has shape {list(array.shape)}, the model's input "
            f"{spec.name!r} has rank {len(shape)} ({list(shape)})"
        )
    for axis, (got, want) in enumerate(zip(array.shape[1:], shape[1:], strict=True), start=1):
        if isinstance(want, int) and got != want:
            raise DataError(
                f"{path}: array {key!r} has shape {list(array.shape)}, the model's input "
                f"{spec.name!r} needs {list(shape)} (axis {axis}: {got} != {want})"
            )
    want_float = spec.dtype.startswith(("float", "bfloat"))
    if want_float and array.dtype.kind not in _FLOAT_KINDS + _INT_KINDS:
        raise DataError(f"{path}: array {key!r} has dtype {array.dtype}, expected numbers")
    if not want_float and array.dtype.kind not in _INT_KINDS:
        raise DataError(f"{path}: array {key!r} has dtype {array.dtype}, expected integers")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(f"{path}: array {key!r} holds {bad} NaN or infinite values")
    target = np.float32 if want_float else np.dtype(spec.dtype)
    return np.ascontiguousarray(array.astype(target, copy=False))


def _check_labels(path: Path, key: str, labels: np.ndarray, n: int, classes: int | None):
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: labels {key!r} must be a 1-D integer array, got dtype {labels.dtype} "
            f"shape {list(labels.shape)}"
        )
    if labels.shape[0] != n:
        raise DataError(f"{path}: labels {key!r} hold {labels.shape[0]} entries for {n} samples")
    if n and (labels.min() < 0 or (classes is not None and labels.max() >= classes)):
        raise DataError(
            f"{path}: labels {key!r} range over [{labels.min()}, {labels.max()}], "
            f"the model has {classes} classes (0..{(classes or 1) - 1})"
        )
    return labels.astype(np.int64)


def _dataset(
    path: Path,
    arrays: dict[str, np.ndarray],
    keys: list[str],
    label_key: str,
    specs: Sequence[Value],
    classes: int | None,
) -> Dataset:
    inputs = [_check_input(path, k, arrays[k], s) for k, s in zip(keys, specs, strict=True)]
    sizes = {a.shape[0] for a in inputs}
    if len(sizes) != 1:
        raise DataError(f"{path}: input arrays {keys} have different numbers of samples {sizes}")
    labels = None
    if label_key in arrays:
        labels = _check_labels(path, label_key, arrays[label_key], len(inputs[0]), classes)
    return Dataset(inputs, labels)


def load_data(
    path: str | Path, specs: Sequence[Value], num_classes: int | None = None
) -> tuple[Dataset, Dataset | None]:
    """Read and check ``path`` against the model's inputs; returns (data, test data or None)."""
    path = Path(path)
    arrays = _read_npz(path)
    names = [s.name for s in specs]
    if all(n in arrays for n in names):
        keys = names
    elif len(specs) == 1 and "x" in arrays:
        keys = ["x"]
    else:
        raise DataError(
            f"{path}: expected arrays named {names}"
            f"{' (or x)' if len(specs) == 1 else ''}, found {sorted(arrays)}"
        )
    data = _dataset(path, arrays, keys, "y", specs, num_classes)
    test_keys = [f"{k}_test" for k in keys]
    test = None
    if all(k in arrays for k in test_keys):
        test = _dataset(path, arrays, test_keys, "y_test", specs, num_classes)
    if len(data) < MIN_SAMPLES:
        raise DataError(
            f"{path}: {len(data)} samples are too few to split into search, validation and "
            f"fine-tuning parts; give at least {MIN_SAMPLES}"
        )
    return data, test


def split_data(
    data: Dataset,
    test: Dataset | None,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.4, 0.2, 0.4),
) -> Splits:
    """Shuffle with ``seed`` and cut into search / validation / fine-tune parts."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_search = int(round(fractions[0] * len(data)))
    n_val = int(round(fractions[1] * len(data)))
    search = data.subset(order[:n_search])
    val = data.subset(order[n_search : n_search + n_val])
    finetune = data.subset(order[n_search + n_val :])
    return Splits(search, val, finetune, test if test is not None else val)
