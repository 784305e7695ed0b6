"""Transition rules: one object per transition family, registered once.

A rule (``TransitionRule``) holds everything about one family (keep, skip, null, smaller
kernel, separable, dilated separable, pooling, low rank, width), after onnxscript's rewrite
rules (pattern, check with a reason, replacement) and Torch-Pruning's one pruner class per
layer type:

- ``entries`` (its vocabulary entries, placed by ``order``) and ``ops`` (the
  ``Transition.op`` values it handles);
- ``accepts``: the unit families (``UnitState.family``) it starts from; ``context``: the
  graph-level facts it needs, computed once per graph (``MaskContext.facts``);
- ``check(state, entry, ctx, kernel_level)``: a ``Target`` (the replacement's geometry and
  its price, ``Target.cost``) or a ``Reason`` saying why the unit cannot take ``entry``;
  never a bare string;
- ``rewrite(graph, state, target)``: the replacement nodes, inserted before the replaced
  ones (``rewrite.rewrite_unit`` rewires and removes them);
- ``refit(nodes, x, y, alpha)``: least squares on calibration activations (default: none);
- ``family`` / ``parts`` / ``read`` / ``dense_weight``: the unit family its rewrite creates,
  the tags of its two halves, and how such a unit is read back (``state.unit_state``) and
  multiplied into one dense kernel (``state.dense_weight``).

``register`` adds a rule (a class decorator in the rule's own file under ``rules/``; the
package imports every file in it); ``rules()`` lists them, ``rule_for(op)`` finds the rule of
a ``Transition.op``, ``family_rule(family)`` the rule that created a unit family, if any.
Everything else (vocabulary, mask, apply, rewrite, pricing, latency probes) reads the rules
from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from natopt._registry import register_ops
from natopt.ir import Cost, Graph, Node

if TYPE_CHECKING:
    import torch

    from natopt.passes.transitions.mask import MaskContext
    from natopt.passes.transitions.state import UnitState
    from natopt.passes.units import Unit

__all__ = [
    "LEVELS",
    "Transition",
    "Reason",
    "Target",
    "TransitionRule",
    "cheaper",
    "priced",
    "register",
    "rule_for",
    "rules",
    "family_rule",
]


LEVELS = ("depth", "type", "kernel", "lowrank", "width")


@dataclass(frozen=True, slots=True)
class Transition:
    """One vocabulary entry.

    ``op`` is what the unit becomes ("keep", "skip", "null", "conv", "sep_conv",
    "dil_sep_conv", "max_pool", "avg_pool", "lowrank", "width"); ``kernel`` the target kernel
    size per spatial dim (conv-like and pooling targets); ``divisor`` the reduction of a
    dimension (the rank for "lowrank": full rank // divisor); ``fraction`` the share of output
    channels a "width" entry keeps (before rounding).
    """

    name: str
    level: str
    op: str
    kernel: int | None = None
    divisor: int | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"Transition {self.name}: level {self.level!r} not in {LEVELS}")


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a transition is invalid for a unit (a failed ``TransitionRule.check``)."""

    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Target:
    """A valid target of one unit, ready for ``TransitionRule.rewrite``.

    ``cost``: what the unit costs after the transition, so that ``state.cost - cost`` is what
    it saves (marginal, possibly negative, when the transition also changes other nodes);
    ``replaces``: the nodes the replacement takes the place of when they are more than the
    unit's own op (``state.replaced``), first to last along the data path; a rule that
    replaces another unit's op this way overrides that unit's own step in a plan.
    """

    entry: Transition
    cost: Cost
    kernel: int | None = None
    dilation: int = 1
    padding: tuple[int, ...] = ()
    rank: int | None = None
    channels: int | None = None
    replaces: tuple[Node, ...] = ()

    def replaced(self, state: UnitState) -> list[Node]:
        """The nodes the replacement takes the place of (``replaces``, else the unit's op)."""
        return list(self.replaces) or state.replaced


def cheaper(target: Cost, current: Cost) -> bool:
    """No more MACs and no more parameters, and strictly less in (MACs, params) order."""
    return (
        target.macs <= current.macs
        and target.params <= current.params
        and (target.macs, target.params) < (current.macs, current.params)
    )


def priced(state: UnitState, target: Target) -> Target | Reason:
    """``target`` when it is ``cheaper`` than the op it replaces, else the reason."""
    if not cheaper(target.cost, state.cost):
        return Reason(
            f"{target.entry.name} costs {target.cost.macs} MACs / {target.cost.params} params, "
            f"not below the unit's {state.cost.macs} / {state.cost.params}"
        )
    return target


class TransitionRule:
    """One transition family (see the module docstring); subclasses set the class fields.

    ``entries``: its vocabulary entries, placed by ``order``; ``accepts``: the unit families
    (``UnitState.family``) a family-changing rule starts from; ``builds``: the rewrite creates
    nodes (False for keep, skip and null, which only rewire: no new op to time, and their
    error is measured on the whole unit, ``rewired``); ``overrides_nested``: taken by a
    residual branch, it wins over the units inside it; ``frees_inputs``: it also leaves the
    unit's input unread (null), which breaks a tie in cost; ``grouped``: it acts on the
    unit's whole channel group (width), so ``apply_plan`` applies all such steps together
    instead of calling ``rewrite``; ``optional``: its entries are left out of the default
    ``VOCABULARY`` (a vocabulary that wants them lists them: ``Vocabulary((*VOCABULARY,
    *rule.entries))``).
    """

    ops: ClassVar[tuple[str, ...]] = ()
    entries: ClassVar[tuple[Transition, ...]] = ()
    order: ClassVar[int] = 0
    accepts: ClassVar[frozenset[str]] = frozenset()
    family: ClassVar[str | None] = None
    parts: ClassVar[tuple[str, str] | None] = None
    builds: ClassVar[bool] = True
    overrides_nested: ClassVar[bool] = False
    frees_inputs: ClassVar[bool] = False
    grouped: ClassVar[bool] = False
    optional: ClassVar[bool] = False

    def context(self, graph: Graph, units: Sequence[Unit]) -> object:
        """Graph-level facts ``check`` reads through ``MaskContext.facts`` (default none)."""
        return None

    def check(
        self, state: UnitState, entry: Transition, ctx: MaskContext, kernel_level: bool
    ) -> Target | Reason:
        raise NotImplementedError(f"{type(self).__name__}.check")

    def rewrite(self, graph: Graph, state: UnitState, target: Target) -> list[Node]:
        raise NotImplementedError(f"{type(self).__name__}.rewrite")

    def rewired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A rule that ``builds`` nothing: the unit's new output given its input ``x``."""
        raise NotImplementedError(f"{type(self).__name__}.rewired")

    def refit(self, nodes: Sequence[Node], x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        """Refit the new ``nodes`` so that they map ``x`` to ``y`` (default: no weights)."""

    def read(self, state: UnitState) -> None:
        """Fill ``state`` for a unit of ``family`` (its two ``parts`` in ``state.replaced``)."""

    def dense_weight(self, state: UnitState) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A unit of ``family`` as one dense weight and bias (``state.dense_weight``)."""
        raise NotImplementedError(f"{type(self).__name__}.dense_weight")


_RULES: dict[str, TransitionRule] = {}
_FAMILIES: dict[str, TransitionRule] = {}
R = TypeVar("R", bound=type[TransitionRule])


def register(cls: R) -> R:
    """Register one instance of the rule class ``cls`` under each of its ``ops``."""
    rule = cls()
    register_ops(_RULES, rule, cls.ops)
    if cls.family is not None:
        _FAMILIES[cls.family] = rule
    return cls


def rules() -> list[TransitionRule]:
    """Every registered rule, in vocabulary ``order``."""
    _load()
    return sorted(dict.fromkeys(_RULES.values()), key=lambda rule: rule.order)


def rule_for(op: str) -> TransitionRule | None:
    """The rule of transition op ``op`` (``Transition.op``), if one is registered."""
    _load()
    return _RULES.get(op)


def family_rule(family: str) -> TransitionRule | None:
    """The rule whose rewrite creates units of ``family``, if any."""
    _load()
    return _FAMILIES.get(family)


def _load() -> None:
    """Import the rule files (each registers itself) on first use."""
    import natopt.passes.transitions.rules  # noqa: F401
