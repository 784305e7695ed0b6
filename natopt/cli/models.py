"""Load the model a user names on the command line: an ONNX file or a Python ``module:attr``.

``module:attr`` names a torch module instance, a class, or a zero-argument callable returning
one (``torchvision.models:resnet18``, ``my_model.py:Net``); it is lifted with random example
inputs of the shapes given by ``--input-shape`` (default ``1,3,224,224``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from natopt.errors import FrontendError
from natopt.frontends import lift
from natopt.ir import Graph
from natopt.ir.types import DTYPES, to_torch_dtype

__all__ = ["DEFAULT_SHAPE", "load_model", "parse_shape"]

DEFAULT_SHAPE = "1,3,224,224"


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` -> ``(1, 3, 224, 224)``; a ``FrontendError`` for anything else."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise FrontendError(
            f"--input-shape {text!r}: expected comma-separated positive integers, "
            f"e.g. {DEFAULT_SHAPE}"
        )
    return shape


def _import_module(name: str) -> Any:
    try:
        if name.endswith(".py"):
            path = Path(name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no such file {name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        if "" not in sys.path:
            sys.path.insert(0, "")
        return importlib.import_module(name)
    except Exception as exc:  # the user's module may fail in any way while importing
        raise FrontendError(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from exc


def _instantiate(spec: str) -> torch.nn.Module:
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise FrontendError(
            f"{spec!r} is neither an existing ONNX file nor a Python 'module:attr' "
            "(e.g. torchvision.models:resnet18)"
        )
    target: Any = _import_module(module_name)
    for part in attr.split("."):
        if not hasattr(target, part):
            raise FrontendError(f"{spec}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if isinstance(target, torch.nn.Module):
        return target.eval()
    if not callable(target):
        raise FrontendError(f"{spec}: {attr!r} is neither a torch module nor callable")
    try:
        model = target()
    except Exception as exc:  # the user's constructor may fail in any way
        raise FrontendError(
            f"{spec}: calling {attr}() with no arguments failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"{spec}: {attr}() returned {type(model).__name__}, not a torch module")
    return model.eval()


def _example_input(shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    torch_dtype = to_torch_dtype(dtype)
    if torch_dtype.is_floating_point:
        return torch.randn(shape, dtype=torch_dtype)
    return torch.zeros(shape, dtype=torch_dtype)


def load_model(
    spec: str,
    shapes: Sequence[str] = (),
    dtypes: Sequence[str] = (),
    *,
    dynamic_batch: bool = False,
) -> Graph:
    """Lift the ONNX file or ``module:attr`` named by ``spec`` (shapes: ``"1,3,224,224"``).

    ``dynamic_batch`` keeps a torch model's batch dimension symbolic, so the lifted graph runs
    at any batch size (ONNX files keep whatever their inputs declare).
    """
    path = Path(spec)
    if path.suffix == ".onnx" or path.is_file():
        if not path.is_file():
            raise FrontendError(f"{spec}: no such ONNX file")
        if shapes or dtypes:
            raise FrontendError(
                f"{spec}: an ONNX file carries its input shapes and dtypes; "
                "drop --input-shape / --input-dtype"
            )
        return lift(str(path))
    parsed = [parse_shape(s) for s in shapes or [DEFAULT_SHAPE]]
    dtypes = list(dtypes or ["float32"])
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or len(dtypes) not in (1, len(parsed)):
        raise FrontendError(
            f"--input-dtype {dtypes}: give one dtype, or one per --input-shape, from "
            f"{sorted(DTYPES)}"
        )
    if len(dtypes) == 1:
        dtypes *= len(parsed)
    model = _instantiate(spec)
    inputs = tuple(_example_input(s, d) for s, d in zip(parsed, dtypes, strict=True))
    with torch.no_grad():
        return lift(model, inputs, dynamic_batch=dynamic_batch)
