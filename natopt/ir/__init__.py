"""The typed operation IR: values, nodes, graphs, the op registry, costs, analyses
and the verifier."""

from natopt.ir.analysis import constant_nodes, constant_values
from natopt.ir.cost import Cost, graph_cost, node_cost
from natopt.ir.graph import Graph, Node, Value
from natopt.ir.infer import ShapeInferenceError, infer_node, infer_shapes
from natopt.ir.interpret import call_node, run_graph
from natopt.ir.ops.special import InputRef
from natopt.ir.printer import format_graph
from natopt.ir.registry import OpSpec, get_spec, ops_of_kind, register, registered_ops
from natopt.ir.types import Dim, Shape
from natopt.ir.verify import verify

__all__ = [
    "Cost",
    "Dim",
    "Graph",
    "InputRef",
    "Node",
    "OpSpec",
    "Shape",
    "ShapeInferenceError",
    "Value",
    "call_node",
    "constant_nodes",
    "constant_values",
    "format_graph",
    "get_spec",
    "graph_cost",
    "infer_node",
    "infer_shapes",
    "node_cost",
    "ops_of_kind",
    "register",
    "registered_ops",
    "run_graph",
    "verify",
]
