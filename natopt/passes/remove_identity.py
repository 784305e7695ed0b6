"""Remove ops that compute the identity at inference.

Rewrite: ``y = Op(x); z = use(y)  ->  z = use(x)`` (graph outputs too), for

- ``Identity`` and ``Dropout`` (inference semantics: always the identity);
- ``Cast`` to the dtype its input already has;
- ``Reshape`` whose input and output have the same static shape (its optional shape input,
  if any, is left for dead-code removal).

Precondition: the op's data input is its first input. The rule for each op is one entry of
a table, so adding a removable op is one line.
"""

from __future__ import annotations

from collections.abc import Callable

from natopt.ir import Graph, Node
from natopt.ir.types import is_static
from natopt.passes.base import Pass, PassContext, PassResult

__all__ = ["RemoveIdentityPass", "IDENTITY_RULES"]


def _always(node: Node) -> bool:
    return True


def _same_dtype(node: Node) -> bool:
    source = node.inputs[0]
    return source is not None and source.dtype == node.attrs["dtype"]


def _same_static_shape(node: Node) -> bool:
    source = node.inputs[0]
    return source is not None and is_static(source.shape) and source.shape == node.output.shape


IDENTITY_RULES: dict[str, Callable[[Node], bool]] = {
    "Identity": _always,
    "Dropout": _always,
    "Cast": _same_dtype,
    "Reshape": _same_static_shape,
}


class RemoveIdentityPass(Pass):
    """Identity, Dropout, no-op Cast and no-op Reshape are removed; consumers read the input."""

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        changed = False
        for node in list(graph.nodes):
            rule = IDENTITY_RULES.get(node.op)
            source = node.inputs[0] if node.inputs else None
            if rule is None or source is None or not rule(node):
                continue
            graph.replace_all_uses(node.output, source)
            graph.remove_node(node)
            changed = True
        return PassResult(graph, changed)
