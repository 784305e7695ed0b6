"""Shapes and dtypes of IR values.

A dimension is an ``int`` or, when it is symbolic (a dynamic batch, a sequence length), a
``str`` such as ``"batch"`` or ``"batch*197"``. A dtype is the torch name of the element type
(``"float32"``, ``"int64"``, ...), so it converts both ways to torch and ONNX without tables
scattered across the code.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "Dim",
    "Shape",
    "DTYPES",
    "to_torch_dtype",
    "from_torch_dtype",
    "is_static",
    "numel",
    "concrete_shape",
]

Dim = int | str
Shape = tuple[Dim, ...]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_FROM_TORCH = {v: k for k, v in DTYPES.items()}


def to_torch_dtype(dtype: str) -> torch.dtype:
    return DTYPES[dtype]


def from_torch_dtype(dtype: torch.dtype) -> str:
    try:
        return _FROM_TORCH[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype} is not supported by the natopt IR") from None


def is_static(shape: Shape | None) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def concrete_shape(shape: Shape, symbols: dict[str, int] | None = None) -> tuple[int, ...]:
    """Evaluate a shape with symbolic dims bound by ``symbols`` (unbound symbols count as 1).

    A dim such as ``"batch*197"`` is a product of a symbol and integer factors.
    """
    symbols = symbols or {}
    out = []
    for d in shape:
        if isinstance(d, int):
            out.append(d)
            continue
        value = 1
        for factor in d.split("*"):
            value *= int(factor) if factor.isdigit() else symbols.get(factor, 1)
        out.append(value)
    return tuple(out)


def numel(shape: Shape | None, symbols: dict[str, int] | None = None) -> int:
    if shape is None:
        return 0
    return math.prod(concrete_shape(shape, symbols))
