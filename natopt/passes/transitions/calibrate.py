"""Calibration: capture a unit's real activations, refit its replacement, measure the error.

``capture(graph, calibration, names)`` runs the *original* graph on the calibration inputs
(``natopt.ir.run_graph`` with ``watch``) and keeps the tensors of the named values,
concatenated over the calibration batches along dim 0.

Refits (``REFITS``, keyed by the target op) use the replaced op's input ``X`` and its original
output ``Y`` (the unit's pre-activation output: the trailing norm/activation is not part of
the fit) and solve a ridge least squares pulled towards the inherited weights
(``inherit.ridge_refit``), on at most ``MAX_ROWS`` rows (evenly spaced positions):

- ``conv`` (smaller kernel): the whole new kernel and its bias, per group, on the im2col
  patches of ``X`` with the new kernel, dilation, padding and stride;
- ``sep_conv`` / ``dil_sep_conv``: the pointwise 1x1 conv and its bias, on the depthwise
  conv's output (the depthwise kernel stays as inherited);
- ``lowrank``: the second factor and its bias, on the first factor's output;
- pooling has no weights: nothing is refit.

``LAYER_REFITS`` (keyed by op) refits one layer whose input channels were pruned (width):
a Conv as a smaller-kernel conv is refit, a Linear as the second half of a low-rank pair.

Each unit is refit independently on the original model's activations: every replacement
matches the original unit given the original unit's input. A bias is refit only where the
replaced op had one, so refitting never changes a cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from natopt.ir import Graph, Node, Value, call_node, run_graph
from natopt.passes.transitions.inherit import ridge_refit

__all__ = ["capture", "ActivationCache", "run_chain", "REFITS", "LAYER_REFITS", "MAX_ROWS"]

MAX_ROWS = 16384


def capture(
    graph: Graph, calibration: Sequence[Tensor | Sequence[Tensor]], names: set[str]
) -> dict[str, Tensor]:
    """The tensors of the values named ``names`` on every calibration batch, concatenated."""
    seen: dict[str, list[Tensor]] = {name: [] for name in names}

    def keep(values: Sequence[Value | None], tensors: Sequence[object]) -> None:
        for value, tensor in zip(values, tensors, strict=True):
            if value is not None and value.name in seen and isinstance(tensor, Tensor):
                seen[value.name].append(tensor)

    def watch(node: Node, args: tuple, outs: tuple) -> None:
        keep(node.outputs, outs)

    for batch in calibration:
        inputs = [batch] if isinstance(batch, Tensor) else list(batch)
        keep(graph.inputs, inputs)
        run_graph(graph, inputs, watch=watch)
    return {name: torch.cat(parts) for name, parts in seen.items() if parts}


class ActivationCache:
    """Activations of one graph on fixed calibration batches, captured once and reused.

    A search applies many plans to the same graph: each needs the activations of a few
    units, and running the whole graph on the calibration data for each plan would cost
    more than the rest of the evaluation. The cache keys on the identity of the graph and
    of its weight tensors (natopt replaces weight tensors, never edits them in place), so
    fine-tuned shared weights are captured anew.
    """

    def __init__(self, calibration: Sequence[Tensor | Sequence[Tensor]]) -> None:
        self.calibration = list(calibration)
        self._key: tuple[int, ...] | None = None
        self._values: dict[str, Tensor] = {}

    @staticmethod
    def fingerprint(graph: Graph) -> tuple[int, ...]:
        """What the captures of ``graph`` depend on: the graph and its weight tensors."""
        return (id(graph), *(id(w) for node in graph.nodes for w in node.weights.values()))

    def capture(self, graph: Graph, names: set[str]) -> dict[str, Tensor]:
        key = self.fingerprint(graph)
        if key != self._key:
            self._key, self._values = key, {}
        missing = names - self._values.keys()
        if missing:
            self._values.update(capture(graph, self.calibration, missing))
        return {name: self._values[name] for name in names if name in self._values}


def run_chain(nodes: Sequence[Node], x: Tensor) -> Tensor:
    """Run a chain of single-input nodes (a replacement) on ``x``."""
    with torch.no_grad():
        for node in nodes:
            (x,) = call_node(node, [x])
    return x


def _rows(tensor: Tensor, channels_first: bool) -> Tensor:
    """``[positions, channels]``: channels from dim 1 (conv layout) or the last dim."""
    if channels_first:
        tensor = tensor.movedim(1, -1)
    return tensor.reshape(-1, tensor.shape[-1])


def _subsample(count: int) -> Tensor:
    return torch.linspace(0, count - 1, min(count, MAX_ROWS)).round().long()


def _refit_conv(nodes: list[Node], x: Tensor, y: Tensor, alpha: float) -> None:
    (conv,) = nodes
    weight = conv.weights["weight"]
    bias = conv.weights.get("bias")
    c_out, per_group, kh, kw = weight.shape
    groups = int(conv.attrs["groups"])
    a = conv.attrs
    patches = F.unfold(x, (kh, kw), a["dilation"], a["padding"], a["stride"])  # [N, I*k*k, L]
    n, _, positions = patches.shape
    m = per_group * kh * kw
    feats = patches.reshape(n, groups, m, positions).permute(1, 0, 3, 2).reshape(groups, -1, m)
    targets = y.reshape(n, groups, c_out // groups, positions).permute(1, 0, 3, 2)
    targets = targets.reshape(groups, -1, c_out // groups)
    init = weight.reshape(groups, c_out // groups, m).transpose(1, 2)
    if bias is not None:
        feats = torch.cat([feats, feats.new_ones(*feats.shape[:2], 1)], dim=2)
        init = torch.cat([init, bias.reshape(groups, 1, -1)], dim=1)
    keep = _subsample(feats.shape[1])
    fitted = ridge_refit(feats[:, keep], targets[:, keep], init, alpha)
    conv.weights["weight"] = fitted[:, :m].transpose(1, 2).reshape(weight.shape).contiguous()
    if bias is not None:
        conv.weights["bias"] = fitted[:, m].reshape(-1).contiguous()


def _refit_last(nodes: list[Node], x: Tensor, y: Tensor, alpha: float) -> None:
    *front, last = nodes
    channels_first = last.op == "Conv"
    feats = _rows(run_chain(front, x), channels_first)
    targets = _rows(y, channels_first)
    weight = last.weights["weight"]
    bias = last.weights.get("bias")
    init = weight.reshape(weight.shape[0], -1).t()
    if bias is not None:
        feats = torch.cat([feats, feats.new_ones(feats.shape[0], 1)], dim=1)
        init = torch.cat([init, bias[None]], dim=0)
    keep = _subsample(feats.shape[0])
    fitted = ridge_refit(feats[None, keep], targets[None, keep], init[None], alpha)[0]
    m = weight.shape[1]
    last.weights["weight"] = fitted[:m].t().reshape(weight.shape).contiguous()
    if bias is not None:
        last.weights["bias"] = fitted[m].contiguous()


REFITS: dict[str, Callable[[list[Node], Tensor, Tensor, float], None]] = {
    "conv": _refit_conv,
    "sep_conv": _refit_last,
    "dil_sep_conv": _refit_last,
    "lowrank": _refit_last,
}
LAYER_REFITS: dict[str, Callable[[list[Node], Tensor, Tensor, float], None]] = {
    "Conv": _refit_conv,
    "Linear": _refit_last,
}
