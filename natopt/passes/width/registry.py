"""Width ops: one object per IR op kind that knows what channel pruning means for that op.

A ``WidthOp`` holds everything the width pass knows about the ops it handles (after
Torch-Pruning's one pruner class per layer type):

- ``group(walk, node)``: how the node's outputs carry its inputs' channels (the channel rule):
  it reads the layouts of the node's inputs from the ``ChannelWalk``, sets its outputs'
  layouts, records its uses and blocks what it cannot prune (default: block every channel
  space it reads);
- ``claim(walk, node, layout)``: a constant operand's channels are claimed backwards through
  the node's output, from the op that needs them (``ChannelWalk.claim``): record ``layout``
  on the chain up to the ``Constant`` and say whether the chain holds (default: it does not);
- ``slices``: per role of a use (below), the ``(weight, dim)`` pairs pruning slices
  (``AXIS``: the use's layout axis; ``ROWS``: weight and bias rows); a role the op never
  records is absent;
- ``resize(node, layout, old, new)``: the attribute updates of a ``follow`` use when its
  channel extent goes from ``old`` to ``new`` (default: none);
- ``refit(node, x, y, alpha)``: least squares of a ``consume`` use whose input channels were
  pruned, on calibration activations (``natopt.passes.calibration``);
- ``macs_follow_weight``: the op's multiply-adds shrink as its weight does (output positions
  x weight columns, both linear in the sliced dims: Conv, Linear).

A node touches a channel space in one of three roles (``slicing.Use.role``): ``produce`` (a
dense Conv / Linear computes the channels: its output rows go), ``consume`` (a dense Conv /
Linear reads them: its input columns go) and ``follow`` (a per-channel op, a constant or a
static reshape target passes them through and is sliced or resized alike).

``register`` adds an op class (a class decorator in its family's file under ``ops/``; the
package imports every file in it) under each of its ``ops``; ``width_op(op)`` finds the
object of an IR op, the blocking default for an op no class handles; ``width_ops()`` lists
them by op. The walk, the slicing and the rewrite read the ops from here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, TypeVar

from natopt._registry import register_ops
from natopt.ir import Node
from natopt.passes.width.layout import Layout

if TYPE_CHECKING:
    from torch import Tensor

    from natopt.passes.width.walk import ChannelWalk

__all__ = ["AXIS", "ROWS", "Slices", "WidthOp", "register", "width_op", "width_ops"]

Slices = tuple[tuple[str, int], ...]
AXIS = -1  # stands for the use's layout axis (a Constant's channel axis)
ROWS: Slices = (("weight", 0), ("bias", 0))  # a layer's output channels


class WidthOp:
    """What channel pruning means for the ``ops`` of one kind (see the module docstring);
    this base is the default of an op no class handles: it blocks what it reads."""

    ops: ClassVar[tuple[str, ...]] = ()
    slices: ClassVar[Mapping[str, Slices]] = {}
    macs_follow_weight: ClassVar[bool] = False

    def group(self, walk: ChannelWalk, node: Node) -> None:
        walk.block_inputs(node)

    def claim(self, walk: ChannelWalk, node: Node, layout: Layout) -> bool:
        return False

    def resize(self, node: Node, layout: Layout, old: int, new: int) -> None:
        """Update ``node``'s attributes for a ``follow`` use narrowed from ``old`` to ``new``."""

    def refit(self, node: Node, x: Tensor, y: Tensor, alpha: float) -> None:
        raise NotImplementedError(f"{type(self).__name__}.refit: {node.op} consumes no channels")


_WIDTH_OPS: dict[str, WidthOp] = {}
_BLOCKING = WidthOp()
W = TypeVar("W", bound=type[WidthOp])


def register(cls: W) -> W:
    """Register one instance of the width op class ``cls`` under each of its ``ops``."""
    register_ops(_WIDTH_OPS, cls(), cls.ops)
    return cls


def width_op(op: str) -> WidthOp:
    """The width op of IR op ``op``; the blocking default when no class handles it."""
    _load()
    return _WIDTH_OPS.get(op, _BLOCKING)


def width_ops() -> dict[str, WidthOp]:
    """Every registered width op, by IR op."""
    _load()
    return dict(_WIDTH_OPS)


def _load() -> None:
    """Import the op files (each registers itself) on first use."""
    import natopt.passes.width.ops  # noqa: F401
