"""Benchmark inputs generated from a model's input specs (onnxruntime ``NodeArg``s).

Axis 0 is the batch axis: a symbolic or dynamic size there becomes ``batch``; a static size
that differs from ``batch`` is a ``BenchError``, as is any other dynamic axis (natopt cannot
guess a sequence length). Float inputs are standard normal, integer inputs small
non-negative ints (valid as indices), bool inputs all true; the seed is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from natopt.errors import BenchError

__all__ = ["InputSpec", "resolve_shape", "make_feeds"]

SEED = 0

_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class InputSpec(Protocol):
    """What natopt reads from an onnxruntime ``NodeArg``."""

    name: str
    shape: Sequence[int | str | None]
    type: str


def resolve_shape(spec: InputSpec, batch: int, model: str) -> list[int]:
    """The concrete shape fed to input ``spec`` of ``model`` at batch size ``batch``."""
    shape: list[int] = []
    for axis, dim in enumerate(spec.shape):
        static = isinstance(dim, int) and dim > 0
        if axis == 0 and not static:
            shape.append(batch)
        elif axis == 0 and dim != batch:
            raise BenchError(
                f"{model}: input '{spec.name}' has a static batch of {dim}, not {batch}; "
                f"use --batch {dim} or export the model with a dynamic batch axis"
            )
        elif not static:
            raise BenchError(
                f"{model}: input '{spec.name}' has a dynamic size {dim!r} on axis {axis}; "
                "only the batch axis (0) can be dynamic for natopt bench"
            )
        else:
            shape.append(int(dim))  # type: ignore[arg-type]
    return shape


def make_feeds(specs: Sequence[InputSpec], batch: int, model: str) -> dict[str, np.ndarray]:
    """One array per input of ``model``, shaped by ``resolve_shape``, from a fixed seed."""
    rng = np.random.default_rng(SEED)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        dtype = _DTYPES.get(spec.type)
        if dtype is None:
            raise BenchError(
                f"{model}: input '{spec.name}' has type {spec.type}, which natopt bench "
                f"cannot generate (supported: {', '.join(sorted(_DTYPES))})"
            )
        shape = resolve_shape(spec, batch, model)
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[spec.name] = np.ones(shape, dtype=dtype)
        else:
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds
