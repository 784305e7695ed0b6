"""The channel block of this device, measured: how width transitions round kept channels.

onnxruntime runs convolutions in blocks of channels (the SIMD width of the CPU: 16 floats
with AVX-512, 8 with AVX2; other blocks on GPUs), so a layer's latency is a staircase in
its output channels. ``measured_rounding`` times a probe convolution (3x3, ``C_in`` input
channels, ``size x size``) at ``c = step, 2·step, ..., channels`` output channels through the
device's latency table (``latency_table``: timed once per device, then cached) and returns
the ``ChannelRounding`` whose block is the largest candidate ``b`` that costs no latency:

    t(⌈c / b⌉ · b) <= (1 + tolerance) · t(c)    for every measured c,

done twice: for ``c <= small_below`` (``small_block``) and for all ``c`` (``block``). On the
AVX-512 machine this was written on, the staircase steps every 16 channels (8 -> 16 costs
nothing, 16 -> 20 costs +60%), so both blocks come out 16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from natopt.bench.latency_table import LatencyTable, estimate_latency
from natopt.ir import Graph, infer_shapes
from natopt.passes.width import ChannelRounding

__all__ = ["measured_rounding", "probe_conv", "CANDIDATES"]

CANDIDATES = (4, 8, 16, 32)


def probe_conv(c_in: int, c_out: int, size: int) -> Graph:
    """``relu(conv3x3(x))`` from ``c_in`` to ``c_out`` channels on ``[batch, c_in, size, size]``."""
    graph = Graph(f"probe_conv_{c_in}_{c_out}_{size}")
    x = graph.add_input("x", ("batch", c_in, size, size))
    gen = torch.Generator().manual_seed(0)
    weights = {"weight": torch.randn(c_out, c_in, 3, 3, generator=gen), "bias": torch.zeros(c_out)}
    conv = graph.add_node("Conv", [x], {"padding": (1, 1)}, weights)
    relu = graph.add_node("Relu", [conv.output])
    graph.set_outputs([relu.output])
    infer_shapes(graph)
    return graph


def _largest_free_block(times: dict[int, float], counts: Sequence[int], tolerance: float) -> int:
    chosen = CANDIDATES[0]
    for block in CANDIDATES:
        rounded = [(c, math.ceil(c / block) * block) for c in counts]
        if all(r not in times or times[r] <= (1 + tolerance) * times[c] for c, r in rounded):
            chosen = block
    return chosen


def measured_rounding(
    table: LatencyTable | None = None,
    *,
    c_in: int = 64,
    channels: int = 64,
    size: int = 14,
    step: int = 4,
    small_below: int = 32,
    tolerance: float = 0.1,
) -> ChannelRounding:
    """The device's ``ChannelRounding``, from a probe conv timed in ``table`` (see above)."""
    table = table or LatencyTable.open()
    counts = list(range(step, channels + 1, step))
    graphs = {c: probe_conv(c_in, c, size) for c in counts}
    table.measure(table.pending(graphs.values()))
    times = {c: estimate_latency(g, table, measure_missing=False) for c, g in graphs.items()}
    small = [c for c in counts if c <= small_below]
    return ChannelRounding(
        block=_largest_free_block(times, counts, tolerance),
        small_block=_largest_free_block(times, small, tolerance),
        small_below=small_below,
    )
