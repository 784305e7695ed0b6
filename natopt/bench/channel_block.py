"""The channel block of this device, measured: how width transitions round kept channels.

onnxruntime runs convolutions in blocks of channels (the SIMD width of the CPU: 16 floats
with AVX-512, 8 with AVX2; other blocks on GPUs), so a layer's latency is a staircase in
its channels. Narrowing a unit changes two convolutions: its own output channels and its
consumer's input channels, so the probe is that pair: ``conv3x3(C_in -> c)``, ReLU,
``conv3x3(c -> C_in)``, ReLU on ``size x size``. ``measured_rounding`` times it at
``c = step, 2·step, ..., channels`` through the device's latency table (``latency_table``:
timed once per device, then cached) and returns the ``ChannelRounding`` whose block is the
largest candidate ``b`` that costs no latency:

    t(⌈c / b⌉ · b) <= (1 + tolerance) · t(c)    for every measured c,

done twice: for ``c < small_below`` (``small_block``) and for ``c >= small_below``
(``block``). On the AVX-512 machine this was written on, the pair's staircase steps every
16 channels above 16 (16 -> 20 costs +50%) and rises steadily below (4, 8, 12 and 16
channels: 0.057, 0.063, 0.068 and 0.069 ms at 14x14 with 64 channels around), so ``block``
is 16 and ``small_block`` 4: a 16-channel layer narrowed to 8 is 10% faster, which an
output-only probe does not see (its consumer's input channels shrink too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from natopt.bench.latency_table import LatencyTable, estimate_latency
from natopt.ir import Graph, infer_shapes
from natopt.passes.width import ChannelRounding

__all__ = ["measured_rounding", "probe_pair", "CANDIDATES"]

CANDIDATES = (4, 8, 16, 32)


def probe_pair(c_in: int, c: int, size: int) -> Graph:
    """``relu(conv3x3(relu(conv3x3(x))))``: ``c_in -> c -> c_in`` channels on
    ``[batch, c_in, size, size]``; ``c`` is the width being narrowed."""
    graph = Graph(f"probe_pair_{c_in}_{c}_{size}")
    value = graph.add_input("x", ("batch", c_in, size, size))
    gen = torch.Generator().manual_seed(0)
    for cin, cout in ((c_in, c), (c, c_in)):
        weights = {"weight": torch.randn(cout, cin, 3, 3, generator=gen), "bias": torch.zeros(cout)}
        conv = graph.add_node("Conv", [value], {"padding": (1, 1)}, weights)
        value = graph.add_node("Relu", [conv.output]).output
    graph.set_outputs([value])
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
    """The device's ``ChannelRounding``, from probe pairs timed in ``table`` (see above)."""
    table = table or LatencyTable.open()
    counts = list(range(step, channels + 1, step))
    graphs = {c: probe_pair(c_in, c, size) for c in counts}
    table.measure(table.pending(graphs.values()))
    times = {c: estimate_latency(g, table, measure_missing=False) for c, g in graphs.items()}
    small = [c for c in counts if c < small_below]
    large = [c for c in counts if c >= small_below] or counts
    return ChannelRounding(
        block=_largest_free_block(times, large, tolerance),
        small_block=_largest_free_block(times, small, tolerance),
        small_below=small_below,
    )
