"""Constants, identities and the opaque op that keeps an unknown torch callable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from natopt.ir.ops.shapes import same_shape
from natopt.ir.registry import OpSpec, register

__all__ = ["InputRef", "call_opaque", "substitute_inputs"]


@dataclass(frozen=True, slots=True)
class InputRef:
    """Marks, inside an opaque node's argument template, where its ``index``-th input goes."""

    index: int


def substitute_inputs(template: Any, inputs: tuple[Any, ...]) -> Any:
    """Replace every ``InputRef`` in a nested list/tuple/dict template by its input."""
    if isinstance(template, InputRef):
        return inputs[template.index]
    if isinstance(template, (list, tuple)):
        return type(template)(substitute_inputs(t, inputs) for t in template)
    if isinstance(template, dict):
        return {k: substitute_inputs(t, inputs) for k, t in template.items()}
    return template


def call_opaque(*inputs, target=None, args=(), kwargs=None, num_outputs=1):
    """Run the kept callable with the node's inputs put back into its argument template.

    A callable with several results returns them as a tuple of ``num_outputs`` tensors.
    """
    return target(*substitute_inputs(args, inputs), **substitute_inputs(kwargs or {}, inputs))


def constant(*, value):
    return value


def identity(x):
    return x


def dropout(x, *, p=0.5):
    """Inference semantics: the identity (canonicalisation removes it)."""
    return x


register(
    OpSpec(
        "Constant",
        "source",
        constant,
        weights=("value",),
        buffers=("value",),
        doc="a stored tensor (a parameter or buffer used as an activation)",
    )
)
register(OpSpec("Identity", "identity", identity, shape=same_shape))
register(OpSpec("Dropout", "identity", dropout, attrs={"p": 0.5}, shape=same_shape))
register(
    OpSpec(
        "Opaque",
        "opaque",
        call_opaque,
        attrs={"target": None, "args": (), "kwargs": None, "num_outputs": 1},
        num_outputs=lambda attrs: attrs["num_outputs"],
        doc="an op the registry does not know: runs its original torch callable, "
        "is never transformed",
    )
)
