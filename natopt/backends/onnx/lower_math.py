"""Emitters for the IR math ops that need more than a renaming: ``PRelu`` (its weight),
``Mish``, ``ArgMax``/``ArgMin``, ``TopK``, ``Tile``, ``CumSum`` and ``Resize``.

- ``Mish`` -> ``Mish`` from opset 18, else ``x * tanh(softplus(x))``;
- ``Tile`` repeats and the ``CumSum`` axis become int64 initializers;
- ``Resize`` -> ``Resize`` with its ``axes`` attribute from opset 18 (only the resized axes
  listed); before it, full-rank ``scales`` (1 for the other axes) or, with static dims,
  full-rank ``sizes``; ``half_pixel_symmetric`` needs opset 19. A resize with both sizes and
  scales (a kept aspect ratio) is not lowerable and goes through the torch exporter; run-time
  sizes stay an input.
"""

from __future__ import annotations

import numpy as np

from natopt.backends.onnx.context import EmitContext, NotLowerable
from natopt.ir import Node

__all__ = ["MATH_EMITTERS"]


def prelu(cx: EmitContext, node: Node) -> None:
    cx.add("PRelu", [cx.name(cx.arg(node, 0)), cx.weight(node, "weight")], cx.out(node))


def mish(cx: EmitContext, node: Node) -> None:
    if cx.opset >= 18:
        cx.add("Mish", cx.inputs(node), cx.out(node))
        return
    x = cx.name(cx.arg(node, 0))
    cx.add("Mul", [x, cx.add("Tanh", [cx.add("Softplus", [x])])], cx.out(node))


def tile(cx: EmitContext, node: Node) -> None:
    repeats = cx.ints(node.attrs["repeats"], "repeats")
    cx.add("Tile", [cx.name(cx.arg(node, 0)), repeats], cx.out(node))


def cumsum(cx: EmitContext, node: Node) -> None:
    axis = cx.tensor(np.array(node.attrs["axis"], dtype=np.int64), "axis")
    flags = {"exclusive": int(node.attrs["exclusive"]), "reverse": int(node.attrs["reverse"])}
    cx.add("CumSum", [cx.name(cx.arg(node, 0)), axis], cx.out(node), **flags)


def top_k(cx: EmitContext, node: Node) -> None:
    k = cx.ints([node.attrs["k"]], "k")
    flags = {"largest": int(node.attrs["largest"]), "sorted": int(node.attrs["sorted"])}
    outputs = [cx.out(node, 0), cx.out(node, 1)]
    cx.add("TopK", [cx.name(cx.arg(node, 0)), k], outputs, axis=node.attrs["axis"], **flags)


def resize(cx: EmitContext, node: Node) -> None:
    a = node.attrs
    x = cx.arg(node, 0)
    if a["scales"] is not None and a["sizes"] is not None:
        raise NotLowerable(f"Resize {node.name}: both scales and sizes (a kept aspect ratio)")
    if a["coordinate_transformation_mode"] == "half_pixel_symmetric" and cx.opset < 19:
        raise NotLowerable(f"Resize {node.name}: half_pixel_symmetric needs opset 19")
    axes = list(a["axes"])
    scales, sizes = a["scales"], a["sizes"]
    attrs = {
        "mode": a["mode"],
        "coordinate_transformation_mode": a["coordinate_transformation_mode"],
        "nearest_mode": a["nearest_mode"],
        "cubic_coeff_a": a["cubic_coeff_a"],
        "exclude_outside": int(a["exclude_outside"]),
    }
    if len(node.inputs) > 1:  # sizes known at run time, one per axis
        _run_time_sizes(cx, node, attrs)
        return
    if not axes:
        cx.add("Identity", [cx.name(x)], cx.out(node))
        return
    if cx.opset >= 18:
        attrs["axes"] = axes
    else:
        dims = cx.dims(x)
        full = dict(zip(axes, scales if scales is not None else sizes, strict=True))
        axes = list(range(len(dims)))
        if scales is not None:
            scales = [full.get(i, 1.0) for i in axes]
        elif all(isinstance(d, int) for d in dims):
            sizes = [full.get(i, d) for i, d in enumerate(dims)]
        else:
            raise NotLowerable(f"Resize {node.name}: sizes with dynamic dims need opset 18")
    if scales is not None:
        inputs = ["", cx.tensor(np.array(scales, dtype=np.float32), "scales")]
    else:
        inputs = ["", "", cx.ints(sizes, "sizes")]
    cx.add("Resize", [cx.name(x), *inputs], cx.out(node), **attrs)


def _run_time_sizes(cx: EmitContext, node: Node, attrs: dict) -> None:
    axes = list(node.attrs["axes"])
    if cx.opset >= 18:
        attrs["axes"] = axes
    elif axes != list(range(cx.rank(cx.arg(node, 0)))):
        raise NotLowerable(f"Resize {node.name}: run-time sizes of some axes need opset 18")
    inputs = [cx.name(cx.arg(node, 0)), "", "", cx.name(node.inputs[1])]
    cx.add("Resize", inputs, cx.out(node), **attrs)


def _arg(op_type: str):
    def emit(cx: EmitContext, node: Node) -> None:
        flags = {k: int(node.attrs[k]) for k in ("keepdims", "select_last_index")}
        cx.add(op_type, cx.inputs(node), cx.out(node), axis=node.attrs["axis"], **flags)

    return emit


MATH_EMITTERS = {
    "ArgMax": _arg("ArgMax"),
    "ArgMin": _arg("ArgMin"),
    "PRelu": prelu,
    "Mish": mish,
    "Tile": tile,
    "CumSum": cumsum,
    "TopK": top_k,
    "Resize": resize,
}
