"""The ``Resize`` adapter: ONNX ``Resize(X, roi, scales, sizes)`` -> the IR ``Resize`` op.

``scales`` (floats) or ``sizes`` (ints, possibly with symbols from ``Shape``) must be known
before run time; an axis whose scale is 1 or whose size equals the input's dim (the same
symbol, e.g. a dynamic batch) is not resized, and the others become the IR's ``axes`` with
their ``scales`` or ``sizes``. Sizes with symbols of their own (``interpolate(size=
y.shape[-2:])`` with a dynamic height and width) stay a run-time input of the IR op, and the
output takes those symbols as its dims. ``axes`` (opset 18) selects the axes the inputs list;
``keep_aspect_ratio_policy`` ``not_larger``/``not_smaller`` is resolved here into one scale
and rounded sizes (static dims only). ``tf_crop_and_resize`` and ``antialias=1`` are refused
with a message; every other mode (``nearest`` with each ``nearest_mode``, ``linear``, ``cubic``
with ``cubic_coeff_a`` and ``exclude_outside``, each coordinate transformation) lifts.
``Upsample`` (opset 9 and older) reaches here as ``Resize`` through the opset converter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from onnx import NodeProto

from natopt.frontends.onnx.context import Adapter, LiftContext, node_attrs
from natopt.ir import Value
from natopt.ir.ops.resize import COORDINATE_MODES, NEAREST_MODES, RESIZE_MODES
from natopt.ir.types import Dim

__all__ = ["RESIZE_ADAPTERS"]

_POLICIES = {"not_larger": min, "not_smaller": max}


def _choice(cx: LiftContext, node: NodeProto, name: str, value: str, known: dict) -> str:
    if value not in known:
        raise cx.fail(node, f"{name} {value!r} is not supported; supported: {sorted(known)}")
    return value


def _input(cx: LiftContext, node: NodeProto, index: int) -> np.ndarray | None:
    return cx.array(node.input[index]) if len(node.input) > index and node.input[index] else None


def resize(cx: LiftContext, node: NodeProto) -> Value:
    attrs = node_attrs(node)
    if attrs.get("antialias", 0):
        raise cx.fail(node, "antialias=1 is not supported; export with antialias=False")
    x = cx.value(node.input[0])
    shape = list(x.shape or ())
    rank = len(shape)
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    scales, sizes = _input(cx, node, 2), _input(cx, node, 3)
    given = [i for i in (2, 3) if len(node.input) > i and node.input[i]]
    if (scales is None or scales.size == 0) and (sizes is None or sizes.size == 0):
        if given and any(cx.array(node.input[i]) is None for i in given):
            raise cx.fail(
                node, "its scales/sizes are computed from values at run time; export them static"
            )
        raise cx.fail(node, "needs a scales or a sizes input")
    ir_attrs: dict[str, object] = {
        "mode": _choice(cx, node, "mode", attrs.get("mode", "nearest"), RESIZE_MODES),
        "coordinate_transformation_mode": _choice(
            cx,
            node,
            "coordinate_transformation_mode",
            attrs.get("coordinate_transformation_mode", "half_pixel"),
            COORDINATE_MODES,
        ),
        "nearest_mode": _choice(
            cx, node, "nearest_mode", attrs.get("nearest_mode", "round_prefer_floor"), NEAREST_MODES
        ),
        "cubic_coeff_a": float(attrs.get("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(attrs.get("exclude_outside", 0)),
    }
    given_size = scales.size if scales is not None and scales.size else sizes.size  # type: ignore[union-attr]
    if given_size != len(axes):
        raise cx.fail(
            node, f"has {given_size} scales/sizes for {len(axes)} axes of its input {shape}"
        )
    if scales is not None and scales.size:
        pairs = [(a, float(s)) for a, s in zip(axes, scales.reshape(-1).tolist(), strict=True)]
        resized = [(a, s) for a, s in pairs if s != 1.0]
        ir_attrs.update(axes=tuple(a for a, _ in resized), scales=tuple(s for _, s in resized))
    else:
        targets: list[Dim] = list(sizes.reshape(-1).tolist())  # type: ignore[union-attr]
        if _dynamic(shape, axes, targets):
            return _run_time_sizes(cx, node, x, axes, targets, ir_attrs, attrs)
        ir_attrs.update(_sized(cx, node, shape, axes, targets, attrs))
    return cx.emit(node, "Resize", [x], ir_attrs).output


def _dynamic(shape: list[Dim], axes: list[int], targets: list[Dim]) -> bool:
    """Whether some axis changes size and that size or the input's is symbolic."""
    return any(
        t != shape[a] and not (isinstance(t, int) and isinstance(shape[a], int))
        for a, t in zip(axes, targets, strict=True)
    )


def _run_time_sizes(
    cx: LiftContext,
    node: NodeProto,
    x: Value,
    axes: list[int],
    targets: list[Dim],
    ir_attrs: dict[str, object],
    attrs: dict[str, Any],
) -> Value:
    """``Resize(x, sizes)`` with the sizes tensor computed at run time (dynamic dims)."""
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise cx.fail(node, "keep_aspect_ratio_policy needs static dims; export with a fixed size")
    out = list(x.shape or ())
    for a, t in zip(axes, targets, strict=True):
        out[a] = t
    ir_attrs["axes"] = tuple(axes)
    sizes = cx.value(node.input[3])
    return cx.emit(node, "Resize", [x, sizes], ir_attrs, shapes=[tuple(out)]).output


def _sized(
    cx: LiftContext,
    node: NodeProto,
    shape: list[Dim],
    axes: list[int],
    targets: list[Dim],
    attrs: dict[str, Any],
) -> dict[str, object]:
    """IR ``axes``/``sizes`` (and ``scales`` for a kept aspect ratio) from a sizes input."""
    changed = [(a, t) for a, t in zip(axes, targets, strict=True) if t != shape[a]]
    policy = attrs.get("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return {"axes": tuple(a for a, _ in changed), "sizes": tuple(t for _, t in changed)}
    pick = _POLICIES.get(policy)
    dims = [shape[a] for a in axes]
    if pick is None or not all(isinstance(d, int) for d in dims):
        raise cx.fail(
            node, f"keep_aspect_ratio_policy {policy!r} needs static dims; export a fixed size"
        )
    scale = pick(t / d for t, d in zip(targets, dims, strict=True))
    out = [math.floor(scale * d + 0.5) for d in dims]
    return {"axes": tuple(axes), "sizes": tuple(out), "scales": (scale,) * len(axes)}


RESIZE_ADAPTERS: dict[str, Adapter] = {"Resize": resize}
