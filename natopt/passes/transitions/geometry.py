"""The geometry every conv-like target shares: which kernels a unit may take, and the padding
that keeps its output size.

- ``kernel_check``: the unit's family is one the rule ``accepts``; the unit is a 2-D conv
  with a square odd kernel; the target kernel is at most the unit's; the same family needs a
  strictly smaller kernel (the same op and kernel is ``keep``); a type change that also
  shrinks the kernel needs the ``kernel`` level in the vocabulary (``kernel_level``).
- ``output_padding``: stride is kept and the padding becomes
  ``p' = p − (d(k−1) − d'(k'−1)) / 2`` per dim, which keeps every output size exactly (the
  output size depends on ``2p − d(k−1)`` only); invalid when ``p'`` is negative or not an
  integer.
"""

from __future__ import annotations

from collections.abc import Collection

from natopt.passes.transitions.registry import Reason, Transition
from natopt.passes.transitions.state import UnitState

__all__ = ["kernel_check", "output_padding"]


def kernel_check(
    state: UnitState, entry: Transition, accepts: Collection[str], kernel_level: bool
) -> Reason | None:
    """Why ``state``'s unit cannot take the kernel of ``entry``, or ``None``."""
    if state.family not in accepts:
        return Reason(f"a {state.family} unit cannot become {entry.op}")
    if state.kernel is None:
        return Reason("the unit is not a 2-D convolution with a square odd kernel")
    k = entry.kernel or 0
    if k > state.kernel:
        return Reason(f"kernel {k} is larger than the unit's {state.kernel}")
    if k == state.kernel and state.family == entry.op:
        return Reason("the same op with the same kernel is 'keep'")
    if k < state.kernel and state.family != entry.op and not kernel_level:
        return Reason("a kernel change needs the 'kernel' level in the vocabulary")
    return None


def output_padding(state: UnitState, kernel: int, dilation: int) -> tuple[int, ...] | Reason:
    """The padding of a ``kernel`` x ``kernel`` target with ``dilation`` (same output size)."""
    twice = state.dilation * (state.kernel - 1) - dilation * (kernel - 1)  # type: ignore[operator]
    if twice % 2:
        return Reason(f"padding cannot keep the output size (kernel {kernel}, dilation {dilation})")
    padding = tuple(p - twice // 2 for p in state.padding)
    if min(padding) < 0:
        return Reason(f"the unit's padding {state.padding} is too small for kernel {kernel}")
    return padding
