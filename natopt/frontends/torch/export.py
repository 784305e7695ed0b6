"""Getting a graph out of a torch model: torch.export first, symbolic tracing as a fallback.

Failures become one-line ``FrontendError``s: example inputs the model rejects name their
shape and dtype next to what the model's first layer expects; a model that neither exports
nor traces says why each failed.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from natopt.errors import FrontendError

__all__ = [
    "as_input_tuple",
    "eval_mode",
    "export_module",
    "reason",
    "check_inputs_fit",
]


def reason(exc: BaseException) -> str:
    """The first meaningful line of an exception, short enough for a one-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def _argument_names(model: Any, count: int) -> list[str]:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"#{i}" for i in range(count)]


def as_input_tuple(model: Any, example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """``example_inputs`` as a tuple of tensors; anything else is an error naming the argument."""
    if example_inputs is None:
        raise FrontendError(
            f"lifting a {type(model).__name__} needs example_inputs (a tensor or a tuple of "
            "tensors shaped like a real batch)"
        )
    inputs = (
        tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    )
    for name, value in zip(_argument_names(model, len(inputs)), inputs, strict=True):
        if not isinstance(value, torch.Tensor):
            raise FrontendError(
                f"example input {name!r} of {type(model).__name__}.forward is a "
                f"{type(value).__name__}; natopt lifts tensor inputs only (make it a tensor or "
                "bind it with functools.partial / a wrapper module)"
            )
    return inputs


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the body with every submodule in eval mode; restore each one's flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def export_module(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    dynamic_batch: bool = False,
    static_positions: Sequence[int] = (),
) -> ExportedProgram:
    """``torch.export.export`` (non-strict); with ``dynamic_batch`` dim 0 of every input
    (except ``static_positions``) is one symbolic ``Dim("batch")``."""
    dynamic_shapes = None
    if dynamic_batch:
        batch = Dim("batch")
        dynamic_shapes = tuple(
            {0: batch} if i not in static_positions and t.dim() > 0 else None
            for i, t in enumerate(inputs)
        )
    # inside a torch.compile backend, dynamo's tracing context is active: export under its
    # own, or its shape guards leak into the graph dynamo is compiling
    with torch.no_grad(), torch._guards.tracing(None):
        return torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes, strict=False)


def _describe(inputs: Sequence[torch.Tensor], names: Sequence[str]) -> str:
    return ", ".join(
        f"{name}: shape {list(t.shape)} {str(t.dtype).removeprefix('torch.')}"
        for name, t in zip(names, inputs, strict=True)
    )


def _expected(model: nn.Module) -> str:
    """What the model's first conv or linear layer takes, e.g. "[N, 3, H, W] float32"."""
    for path, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            continue
        dtype = str(weight.dtype).removeprefix("torch.")
        if isinstance(module, nn.modules.conv._ConvNd):
            spatial = ", ".join("HWD"[i] for i in range(weight.dim() - 2))
            channels = module.in_channels
            return f"{path} ({type(module).__name__}) expects [N, {channels}, {spatial}] {dtype}"
        if isinstance(module, nn.Linear):
            return f"{path} ({type(module).__name__}) expects [..., {module.in_features}] {dtype}"
    return ""


def check_inputs_fit(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Run the model once; if it rejects the inputs raise a one-line ``FrontendError``."""
    try:
        with torch.no_grad():
            model(*inputs)
    except Exception as exc:
        names = _argument_names(model, len(inputs))
        expected = _expected(model)
        expected = f"; {expected}" if expected else ""
        raise FrontendError(
            f"example inputs do not fit {type(model).__name__} (given {_describe(inputs, names)}"
            f"{expected}): {reason(exc)}"
        ) from exc
