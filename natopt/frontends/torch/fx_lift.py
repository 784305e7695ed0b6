"""Walk an fx graph in order and build the IR graph through the adapter table.

The caller binds every placeholder (and ``get_attr``) node to what it stands for: a graph
input ``Value``, a stored tensor ``ParamRef`` or a Python value. Then, per ``call_*`` node:

- a node whose result is not a tensor (a size, ``sym_size``, ``x.shape``) becomes a Python
  value (a symbolic size becomes a ``SymDim``), never an IR node;
- ``getitem`` picks from a lifted tuple;
- an ATen target in ``ATEN_TABLE`` goes through its adapter; ``PARAM_VIEWS`` applied to a
  stored tensor are evaluated at lift time (``t(fc.weight)`` stays a stored tensor);
- anything else, or an adapter that says ``NotLiftable``, becomes an ``Opaque`` node holding
  the original callable, so the model still runs.

Torch-level graphs (symbolic_trace, dynamo) first pass each node through ``normalise``, which
rewrites it to an ATen call where the torch-level table knows one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sympy
import torch
import torch.fx as fx

from natopt.errors import FrontendError
from natopt.frontends.torch.aten_table import (
    ATEN_TABLE,
    PARAM_VIEWS,
    bind_schema,
    mutates_first_argument,
)
from natopt.frontends.torch.callables import TensorResults
from natopt.frontends.torch.context import LiftContext, NotLiftable, ParamRef, SymDim
from natopt.ir import InputRef, Node, Value
from natopt.ir.types import from_torch_dtype, is_static

__all__ = ["Call", "FxWalker", "meta_val", "sym_namer"]


@dataclass(slots=True)
class Call:
    """One call to lift: ``target(*args, **kwargs)`` with lifted arguments."""

    target: Any
    args: tuple
    kwargs: dict[str, Any]


class Normaliser(Protocol):
    """Rewrites torch-level calls: ``to_aten`` gives the ATen call (or ``None``), ``opaque``
    the call an Opaque node keeps when there is none."""

    def to_aten(self, node: fx.Node, call: Call) -> Call | None: ...

    def opaque(self, node: fx.Node, call: Call) -> Call: ...


def meta_val(node: fx.Node) -> Any:
    """The example result recorded on an fx node (export: ``val``; dynamo: ``example_value``)."""
    if "val" in node.meta:
        return node.meta["val"]
    return node.meta.get("example_value")


def sym_namer(names: dict[sympy.Symbol, str]) -> Callable[[Any], int | SymDim | None]:
    """Turn a SymInt into a ``SymDim`` ("batch", "batch*197") with ``names`` for its symbols."""

    def convert(size: Any) -> int | SymDim | None:
        if isinstance(size, int):
            return size
        expr = size.node.expr
        if expr.is_Integer:
            return int(expr)
        coeff, rest = expr.as_coeff_Mul()
        if not (rest.is_Symbol and coeff.is_Integer):
            return None
        name = names.get(rest, str(rest))
        return SymDim(name if coeff == 1 else f"{name}*{int(coeff)}")

    return convert


class FxWalker:
    """Lifts the ``call_*`` nodes of one fx graph into ``cx.graph``."""

    def __init__(
        self,
        cx: LiftContext,
        env: dict[fx.Node, Any],
        sym: Callable[[Any], int | SymDim | None],
        normalise: Normaliser | None = None,
        vals: dict[fx.Node, Any] | None = None,
    ) -> None:
        self.cx = cx
        self.env = env
        self.sym = sym
        self.normalise = normalise
        self.vals = vals

    # ---- the walk ---------------------------------------------------------------------
    def run(self, graph: fx.Graph) -> list[Any]:
        """Lift every node; returns the lifted leaves of the output node's arguments."""
        for node in graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                if node not in self.env:
                    raise FrontendError(f"fx node {node.name} ({node.op}) is not bound")
            elif node.op == "output":
                leaves: list[Any] = []
                fx.node.map_aggregate(self._read(node.args[0]), leaves.append)
                return leaves
            else:
                self.env[node] = self._lift_node(node)
        raise FrontendError("the fx graph has no output node")

    def _read(self, arg: Any) -> Any:
        return fx.node.map_aggregate(arg, lambda a: self.env[a] if isinstance(a, fx.Node) else a)

    def _lift_node(self, node: fx.Node) -> Any:
        val = meta_val(node) if self.vals is None else self.vals.get(node)
        if val is not None and not _has_tensor(val):
            return self._python_value(val)
        if val is None and not node.users:
            return None
        call = Call(node.target, self._read(node.args), self._read(dict(node.kwargs)))
        if node.target is operator.getitem and isinstance(call.args[0], (list, tuple)):
            return call.args[0][call.args[1]]
        fallback = call
        if self.normalise is not None:
            fallback = self.normalise.opaque(node, call)
            call = self.normalise.to_aten(node, call) or fallback
        self.cx.fx_node, self.cx.example, self.cx.name_hint = node, val, node.name
        result = self._lift_call(node, call, val, fallback)
        self._fill_shapes(result, val)
        if mutates_first_argument(call.target) and isinstance(node.args[0], fx.Node):
            self.env[node.args[0]] = result
        return result

    def _lift_call(self, node: fx.Node, call: Call, val: Any, fallback: Call) -> Any:
        adapter = ATEN_TABLE.get(call.target)
        if adapter is not None:
            try:
                bound = bind_schema(call.target, call.args, call.kwargs)
                if call.target in PARAM_VIEWS and _all_stored(bound):
                    return _fold(call)
                return _as_result(adapter(self.cx, bound), val)
            except NotLiftable as why:
                return lift_opaque(self.cx, fallback, val, reason=str(why))
        return lift_opaque(self.cx, fallback, val, reason="no adapter for this target")

    def _python_value(self, val: Any) -> Any:
        """A size or other non-tensor result: ints stay ints, SymInts become SymDims."""
        if isinstance(val, list):
            return [self._python_value(v) for v in val]
        if isinstance(val, tuple):
            return tuple(self._python_value(v) for v in val)
        if isinstance(val, torch.SymInt):
            return self.sym(val)
        if isinstance(val, (torch.SymFloat, torch.SymBool)):
            raise FrontendError(
                f"symbolic scalar {val} is not supported; lift without dynamic_batch"
            )
        return val

    def _fill_shapes(self, result: Any, val: Any) -> None:
        """Values whose shape inference failed take the fx node's recorded shape and dtype;
        an inferred static shape that disagrees with torch's is a frontend bug, said here."""
        values = result if isinstance(result, (list, tuple)) else [result]
        vals = val if isinstance(val, (list, tuple)) else [val]
        for value, example in zip(values, vals, strict=False):
            if not (isinstance(value, Value) and isinstance(example, torch.Tensor)):
                continue
            dims = [self.sym(d) for d in example.shape]
            shape = tuple(d.dim if isinstance(d, SymDim) else d for d in dims)
            if value.shape is None:
                value.shape = None if None in shape else shape
                value.dtype = from_torch_dtype(example.dtype)
            elif is_static(value.shape) and is_static(shape) and value.shape != shape:
                raise FrontendError(
                    f"fx node {self.cx.name_hint}: lifted to shape {value.shape} but torch "
                    f"computes {shape}; this is a bug in the natopt torch frontend"
                )


def lift_opaque(cx: LiftContext, call: Call, val: Any, *, reason: str) -> Value | tuple:
    """``Opaque`` node: the callable with every tensor argument replaced by ``InputRef(i)``.

    A result tuple that holds non-tensors keeps only its tensors as outputs
    (``TensorResults``); the others keep their example values. ``meta["reason"]`` says why
    the call has no IR form.
    """
    inputs: list[Value] = []

    def template(x: Any) -> Any:
        if isinstance(x, (Value, ParamRef, torch.Tensor)):
            inputs.append(cx.value(x))
            return InputRef(len(inputs) - 1)
        if isinstance(x, SymDim):
            raise FrontendError(
                f"fx node {cx.name_hint} ({call.target}) takes the symbolic size {x.dim}, which "
                "an unmapped op cannot carry; lift without dynamic_batch"
            )
        if isinstance(x, (list, tuple)):
            return type(x)(template(i) for i in x)
        if isinstance(x, dict):
            return {k: template(v) for k, v in x.items()}
        return x

    args, kwargs = template(tuple(call.args)), template(dict(call.kwargs))
    several = isinstance(val, (list, tuple))
    positions = (
        tuple(i for i, v in enumerate(val) if isinstance(v, torch.Tensor)) if several else (0,)
    )
    target = call.target
    if several and (len(positions) != len(val) or len(positions) == 1):
        target = TensorResults(target, positions)
    attrs = {"target": target, "args": args, "kwargs": kwargs, "num_outputs": len(positions)}
    node = cx.add("Opaque", inputs, attrs)
    node.meta["reason"] = reason
    if not several:
        return node.output
    outputs = iter(node.outputs)
    return tuple(next(outputs) if i in positions else v for i, v in enumerate(val))


def _as_result(result: Node | Value | list, val: Any) -> Any:
    """An adapter's result as the fx node's value: one Value, or a tuple for tuple results.

    An op whose IR form gives only the first of several results pads the rest with ``None``
    (the adapter checked that nothing reads them).
    """
    if isinstance(result, Node):
        result = result.outputs[0] if len(result.outputs) == 1 else tuple(result.outputs)
    if isinstance(val, (list, tuple)) and isinstance(result, Value):
        return (result,) + (None,) * (len(val) - 1)
    return result


def _has_tensor(val: Any) -> bool:
    if isinstance(val, torch.Tensor):
        return True
    if isinstance(val, (list, tuple)):
        return any(_has_tensor(v) for v in val)
    return False


def _all_stored(bound: dict[str, Any]) -> bool:
    """Every tensor argument is a stored tensor and no size is symbolic."""
    flat: list[Any] = []
    fx.node.map_aggregate(list(bound.values()), flat.append)
    return isinstance(next(iter(bound.values()), None), ParamRef) and not any(
        isinstance(v, (Value, SymDim)) for v in flat
    )


def _fold(call: Call) -> ParamRef:
    """Evaluate a view of a stored tensor now; it keeps the stored tensor's path."""
    first = call.args[0]

    def unwrap(x: Any) -> Any:
        return x.tensor if isinstance(x, ParamRef) else x

    args = fx.node.map_aggregate(call.args, unwrap)
    kwargs = fx.node.map_aggregate(call.kwargs, unwrap)
    with torch.no_grad():
        tensor = call.target(*args, **kwargs)
    return ParamRef(tensor, first.path, first.trainable)
