"""``apply_plan``: rewrite a graph by a plan — copy, check, rewrite, inherit, refit, clean, verify.

Steps (the input graph is never changed):

1. copy the graph and find its units (``transition_units``); check every plan entry: an
   unknown unit, an unknown transition or one the mask forbids raises ``PlanError`` naming
   the unit, the transition and the reason;
2. precedence for nested units: a unit whose main node lies inside a residual branch that
   the plan skips or nulls, or among the ops another unit's target replaces
   (``Target.replaces``), is overridden (the outer transition wins) and recorded in the
   report;
3. width first: the groups led by units the plan narrows are pruned together
   (``natopt.passes.width.prune``: channels chosen by importance on the calibration data,
   consumers refit); every other transition is then checked again on the narrowed graph,
   and one the narrowing made invalid (a skip or a pooling whose input and output channels
   now differ) is dropped and recorded in ``overridden`` as ``width: <reason>``;
4. rewrite the remaining units in reverse graph order (so a rewrite never invalidates the
   input of a unit still to be rewritten), weights inherited (``rewrite``);
5. with ``calibration``, refit each replacement on the original graph's activations
   (``natopt.passes.calibration``; restricted to the kept channels where width narrowed
   them) and measure its reconstruction error;
6. clean up with ``RemoveIdentityPass`` and ``DeadCodePass`` (an Add whose operand was nulled
   has already become its other operand), then ``verify(check_shapes=True)``.

The same plan on the same graph always gives the same graph (names, order and weights): the
copy keeps the name counters and every step is deterministic.

The report is ``graph.meta["transitions"]``, an ``ApplyReport``: ``applied`` (unit ->
transition), ``overridden`` (unit -> the branch that won), and, with calibration,
``errors`` / ``inherited_errors``: per unit the relative Frobenius error ``‖Ŷ − Y‖ / ‖Y‖`` on
the calibration data, after and before the refit. ``Y`` is what the transition replaces on
the original graph: the replaced op's output (pre-activation) for type/kernel/low-rank, the
unit's output for skip (``Ŷ`` = its input) and null (``Ŷ`` = 0, so the error is 1); for width
the outputs of the group's consumers, pooled (the leader's entry), with ``layer_errors``
giving each consumer's ``(sliced, refit)`` pair and ``channels`` the leader's
``(before, after)`` channel count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from natopt.errors import PlanError
from natopt.ir import Graph, Node, verify
from natopt.passes.base import PassContext, PassManager
from natopt.passes.calibration import ActivationCache, run_chain
from natopt.passes.dead_code import DeadCodePass
from natopt.passes.remove_identity import RemoveIdentityPass
from natopt.passes.transitions.inherit import relative_error
from natopt.passes.transitions.mask import MaskContext
from natopt.passes.transitions.plan import Plan
from natopt.passes.transitions.registry import Reason, Target, TransitionRule, rule_for
from natopt.passes.transitions.rewrite import rewrite_unit
from natopt.passes.transitions.state import UnitState, transition_units
from natopt.passes.transitions.vocabulary import VOCABULARY, Vocabulary
from natopt.passes.width import WidthOptions, WidthResult, apply_width

__all__ = ["apply_plan", "ApplyReport"]


@dataclass(slots=True)
class ApplyReport:
    """What ``apply_plan`` did (see the module docstring)."""

    applied: dict[str, str] = field(default_factory=dict)
    overridden: dict[str, str] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    inherited_errors: dict[str, float] = field(default_factory=dict)
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    layer_errors: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(slots=True)
class _Step:
    state: UnitState
    op: str
    target: Target
    position: int
    new: list[Node] = field(default_factory=list)


def _rule(op: str) -> TransitionRule:
    rule = rule_for(op)
    assert rule is not None, op  # every op of a vocabulary entry has a rule
    return rule


def _checked_steps(
    graph: Graph, plan: Plan, vocabulary: Vocabulary, width: WidthOptions | None
) -> tuple[list[_Step], MaskContext]:
    units = transition_units(graph)
    by_name = {u.name: u for u in units}
    named = set(plan.transitions.values())
    wanted = any(_rule(e.op).grouped and e.name in named for e in vocabulary)
    ctx = MaskContext.of(graph, units, (width or WidthOptions()) if wanted else None)
    position = {n: i for i, n in enumerate(graph.nodes)}
    steps = []
    for unit_name, entry_name in plan.transitions.items():
        unit = by_name.get(unit_name)
        if unit is None:
            raise PlanError(
                f"plan names unit {unit_name!r} (transition {entry_name!r}), which graph "
                f"{graph.name} does not have; its units are listed by `natopt inspect`"
            )
        try:
            entry = vocabulary.get(entry_name)
        except KeyError:
            raise PlanError(
                f"plan gives unit {unit_name} the unknown transition {entry_name!r}; "
                f"known: {', '.join(vocabulary.names)}"
            ) from None
        state = ctx.state(unit)
        found = ctx.check(state, entry, "kernel" in vocabulary.levels)
        if isinstance(found, Reason):
            raise PlanError(
                f"transition {entry_name} is invalid for unit {unit_name}: {found}; "
                "draw plans from the unit's valid transitions (TransitionMask)"
            )
        if entry.op != "keep":
            producer = unit.output.producer
            at = position[producer] if producer is not None else -1
            steps.append(_Step(state, entry.op, found, at))
    return steps, ctx


def _covered(step: _Step) -> set[Node]:
    """The nodes whose units ``step`` overrides: a skipped or nulled branch's, or the ops a
    target replaces beyond its own unit."""
    nodes = set(step.target.replaces)
    if step.state.unit.kind == "branch" and _rule(step.op).overrides_nested:
        nodes.update(step.state.unit.nodes)
    return nodes


def _resolve_nesting(steps: list[_Step], report: ApplyReport) -> list[_Step]:
    """Drop the steps of units inside a branch that is skipped or nulled, or whose op another
    step's target replaces (outer wins).

    A unit is inside when its main node is one of those nodes; the largest such step is
    named in ``report.overridden``.
    """
    covered = [(s, _covered(s)) for s in steps]
    winners = sorted(((s, nodes) for s, nodes in covered if nodes), key=lambda w: -len(w[1]))
    kept = []
    for step in steps:
        main = step.state.unit.main
        outer = next((w for w, nodes in winners if w is not step and main in nodes), None)
        if outer is None:
            kept.append(step)
        else:
            report.overridden[step.state.unit.name] = outer.state.unit.name
    return kept


def _value_names(step: _Step) -> tuple[str, str]:
    """(input, reference output) value names of what the step replaces."""
    if not _rule(step.op).builds:
        return step.state.unit.input.name, step.state.unit.output.name
    replaced = step.target.replaced(step.state)
    first = replaced[0].inputs[0]
    assert first is not None
    return first.name, replaced[-1].output.name


def _calibrate(
    original: Graph,
    steps: list[_Step],
    calibration: ActivationCache,
    alpha: float,
    report: ApplyReport,
    narrowed: WidthResult,
) -> None:
    names = {name for step in steps for name in _value_names(step)}
    seen = calibration.capture(original, names)
    for step in steps:
        x_name, y_name = _value_names(step)
        x, y = narrowed.view(x_name, seen[x_name]), narrowed.view(y_name, seen[y_name])
        name = step.state.unit.name
        rule = _rule(step.op)
        if not rule.builds:
            approx = rule.rewired(x, y)
            report.errors[name] = report.inherited_errors[name] = relative_error(approx, y)
            continue
        report.inherited_errors[name] = relative_error(run_chain(step.new, x), y)
        rule.refit(step.new, x, y, alpha)
        report.errors[name] = relative_error(run_chain(step.new, x), y)


def _narrow(
    result: Graph,
    original: Graph,
    steps: list[_Step],
    ctx: MaskContext,
    calibration: ActivationCache | None,
    width: WidthOptions | None,
    ridge: float,
    report: ApplyReport,
) -> WidthResult:
    """Prune the groups of the width steps (step 3 of the module docstring)."""
    chosen = {}
    for step in steps:
        assert step.target is not None and step.state.group is not None
        chosen[step.state.unit.name] = (step.state.group, step.target.channels or 0)
    assert ctx.groups is not None
    narrowed = apply_width(result, original, ctx.groups, chosen, calibration, width, ridge)
    report.channels.update(narrowed.channels)
    report.errors.update(narrowed.errors)
    report.inherited_errors.update(narrowed.inherited_errors)
    report.layer_errors.update(narrowed.layer_errors)
    return narrowed


def _recheck(
    result: Graph, steps: list[_Step], plan: Plan, vocabulary: Vocabulary, report: ApplyReport
) -> list[_Step]:
    """The non-width steps, their states and targets read again on the narrowed graph."""
    units = {u.name: u for u in transition_units(result)}
    ctx = MaskContext.of(result, list(units.values()))
    position = {n: i for i, n in enumerate(result.nodes)}
    kept = []
    for step in steps:
        name = step.state.unit.name
        state = ctx.state(units[name])
        entry = vocabulary.get(plan.transitions[name])
        found = ctx.check(state, entry, "kernel" in vocabulary.levels)
        if isinstance(found, Reason):
            report.overridden[name] = f"width: {found}"
            continue
        producer = state.unit.output.producer
        at = position[producer] if producer is not None else -1
        kept.append(_Step(state, step.op, found, at))
    return kept


def apply_plan(
    graph: Graph,
    plan: Plan | Mapping[str, str],
    *,
    calibration: ActivationCache | Sequence[Tensor | Sequence[Tensor]] | None = None,
    ridge: float = 1e-3,
    vocabulary: Vocabulary = VOCABULARY,
    width: WidthOptions | None = None,
) -> Graph:
    """A rewritten, verified copy of ``graph``; ``graph.meta["transitions"]`` is the report.

    ``calibration``: input batches (a tensor, or a tuple with one tensor per graph input), or
    an ``ActivationCache`` of them to reuse captured activations across plans, on
    which replacements are refit by ridge least squares (``ridge``: the relative weight of
    the pull towards the inherited weights). ``width``: how width entries round channel
    counts and choose channels (default ``WidthOptions()``).
    """
    plan = Plan.of(plan)
    result = graph.copy()
    report = ApplyReport()
    cache = calibration
    if cache is not None and not isinstance(cache, ActivationCache):
        cache = ActivationCache(cache)
    checked, ctx = _checked_steps(result, plan, vocabulary, width)
    steps = _resolve_nesting(checked, report)
    widths = [s for s in steps if _rule(s.op).grouped]
    narrowed = WidthResult()
    if widths:
        narrowed = _narrow(result, graph, widths, ctx, cache, width, ridge, report)
        report.applied.update(
            {s.state.unit.name: plan.transitions[s.state.unit.name] for s in widths}
        )
        rest = [s for s in steps if not _rule(s.op).grouped]
        steps = _recheck(result, rest, plan, vocabulary, report)
    steps.sort(key=lambda s: s.position, reverse=True)
    for step in steps:
        step.new = rewrite_unit(result, step.state, step.op, step.target)
        report.applied[step.state.unit.name] = plan.transitions[step.state.unit.name]
    if cache is not None and steps:
        _calibrate(graph, steps, cache, ridge, report, narrowed)
    cleanup = PassManager([RemoveIdentityPass(), DeadCodePass()])
    result = cleanup.run(result, PassContext(verify=False)).graph
    verify(result, check_shapes=True)
    result.meta["transitions"] = report
    return result
