"""``TransitionMask``: which vocabulary entries each unit of a graph may take.

``compute_mask(graph, vocabulary)`` returns a ``[units, len(vocabulary)]`` ``torch.bool``
matrix with the unit list and the vocabulary, and keeps what each check returned
(``TransitionMask.targets``: a ``Target`` with its cost, or the ``Reason`` it is invalid).
``MaskContext.check`` asks the rule of each entry's op (``registry.rule_for``, one file per
family under ``rules/``; each rule's docstring states its conditions):

- keep is always valid; skip and null remove the unit's MACs and parameters, so against a
  unit they are always cheaper (cost order other > skip > null); every other target must be
  cheaper than the op it replaces (``registry.cheaper``). Targets of equal cost are
  therefore masked: separable -> dilated separable at the same kernel, max <-> avg pooling.
- graph-level facts a rule needs (which outputs null may zero) are computed once, when
  first asked (``MaskContext.facts``). Width needs the unit's channel group: when the
  vocabulary has the width level the context computes the graph's channel groups once
  (``natopt.passes.width.channel_groups``) and ``MaskContext.state`` gives each unit's
  state its group.

Everything is computed from the graph once, arithmetically: no graph is copied per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from natopt.ir import Graph
from natopt.passes.transitions.masked_softmax import masked_sample
from natopt.passes.transitions.plan import Plan
from natopt.passes.transitions.registry import Reason, Target, TransitionRule, rule_for
from natopt.passes.transitions.state import UnitState, transition_units, unit_state
from natopt.passes.transitions.vocabulary import VOCABULARY, Transition, Vocabulary
from natopt.passes.units import Unit
from natopt.passes.width import GroupAnalysis, WidthOptions, channel_groups

__all__ = ["TransitionMask", "MaskContext", "compute_mask"]


@dataclass(slots=True)
class MaskContext:
    """Graph-level facts the rules need, each computed once per graph, when first asked."""

    graph: Graph
    units: Sequence[Unit]
    groups: GroupAnalysis | None = None  # channel groups, when width transitions are wanted
    _facts: dict[TransitionRule, object] = field(default_factory=dict)

    @classmethod
    def of(
        cls, graph: Graph, units: Sequence[Unit], width: WidthOptions | None = None
    ) -> MaskContext:
        """The context of ``graph``; with ``width``, its channel groups too."""
        groups = None if width is None else channel_groups(graph, units, width.rounding)
        return cls(graph, units, groups)

    def facts(self, rule: TransitionRule) -> object:
        """What ``rule.context`` finds in this graph (computed once)."""
        if rule not in self._facts:
            self._facts[rule] = rule.context(self.graph, self.units)
        return self._facts[rule]

    def state(self, unit: Unit) -> UnitState:
        """``unit_state(unit)`` with the channel group the unit leads (width)."""
        state = unit_state(unit)
        if self.groups is not None:
            found = self.groups.leads(unit)
            if isinstance(found, str):
                state.group_reason = found
            else:
                state.group = found
        return state

    def check(
        self, state: UnitState, entry: Transition, kernel_level: bool = True
    ) -> Target | Reason:
        """The ``Target`` ``entry`` gives ``state``'s unit, or the ``Reason`` it is invalid."""
        rule = rule_for(entry.op)
        if rule is None:
            return Reason(f"{entry.op} has no transition rule (natopt.passes.transitions.rules)")
        return rule.check(state, entry, self, kernel_level)


@dataclass(slots=True)
class TransitionMask:
    """``valid[u, v]``: unit ``units[u]`` may take ``vocabulary[v]``; keep is always valid."""

    units: list[Unit]
    vocabulary: Vocabulary
    valid: torch.Tensor
    states: list[UnitState]
    width: WidthOptions | None = None  # how width entries were rounded (apply them alike)
    targets: list[list[Target | Reason]] = field(default_factory=list)

    @property
    def unit_names(self) -> list[str]:
        return [u.name for u in self.units]

    def valid_names(self, unit: int | str) -> list[str]:
        row = self.unit_names.index(unit) if isinstance(unit, str) else unit
        return [self.vocabulary[int(v)].name for v in self.valid[row].nonzero().flatten()]

    def target(self, unit: int, name: str) -> Target | Reason:
        """What the mask's check found for unit row ``unit`` and entry ``name``."""
        return self.targets[unit][self.vocabulary.index(name)]

    def counts(self) -> dict[str, int]:
        """How many units may take each entry."""
        per_entry = self.valid.sum(dim=0).tolist()
        return {e.name: int(c) for e, c in zip(self.vocabulary, per_entry, strict=True)}

    def plan(self, indices: torch.Tensor | Sequence[int]) -> Plan:
        """The plan choosing entry ``indices[u]`` for unit ``u`` (keep entries are left out)."""
        chosen = [int(i) for i in indices]
        if len(chosen) != len(self.units):
            raise ValueError(
                f"TransitionMask.plan: {len(chosen)} indices for {len(self.units)} units"
            )
        transitions = {}
        for row, (unit, index) in enumerate(zip(self.units, chosen, strict=True)):
            if not bool(self.valid[row, index]):
                name = self.vocabulary[index].name
                raise ValueError(f"TransitionMask.plan: {name} is masked for unit {unit.name}")
            if self.vocabulary[index].name != "keep":
                transitions[unit.name] = self.vocabulary[index].name
        return Plan(transitions)

    def random_plan(self, generator: torch.Generator | None = None) -> Plan:
        """A plan drawn uniformly over each unit's valid entries."""
        logits = torch.zeros(self.valid.shape)
        return self.plan(masked_sample(logits, self.valid, generator))


def compute_mask(
    graph: Graph, vocabulary: Vocabulary = VOCABULARY, *, width: WidthOptions | None = None
) -> TransitionMask:
    """The transition mask of ``graph`` over ``vocabulary`` (see the module docstring);
    ``width``: how width entries round (default ``WidthOptions()``: onnxruntime on CPU)."""
    units = transition_units(graph)
    wanted = (width or WidthOptions()) if "width" in vocabulary.levels else None
    ctx = MaskContext.of(graph, units, wanted)
    kernel_level = "kernel" in vocabulary.levels
    states = [ctx.state(u) for u in units]
    targets = [[ctx.check(s, e, kernel_level) for e in vocabulary] for s in states]
    rows = [[not isinstance(found, Reason) for found in row] for row in targets]
    valid = torch.tensor(rows, dtype=torch.bool).reshape(len(units), len(vocabulary))
    return TransitionMask(units, vocabulary, valid, states, wanted, targets)
