"""Fold what is known before the model runs: constants, and shape arithmetic on symbols.

``fold(cx, node)`` binds ``node``'s outputs to known arrays and returns ``True`` when it can:

- ``Constant`` -> its value;
- any op (default domain, not a random one) whose inputs are all numeric known arrays ->
  evaluated once by ``onnx.reference``;
- ``Shape(x)`` of an activation -> the dims of ``x``'s IR shape, e.g. ``["batch", 197, 768]``;
- shape arithmetic on such dims (``Shape``, ``Gather``, ``Concat``, ``Unsqueeze``, ``Squeeze``,
  ``Slice``, ``Reshape``, ``Identity``, integer ``Cast``, ``Mul``/``Div``/``Add``/``Sub`` by
  integers, ``Equal``, ``Where``), e.g. ``Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])`` ->
  ``["batch", -1]``, so that ``Reshape`` and ``Expand`` targets become attributes.

A symbolic dim is a positive size never equal to a literal (``Equal("batch", -1)`` is false);
arithmetic the dims cannot express (``"batch" + 1``) is left to the adapters. A folded
data-movement op (``Identity``, ``Transpose``, ...) of an initializer keeps the initializer's
name among its origins, so the weights it feeds are still named after their module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import NodeProto
from onnx.reference import ReferenceEvaluator

from natopt.frontends.onnx.context import LiftContext, node_attrs
from natopt.ir.types import Dim

__all__ = ["fold"]

_RANDOM = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"}
)
_KEEPS_ORIGIN = frozenset(
    {"Identity", "Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"}
)


class _NotFoldable(Exception):
    """The dims cannot express this result; the node is lifted as an op instead."""


def fold(cx: LiftContext, node: NodeProto) -> bool:
    """Bind ``node``'s outputs to known arrays when they are known before run time."""
    if node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "Constant":
        results = _evaluate(cx, node, {})
    elif node.op_type == "Shape" and cx.array(node.input[0]) is None:
        results = _shape(cx, node)
    else:
        names = [n for n in node.input if n]
        arrays = [cx.array(n) for n in names]
        if not names or any(a is None for a in arrays) or node.op_type in _RANDOM:
            return False
        if all(a.dtype != object for a in arrays):  # type: ignore[union-attr]
            results = _evaluate(cx, node, dict(zip(names, arrays, strict=True)))
        else:
            results = _symbolic(cx, node)
    if results is None:
        return False
    origins = cx.origins.get(node.input[0], ()) if node.op_type in _KEEPS_ORIGIN else ()
    for name, array in zip(node.output, results, strict=False):
        if name:
            cx.bind(name, np.asarray(array), origins)
    return True


def _evaluate(cx: LiftContext, node: NodeProto, feeds: dict) -> list[np.ndarray] | None:
    try:
        return list(ReferenceEvaluator(node, opsets={"": cx.opset}).run(None, feeds))
    except Exception:
        return None


def _shape(cx: LiftContext, node: NodeProto) -> list[np.ndarray] | None:
    value = cx.values.get(node.input[0])
    if value is None or value.shape is None:
        return None
    cx.note_dims(value)
    attrs = node_attrs(node)
    dims = list(value.shape)[attrs.get("start", 0) : attrs.get("end", len(value.shape))]
    return [_dims(dims)]


def _dims(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _obj(array: np.ndarray) -> np.ndarray:
    return array if array.dtype == object else array.astype(np.int64).astype(object)


# ---- dim arithmetic (a dim is an int or "sym" / "sym*k") --------------------------------
def _split(dim: Dim) -> tuple[str, int]:
    symbol, _, factor = str(dim).partition("*")
    return symbol, int(factor or 1)


def _join(symbol: str, factor: int) -> Dim:
    if factor == 0:
        return 0
    return symbol if factor == 1 else f"{symbol}*{factor}"


def _mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if isinstance(a, int):
        a, b = b, a
    if not isinstance(b, int):
        raise _NotFoldable
    symbol, factor = _split(a)
    return _join(symbol, factor * b)


def _div(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return int(a / b)
    if not isinstance(b, int) or b == 0:
        raise _NotFoldable
    symbol, factor = _split(a)
    if factor % b:
        raise _NotFoldable
    return _join(symbol, factor // b)


def _add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if b == 0 or a == 0:
        return a if b == 0 else b
    raise _NotFoldable


def _sub(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if b == 0:
        return a
    raise _NotFoldable


def _equal(a: Dim, b: Dim) -> bool:
    if isinstance(a, str) and isinstance(b, str) and a != b:
        raise _NotFoldable
    return a == b


def _elementwise(fn: Callable[[Dim, Dim], Dim | bool], bool_out: bool = False):
    def run(cx: LiftContext, node: NodeProto, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.vectorize(fn, otypes=[object])(_obj(a), _obj(b))
        return out.astype(bool) if bool_out else out

    return run


def _gather(cx: LiftContext, node: NodeProto, data: np.ndarray, indices: np.ndarray):
    return np.take(data, indices.astype(np.int64), axis=node_attrs(node).get("axis", 0))


def _concat(cx: LiftContext, node: NodeProto, *parts: np.ndarray):
    return np.concatenate([_obj(p) for p in parts], axis=node_attrs(node)["axis"])


def _unsqueeze(cx: LiftContext, node: NodeProto, data: np.ndarray, axes: np.ndarray):
    rank = data.ndim + axes.size
    for axis in sorted(int(a) % rank for a in axes.reshape(-1)):
        data = np.expand_dims(data, axis)
    return data


def _squeeze(cx: LiftContext, node: NodeProto, data: np.ndarray, axes=None):
    return np.squeeze(data, None if axes is None else tuple(int(a) for a in axes.reshape(-1)))


def _slice(cx: LiftContext, node: NodeProto, data, starts, ends, axes=None, steps=None):
    index = [slice(None)] * data.ndim
    axes = range(len(starts)) if axes is None else axes.tolist()
    steps = [1] * len(starts) if steps is None else steps.tolist()
    for start, end, axis, step in zip(starts.tolist(), ends.tolist(), axes, steps, strict=True):
        index[axis] = slice(start, end, step)
    return data[tuple(index)]


def _reshape(cx: LiftContext, node: NodeProto, data: np.ndarray, shape: np.ndarray):
    if shape.dtype == object:
        raise _NotFoldable
    target = [data.shape[i] if s == 0 else int(s) for i, s in enumerate(shape.tolist())]
    return data.reshape(target)


def _cast(cx: LiftContext, node: NodeProto, data: np.ndarray):
    if node_attrs(node)["to"] not in (6, 7):  # INT32, INT64: dims stay dims
        raise _NotFoldable
    return data


def _shape_of_known(cx: LiftContext, node: NodeProto, data: np.ndarray):
    attrs = node_attrs(node)
    return np.array(data.shape[attrs.get("start", 0) : attrs.get("end", data.ndim)], np.int64)


def _where(cx: LiftContext, node: NodeProto, cond: np.ndarray, a: np.ndarray, b: np.ndarray):
    if cond.dtype == object:
        raise _NotFoldable
    return np.where(cond, _obj(a), _obj(b))


_SYMBOLIC: dict[str, Callable[..., np.ndarray]] = {
    "Gather": _gather,
    "Concat": _concat,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Slice": _slice,
    "Reshape": _reshape,
    "Identity": lambda cx, node, data: data,
    "Cast": _cast,
    "Mul": _elementwise(_mul),
    "Div": _elementwise(_div),
    "Add": _elementwise(_add),
    "Sub": _elementwise(_sub),
    "Equal": _elementwise(_equal, bool_out=True),
    "Where": _where,
    "Shape": _shape_of_known,
}


def _symbolic(cx: LiftContext, node: NodeProto) -> list[np.ndarray] | None:
    rule = _SYMBOLIC.get(node.op_type)
    if rule is None:
        return None
    args = [cx.array(n) if n else None for n in node.input]
    try:
        result = rule(cx, node, *args)
    except (_NotFoldable, IndexError, ValueError, TypeError):
        return None
    return [result if isinstance(result, np.ndarray) else np.array(result, dtype=object)]
