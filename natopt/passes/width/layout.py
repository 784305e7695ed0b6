"""Where channel spaces lie along one axis of a tensor, and how that moves through reshapes.

A *channel space* is a set of channels that must be pruned together (the union-find element
of ``groups``). A ``Layout`` says how one or more spaces lie along one axis of a value: along
``axis``, of length ``outer · T · inner`` with ``T = Σ sizes`` (the spaces concatenated, as
after a channel ``Concat``), position

    p = (o · T + c) · inner + i,        0 <= o < outer, 0 <= c < T, 0 <= i < inner

holds channel ``c`` of the concatenation. A conv output ``[N, C, H, W]`` has ``axis 1``,
``inner = outer = 1``; after ``Flatten(start_dim=1)`` the same channels lie on axis 1 with
``inner = H·W`` (the classifier's input columns); ``[N, L, 3·D]`` split to ``[N, L, 3, D]``
is not a layout of the ``3·D`` space (the space is cut), so ``relocate`` refuses it.

``relocate`` moves a layout through any reshape (``Reshape``, ``Flatten``, ``Squeeze``,
``Unsqueeze``) by treating the channel index as one mixed-radix digit of the flat index: its
unit is ``u = inner · Π in[axis+1:]`` and its radix ``T``. In the output the digit lies whole
on the axis ``j`` with ``Π out[j+1:] = s`` when ``s | u`` and ``(u / s) · T | out[j]``; then
``inner' = u / s`` and ``outer' = out[j] / (inner' · T)``. The rule is symmetric, so it also
maps an output layout back to the input (constants reached backwards).

``positions`` lists the positions along the axis of the kept channels, for slicing weights
and activations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from natopt.ir.types import Shape

__all__ = ["Layout", "relocate", "positions"]


@dataclass(frozen=True, slots=True)
class Layout:
    """Channel spaces ``spaces`` (concatenated) along ``axis`` (see the module docstring)."""

    axis: int
    spaces: tuple[int, ...]
    inner: int = 1
    outer: int = 1

    def moved(self, axis: int) -> Layout:
        return replace(self, axis=axis)

    @property
    def plain(self) -> bool:
        """One position per channel (no merged dims): what a conv's channel axis needs."""
        return self.inner == 1 and self.outer == 1


def _suffix(dims: Sequence[int | str], start: int) -> int | None:
    tail = dims[start:]
    if not all(isinstance(d, int) for d in tail):
        return None
    return math.prod(int(d) for d in tail)


def relocate(layout: Layout, total: int, source: Shape, target: Shape) -> Layout | None:
    """``layout`` (of ``total`` channels) on a value of shape ``source``, seen on the same data
    reshaped to ``target``; ``None`` when the channel digit does not lie whole on one axis."""
    stride = _suffix(source, layout.axis + 1)
    if stride is None or total < 1:
        return None
    unit = layout.inner * stride
    for j in range(len(target) - 1, -1, -1):
        step, extent = _suffix(target, j + 1), target[j]
        if step is None or not isinstance(extent, int):
            return None
        if unit % step or extent % ((unit // step) * total):
            continue
        inner = unit // step
        return Layout(j, layout.spaces, inner, extent // (inner * total))
    return None


def positions(
    layout: Layout,
    sizes: Sequence[int],
    kept: Mapping[int, Tensor],
    find: Callable[[int], int],
) -> Tensor:
    """Positions along ``layout.axis`` of the kept channels, in increasing order.

    ``sizes[root]``: channels of each space; ``kept``: sorted kept channel indices of the
    pruned spaces (by root); spaces not in ``kept`` keep every channel.
    """
    parts, offset = [], 0
    for space in layout.spaces:
        root = find(space)
        size = sizes[root]
        chosen = kept.get(root)
        parts.append(offset + (torch.arange(size) if chosen is None else chosen))
        offset += size
    channels = torch.cat(parts)
    o = torch.arange(layout.outer)[:, None, None]
    i = torch.arange(layout.inner)[None, None, :]
    return ((o * offset + channels[None, :, None]) * layout.inner + i).reshape(-1)
