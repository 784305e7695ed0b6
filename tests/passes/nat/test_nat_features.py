"""unit_graph: units, op types, flow/containment edges and features on small IR graphs."""

from __future__ import annotations

import torch

from natopt.ir import Graph, Value, infer_shapes
from natopt.passes.nat import FEATURES, OP_TYPES, unit_graph
from natopt.passes.transitions import apply_plan, compute_mask


def conv(g: Graph, x: Value, cin: int, cout: int, k: int, name: str, stride: int = 1) -> Value:
    weights = {"weight": torch.randn(cout, cin, k, k) * 0.2, "bias": torch.zeros(cout)}
    attrs = {"padding": (k // 2, k // 2), "stride": (stride, stride)}
    h = g.add_node("Conv", [x], attrs, weights, name=name, source=name).output
    return g.add_node("Relu", [h], name=f"{name}.relu").output


def toy_resnet() -> Graph:
    """stem conv5 -> [conv5 -> conv3] + identity -> relu -> strided conv3 -> gap -> fc."""
    torch.manual_seed(0)
    g = Graph("toy")
    x = g.add_input("x", ("batch", 1, 8, 8))
    stem = conv(g, x, 1, 4, 5, "stem")
    h = conv(g, stem, 4, 4, 5, "block.conv1")
    w = {"weight": torch.randn(4, 4, 3, 3) * 0.2}
    h = g.add_node("Conv", [h], {"padding": (1, 1)}, w, name="block.conv2", source="block.conv2")
    merged = g.add_node("Add", [h.output, stem], name="block.add").output
    h = g.add_node("Relu", [merged], name="block.relu").output
    h = conv(g, h, 4, 8, 3, "down", stride=2)
    h = g.add_node("AdaptiveAvgPool", [h]).output
    h = g.add_node("Flatten", [h]).output
    fc = g.add_node("Linear", [h], weights={"weight": torch.randn(3, 8)}, source="fc")
    g.set_outputs([fc.output])
    infer_shapes(g)
    return g


def edges(graph) -> set[tuple[str, str]]:
    names = graph.units
    pairs = {tuple(sorted((names[a], names[b]))) for a, b in graph.edge_index.T.tolist()}
    return pairs


def test_units_follow_the_mask_rows_and_op_types():
    g = toy_resnet()
    ug = unit_graph(g)
    assert ug.units == compute_mask(g).unit_names
    types = {u: OP_TYPES[int(t)] for u, t in zip(ug.units, ug.op_type, strict=True)}
    assert types == {
        "stem": "conv5",
        "block.conv1": "conv5",
        "block.conv2": "conv3",
        "block.conv2:branch": "branch",
        "down": "conv3",
        "fc": "linear",
    }
    assert ug.features.shape == (6, len(FEATURES))


def test_flow_and_containment_edges():
    ug = unit_graph(toy_resnet())
    assert edges(ug) == {
        ("block.conv1", "stem"),  # flow
        ("block.conv2:branch", "stem"),  # the stem's output is the branch's fork
        ("block.conv1", "block.conv2"),  # flow inside the branch
        ("block.conv1", "block.conv2:branch"),  # containment
        ("block.conv2", "block.conv2:branch"),  # containment and the merge
        ("block.conv2:branch", "down"),  # past the merge only the branch walks on
        ("down", "fc"),  # through global pooling and flatten
    }
    # both directions, no self-loops
    assert ug.edge_index.shape[1] == 2 * len(edges(ug))
    assert not bool((ug.edge_index[0] == ug.edge_index[1]).any())


def test_numeric_features():
    ug = unit_graph(toy_resnet())
    column = {name: ug.features[:, i] for i, name in enumerate(FEATURES)}
    row = {u: i for i, u in enumerate(ug.units)}
    assert column["log2_stride"][row["down"]] == 2  # stride 2 in 2-D: 4x fewer positions
    assert column["log2_stride"][row["stem"]] == 0
    depth = column["depth"]
    assert depth[row["stem"]] == 0 and depth[row["fc"]] > depth[row["down"]] > depth[row["stem"]]
    assert (
        0.99
        < float(
            column["macs_share"][
                [row[u] for u in ("stem", "block.conv2:branch", "down", "fc")]
            ].sum()
        )
        <= 1.0
    )
    # a 5x5 conv has more parameters and MACs than the 3x3 one beside it
    assert column["log_params"][row["block.conv1"]] > column["log_params"][row["block.conv2"]]
    assert column["log_macs"][row["block.conv1"]] > column["log_macs"][row["block.conv2"]]
    assert float(ug.features.abs().max()) < 2.5


def test_rewritten_unit_keeps_its_name_and_shows_its_new_op():
    g = toy_resnet()
    rewritten = apply_plan(g, {"block.conv1": "sep_conv_3x3", "down": "conv_1x1"})
    ug = unit_graph(rewritten)
    assert ug.units == unit_graph(g).units
    types = {u: OP_TYPES[int(t)] for u, t in zip(ug.units, ug.op_type, strict=True)}
    assert types["block.conv1"] == "sep_conv3"
    assert types["down"] == "conv1"
    assert edges(ug) == edges(unit_graph(g))
