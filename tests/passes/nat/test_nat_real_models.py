"""The unit graph and the policy on real models: torchvision networks and the shipped example."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import torch
import torchvision

import natopt
from natopt.frontends import lift
from natopt.passes import canonicalize
from natopt.passes.nat import OP_TYPES, NATPolicy, unit_graph
from natopt.passes.transitions import compute_mask

EXAMPLE = Path(natopt.__file__).parent / "data" / "example_mnist.onnx"


def check(graph) -> dict[str, int]:
    """The unit graph matches the mask, is connected, and the policy respects the mask."""
    mask = compute_mask(graph)
    ug = unit_graph(graph, mask.units)
    assert ug.units == mask.unit_names
    connectivity = nx.Graph()
    connectivity.add_nodes_from(range(len(ug.units)))
    connectivity.add_edges_from(ug.edge_index.T.tolist())
    assert nx.is_connected(connectivity)
    assert torch.isfinite(ug.features).all() and float(ug.features.abs().max()) < 3
    with torch.no_grad():
        probs = NATPolicy(len(mask.vocabulary)).probabilities(ug, mask.valid)
    assert torch.all(probs[~mask.valid] == 0)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(len(ug.units)))
    types: dict[str, int] = {}
    for t in ug.op_type.tolist():
        types[OP_TYPES[t]] = types.get(OP_TYPES[t], 0) + 1
    return types


def test_example_model():
    types = check(canonicalize(lift(EXAMPLE)))
    assert types == {"conv5": 4, "conv3": 3, "conv1": 1, "branch": 4, "linear": 1}


def test_resnet18():
    model = torchvision.models.resnet18(weights=None).eval()
    types = check(canonicalize(lift(model, torch.randn(1, 3, 64, 64))))
    assert types["conv3"] == 16 and types["conv1"] == 3 and types["conv7"] == 1
    assert types["branch"] >= 8 and types["max_pool"] == 1 and types["linear"] == 1


def test_mobilenet_v2():
    model = torchvision.models.mobilenet_v2(weights=None).eval()
    types = check(canonicalize(lift(model, torch.randn(1, 3, 64, 64))))
    assert types["dwconv3"] == 17 and types["conv1"] >= 34
