"""Adapters for data-movement ATen ops: views, permutes, slicing, concatenation, casts.

Sizes may be symbolic (``SymDim``, the dynamic batch): a Reshape target keeps them portable
with the ONNX conventions (0 copies the input's dim at that position, -1 is inferred), e.g.
``view(x[batch,197,768], [batch, 197, 12, 64])`` -> ``Reshape(shape=(0, 197, 12, 64))``;
where that is not enough the target is computed at run time from the graph input's shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from natopt.frontends.torch.context import (
    Args,
    LiftContext,
    NotLiftable,
    SymDim,
    aten_ops,
    first_arg,
)
from natopt.ir import Node, Value
from natopt.ir.types import from_torch_dtype

__all__ = ["SHAPE_ADAPTERS", "PARAM_VIEWS"]


def _rank(x: Value) -> int:
    if x.shape is None:
        raise NotLiftable(f"{x.name} has no known rank")
    return len(x.shape)


def _input_dims(x: Value) -> list[int | SymDim]:
    return [d if isinstance(d, int) else SymDim(d) for d in x.shape or ()]


def reshape_to(cx: LiftContext, x: Value, size: Sequence[int | SymDim]) -> Node:
    """Reshape ``x`` to ``size``: attributes when 0/-1 can express it, else a shape tensor."""
    if any(not isinstance(d, (int, SymDim)) for d in size):
        raise NotLiftable(f"reshape target {list(size)} is not made of sizes")
    in_shape = x.shape or ()
    target: list[int] = []
    for i, d in enumerate(size):
        if isinstance(d, int):
            target.append(d)
        elif i < len(in_shape) and in_shape[i] == d.dim:
            target.append(0)
        else:
            target.append(-1)
    if target.count(-1) <= 1:
        return cx.add("Reshape", [x], {"shape": tuple(target)})
    return cx.add("Reshape", [x, cx.shape_tensor(size)])


def view(cx: LiftContext, a: Args) -> Node:
    size = a.get("size", a.get("shape"))
    return reshape_to(cx, cx.value(a["self"]), list(size))


def unflatten(cx: LiftContext, a: Args) -> Node:
    """``unflatten(x, d, sizes)`` -> Reshape to ``x.shape[:d] + sizes + x.shape[d+1:]``."""
    x = cx.value(a["self"])
    dims = _input_dims(x)
    axis = int(a["dim"]) % _rank(x)
    return reshape_to(cx, x, [*dims[:axis], *a["sizes"], *dims[axis + 1 :]])


def flatten(cx: LiftContext, a: Args) -> Node:
    attrs = {"start_dim": int(a["start_dim"]), "end_dim": int(a["end_dim"])}
    return cx.add("Flatten", [cx.value(a["self"])], attrs)


def permute(cx: LiftContext, a: Args) -> Node:
    x = cx.value(a["self"])
    rank = _rank(x)
    return cx.add("Transpose", [x], {"perm": tuple(int(d) % rank for d in a["dims"])})


def transpose(cx: LiftContext, a: Args) -> Node:
    """``transpose(x, i, j)`` -> Transpose with ``i`` and ``j`` swapped in the identity perm."""
    x = cx.value(a["self"])
    rank = _rank(x)
    perm = list(range(rank))
    i, j = int(a.get("dim0", 0)) % rank, int(a.get("dim1", 1 % rank)) % rank
    perm[i], perm[j] = perm[j], perm[i]
    return cx.add("Transpose", [x], {"perm": tuple(perm)})


def expand(cx: LiftContext, a: Args) -> Node:
    """Static sizes (or a symbolic size already in place) -> attrs; else a shape tensor."""
    x = cx.value(a["self"])
    size = list(a["size"])
    offset = len(size) - _rank(x)
    in_shape = x.shape or ()
    target: list[int] = []
    for i, d in enumerate(size):
        if isinstance(d, int):
            target.append(d)
        elif i >= offset and in_shape[i - offset] == d.dim:
            target.append(-1)
        else:
            return cx.add("Expand", [x, cx.shape_tensor(size)])
    return cx.add("Expand", [x], {"shape": tuple(target)})


def concat(cx: LiftContext, a: Args) -> Node:
    inputs = [cx.value(t) for t in a["tensors"]]
    return cx.add("Concat", inputs, {"axis": int(a["dim"])})


def unsqueeze(cx: LiftContext, a: Args) -> Node:
    return cx.add("Unsqueeze", [cx.value(a["self"])], {"axes": (int(a["dim"]),)})


def squeeze(cx: LiftContext, a: Args) -> Node:
    dims = a.get("dim")
    if isinstance(dims, int):
        dims = [dims]
    axes = None if dims is None else tuple(int(d) for d in dims)
    return cx.add("Squeeze", [cx.value(a["self"])], {"axes": axes})


def select(cx: LiftContext, a: Args) -> Node:
    attrs = {"axis": int(a["dim"]), "index": _static(a["index"], "select index")}
    return cx.add("Select", [cx.value(a["self"])], attrs)


def slice_(cx: LiftContext, a: Args) -> Node:
    start = 0 if a["start"] is None else _static(a["start"], "slice start")
    end = 2**63 - 1 if a["end"] is None else _static(a["end"], "slice end")
    attrs = {
        "starts": (start,),
        "ends": (end,),
        "axes": (int(a["dim"]),),
        "steps": (_static(a["step"], "slice step"),),
    }
    return cx.add("Slice", [cx.value(a["self"])], attrs)


def _static(value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise NotLiftable(f"{what} {value!r} is not a static integer")
    return value


def _static_dim(x: Value, dim: int) -> int:
    return _static((x.shape or ())[dim] if x.shape else None, f"size of dim {dim} of {x.name}")


def _split_sizes(total: int, piece: int) -> tuple[int, ...]:
    full, rest = divmod(total, piece)
    return (piece,) * full + ((rest,) if rest else ())


def split(cx: LiftContext, a: Args) -> Node:
    """``split(x, k, d)`` / ``split_with_sizes`` / ``chunk(x, n, d)`` -> one Split node."""
    x = cx.value(a["self"])
    axis = int(a["dim"]) % _rank(x)
    if "split_sizes" in a:
        sizes = tuple(_static(s, "split size") for s in a["split_sizes"])
    elif "chunks" in a:
        total = _static_dim(x, axis)
        sizes = _split_sizes(total, -(-total // int(a["chunks"])))
    elif isinstance(a["split_size"], (list, tuple)):
        sizes = tuple(_static(s, "split size") for s in a["split_size"])
    else:
        sizes = _split_sizes(_static_dim(x, axis), _static(a["split_size"], "split size"))
    return cx.add("Split", [x], {"axis": axis, "sizes": sizes})


def unbind(cx: LiftContext, a: Args) -> list[Value]:
    """``unbind(x, d)`` -> Split into size-1 pieces, each squeezed along ``d``."""
    x = cx.value(a["self"])
    axis = int(a["dim"]) % _rank(x)
    count = _static_dim(x, axis)
    pieces = cx.add("Split", [x], {"axis": axis, "sizes": (1,) * count}).outputs
    return [cx.add("Squeeze", [p], {"axes": (axis,)}).output for p in pieces]


def identity(cx: LiftContext, a: Args) -> Node:
    return cx.add("Identity", [cx.value(first_arg(a))])


def cast(cx: LiftContext, a: Args) -> Node:
    """Any dtype conversion -> Cast to the fx node's output dtype (Identity if unchanged)."""
    x = cx.value(a["self"])
    dtype = from_torch_dtype(cx.example.dtype)
    if dtype == x.dtype:
        return cx.add("Identity", [x])
    return cx.add("Cast", [x], {"dtype": dtype})


def dropout(cx: LiftContext, a: Args) -> Node:
    cx.require_first_output_only()
    return cx.add("Dropout", [cx.value(first_arg(a))], {"p": float(a["p"])})


def pad(cx: LiftContext, a: Args) -> Node:
    mode = a.get("mode", "constant")
    value = a.get("value")
    attrs = {"pads": tuple(int(p) for p in a["pad"]), "mode": mode, "value": float(value or 0.0)}
    return cx.add("Pad", [cx.value(a["self"])], attrs)


def index_select(cx: LiftContext, a: Args) -> Node:
    x = cx.value(a["self"])
    return cx.add("Gather", [x, cx.value(a["index"])], {"axis": int(a["dim"])})


PARAM_VIEWS = frozenset(
    aten_ops(
        "t",
        "permute",
        "transpose.int",
        "view",
        "reshape",
        "_unsafe_view",
        "unsqueeze",
        "squeeze.dim",
        "squeeze.dims",
        "squeeze.default",
        "flatten.using_ints",
        "contiguous",
        "clone",
        "detach",
        "alias",
        "lift_fresh_copy",
        "_to_copy",
        "to.dtype",
        "type_as",
    )
)
"""Ops that, applied to a stored tensor, are evaluated at lift time (same numel, no copy)."""

SHAPE_ADAPTERS: dict[Any, Any] = {
    **dict.fromkeys(aten_ops("view", "reshape", "_unsafe_view"), view),
    **dict.fromkeys(aten_ops("unflatten.int"), unflatten),
    **dict.fromkeys(aten_ops("flatten.using_ints"), flatten),
    **dict.fromkeys(aten_ops("permute"), permute),
    **dict.fromkeys(aten_ops("transpose.int", "t", "numpy_T"), transpose),
    **dict.fromkeys(aten_ops("expand"), expand),
    **dict.fromkeys(aten_ops("cat", "concat", "concatenate"), concat),
    **dict.fromkeys(aten_ops("unsqueeze"), unsqueeze),
    **dict.fromkeys(aten_ops("squeeze.dim", "squeeze.dims", "squeeze.default"), squeeze),
    **dict.fromkeys(aten_ops("select.int"), select),
    **dict.fromkeys(aten_ops("slice.Tensor"), slice_),
    **dict.fromkeys(aten_ops("split.Tensor", "split_with_sizes", "chunk"), split),
    **dict.fromkeys(aten_ops("unbind.int"), unbind),
    **dict.fromkeys(
        aten_ops("contiguous", "clone", "alias", "detach", "detach_", "lift_fresh_copy"), identity
    ),
    **dict.fromkeys(
        aten_ops("_to_copy", "to.dtype", "to.dtype_layout", "to.device", "type_as"), cast
    ),
    **dict.fromkeys(
        aten_ops("dropout", "dropout_", "native_dropout", "feature_dropout", "alpha_dropout"),
        dropout,
    ),
    **dict.fromkeys(aten_ops("constant_pad_nd", "pad"), pad),
    **dict.fromkeys(aten_ops("index_select"), index_select),
}
