"""Lift a ``torch.export.ExportedProgram``: its graph signature says what each placeholder is.

Parameters, buffers and lifted constants become ``ParamRef``s named by their state-dict key
(``layer1.0.conv2.weight``); user inputs become graph inputs whose shapes come from the
placeholders' example values. With a symbolic batch, the symbol on dim 0 of the inputs is
named ``"batch"``.
"""

from __future__ import annotations

from typing import Any

import sympy
import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from natopt.errors import FrontendError
from natopt.frontends.torch.aten_table import mutates_first_argument
from natopt.frontends.torch.context import LiftContext, ParamRef
from natopt.frontends.torch.fx_lift import FxWalker, meta_val, sym_namer
from natopt.ir import Graph, Value
from natopt.ir.types import from_torch_dtype

__all__ = ["lift_program", "batch_symbols", "add_graph_input"]


def batch_symbols(examples: list[Any]) -> dict[sympy.Symbol, str]:
    """The symbol of dim 0 of every example input is the batch."""
    names: dict[sympy.Symbol, str] = {}
    for example in examples:
        if isinstance(example, torch.Tensor) and example.dim() > 0:
            size = example.shape[0]
            if isinstance(size, torch.SymInt) and size.node.expr.is_Symbol:
                names[size.node.expr] = "batch"
    return names


def add_graph_input(cx: LiftContext, name: str, example: Any, sym) -> Value:
    """A graph input shaped like ``example``; its symbolic dims become dim sources."""
    if not isinstance(example, torch.Tensor):
        raise FrontendError(
            f"input {name} is a {type(example).__name__}; natopt lifts tensor inputs only"
        )
    dims = [sym(d) for d in example.shape]
    shape = tuple(d if isinstance(d, int) else d.dim for d in dims)
    value = cx.graph.add_input(name, shape, from_torch_dtype(example.dtype))
    for axis, d in enumerate(shape):
        if isinstance(d, str) and "*" not in d:
            cx.dim_sources.setdefault(d, (value, axis))
    return value


def _stored(program: ExportedProgram, kind: InputKind, target: str) -> ParamRef:
    if kind == InputKind.PARAMETER:
        return ParamRef(program.state_dict[target], target, True)
    if target in program.state_dict:
        return ParamRef(program.state_dict[target], target, False)
    return ParamRef(program.constants[target], target, False)


def _is_view(node: fx.Node) -> bool:
    returns = getattr(getattr(node.target, "_schema", None), "returns", ())
    alias = returns[0].alias_info if returns else None
    return node.op == "call_function" and alias is not None and not alias.is_write


def _mutates_an_alias(program: ExportedProgram) -> bool:
    """Some in-place op writes a tensor that is a view, or that a view was taken of.

    The walker's rewiring (later reads of a mutated tensor see the new value) is exact only
    without aliases; with them the program is functionalised first.
    """
    for node in program.graph.nodes:
        if not mutates_first_argument(node.target) or not isinstance(node.args[0], fx.Node):
            continue
        written = node.args[0]
        if _is_view(written) or any(_is_view(user) for user in written.users):
            return True
    return False


def lift_program(
    program: ExportedProgram, name: str, stored_inputs: dict[int, ParamRef] | None = None
) -> Graph:
    """The IR graph of ``program``.

    ``stored_inputs`` binds user inputs (by position) that are really stored tensors: the
    parameters a dynamo graph takes as arguments. The other user inputs become graph inputs.
    A program that writes through views (``y[:, 0] = 0``) is functionalised first
    (``run_decompositions({})``: in-place ops become ``select_scatter`` and the like).
    """
    stored_inputs = stored_inputs or {}
    if _mutates_an_alias(program):
        program = program.run_decompositions({})
    graph = Graph(name)
    cx = LiftContext(graph)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    user = [s for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    position = {id(spec): i for i, spec in enumerate(user)}
    sym = sym_namer(batch_symbols([meta_val(placeholders[s.arg.name]) for s in user]))
    env: dict[fx.Node, Any] = {}
    for spec in program.graph_signature.input_specs:
        node = placeholders.get(getattr(spec.arg, "name", ""))
        if spec.kind == InputKind.USER_INPUT and position[id(spec)] in stored_inputs:
            env[node] = stored_inputs[position[id(spec)]]
        elif spec.kind == InputKind.USER_INPUT:
            if node is None:
                raise FrontendError(
                    f"exported input {spec.arg} is not a tensor; natopt lifts tensor inputs only"
                )
            env[node] = add_graph_input(cx, node.name, meta_val(node), sym)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            env[node] = _stored(program, spec.kind, spec.target)
        else:
            raise FrontendError(
                f"exported input {spec.arg} of kind {spec.kind.name} is not supported"
            )
    for node in program.graph.nodes:
        if node.op == "get_attr":
            env[node] = ParamRef(getattr(program.graph_module, node.target), node.target, False)
    results = FxWalker(cx, env, sym).run(program.graph)
    kinds = [s.kind for s in program.graph_signature.output_specs]
    outputs = [r for r, k in zip(results, kinds, strict=True) if k == OutputKind.USER_OUTPUT]
    graph.set_outputs([cx.value(r) for r in outputs])
    return graph
