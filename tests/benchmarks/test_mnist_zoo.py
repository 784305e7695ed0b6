"""The benchmark models (``benchmarks/mnist_zoo.py``): the example as an ``nn.Module`` computes
what the shipped ONNX file computes, and the trained CNNs' width groups are what the
comparison with Torch-Pruning relies on (random weights here; training is the script's)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from natopt.backends import to_torch
from natopt.frontends.onnx import lift_onnx
from natopt.frontends.torch import lift_torch
from natopt.passes import canonicalize
from natopt.passes.transitions import VOCABULARY, compute_mask
from natopt.passes.width import ChannelRounding, WidthOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import mnist_zoo  # noqa: E402


def test_example_module_computes_what_the_onnx_file_computes() -> None:
    module = mnist_zoo.example_module()
    graph = to_torch(canonicalize(lift_onnx(mnist_zoo.EXAMPLE_ONNX)))
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        expected, got = graph(x), module(x)
    assert torch.allclose(got, expected, atol=1e-4 * expected.abs().max().item())
    bns = [m for n, m in module.named_modules() if n.rpartition(".")[2].startswith("bn")]
    assert bns and all(isinstance(m, torch.nn.Identity) for m in bns)


def _width_rows(module: torch.nn.Module, rounding: ChannelRounding) -> dict[str, list[str]]:
    torch.manual_seed(0)
    graph = canonicalize(lift_torch(module.eval(), torch.randn(2, 1, 28, 28)))
    width = VOCABULARY.restrict(["width"])
    mask = compute_mask(graph, width, width=WidthOptions(rounding=rounding))
    rows = {}
    for row, unit in enumerate(mask.units):
        names = [n for n in mask.valid_names(row) if n.startswith("width")]
        if names:
            rows[unit.name] = names
    return rows


def test_resnet8_residual_streams_narrow_as_groups_and_the_classifier_never() -> None:
    rows = _width_rows(mnist_zoo.ResNet8(), ChannelRounding(block=16, small_block=4))
    # one leader per residual stream (16, 32, 64 channels: stem + layer1, layer2's conv2 +
    # shortcut, layer3's) plus each block's inner conv1; shortcuts follow their stream
    assert set(rows) == {"stem.0", "layer1.conv1.0", "layer2.conv1.0", "layer2.conv2.0",
                         "layer3.conv1.0", "layer3.conv2.0"}  # fmt: skip
    assert rows["stem.0"] == ["width_3_4", "width_1_2", "width_1_4"]  # 16 -> 12, 8, 4
    assert rows["layer2.conv2.0"] == ["width_1_2"]  # 32 -> 16 (24 rounds to 32, 8 to 16)


def test_cnn3_block_rounding_leaves_only_distinct_widths() -> None:
    rows = _width_rows(mnist_zoo.Cnn3(), ChannelRounding(block=16, small_block=16))
    assert rows["conv1"] == ["width_1_2"]  # 32 -> 24 rounds to 32 (no-op), 8 to 16
    assert rows["conv3"] == ["width_3_4", "width_1_2", "width_1_4"]
    assert "fc" not in rows
