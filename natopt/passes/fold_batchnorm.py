"""Fold an inference BatchNorm into the Conv, ConvTranspose or Linear that feeds it.

Rewrite::

    y = BatchNorm(Conv(x; w, b); gamma, beta, mean, var, eps)   ->   y = Conv(x; w', b')

with, per output channel c, ``s[c] = gamma[c] / sqrt(var[c] + eps)``,
``w'[c] = w[c] * s[c]`` and ``b'[c] = (b[c] - mean[c]) * s[c] + beta[c]`` (``b = 0``,
``gamma = 1``, ``beta = 0`` where absent). Output channel c of a Conv is ``w[c]``; of a
ConvTranspose (weight ``[Cin, Cout/groups, *k]``) it is column ``c % (Cout/groups)`` of group
``c // (Cout/groups)``; of a Linear, row ``c``. Grouped and depthwise convolutions need
nothing special: each output channel still owns one slice of the weight.

Preconditions: the BatchNorm's data input is the producer's only use and not a graph output;
the producer reads one activation (its weights are constants it owns) and the BatchNorm reads
no activation besides its data input; a Linear's output has rank 2 (so BatchNorm's channel
axis 1 is the Linear's output features). The folding is computed in float64 and stored in
the producer's weight dtype; new tensors replace the old ones (weights shared with a graph
copy are never written). The BatchNorm's source is recorded in ``meta["folded"]`` of the
producer.
"""

from __future__ import annotations

import torch

from natopt.ir import Graph, Node
from natopt.passes.base import Pass, PassContext, PassResult

__all__ = ["FoldBatchNormPass", "fold_batchnorm_into"]

_PRODUCERS = frozenset({"Conv", "ConvTranspose", "Linear"})


def _channel_view(node: Node, scale: torch.Tensor) -> torch.Tensor:
    """``node``'s weight with output channel c multiplied by ``scale[c]``."""
    weight = node.weights["weight"].to(torch.float64)
    if node.op != "ConvTranspose":
        return weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    groups = int(node.attrs["groups"])
    cin, cout_per_group, *kernel = weight.shape
    grouped = weight.reshape(groups, cin // groups, cout_per_group, *kernel)
    factor = scale.reshape(groups, 1, cout_per_group, *([1] * len(kernel)))
    return (grouped * factor).reshape(weight.shape)


def _foldable(bn: Node) -> Node | None:
    """The producer ``bn`` can be folded into, or ``None``."""
    data = bn.inputs[0] if bn.inputs else None
    if data is None or len(bn.input_values) != 1 or "running_var" not in bn.weights:
        return None
    producer = data.producer
    if producer is None or producer.op not in _PRODUCERS or "weight" not in producer.weights:
        return None
    if len(producer.input_values) != 1 or len(data.uses) != 1 or data.is_graph_output():
        return None
    if producer.op == "Linear" and len(data.shape or ()) != 2:
        return None
    return producer


def fold_batchnorm_into(producer: Node, bn: Node) -> None:
    """Give ``producer`` the weights of ``BatchNorm(producer)`` (see the module docstring)."""
    dtype = producer.weights["weight"].dtype
    var = bn.weights["running_var"].to(torch.float64)
    mean = bn.weights["running_mean"].to(torch.float64)
    gamma = bn.weights.get("weight", torch.ones_like(var)).to(torch.float64)
    beta = bn.weights.get("bias", torch.zeros_like(var)).to(torch.float64)
    scale = gamma / torch.sqrt(var + float(bn.attrs["eps"]))
    bias = producer.weights.get("bias", torch.zeros_like(var)).to(torch.float64)
    producer.weights = {
        **producer.weights,
        "weight": _channel_view(producer, scale).to(dtype),
        "bias": ((bias - mean) * scale + beta).to(dtype),
    }
    producer.meta["folded"] = [*producer.meta.get("folded", []), bn.source or bn.name]


class FoldBatchNormPass(Pass):
    """Conv/ConvTranspose/Linear -> BatchNorm becomes one Conv/ConvTranspose/Linear."""

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        changed = False
        for bn in graph.find("BatchNorm"):
            producer = _foldable(bn)
            if producer is None:
                continue
            fold_batchnorm_into(producer, bn)
            graph.replace_all_uses(bn.output, producer.output)
            graph.remove_node(bn)
            changed = True
        return PassResult(graph, changed)
