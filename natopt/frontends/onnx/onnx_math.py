"""Adapters for ONNX math ops that are not one to one: variadic sums, PRelu, Tile, CumSum,
Range, Einsum and TopK.

- ``Sum(a, b, c)`` -> ``Add(Add(a, b), c)`` and ``Mean`` -> that sum ``Div`` by the count, so
  residual merges stay ``Add`` nodes the passes know (one input: ``Identity``);
- ``PRelu(x, slope)`` with a constant slope -> ``PRelu`` with the slope as its ``weight``;
- ``Tile(x, repeats)`` and ``CumSum(x, axis)``: constant inputs become attributes;
- ``Range(start, limit, delta)`` known only at run time (a limit from a dynamic dim) ->
  ``Range`` whose output length is the symbol (``start = 0``, ``delta = 1``) or ONNX's own
  inferred shape;
- ``Einsum(equation)`` -> ``Einsum`` (torch reads the same notation);
- ``TopK(x, k)`` with a constant ``k`` -> ``TopK`` (values and indices).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from natopt.frontends.onnx.context import Adapter, LiftContext, node_attrs
from natopt.ir import Value
from natopt.ir.types import Dim

__all__ = ["MATH_ADAPTERS"]


def _add_all(cx: LiftContext, node: NodeProto) -> Value:
    values = [cx.value(name) for name in node.input if name]
    total = values[0]
    if len(values) == 1:
        return cx.emit(node, "Identity", [total], suffix=".sum").output
    for k, value in enumerate(values[1:], start=1):
        total = cx.emit(node, "Add", [total, value], suffix=f".sum{k}").output
    return total


def sum_(cx: LiftContext, node: NodeProto) -> Value:
    return _add_all(cx, node)


def mean(cx: LiftContext, node: NodeProto) -> Value:
    total = _add_all(cx, node)
    count = sum(1 for name in node.input if name)
    divisor = cx.constant(np.array(count, dtype=total.dtype), f"{node.name or 'mean'}.count")
    return cx.emit(node, "Div", [total, divisor], suffix=".mean").output


def prelu(cx: LiftContext, node: NodeProto) -> Value:
    slope = cx.const(node.input[1])
    if slope is None:
        raise cx.fail(node, "its slope (input 1) must be an initializer or a constant")
    x = cx.value(node.input[0])
    source = cx.source(node, node.input[1])
    return cx.emit(node, "PRelu", [x], weights={"weight": slope}, source=source).output


def tile(cx: LiftContext, node: NodeProto) -> Value:
    repeats = cx.ints(node, 1, "repeats")
    x = cx.value(node.input[0])
    return cx.emit(node, "Tile", [x], {"repeats": repeats}).output


def cumsum(cx: LiftContext, node: NodeProto) -> Value:
    (axis,) = cx.ints(node, 1, "axis") or (0,)
    attrs = node_attrs(node)
    x = cx.value(node.input[0])
    ir_attrs = {
        "axis": axis % len(x.shape or (1,)),
        "exclusive": bool(attrs.get("exclusive", 0)),
        "reverse": bool(attrs.get("reverse", 0)),
    }
    return cx.emit(node, "CumSum", [x], ir_attrs).output


def range_(cx: LiftContext, node: NodeProto) -> Value:
    start, limit, delta = (cx.array(name) for name in node.input)
    shapes = None
    if start is not None and delta is not None and limit is not None and limit.dtype == object:
        length: Dim = limit.reshape(-1)[0]
        if isinstance(length, str) and int(start) == 0 and int(delta) == 1:
            shapes = [(length,)]
    inputs = [cx.value(name) for name in node.input]
    return cx.emit(node, "Range", inputs, shapes=shapes).output


def einsum(cx: LiftContext, node: NodeProto) -> Value:
    inputs = [cx.value(name) for name in node.input]
    equation = str(node_attrs(node)["equation"]).replace(" ", "")
    return cx.emit(node, "Einsum", inputs, {"equation": equation}).output


def top_k(cx: LiftContext, node: NodeProto) -> list[Value]:
    attrs = node_attrs(node)
    (k,) = cx.ints(node, 1, "k") or (0,)
    x = cx.value(node.input[0])
    ir_attrs = {
        "k": k,
        "axis": int(attrs.get("axis", -1)) % len(x.shape or (1,)),
        "largest": bool(attrs.get("largest", 1)),
        "sorted": bool(attrs.get("sorted", 1)),
    }
    return list(cx.emit(node, "TopK", [x], ir_attrs, num_outputs=2).outputs)


MATH_ADAPTERS: dict[str, Adapter] = {
    "Sum": sum_,
    "Mean": mean,
    "PRelu": prelu,
    "Tile": tile,
    "CumSum": cumsum,
    "Range": range_,
    "Einsum": einsum,
    "TopK": top_k,
}
