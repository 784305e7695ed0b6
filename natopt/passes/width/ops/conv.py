"""Conv: a dense conv consumes and produces channels, a depthwise conv follows them."""

from __future__ import annotations

from torch import Tensor

from natopt.ir import Node
from natopt.passes.calibration import refit_conv
from natopt.passes.width.layout import Layout
from natopt.passes.width.registry import ROWS, WidthOp, register
from natopt.passes.width.walk import ChannelWalk

__all__ = ["Conv"]


@register
class Conv(WidthOp):
    """A dense conv (``groups = 1``) consumes its input's channels (``weight[:, kept]``) and
    produces a new space (``weight[kept]``, ``bias[kept]``); a depthwise conv (``groups =
    C_in = C_out``) follows its input's channels (rows, bias and ``groups``); any other
    grouped conv blocks them (it needs whole groups). Refit: ``refit_conv`` (the whole
    kernel on im2col patches)."""

    ops = ("Conv",)
    slices = {"produce": ROWS, "consume": (("weight", 1),), "follow": ROWS}
    macs_follow_weight = True

    def group(self, walk: ChannelWalk, node: Node) -> None:
        weight = node.weights.get("weight")
        if weight is None or len(node.input_values) != 1:
            return walk.block_inputs(node)
        groups, c_out = int(node.attrs["groups"]), int(weight.shape[0])
        c_in = int(weight.shape[1]) * groups
        layout = walk.channels_first(node, "convolution")
        if groups == 1:
            if layout is not None:
                walk.use("consume", node, layout)
            out = Layout(1, (walk.fresh(c_out),))
            walk.use("produce", node, out)
            return walk.set(node.output, out)
        if groups == c_in == c_out and layout is not None:
            walk.use("follow", node, layout)
            return walk.set(node.output, layout)
        walk.block(layout, f"grouped convolution {node.name} (groups {groups}) needs whole groups")
        return None

    def resize(self, node: Node, layout: Layout, old: int, new: int) -> None:
        node.attrs["groups"] = new

    def refit(self, node: Node, x: Tensor, y: Tensor, alpha: float) -> None:
        refit_conv([node], x, y, alpha)
