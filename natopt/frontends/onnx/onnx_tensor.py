"""Adapters for ONNX data-movement ops: reshapes, transposes, slicing, gathers, pads, casts.

Small int64 inputs that are known before run time (``Reshape`` shape, ``Squeeze``/
``Unsqueeze`` axes, ``Slice`` starts/ends/axes/steps, ``Split`` sizes, ``Pad`` pads) become
attributes. A target with symbolic dims becomes attributes through the ONNX conventions where
it can (``Reshape(x[batch,197,768], [batch,197,12,64])`` -> ``shape=(0, 197, 12, 64)``;
``Expand(cls[1,1,192], [batch,1,1])`` keeps -1 where it broadcasts) and a run-time shape
tensor input otherwise. ``Gather`` of rows of a float initializer by integer indices ->
``Embedding``; of one constant index -> ``Select``. ``Flatten(axis)`` (always 2-D) ->
``Flatten`` ops, ``Pad`` pads go from ONNX order (all begins, then all ends) to torch order
(last dim first).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, numpy_helper

from natopt.frontends.onnx.context import Adapter, LiftContext, node_attrs
from natopt.frontends.onnx.load import ir_dtype
from natopt.ir import Value
from natopt.ir.types import Dim

__all__ = ["TENSOR_ADAPTERS"]

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _rank(value: Value) -> int:
    return len(value.shape or ())


def reshape(cx: LiftContext, node: NodeProto) -> Value:
    x = cx.value(node.input[0])
    target = cx.array(node.input[1])
    if target is None:
        return cx.emit(node, "Reshape", [x, cx.value(node.input[1])]).output
    dims: list[Dim] = [d if isinstance(d, str) else int(d) for d in target.reshape(-1).tolist()]
    if node_attrs(node).get("allowzero", 0) and 0 in dims:
        raise cx.fail(node, "allowzero=1 with a zero in the target shape is not supported")
    in_shape = list(x.shape or ())
    shape = [
        d if isinstance(d, int) else 0 if i < len(in_shape) and in_shape[i] == d else -1
        for i, d in enumerate(dims)
    ]
    if shape.count(-1) <= 1:
        return cx.emit(node, "Reshape", [x], {"shape": tuple(shape)}).output
    return cx.emit(node, "Reshape", [x, cx.value(node.input[1])]).output


def expand(cx: LiftContext, node: NodeProto) -> Value:
    """ONNX broadcasting ``x`` against the target -> torch ``expand`` sizes (-1 keeps)."""
    return _expand(cx, node, cx.value(node.input[0]), node.input[1])


def constant_of_shape(cx: LiftContext, node: NodeProto) -> Value:
    """``ConstantOfShape(shape)``: its one-element ``value`` (default float 0) broadcast to
    ``shape``, i.e. an ``Expand`` of that element, so a shape with symbolic dims lifts too."""
    fill = node_attrs(node).get("value")
    element = numpy_helper.to_array(fill) if fill is not None else np.zeros(1, np.float32)
    scalar = cx.constant(element.reshape(()), f"{node.output[0]}.fill")  # broadcasts to any shape
    return _expand(cx, node, scalar, node.input[0])


def _expand(cx: LiftContext, node: NodeProto, x: Value, target_name: str) -> Value:
    target = cx.array(target_name)
    if target is None:
        return cx.emit(node, "Expand", [x, cx.value(target_name)]).output
    given: list[Dim] = [d if isinstance(d, str) else int(d) for d in target.reshape(-1).tolist()]
    rank = max(len(given), len(x.shape or ()))
    ones: list[Dim] = [1] * (rank - len(given))
    dims = ones + given
    in_shape: list[Dim | None] = [None] * (rank - len(x.shape or ())) + list(x.shape or ())
    sizes: list[int] = []
    out_shape: list[Dim] = []
    for t, d in zip(dims, in_shape, strict=True):
        keep = d is not None and (t == 1 or t == d)
        out_shape.append(d if keep else t)  # type: ignore[arg-type]
        sizes.append(-1 if keep else t)  # type: ignore[arg-type]
    if all(isinstance(s, int) for s in sizes):
        return cx.emit(node, "Expand", [x], {"shape": tuple(sizes)}).output
    shape_tensor = cx.value(target_name)
    return cx.emit(node, "Expand", [x, shape_tensor], shapes=[tuple(out_shape)]).output


def flatten(cx: LiftContext, node: NodeProto) -> Value:
    """ONNX ``Flatten(axis)`` -> ``[prod(dims[:axis]), prod(dims[axis:])]``."""
    x = cx.value(node.input[0])
    rank = _rank(x)
    axis = int(node_attrs(node).get("axis", 1)) % (rank + 1)
    if axis == 0:
        return cx.emit(node, "Reshape", [x], {"shape": (1, -1)}).output
    if axis == 1 and rank >= 2:
        return cx.emit(node, "Flatten", [x], {"start_dim": 1, "end_dim": -1}).output
    head = cx.emit(node, "Flatten", [x], {"start_dim": 0, "end_dim": axis - 1}, suffix=".head")
    if axis == rank:
        return cx.emit(node, "Unsqueeze", [head.output], {"axes": (1,)}).output
    return cx.emit(node, "Flatten", [head.output], {"start_dim": 1, "end_dim": -1}).output


def transpose(cx: LiftContext, node: NodeProto) -> Value:
    x = cx.value(node.input[0])
    perm = node_attrs(node).get("perm", list(reversed(range(_rank(x)))))
    return cx.emit(node, "Transpose", [x], {"perm": tuple(perm)}).output


def squeeze(cx: LiftContext, node: NodeProto) -> Value:
    return cx.emit(node, "Squeeze", [cx.value(node.input[0])], {"axes": cx.axes(node, 1)}).output


def unsqueeze(cx: LiftContext, node: NodeProto) -> Value:
    axes = cx.axes(node, 1)
    return cx.emit(node, "Unsqueeze", [cx.value(node.input[0])], {"axes": axes}).output


def slice_(cx: LiftContext, node: NodeProto) -> Value:
    x = cx.value(node.input[0])
    starts = cx.ints(node, 1, "starts")
    ends = cx.ints(node, 2, "ends")
    if starts is None or ends is None:
        raise cx.fail(node, "needs starts and ends inputs")
    axes = cx.ints(node, 3, "axes") or tuple(range(len(starts)))
    steps = cx.ints(node, 4, "steps") or (1,) * len(starts)
    if 0 in steps:
        raise cx.fail(node, f"steps {steps} must not be zero")
    attrs = {
        "starts": starts,
        "ends": ends,
        "axes": tuple(a % _rank(x) for a in axes),
        "steps": steps,
    }
    return cx.emit(node, "Slice", [x], attrs).output


def gather(cx: LiftContext, node: NodeProto) -> Value:
    axis = int(node_attrs(node).get("axis", 0))
    data = cx.const(node.input[0])
    indices = cx.const(node.input[1])
    if (
        data is not None
        and indices is None
        and axis == 0
        and data.ndim == 2
        and data.dtype.kind == "f"
    ):
        idx = cx.value(node.input[1])
        source = cx.source(node, node.input[0])
        return cx.emit(node, "Embedding", [idx], weights={"weight": data}, source=source).output
    x = cx.value(node.input[0])
    if indices is not None and indices.ndim == 0:
        attrs = {"axis": axis, "index": int(indices)}
        return cx.emit(node, "Select", [x], attrs).output
    return cx.emit(node, "Gather", [x, cx.value(node.input[1])], {"axis": axis}).output


def gather_elements(cx: LiftContext, node: NodeProto) -> Value:
    x, indices = cx.value(node.input[0]), cx.value(node.input[1])
    axis = int(node_attrs(node).get("axis", 0)) % _rank(x)
    return cx.emit(node, "GatherElements", [x, indices], {"axis": axis}).output


def concat(cx: LiftContext, node: NodeProto) -> Value:
    inputs = [cx.value(name) for name in node.input]
    return cx.emit(node, "Concat", inputs, {"axis": int(node_attrs(node)["axis"])}).output


def split(cx: LiftContext, node: NodeProto) -> list[Value]:
    x = cx.value(node.input[0])
    attrs = node_attrs(node)
    axis = int(attrs.get("axis", 0)) % _rank(x)
    sizes = cx.ints(node, 1, "split") or tuple(attrs.get("split", ()))
    if not sizes:
        size = (x.shape or ())[axis]
        if not isinstance(size, int):
            raise cx.fail(node, f"splitting the symbolic dim {size!r} needs explicit sizes")
        parts = int(attrs.get("num_outputs", len(node.output)))
        chunk = -(-size // parts)
        sizes = tuple(min(chunk, size - i * chunk) for i in range(parts))
    dim = (x.shape or ())[axis]
    if not isinstance(dim, int):  # fixed sizes of a dynamic dim: traced at one size only
        raise cx.fail(
            node,
            f"splits the dynamic dim {dim!r} into fixed sizes {list(sizes)}: the model was "
            f"exported for size {sum(sizes)} on axis {axis} only; export it with that dim static",
        )
    ir_node = cx.emit(node, "Split", [x], {"axis": axis, "sizes": tuple(sizes)})
    return list(ir_node.outputs)


def pad(cx: LiftContext, node: NodeProto) -> Value:
    x = cx.value(node.input[0])
    rank = _rank(x)
    pads = cx.ints(node, 1, "pads")
    if pads is None:
        raise cx.fail(node, "needs a pads input")
    axes = cx.ints(node, 3, "axes") or tuple(range(rank))
    n = len(axes)
    begins, ends = [0] * rank, [0] * rank
    for axis, begin, end in zip(axes, pads[:n], pads[n:], strict=True):
        begins[axis % rank], ends[axis % rank] = begin, end
    mode = node_attrs(node).get("mode", "constant")
    used = next((i for i in range(rank) if begins[i] or ends[i]), rank)
    if mode != "constant":  # torch pads all dims but N and C in these modes
        if used < 2:
            raise cx.fail(node, f"{mode} padding of the batch or channel dim is not supported")
        used = 2
    torch_pads: list[int] = []
    for axis in reversed(range(used, rank)):
        torch_pads += [begins[axis], ends[axis]]
    attrs = {"pads": tuple(torch_pads), "mode": _PAD_MODES[mode], "value": cx.scalar(node, 2, 0.0)}
    return cx.emit(node, "Pad", [x], attrs).output


def cast(cx: LiftContext, node: NodeProto) -> Value:
    dtype = ir_dtype(int(node_attrs(node)["to"]), cx.where(node))
    return cx.emit(node, "Cast", [cx.value(node.input[0])], {"dtype": dtype}).output


def shape(cx: LiftContext, node: NodeProto) -> Value:
    attrs = node_attrs(node)
    if "start" in attrs or "end" in attrs:
        raise cx.fail(node, "start/end of a Shape with unknown rank are not supported")
    return cx.emit(node, "Shape", [cx.value(node.input[0])]).output


TENSOR_ADAPTERS: dict[str, Adapter] = {
    "Reshape": reshape,
    "Expand": expand,
    "ConstantOfShape": constant_of_shape,
    "Flatten": flatten,
    "Transpose": transpose,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Slice": slice_,
    "Gather": gather,
    "GatherElements": gather_elements,
    "Concat": concat,
    "Split": split,
    "Pad": pad,
    "Cast": cast,
    "Shape": shape,
}
