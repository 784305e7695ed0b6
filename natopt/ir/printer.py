"""A readable text form of a graph, one line per node (for dumps, tests and debugging)."""

from __future__ import annotations

from typing import Any

from natopt.ir.graph import Graph, Node, Value

__all__ = ["format_graph", "format_value_type"]


def format_value_type(value: Value) -> str:
    dims = "?" if value.shape is None else ",".join(str(d) for d in value.shape)
    return f"{value.dtype}[{dims}]"


def _format_attr(value: Any) -> str:
    if callable(value):
        return getattr(value, "__qualname__", None) or str(value)
    return repr(value)


def format_node(node: Node) -> str:
    outs = ", ".join(f"%{v.name}: {format_value_type(v)}" for v in node.outputs)
    args = ", ".join("None" if v is None else f"%{v.name}" for v in node.inputs)
    parts = [f"{outs} = {node.op}({args})"]
    if node.attrs:
        attrs = ", ".join(f"{k}={_format_attr(v)}" for k, v in node.attrs.items())
        parts.append(f"{{{attrs}}}")
    if node.weights:
        weights = ", ".join(f"{k}: {list(w.shape)}" for k, w in node.weights.items())
        parts.append(f"weights({weights})")
    if node.source:
        parts.append(f"# {node.source}")
    return " ".join(parts)


def format_graph(graph: Graph) -> str:
    params = ", ".join(f"%{v.name}: {format_value_type(v)}" for v in graph.inputs)
    lines = [f"graph {graph.name}({params}) {{"]
    lines += [f"  {format_node(node)}" for node in graph.nodes]
    lines.append(f"  return {', '.join('%' + v.name for v in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines)
