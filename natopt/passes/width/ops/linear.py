"""Linear: consumes the channels of its last axis and produces new ones."""

from __future__ import annotations

from torch import Tensor

from natopt.ir import Node
from natopt.passes.calibration import refit_last
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import ROWS, WidthOp, register
from natopt.passes.width.walk import ChannelWalk, dims

__all__ = ["Linear"]


@register
class Linear(WidthOp):
    """A Linear consumes the channels of its input's last axis (``weight[:, kept]``; after a
    ``Flatten`` the columns of every kept channel's positions) and produces a new space
    (``weight[kept]``, ``bias[kept]``); channels on another axis pass through (it mixes the
    last axis only). Refit: ``refit_last`` (weight and bias by least squares)."""

    ops = ("Linear",)
    slices = {"produce": ROWS, "consume": (("weight", 1),)}
    macs_follow_weight = True

    def group(self, walk: ChannelWalk, node: Node) -> None:
        weight = node.weights.get("weight")
        if weight is None or len(node.input_values) != 1:
            return walk.block_inputs(node)
        x = node.inputs[0]
        assert x is not None
        layout, last = walk.layout(x), len(dims(x)) - 1
        if layout is not None and layout.axis != last:
            return walk.set(node.output, layout)  # mixes another axis: channels pass through
        if layout is not None:
            walk.use("consume", node, layout)
        out = Layout(last, (walk.fresh(int(weight.shape[0])),))
        walk.use("produce", node, out)
        return walk.set(node.output, out)

    def refit(self, node: Node, x: Tensor, y: Tensor, alpha: float) -> None:
        refit_last([node], x, y, alpha)
