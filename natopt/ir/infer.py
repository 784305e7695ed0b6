"""Shape and dtype inference, derived from each op's torch implementation on meta tensors.

Symbolic dims are bound to distinct large primes, the op runs on the meta device, and output
dims are read back: a dim equal to a symbol's prime is that symbol; a multiple of it is
``"sym*k"``. So inference is written once per op (its implementation), never twice.

The exception: the first meta op makes torch import ``torch._dynamo`` (seconds), so the
commonest ops (conv, linear, batch norm, pooling, activations, the arithmetic of two
tensors) also have a shape function (``OpSpec.shape``, ``natopt.ir.ops.shapes``), tried
first on the same bound dims when every input and weight has one floating dtype; where it
is not certain it declines, and the op runs on meta tensors.
"""

from __future__ import annotations

import torch

from natopt.ir.graph import Graph, Node
from natopt.ir.interpret import call_node
from natopt.ir.registry import get_spec
from natopt.ir.types import Dim, Shape, from_torch_dtype, to_torch_dtype

__all__ = ["infer_node", "infer_shapes", "ShapeInferenceError"]

_PRIMES = (100003, 100019, 100043, 100049, 100057, 100069, 100103, 100109)


class ShapeInferenceError(ValueError):
    """The op cannot run on meta tensors (it depends on values, not just shapes)."""


def _symbols_of(node: Node) -> dict[str, int]:
    names: list[str] = []
    for value in node.input_values:
        for dim in value.shape or ():
            if isinstance(dim, str):
                for part in dim.split("*"):
                    if not part.isdigit() and part not in names:
                        names.append(part)
    if len(names) > len(_PRIMES):
        raise ShapeInferenceError(f"node {node.name}: too many symbolic dims ({names})")
    return dict(zip(names, _PRIMES, strict=False))


def _bind(shape: Shape, primes: dict[str, int]) -> list[int]:
    out = []
    for dim in shape:
        if isinstance(dim, int):
            out.append(dim)
            continue
        size = 1
        for part in dim.split("*"):
            size *= int(part) if part.isdigit() else primes[part]
        out.append(size)
    return out


def _unbind(size: int, primes: dict[str, int]) -> Dim:
    for name, prime in primes.items():
        if size == prime:
            return name
        if size % prime == 0 and size // prime < prime:
            return f"{name}*{size // prime}"
    return size


def _by_rule(node: Node, primes: dict[str, int]) -> list[tuple[int, ...]] | None:
    """Output shapes from the op's shape function, or ``None`` (no rule, or it declines)."""
    rule = get_spec(node.op).shape
    values = node.input_values
    if rule is None or not values or any(v.shape is None for v in values):
        return None
    dtype = to_torch_dtype(values[0].dtype)
    if (
        not dtype.is_floating_point
        or any(to_torch_dtype(v.dtype) != dtype for v in values)
        or any(w.dtype != dtype for w in node.weights.values())
    ):
        return None
    shapes = [None if v is None else tuple(_bind(v.shape or (), primes)) for v in node.inputs]
    weights = {k: tuple(w.shape) for k, w in node.weights.items()}
    found = rule(shapes, weights, node.attrs)
    return found if found is not None and len(found) == len(node.outputs) else None


def infer_node(node: Node) -> None:
    """Set the shape and dtype of every output of ``node`` from its inputs."""
    primes = _symbols_of(node)
    ruled = _by_rule(node, primes)
    if ruled is not None:
        for value, shape in zip(node.outputs, ruled, strict=True):
            value.shape = tuple(_unbind(d, primes) for d in shape)
            value.dtype = node.input_values[0].dtype
        return
    args = []
    for value in node.inputs:
        if value is None:
            args.append(None)
            continue
        if value.shape is None:
            raise ShapeInferenceError(f"node {node.name}: input {value.name} has no shape")
        args.append(
            torch.empty(
                _bind(value.shape, primes), dtype=to_torch_dtype(value.dtype), device="meta"
            )
        )
    weights = {k: w.to("meta") for k, w in node.weights.items()}
    try:
        outs = call_node(node, args, weights)
    except Exception as exc:  # an op that needs values, not shapes
        raise ShapeInferenceError(f"node {node.name} ({node.op}): {exc}") from exc
    if len(outs) != len(node.outputs):
        raise ShapeInferenceError(
            f"node {node.name} ({node.op}) gave {len(outs)} outputs, expected {len(node.outputs)}"
        )
    for value, out in zip(node.outputs, outs, strict=True):
        value.shape = tuple(_unbind(int(d), primes) for d in out.shape)
        value.dtype = from_torch_dtype(out.dtype)


def infer_shapes(graph: Graph, *, keep_known: bool = True) -> list[str]:
    """Infer every node in order; returns the nodes that could not be inferred.

    With ``keep_known`` a node whose outputs already have shapes (from the frontend) keeps
    them when inference fails; otherwise the failure is raised.
    """
    failed = []
    for node in graph.nodes:
        try:
            infer_node(node)
        except ShapeInferenceError:
            if not (keep_known and all(v.shape is not None for v in node.outputs)):
                raise
            failed.append(node.name)
    return failed
