"""The NAT policy: a graph convolutional network over the unit graph, one logit per transition.

For unit features ``x_u = [embed(op_type_u) ‖ numeric_u]`` and the unit graph's adjacency
``A`` (``natopt.passes.nat.features``), each layer is a torch-geometric ``GCNConv``

    H' = ReLU( D̂^{-1/2} (A + I) D̂^{-1/2} H W + b ),    D̂_ii = 1 + Σ_j A_ij,

so a unit's own op (the self-loop) and its neighbours' ops both reach its logits. This is
where natopt departs from the reference code, whose adjacency had neither self-loops nor
normalisation, so that an op never saw its own type. A linear head maps the last hidden state
to ``logits [U, V]``, one per entry of the transition vocabulary; the binary-masked softmax
(``natopt.passes.transitions.BMSoftmax``) on each unit's mask row turns them into a
distribution over that unit's valid transitions only (masked entries: probability exactly 0).

Parameters are initialised from ``seed`` alone (the global RNG is left as it was), so the
same seed gives the same policy.

Shapes: ``op_type`` [U], ``features`` [U, F], ``edge_index`` [2, E] -> logits [U, V];
with ``mask`` [U, V] -> probabilities [U, V].
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

from natopt.passes.nat.features import FEATURES, OP_TYPES, UnitGraph
from natopt.passes.transitions import BMSoftmax

__all__ = ["NATPolicy"]


def _gcn_conv() -> type[nn.Module]:
    """torch-geometric's ``GCNConv``, imported when the first policy is built: importing
    torch-geometric takes seconds (it loads torch dynamo), which no other command should pay."""
    with warnings.catch_warnings():
        # torch-geometric scripts a helper at import; torch 2.10+ deprecates torch.jit.script
        # and would warn on every natopt command
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script.*")
        from torch_geometric.nn import GCNConv
    return GCNConv


class NATPolicy(nn.Module):
    """GCN policy: ``layers`` GCNConv layers of width ``hidden``, then a linear head.

    ``vocabulary_size``: the number of transitions V; ``embedding``: the op-type embedding
    width; ``numeric_features``: F (``len(FEATURES)`` for graphs built by ``unit_graph``);
    ``head_inputs``: inputs a subclass concatenates to the hidden state before the head
    (``GrowPolicy``: the embedding of the predecessors' decisions; 0 here).
    """

    def __init__(
        self,
        vocabulary_size: int,
        *,
        hidden: int = 64,
        layers: int = 2,
        embedding: int = 16,
        numeric_features: int = len(FEATURES),
        op_types: int = len(OP_TYPES),
        head_inputs: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if vocabulary_size < 1 or layers < 1 or hidden < 1:
            raise ValueError(
                f"NATPolicy: vocabulary_size ({vocabulary_size}), layers ({layers}) and "
                f"hidden ({hidden}) must be positive; pass the size of the transition vocabulary"
            )
        gcn_conv = _gcn_conv()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(op_types, embedding)
            widths = [embedding + numeric_features] + [hidden] * layers
            self.convs = nn.ModuleList(
                gcn_conv(a, b, add_self_loops=True, normalize=True)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
            self.head = nn.Linear(hidden + head_inputs, vocabulary_size)
        self.masked_softmax = BMSoftmax()

    def encode(self, graph: UnitGraph) -> Tensor:
        """The last GCN layer's hidden state of every unit, [U, hidden]."""
        h = torch.cat([self.embed(graph.op_type), graph.features], dim=-1)
        for conv in self.convs:
            h = torch.relu(conv(h, graph.edge_index))
        return h

    def forward(self, graph: UnitGraph) -> Tensor:
        """Logits [U, V] for every unit of ``graph``."""
        return self.head(self.encode(graph))

    def set_keep_prior(self, keep: int, probability: float, mask: Tensor) -> None:
        """Bias the head so that a unit starts by keeping its op with about ``probability``.

        With the other logits near zero, a unit with n valid transitions keeps with
        e^b / (e^b + n − 1); b is set for the median n of ``mask``'s rows:
        b = log(probability / (1 − probability) · (n − 1)). Sampled plans then start as small
        edits of the original network, where rewards differ, instead of rewriting most units
        at once. Shapes: ``mask`` [U, V].
        """
        if not 0.0 < probability < 1.0:
            raise ValueError(f"NATPolicy.set_keep_prior: probability {probability} not in (0, 1)")
        others = max(float(mask.sum(dim=1).median()) - 1.0, 1.0)
        with torch.no_grad():
            self.head.bias[keep] = math.log(probability / (1.0 - probability) * others)

    def probabilities(self, graph: UnitGraph, mask: Tensor) -> Tensor:
        """Per-unit distributions over the valid transitions, [U, V] (rows sum to 1)."""
        return self.masked_softmax(self(graph), mask)
