"""The op registry: the single place where an op type is described.

An ``OpSpec`` holds everything about one op type: its typed attributes (name -> default),
the names of its weight tensors, its torch implementation, its cost, and its kind. The op
sets that passes need (the norms and activations that join a computational unit, the
ops that pass channels through unchanged) are read from the kinds with ``ops_of_kind``.
Frontends and backends translate through tables keyed by op name.

Shape inference is derived from the torch implementation (``natopt.ir.infer``), so an op's
semantics are written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from natopt.ir.graph import Node

__all__ = ["OpSpec", "register", "get_spec", "registered_ops", "ops_of_kind", "KINDS"]

KINDS = (
    "compute",  # conv, linear, matmul, attention: where the multiply-adds are
    "norm",  # batch, layer and group norm
    "activation",  # element by element (PRelu: with a slope weight)
    "softmax",  # softmax, log-softmax: normalised along an axis
    "pool",
    "elementwise",
    "reduce",
    "shape",  # reshape, transpose, slice, concat: data movement only
    "source",  # constant, shape-of
    "identity",  # identity, dropout: removed by canonicalisation
    "opaque",
)


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One op type.

    ``impl(*inputs, **weights, **attrs)`` is the torch implementation: it must work on real
    and on meta tensors. ``attrs`` maps attribute names to defaults (the default's type is the
    attribute's type). ``weights`` lists the weight tensor names; those in ``optional_weights``
    may be absent; those in ``buffers`` are state, not trainable parameters (a ``Constant``
    is trainable only when its node's ``meta["trainable"]`` says so). ``cost(node, symbols)``
    returns the node's multiply-accumulates (``None``: zero); parameters and bytes moved are
    counted the same way for every op. ``num_outputs(attrs)`` for multi-output ops.
    ``shape(input_shapes, weight_shapes, attrs)``, where given, is a shape function that
    inference tries before running the op on meta tensors (``natopt.ir.ops.shapes``).
    """

    name: str
    kind: str
    impl: Callable[..., Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    optional_weights: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()
    cost: Callable[[Node, dict[str, int] | None], int] | None = None
    num_outputs: Callable[[dict[str, Any]], int] | None = None
    shape: Callable[..., list[tuple[int, ...]] | None] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"OpSpec({self.name}): kind {self.kind!r} is not one of {KINDS}")

    def outputs_for(self, attrs: dict[str, Any]) -> int:
        return 1 if self.num_outputs is None else self.num_outputs(attrs)

    def check_attrs(self, node_name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and reject unknown attributes."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise ValueError(
                f"node {node_name}: op {self.name} has no attribute(s) {sorted(unknown)}; "
                f"known: {sorted(self.attrs)}"
            )
        return {**self.attrs, **attrs}


_REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"op {spec.name} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(op: str) -> OpSpec:
    _load_ops()
    try:
        return _REGISTRY[op]
    except KeyError:
        raise KeyError(f"op {op!r} is not in the registry; known: {sorted(_REGISTRY)}") from None


def registered_ops() -> dict[str, OpSpec]:
    _load_ops()
    return dict(_REGISTRY)


def ops_of_kind(kind: str) -> frozenset[str]:
    """The names of the registered ops of ``kind`` (one of ``KINDS``)."""
    if kind not in KINDS:
        raise ValueError(f"op kind {kind!r} is not one of {KINDS}")
    return frozenset(name for name, spec in registered_ops().items() if spec.kind == kind)


def _load_ops() -> None:
    if not _REGISTRY:
        import natopt.ir.ops  # noqa: F401  (registers every op on import)
