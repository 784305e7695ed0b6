"""Graph segments: the pieces a latency table times, each as onnxruntime runs it.

A *segment* is a conv, linear or pool unit's layer chain (the main op, its trailing norm and
its activations: onnxruntime fuses a conv with its activation, and canonicalisation has
folded the BatchNorm already), or any other single node. Nodes computed from constants only
(``Constant``, and whatever reads nothing but constants) are in no segment: onnxruntime
folds them into initializers when a session starts, so they cost nothing per run.

A segment's *signature* is everything its run time depends on: per node the op, its
attributes, its weight shapes and dtypes, its output shapes and dtypes and where each input
comes from (an earlier node of the segment, or the k-th external input); per external input
its shape, its dtype and whether it is a constant; and which values leave the segment.
Shapes are concrete: symbolic dims are bound by ``symbols`` (unbound ones count 1, as in
``natopt.ir.cost``). ``Segment.key`` is a short hash of the signature (equal signatures at
different places of a graph share one key), ``Segment.text`` a readable summary.

``probe_graph`` turns a segment into a standalone graph at those concrete shapes, ready for
``to_onnx``: float activations become graph inputs; constants and integer activations (shape
tensors, indices) become ``Constant`` nodes holding their values (``baked_values``: a
``Constant``'s own tensor, or the value captured from one run of the whole graph).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from natopt.ir import Graph, Node, Value, constant_nodes, infer_node
from natopt.ir.types import concrete_shape, to_torch_dtype
from natopt.passes.calibration import capture
from natopt.passes.units import find_units

__all__ = [
    "Segment",
    "graph_segments",
    "probe_graph",
    "baked_values",
    "clone_nodes",
    "is_float",
]

_CHAIN_KINDS = frozenset({"conv", "linear", "pool"})


@dataclass(slots=True, eq=False)
class Segment:
    """Nodes timed together; ``inputs`` are external values in first-use order and
    ``constant[k]`` says whether ``inputs[k]`` is computed from constants only."""

    nodes: list[Node]
    inputs: list[Value]
    constant: list[bool]
    outputs: list[Value]
    key: str
    text: str

    def needs_value(self, k: int) -> bool:
        """Whether external input ``k`` is built into the probe as a Constant."""
        return self.constant[k] or not is_float(self.inputs[k])


def is_float(value: Value) -> bool:
    return to_torch_dtype(value.dtype).is_floating_point


def _groups(graph: Graph, constant: frozenset[Node]) -> list[list[Node]]:
    """Unit chains and single nodes, in graph order, constant nodes left out."""
    chain_of: dict[Node, list[Node]] = {}
    for unit in find_units(graph):
        if unit.kind in _CHAIN_KINDS:
            for node in unit.nodes:
                chain_of[node] = unit.nodes
    groups: list[list[Node]] = []
    seen: set[Node] = set()
    for node in graph.nodes:
        if node in constant or node in seen:
            continue
        group = chain_of.get(node, [node])
        seen.update(group)
        groups.append(group)
    return groups


def _jsonable(x: Any) -> Any:
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if isinstance(x, (tuple, list)):
        return [_jsonable(i) for i in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if callable(x):
        return f"{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', repr(x))}"
    return repr(x)


def _concrete_tuple(value: Value, symbols: dict[str, int]) -> tuple[int, ...]:
    return concrete_shape(value.shape or (), symbols)


def _concrete(value: Value, symbols: dict[str, int]) -> list[int]:
    return list(_concrete_tuple(value, symbols))


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _segment(nodes: list[Node], constant: frozenset[Node], symbols: dict[str, int]) -> Segment:
    inside = set(nodes)
    position: dict[Value, tuple[int, int]] = {}
    inputs: list[Value] = []
    external: dict[Value, int] = {}
    rows = []
    for i, node in enumerate(nodes):
        refs: list[Any] = []
        for value in node.inputs:
            if value is None:
                refs.append(None)
            elif value in position:
                refs.append(list(position[value]))
            else:
                if value not in external:
                    external[value] = len(inputs)
                    inputs.append(value)
                refs.append(f"in{external[value]}")
        for out in node.outputs:
            position[out] = (i, out.index)
        rows.append(
            {
                "op": node.op,
                "attrs": _jsonable(node.attrs),
                "in": refs,
                "weights": {k: [list(w.shape), str(w.dtype)] for k, w in node.weights.items()},
                "out": [[_concrete(v, symbols), v.dtype] for v in node.outputs],
            }
        )
    outputs = [
        out
        for node in nodes
        for out in node.outputs
        if out.is_graph_output() or any(user not in inside for user, _ in out.uses)
    ]
    is_constant = [v.producer in constant for v in inputs]  # graph inputs: None
    signature = {
        "nodes": rows,
        "inputs": [
            [_concrete(v, symbols), v.dtype, c] for v, c in zip(inputs, is_constant, strict=True)
        ],
        "outputs": [list(position[v]) for v in outputs],
    }
    text = json.dumps(signature, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha1(text.encode()).hexdigest()[:20]
    shapes = [
        _shape_text(_concrete(v, symbols))
        for v, c in zip(inputs, is_constant, strict=True)
        if not c
    ]
    summary = (
        f"{'+'.join(n.op for n in nodes)} {' '.join(shapes)} -> "
        f"{' '.join(_shape_text(_concrete(v, symbols)) for v in outputs)}"
    )
    return Segment(nodes, inputs, is_constant, outputs, key, summary)


def graph_segments(graph: Graph, symbols: Mapping[str, int] | None = None) -> list[Segment]:
    """The segments of ``graph`` in graph order (see the module docstring)."""
    symbols = dict(symbols or {})
    constant = constant_nodes(graph)
    return [_segment(g, constant, symbols) for g in _groups(graph, constant)]


def clone_nodes(
    graph: Graph,
    nodes: Sequence[Node],
    env: dict[Value, Value],
    symbols: dict[str, int] | None = None,
) -> None:
    """Add copies of ``nodes`` to ``graph``; ``env`` maps the originals' input values to
    values of ``graph`` and receives their outputs. Output shapes are the originals', made
    concrete when ``symbols`` is given (no inference: some ops read values, not shapes)."""
    for node in nodes:
        clone = graph.add_node(
            node.op,
            [None if v is None else env[v] for v in node.inputs],
            dict(node.attrs),
            dict(node.weights),
            name=node.name,
            source=node.source,
            num_outputs=len(node.outputs),
        )
        clone.meta = dict(node.meta)
        for old, new in zip(node.outputs, clone.outputs, strict=True):
            new.shape = old.shape if symbols is None else _concrete_tuple(old, symbols)
            new.dtype = old.dtype
            env[old] = new


def baked_values(
    graph: Graph, segments: Sequence[Segment], symbols: Mapping[str, int] | None = None
) -> dict[Value, torch.Tensor]:
    """The tensors of the segments' inputs that probes build in, by value.

    A ``Constant``'s own tensor where it has one; the rest come from one run of ``graph`` on
    random inputs at the concrete shapes (integer inputs are zeros: valid indices).
    """
    symbols = dict(symbols or {})
    values: dict[Value, torch.Tensor] = {}
    wanted: dict[str, Value] = {}
    for segment in segments:
        for k, value in enumerate(segment.inputs):
            if not segment.needs_value(k):
                continue
            producer = value.producer
            if producer is not None and producer.op == "Constant":
                values[value] = producer.weights["value"]
            else:
                wanted[value.name] = value
    if wanted:
        generator = torch.Generator().manual_seed(0)
        inputs = []
        for value in graph.inputs:
            shape = concrete_shape(value.shape or (), symbols)
            dtype = to_torch_dtype(value.dtype)
            if dtype.is_floating_point:
                inputs.append(torch.randn(shape, generator=generator).to(dtype))
            else:
                inputs.append(torch.zeros(shape, dtype=dtype))
        seen = capture(graph, [inputs], set(wanted))
        for name, value in wanted.items():
            values[value] = seen[name]
    return values


def probe_graph(
    segment: Segment,
    values: Mapping[Value, torch.Tensor],
    symbols: Mapping[str, int] | None = None,
) -> Graph:
    """A standalone graph computing ``segment`` at concrete shapes (module docstring)."""
    symbols = dict(symbols or {})
    probe = Graph(f"probe_{segment.key}")
    env: dict[Value, Value] = {}
    for k, value in enumerate(segment.inputs):
        if segment.needs_value(k):
            const = probe.add_node("Constant", [], weights={"value": values[value]})
            infer_node(const)
            env[value] = const.output
        else:
            env[value] = probe.add_input(f"in{k}", _concrete_tuple(value, symbols), value.dtype)
    clone_nodes(probe, segment.nodes, env, symbols)
    probe.set_outputs([env[v] for v in segment.outputs])
    return probe
