"""Toy graphs for the transition-space tests, built directly in the IR."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from natopt.ir import Graph, Value, infer_node


class Builder:
    """Adds ops to one graph with inferred shapes and seeded random weights."""

    def __init__(self, shape: tuple[int, ...] = (2, 8, 8, 8), seed: int = 0) -> None:
        self.graph = Graph("toy")
        self.x = self.graph.add_input("x", shape)
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen) * scale

    def op(self, op: str, *inputs: Value, source: str | None = None, **attrs: object) -> Value:
        node = self.graph.add_node(op, list(inputs), attrs, source=source)
        infer_node(node)
        return node.output

    def conv(
        self,
        x: Value,
        c_out: int,
        k: int = 3,
        *,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
        source: str | None = None,
        weight: torch.Tensor | None = None,
    ) -> Value:
        c_in = int(x.shape[1])
        weights = {
            "weight": weight if weight is not None else self.randn(c_out, c_in // groups, k, k)
        }
        if bias:
            weights["bias"] = self.randn(c_out, scale=0.1)
        attrs = {
            "stride": (stride, stride),
            "padding": (k // 2, k // 2),
            "dilation": (1, 1),
            "groups": groups,
        }
        node = self.graph.add_node("Conv", [x], attrs, weights, source=source)
        infer_node(node)
        return node.output

    def linear(self, x: Value, out: int, *, source: str | None = None, weight=None) -> Value:
        w = weight if weight is not None else self.randn(out, int(x.shape[-1]))
        node = self.graph.add_node(
            "Linear", [x], {}, {"weight": w, "bias": self.randn(out, scale=0.1)}, source=source
        )
        infer_node(node)
        return node.output

    def done(self, *outputs: Value) -> Graph:
        self.graph.set_outputs(outputs)
        return self.graph


def residual(b: Builder, x: Value, name: str, channels: int = 8) -> Value:
    """``relu(x + conv_b(relu(conv_a(x))))``; convs sourced ``name.conv_a``, ``name.conv_b``."""
    h = b.op("Relu", b.conv(x, channels, source=f"{name}.conv_a"))
    return b.op("Relu", b.op("Add", b.conv(h, channels, source=f"{name}.conv_b"), x))


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test draws the same random tensors on every run."""
    torch.manual_seed(0)


@pytest.fixture
def builder() -> Callable[..., Builder]:
    return Builder


@pytest.fixture
def residual_graph() -> Graph:
    """stem conv -> two residual blocks -> global pool -> linear head."""
    b = Builder()
    h = b.op("Relu", b.conv(b.x, 8, source="stem"))
    h = residual(b, h, "block1")
    h = residual(b, h, "block2")
    pooled = b.op("Flatten", b.op("AdaptiveAvgPool", h, output_size=(1, 1)), start_dim=1)
    return b.done(b.linear(pooled, 16, source="head"))
