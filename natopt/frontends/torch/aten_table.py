"""The one table of the torch frontend: ATen target -> adapter.

An adapter is ``adapter(cx: LiftContext, args: dict[str, Any]) -> Node | Value | list``; its
arguments are the fx node's, bound by name to the op's schema with defaults filled, and
already lifted (activations are ``Value``s, stored tensors ``ParamRef``s). A target not in the
table becomes an ``Opaque`` node (``fx_lift.lift_opaque``).
"""

from __future__ import annotations

from typing import Any

import torch

from natopt.frontends.torch.aten_elementwise import ELEMENTWISE_ADAPTERS
from natopt.frontends.torch.aten_nn import NN_ADAPTERS
from natopt.frontends.torch.aten_shape import PARAM_VIEWS, SHAPE_ADAPTERS
from natopt.frontends.torch.context import NotLiftable

__all__ = ["ATEN_TABLE", "PARAM_VIEWS", "bind_schema", "mutates_first_argument"]

ATEN_TABLE: dict[Any, Any] = {**NN_ADAPTERS, **ELEMENTWISE_ADAPTERS, **SHAPE_ADAPTERS}

_MISSING = object()


def bind_schema(target: torch._ops.OpOverload, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by schema name, in schema order, defaults filled.

    A required argument the call does not give is left out (the adapter decides); arguments
    the schema does not have are ``NotLiftable``.
    """
    schema = target._schema.arguments
    positional = [a for a in schema if not a.kwarg_only]
    unknown = set(kwargs) - {a.name for a in schema}
    if len(args) > len(positional) or unknown:
        raise NotLiftable(f"arguments do not match the schema of {target}")
    bound: dict[str, Any] = {}
    for i, arg in enumerate(schema):
        if i < len(args) and not arg.kwarg_only:
            value = args[i]
        elif arg.name in kwargs:
            value = kwargs[arg.name]
        elif arg.has_default_value():
            value = arg.default_value
        else:
            value = _MISSING
        if value is not _MISSING:
            bound[arg.name] = value
    return bound


def mutates_first_argument(target: Any) -> bool:
    """True for in-place ATen ops (``relu_``, ``add_.Tensor``): their first argument is written."""
    schema = getattr(target, "_schema", None)
    if schema is None or not schema.arguments:
        return False
    alias = schema.arguments[0].alias_info
    return bool(alias is not None and alias.is_write)
