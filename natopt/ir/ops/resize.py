"""Resize: ONNX ``Resize`` semantics (nearest, linear, cubic), one axis at a time.

For each resized axis of input length ``L``, output length ``n`` (``sizes``, else
``floor(L * scale)``) and scale ``s`` (``scales``, else ``n / L``), output index ``i`` reads the
source coordinate ``c(i)`` of the ``coordinate_transformation_mode``:

- ``half_pixel``: ``(i + 0.5) / s - 0.5``; ``pytorch_half_pixel``: the same, ``0`` when ``n == 1``;
- ``half_pixel_symmetric``: ``half_pixel`` shifted by ``L / 2 * (1 - n / (L * s))``;
- ``align_corners``: ``i * (L - 1) / (n - 1)`` (``0`` when ``n == 1``); ``asymmetric``: ``i / s``.

``nearest`` takes the element at ``c`` rounded by ``nearest_mode``; ``linear`` blends the two
elements around ``c``; ``cubic`` the four, with Keys' kernel of parameter ``cubic_coeff_a``.
Indices outside ``[0, L)`` read the edge element, or, for ``cubic`` with ``exclude_outside``,
get weight zero (the others renormalised). Multi-axis modes are separable, so resizing one axis
after another is the N-d resize.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from natopt.ir.registry import OpSpec, register

__all__ = ["resize", "COORDINATE_MODES", "NEAREST_MODES", "RESIZE_MODES"]

Coords = Callable[[torch.Tensor, int, int, float], torch.Tensor]

COORDINATE_MODES: dict[str, Coords] = {
    "half_pixel": lambda i, length, n, s: (i + 0.5) / s - 0.5,
    "pytorch_half_pixel": lambda i, length, n, s: (
        (i + 0.5) / s - 0.5 if n > 1 else torch.zeros_like(i)
    ),
    "half_pixel_symmetric": lambda i, length, n, s: (
        length / 2 * (1 - n / (length * s)) + (i + 0.5) / s - 0.5
    ),
    "align_corners": lambda i, length, n, s: (
        i * ((length - 1) / (n - 1)) if n > 1 else torch.zeros_like(i)
    ),
    "asymmetric": lambda i, length, n, s: i / s,
}

NEAREST_MODES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "round_prefer_floor": lambda c: torch.ceil(c - 0.5),
    "round_prefer_ceil": lambda c: torch.floor(c + 0.5),
    "floor": torch.floor,
    "ceil": torch.ceil,
}


def _taps(x: torch.Tensor, axis: int, index: torch.Tensor) -> torch.Tensor:
    """``x`` gathered along ``axis`` at ``index`` clamped into range (edge padding)."""
    return x.index_select(axis, index.clamp(0, x.shape[axis] - 1).long())


def _along(weight: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """A per-output-index weight shaped to broadcast along ``axis`` of ``x``."""
    shape = [1] * x.dim()
    shape[axis] = -1
    return weight.to(x.dtype).reshape(shape)


def _nearest(x, axis, coords, *, nearest_mode, **_):
    return _taps(x, axis, NEAREST_MODES[nearest_mode](coords))


def _linear(x, axis, coords, **_):
    start = torch.floor(coords)
    ratio = _along(coords - start, x, axis)
    return _taps(x, axis, start) * (1 - ratio) + _taps(x, axis, start + 1) * ratio


def _cubic_weights(ratio: torch.Tensor, a: float) -> list[torch.Tensor]:
    """Keys' kernel at distances ``1 + r, r, 1 - r, 2 - r`` from the four taps."""

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(1 + ratio), near(ratio), near(1 - ratio), far(2 - ratio)]


def _cubic(x, axis, coords, *, cubic_coeff_a, exclude_outside, **_):
    start = torch.floor(coords)
    weights = _cubic_weights(coords - start, cubic_coeff_a)
    offsets = (-1, 0, 1, 2)
    if exclude_outside:
        length = x.shape[axis]
        inside = [((start + k) >= 0) & ((start + k) < length) for k in offsets]
        weights = [w * m for w, m in zip(weights, inside, strict=True)]
        total = sum(weights)
        weights = [w / total for w in weights]
    return sum(
        _taps(x, axis, start + k) * _along(w, x, axis)
        for k, w in zip(offsets, weights, strict=True)
    )


RESIZE_MODES = {"nearest": _nearest, "linear": _linear, "cubic": _cubic}


def resize(
    x,
    sizes_input=None,
    *,
    axes=(),
    scales=None,
    sizes=None,
    mode="nearest",
    coordinate_transformation_mode="half_pixel",
    nearest_mode="round_prefer_floor",
    cubic_coeff_a=-0.75,
    exclude_outside=False,
):
    """Resize ``x`` along ``axes`` (see the module docstring); ``scales``/``sizes`` per axis.

    ``sizes_input``, an int64 tensor of one size per axis, gives sizes known only at run time
    (a dynamic height and width); shape inference cannot run it on meta tensors.
    """
    if sizes_input is not None:
        sizes = [int(v) for v in sizes_input.tolist()]
    interpolate = RESIZE_MODES[mode]
    to_coords = COORDINATE_MODES[coordinate_transformation_mode]
    for k, axis in enumerate(axes):
        length = x.shape[axis]
        n = sizes[k] if sizes is not None else math.floor(length * scales[k])
        s = scales[k] if scales is not None else n / length
        if n == length and s == 1.0:
            continue
        index = torch.arange(n, dtype=torch.float32, device=x.device)
        coords = to_coords(index, length, n, s)
        x = interpolate(
            x,
            axis,
            coords,
            nearest_mode=nearest_mode,
            cubic_coeff_a=cubic_coeff_a,
            exclude_outside=exclude_outside,
        )
    return x


register(
    OpSpec(
        "Resize",
        "shape",
        resize,
        attrs={
            "axes": (),
            "scales": None,
            "sizes": None,
            "mode": "nearest",
            "coordinate_transformation_mode": "half_pixel",
            "nearest_mode": "round_prefer_floor",
            "cubic_coeff_a": -0.75,
            "exclude_outside": False,
        },
        doc="ONNX Resize: nearest / linear / cubic resampling along axes",
    )
)
