"""The IR verifier: run after every pass, it checks the invariants every pass relies on.

- nodes are in topological order (so the graph is acyclic) and every input is produced once,
  by an earlier node or a graph input;
- use lists match the node inputs exactly;
- every op is registered, its attributes are known and its required weights are present;
- every node has the number of outputs its op declares, and every value has a shape;
- the graph outputs are produced inside the graph;
- with ``check_shapes``, re-inferred shapes equal the recorded ones.
"""

from __future__ import annotations

from natopt.errors import VerifyError
from natopt.ir.graph import Graph, Node, Value
from natopt.ir.infer import ShapeInferenceError, infer_node
from natopt.ir.registry import get_spec

__all__ = ["verify"]


def _fail(graph: Graph, node: Node | None, message: str) -> VerifyError:
    where = f"node {node.name} ({node.op})" if node is not None else f"graph {graph.name}"
    return VerifyError(f"{where}: {message}")


def _check_node(graph: Graph, node: Node) -> None:
    try:
        spec = get_spec(node.op)
    except KeyError as exc:
        raise _fail(graph, node, str(exc)) from None
    unknown = set(node.attrs) - set(spec.attrs)
    if unknown:
        raise _fail(graph, node, f"unknown attribute(s) {sorted(unknown)}")
    missing = [w for w in spec.weights if w not in spec.optional_weights and w not in node.weights]
    if missing:
        raise _fail(graph, node, f"missing weight(s) {missing}")
    extra = set(node.weights) - set(spec.weights)
    if extra:
        raise _fail(graph, node, f"weight(s) {sorted(extra)} do not belong to op {node.op}")
    expected = spec.outputs_for(node.attrs)
    if len(node.outputs) != expected:
        raise _fail(graph, node, f"has {len(node.outputs)} outputs, op declares {expected}")


def verify(graph: Graph, *, check_shapes: bool = False) -> None:
    """Raise ``VerifyError`` naming the first node that breaks an invariant."""
    defined: set[Value] = set()
    names: set[str] = set()
    for value in graph.inputs:
        defined.add(value)
        names.add(value.name)
    for node in graph.nodes:
        _check_node(graph, node)
        for index, value in enumerate(node.inputs):
            if value is None:
                continue
            if value not in defined:
                raise _fail(graph, node, f"input {value.name} is not produced before this node")
            if (node, index) not in value.uses:
                raise _fail(graph, node, f"use list of {value.name} misses input {index}")
        for index, value in enumerate(node.outputs):
            if value.producer is not node or value.index != index:
                raise _fail(graph, node, f"output {value.name} does not point back to its node")
            if value.name in names:
                raise _fail(graph, node, f"value name {value.name} is defined twice")
            if value.shape is None:
                raise _fail(graph, node, f"output {value.name} has no shape")
            names.add(value.name)
            defined.add(value)
        if check_shapes and node.op != "Opaque":
            recorded = [(v.shape, v.dtype) for v in node.outputs]
            try:
                infer_node(node)
            except ShapeInferenceError:
                continue
            inferred = [(v.shape, v.dtype) for v in node.outputs]
            for value, (shape, dtype) in zip(node.outputs, recorded, strict=True):
                value.shape, value.dtype = shape, dtype
            if inferred != recorded:
                raise _fail(graph, node, f"recorded {recorded} but its op infers {inferred}")
    for value in graph.values():
        for user, index in value.uses:
            if index >= len(user.inputs) or user.inputs[index] is not value:
                raise _fail(graph, user, f"stale use of {value.name} at input {index}")
    if not graph.outputs:
        raise _fail(graph, None, "has no outputs")
    for value in graph.outputs:
        if value not in defined:
            raise _fail(graph, None, f"output {value.name} is not produced in the graph")
