"""Cost model: parameters, multiply-accumulates and bytes moved, per node and per graph.

MACs count the multiply-adds of the ops that carry them (convolutions, linear layers,
matrix products, attention); every other op counts zero MACs and is charged for the bytes it
moves. Symbolic dims are evaluated with ``symbols`` (default: every symbol is 1, i.e. batch 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from natopt.ir.graph import Graph, Node
from natopt.ir.types import numel

__all__ = ["Cost", "node_cost", "graph_cost", "weight_params"]

_ITEMSIZE = {
    "float64": 8,
    "int64": 8,
    "float32": 4,
    "int32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}


@dataclass(slots=True)
class Cost:
    params: int = 0
    macs: int = 0
    bytes: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.bytes + other.bytes)

    def to_dict(self) -> dict[str, int]:
        return {"params": self.params, "macs": self.macs, "bytes": self.bytes}


def weight_params(node: Node) -> int:
    return sum(int(w.numel()) for w in node.weights.values())


def moved_bytes(node: Node, symbols: dict[str, int] | None = None) -> int:
    total = sum(int(w.numel()) * w.element_size() for w in node.weights.values())
    for value in [*node.input_values, *node.outputs]:
        total += numel(value.shape, symbols) * _ITEMSIZE.get(value.dtype, 4)
    return total


def node_cost(node: Node, symbols: dict[str, int] | None = None) -> Cost:
    from natopt.ir.registry import get_spec

    spec = get_spec(node.op)
    macs = spec.cost(node, symbols) if spec.cost is not None else 0
    return Cost(weight_params(node), int(macs), moved_bytes(node, symbols))


def graph_cost(graph: Graph, symbols: dict[str, int] | None = None) -> Cost:
    total = Cost()
    for node in graph.nodes:
        total = total + node_cost(node, symbols)
    return total


# ---- MAC formulas used by the op registry -------------------------------------------------
def conv_macs(node: Node, symbols: dict[str, int] | None = None) -> int:
    weight = node.weights["weight"]
    per_output = math.prod(weight.shape[1:])  # (cin / groups) * kernel elements
    return numel(node.output.shape, symbols) * per_output


def conv_transpose_macs(node: Node, symbols: dict[str, int] | None = None) -> int:
    weight = node.weights["weight"]  # [cin, cout / groups, *kernel]
    return numel(node.inputs[0].shape, symbols) * math.prod(weight.shape[1:])


def linear_macs(node: Node, symbols: dict[str, int] | None = None) -> int:
    return numel(node.output.shape, symbols) * int(node.weights["weight"].shape[1])


def matmul_macs(node: Node, symbols: dict[str, int] | None = None) -> int:
    a_shape = node.inputs[0].shape or ()
    inner = numel(a_shape[-1:], symbols) if a_shape else 1
    return numel(node.output.shape, symbols) * inner


def attention_macs(node: Node, symbols: dict[str, int] | None = None) -> int:
    q, k = node.inputs[0].shape or (), node.inputs[1].shape or ()
    if len(q) < 2 or len(k) < 2:
        return 0
    # scores = q @ k^T and out = p @ v: two products of L x S x E per batch-head
    return 2 * numel(q, symbols) * numel(k[-2:-1], symbols)


def einsum_macs(node: Node, symbols: dict[str, int] | None = None) -> int:
    """Output elements times the sizes of the contracted letters (two or more operands)."""
    if len(node.inputs) < 2:
        return 0
    operands, _, result = node.attrs["equation"].replace(" ", "").partition("->")
    sizes: dict[str, int] = {}
    for term, value in zip(operands.split(","), node.inputs, strict=False):
        letters = term.replace("...", "")
        shape = (value.shape or ()) if value is not None else ()
        tail = shape[len(shape) - len(letters) :] if "..." in term else shape
        for letter, dim in zip(letters, tail, strict=False):
            sizes[letter] = numel((dim,), symbols)
    contracted = [size for letter, size in sizes.items() if letter not in result]
    return numel(node.output.shape, symbols) * math.prod(contracted)
