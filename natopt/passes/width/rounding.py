"""How many channels a width transition keeps: a fraction, rounded up to the device's block.

Latency, not multiply-adds, decides what a channel count is worth. onnxruntime's CPU
convolutions (MLAS, NCHWc layout) process channels in blocks of the SIMD width: 16 floats on
an AVX-512 machine, 8 on AVX2, so a 24-channel layer costs about what a 32-channel one does.
Kept channels are therefore rounded *up* to a multiple of the block:

    kept(C, f) = min(C, ⌈⌈f·C⌉ / b⌉ · b),    b = block if C >= small_below else small_block

The default (16, 8 below 32 channels) fits onnxruntime on an AVX-512 CPU; pass another
``ChannelRounding`` for another device (8 for AVX2, 32 or 64 for tensor cores). A width entry
whose rounded count is not below ``C`` is not offered (``targets.TARGET_RULES["width"]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ChannelRounding", "CPU_ROUNDING"]


@dataclass(frozen=True, slots=True)
class ChannelRounding:
    """Round kept channel counts up to ``block`` (``small_block`` below ``small_below``)."""

    block: int = 16
    small_block: int = 8
    small_below: int = 32

    def __post_init__(self) -> None:
        if self.block < 1 or self.small_block < 1:
            raise ValueError(
                f"ChannelRounding: blocks must be positive (got {self.block}, {self.small_block})"
            )

    def block_for(self, channels: int) -> int:
        return self.block if channels >= self.small_below else self.small_block

    def kept(self, channels: int, fraction: float) -> int:
        """Channels kept of ``channels`` for ``fraction`` (at least one block, at most all)."""
        block = self.block_for(channels)
        wanted = max(1, math.ceil(fraction * channels))
        return min(channels, math.ceil(wanted / block) * block)


CPU_ROUNDING = ChannelRounding()
