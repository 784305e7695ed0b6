"""Callables an ``Opaque`` node can hold for torch code that has no single ATen target.

- ``TensorResults``: a callable whose result mixes tensors and other values
  (``multi_head_attention_forward`` returns ``(out, None)``) reduced to its tensors, so every
  output of the Opaque node is a tensor with a shape (a single one is returned bare, as a
  one-output node's result is).
- ``ModuleCall``: an ``nn.Module`` the torch-level table does not know, called with its
  parameters and buffers passed in (``torch.func.functional_call``), so they stay visible to
  the graph as ``Constant`` inputs (trainable parameters, counted once) rather than hidden
  inside the callable.

Both carry a ``__name__`` (fx code generation needs one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["TensorResults", "ModuleCall"]


class TensorResults:
    """``target(...)`` reduced to the results at ``positions`` (the tensor ones)."""

    def __init__(self, target: Callable[..., Any], positions: tuple[int, ...]) -> None:
        self.target = target
        self.positions = positions
        self.__name__ = f"{getattr(target, '__name__', 'call')}_tensors"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.target(*args, **kwargs)
        if len(self.positions) == 1:
            return result[self.positions[0]]
        return tuple(result[i] for i in self.positions)

    def __repr__(self) -> str:
        return f"TensorResults({self.target!r}, {self.positions})"


class ModuleCall:
    """Call ``module`` with the given tensors in place of its parameters and buffers named
    ``names``: ``ModuleCall(m, names)(tensors, *args)`` = ``m(*args)`` with ``tensors``."""

    def __init__(self, module: nn.Module, names: tuple[str, ...]) -> None:
        self.module = module
        self.names = names
        self.__name__ = type(module).__name__

    def __call__(self, tensors: tuple[torch.Tensor, ...], *args: Any, **kwargs: Any) -> Any:
        state = dict(zip(self.names, tensors, strict=True))
        return torch.func.functional_call(self.module, state, args, kwargs)

    def __repr__(self) -> str:
        return f"ModuleCall({type(self.module).__name__})"
