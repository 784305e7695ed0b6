"""``TransitionMask``: which vocabulary entries each unit of a graph may take.

``compute_mask(graph, vocabulary)`` returns a ``[units, len(vocabulary)]`` ``torch.bool``
matrix with the unit list and the vocabulary. The rules (one function per depth entry, and
``targets.TARGET_RULES`` for the rest):

- ``keep``: always valid.
- ``skip`` (the unit becomes the identity): valid when the unit's output has the shape and
  dtype of its input.
- ``null`` (the unit's output becomes zero, so each Add reading it becomes its other operand).
  Call a unit a *null candidate* when its output is not a graph output and every use of it is
  an operand of a two-input ``Add`` whose other operand is a different value, has the Add's
  own shape and dtype, and depends on a graph input (is not a constant). ``null`` is valid on
  a candidate when, for every such Add, the other operand is *not* the output of a null
  candidate. Hence at most one operand of an Add is ever nullable, and the other operand of
  every nulled Add stays live: the main path is never zeroed. (In a ResNet block with a
  downsample shortcut both operands are candidates, so neither is offered null.)
- type, kernel, low rank, width: ``targets.target_for`` (shapes, groups, strides, padding,
  cost). Width needs the unit's channel group: when the vocabulary has the width level the
  context computes the graph's channel groups once (``natopt.passes.width.channel_groups``)
  and ``MaskContext.state`` gives each unit's state its group.
- cost order other > skip > null: skip and null remove the unit's MACs and parameters, so
  against a unit they are always cheaper; every other target must be cheaper than the op it
  replaces (``targets.cheaper``). Targets of equal cost are therefore masked: separable ->
  dilated separable at the same kernel, max <-> avg pooling.

Everything is computed from the graph once, arithmetically: no graph is copied per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from natopt.ir import Graph, Value
from natopt.passes.transitions.masked_softmax import masked_sample
from natopt.passes.transitions.plan import Plan
from natopt.passes.transitions.registry import Reason, Target, rule_for
from natopt.passes.transitions.state import UnitState, transition_units, unit_state
from natopt.passes.transitions.targets import target_for
from natopt.passes.transitions.vocabulary import VOCABULARY, Transition, Vocabulary
from natopt.passes.units import Unit
from natopt.passes.width import GroupAnalysis, WidthOptions, channel_groups

__all__ = ["TransitionMask", "MaskContext", "compute_mask"]


def _constant_values(graph: Graph) -> set[Value]:
    """The values computed from no graph input."""
    constant: set[Value] = set()
    for node in graph.nodes:
        if all(v in constant for v in node.input_values):
            constant.update(node.outputs)
    return constant


def _add_partners(value: Value, constant: set[Value]) -> list[Value] | None:
    """The other operands of the Adds reading ``value``; ``None`` unless all uses qualify."""
    if not value.uses or value.is_graph_output():
        return None
    partners = []
    for node, index in value.uses:
        if node.op != "Add" or len(node.inputs) != 2:
            return None
        other = node.inputs[1 - index]
        if other is None or other is value or other in constant:
            return None
        if other.shape != node.output.shape or other.dtype != node.output.dtype:
            return None
        partners.append(other)
    return partners


@dataclass(slots=True)
class MaskContext:
    """Graph-level facts the depth rules need, computed once per graph."""

    nullable: set[Value] = field(default_factory=set)  # unit outputs offered null
    groups: GroupAnalysis | None = None  # channel groups, when width transitions are wanted

    @classmethod
    def of(
        cls, graph: Graph, units: Sequence[Unit], width: WidthOptions | None = None
    ) -> MaskContext:
        """The context of ``graph``; with ``width``, its channel groups too."""
        groups = None if width is None else channel_groups(graph, units, width.rounding)
        constant = _constant_values(graph)
        partners = {u.output: _add_partners(u.output, constant) for u in units}
        candidates = {key for key, found in partners.items() if found is not None}
        nullable = {
            key
            for key in candidates
            if all(other not in candidates for other in partners[key] or ())
        }
        return cls(nullable, groups)

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
    ) -> Target | Reason | None:
        """``None`` for a valid depth entry, a ``Target`` for a valid other one, else why not."""
        depth = _DEPTH_RULES.get(entry.op)
        if depth is not None:
            return depth(state, self)
        rule = rule_for(entry.op)
        if rule is not None:
            return rule.check(state, entry, self, kernel_level)
        return target_for(state, entry, kernel_level)


def _keep(state: UnitState, ctx: MaskContext) -> Reason | None:
    return None


def _skip(state: UnitState, ctx: MaskContext) -> Reason | None:
    unit = state.unit
    if unit.input.shape != unit.output.shape or unit.input.dtype != unit.output.dtype:
        return Reason(
            f"skip needs output shape {unit.output.shape} equal to input shape {unit.input.shape}"
        )
    return None


def _null(state: UnitState, ctx: MaskContext) -> Reason | None:
    if state.unit.output not in ctx.nullable:
        return Reason(
            "null needs every use of the unit's output to be an Add whose other operand stays "
            "live (and cannot itself be nulled)"
        )
    return None


_DEPTH_RULES: dict[str, Callable[[UnitState, MaskContext], Reason | None]] = {
    "keep": _keep,
    "skip": _skip,
    "null": _null,
}


@dataclass(slots=True)
class TransitionMask:
    """``valid[u, v]``: unit ``units[u]`` may take ``vocabulary[v]``; keep is always valid."""

    units: list[Unit]
    vocabulary: Vocabulary
    valid: torch.Tensor
    states: list[UnitState]
    width: WidthOptions | None = None  # how width entries were rounded (apply them alike)
    targets: list[list[Target | Reason | None]] = field(default_factory=list)

    @property
    def unit_names(self) -> list[str]:
        return [u.name for u in self.units]

    def valid_names(self, unit: int | str) -> list[str]:
        row = self.unit_names.index(unit) if isinstance(unit, str) else unit
        return [self.vocabulary[int(v)].name for v in self.valid[row].nonzero().flatten()]

    def target(self, unit: int, name: str) -> Target | Reason | None:
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
