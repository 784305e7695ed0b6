"""Data-movement ops: reshape, transpose, slicing, concatenation, padding, casts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from natopt.ir.registry import OpSpec, register
from natopt.ir.types import to_torch_dtype


def reshape(x, shape_input=None, *, shape=()):
    """ONNX conventions: -1 is inferred, 0 copies the input's dim at that position.

    The target comes from ``shape`` or, when given, from the int64 tensor ``shape_input``.
    """
    target = shape if shape_input is None else [int(s) for s in shape_input.tolist()]
    target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return torch.reshape(x, target)


def flatten(x, *, start_dim=1, end_dim=-1):
    return torch.flatten(x, start_dim, end_dim)


def transpose(x, *, perm=()):
    return torch.permute(x, perm)


def squeeze(x, *, axes=None):
    return torch.squeeze(x) if axes is None else torch.squeeze(x, axes)


def unsqueeze(x, *, axes=(0,)):
    for axis in sorted(a % (x.dim() + len(axes)) for a in axes):
        x = torch.unsqueeze(x, axis)
    return x


def slice_(x, *, starts=(), ends=(), axes=(), steps=()):
    """Python slicing per axis; a negative step (ONNX: ``Slice(x, -1, INT64_MIN, -1)``
    reverses) walks down from ``start`` to above ``end``, both clamped into the axis."""
    index = [slice(None)] * x.dim()
    backwards = []
    for start, end, axis, step in zip(starts, ends, axes, steps or (1,) * len(axes), strict=True):
        if step > 0:
            index[axis] = slice(start, end, step)
        else:
            backwards.append((start, end, axis, step))
    x = x[tuple(index)]
    for start, end, axis, step in backwards:
        length = x.shape[axis]
        first = min(max(start + length if start < 0 else start, 0), length - 1)
        last = min(max(end + length if end < 0 else end, -1), length - 1)
        x = x.index_select(axis, torch.arange(first, last, step, device=x.device))
    return x


def select(x, *, axis=0, index=0):
    return torch.select(x, axis, index)


def gather(x, indices, *, axis=0):
    """ONNX Gather: pick along ``axis`` by an index tensor of any rank (negatives wrap)."""
    axis = axis % x.dim()
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    picked = torch.index_select(x, axis, indices.reshape(-1))
    return picked.reshape(*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :])


def gather_elements(x, indices, *, axis=0):
    """ONNX GatherElements: ``torch.gather`` along ``axis`` (negative indices wrap)."""
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    return torch.gather(x, axis, indices)


def concat(*xs, axis=0):
    return torch.cat(xs, axis)


def split(x, *, axis=0, sizes=()):
    return tuple(torch.split(x, list(sizes), axis))


def expand(x, shape_input=None, *, shape=()):
    """torch semantics: -1 keeps the input's dim.

    With the int64 tensor ``shape_input`` (a target known only at run time) the target comes
    from it, with ONNX ``Expand`` semantics: numpy broadcasting of ``x`` against the target
    (-1 is read as 1, so a torch-style target works too).
    """
    if shape_input is None:
        return x.expand(*shape)
    target = [1 if int(s) == -1 else int(s) for s in shape_input.tolist()]
    return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(target)))


def tile(x, *, repeats=()):
    """ONNX ``Tile``: ``x`` repeated ``repeats[i]`` times along axis ``i`` (same rank)."""
    return x.repeat(*repeats)


def cumsum(x, *, axis=0, exclusive=False, reverse=False):
    """Running sum along ``axis``; ``exclusive`` leaves out the element itself, ``reverse``
    sums from the end (ONNX ``CumSum``)."""
    y = x.flip(axis) if reverse else x
    out = torch.cumsum(y, axis)
    if exclusive:
        out = out - y
    return out.flip(axis) if reverse else out


def range_(start, limit, delta):
    """ONNX ``Range`` of three scalar tensors: ``start, start + delta, ...`` below ``limit``.

    The length depends on the values, so shape inference cannot run it on meta tensors.
    """
    return torch.arange(
        start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device
    )


def pad(x, *, pads=(), mode="constant", value=0.0):
    """``pads`` in torch order: (last dim begin, last dim end, previous dim begin, ...)."""
    if mode == "constant":
        return F.pad(x, pads, mode, value)
    return F.pad(x, pads, mode)


def cast(x, *, dtype="float32"):
    return x.to(to_torch_dtype(dtype))


def shape_of(x):
    return torch.tensor(x.shape, dtype=torch.int64, device=x.device)


register(OpSpec("Reshape", "shape", reshape, attrs={"shape": ()}))
register(OpSpec("Flatten", "shape", flatten, attrs={"start_dim": 1, "end_dim": -1}))
register(OpSpec("Transpose", "shape", transpose, attrs={"perm": ()}))
register(OpSpec("Squeeze", "shape", squeeze, attrs={"axes": None}))
register(OpSpec("Unsqueeze", "shape", unsqueeze, attrs={"axes": (0,)}))
register(
    OpSpec("Slice", "shape", slice_, attrs={"starts": (), "ends": (), "axes": (), "steps": ()})
)
register(
    OpSpec(
        "Select",
        "shape",
        select,
        attrs={"axis": 0, "index": 0},
        doc="x.select(axis, index): drops the axis",
    )
)
register(OpSpec("Gather", "shape", gather, attrs={"axis": 0}))
register(OpSpec("GatherElements", "shape", gather_elements, attrs={"axis": 0}))
register(OpSpec("Concat", "shape", concat, attrs={"axis": 0}))
register(
    OpSpec(
        "Split",
        "shape",
        split,
        attrs={"axis": 0, "sizes": ()},
        num_outputs=lambda attrs: len(attrs["sizes"]),
    )
)
register(OpSpec("Expand", "shape", expand, attrs={"shape": ()}))
register(OpSpec("Tile", "shape", tile, attrs={"repeats": ()}))
register(
    OpSpec("CumSum", "reduce", cumsum, attrs={"axis": 0, "exclusive": False, "reverse": False})
)
register(OpSpec("Range", "source", range_, doc="arange(start, limit, delta) of scalar tensors"))
register(OpSpec("Pad", "shape", pad, attrs={"pads": (), "mode": "constant", "value": 0.0}))
register(OpSpec("Cast", "elementwise", cast, attrs={"dtype": "float32"}))
register(OpSpec("Shape", "source", shape_of, doc="the input's shape as an int64 vector"))
