"""A non-learned budgeted solver: per-unit sensitivities, then a multiple-choice knapsack.

Each unit takes exactly one of its valid transitions (keep included); a plan's value and
saving are estimated as sums over its units, and the best plan is the one of highest
estimated value that saves enough:

    max_a Σ_u value[u, a_u]   subject to   Σ_u savings[u, a_u] >= required_saving.

``knapsack_search`` spends the shared evaluation budget (``PlanEvaluator``) in three phases:

1. Sensitivities. The identity plan (every unit kept), then single changes — unit u to
   transition v, every other unit kept — in order of decreasing ``savings[u, v]`` (the
   changes that save most matter most to a budget; ties in unit, then vocabulary order).
   ``value[u, v]`` is the change's score minus the identity plan's: its quality with a
   budget (the constraint is the DP's; the reward's penalty for the single change being
   over budget would swamp it), its reward without one. When the budget cannot pay for all
   U·(V−1) single changes and still leave a quarter of itself for phase 3, the changes
   that save least go unmeasured and are estimated conservatively, at the worst value
   measured (at most 0): the DP takes them only where nothing measured can meet the budget.
   Each measured change's realised saving (``1 - Evaluation.cost``, in the budget's metric)
   replaces its estimated one, and the unmeasured estimates are scaled by the median
   realised/estimated ratio (``_realised``).
2. The DP (``multiple_choice_knapsack``): savings are discretised on a grid of ``bins``
   steps of ``required_saving / bins``, rounded down, so a plan the DP calls feasible is
   feasible by the estimate; states above the target are merged into the last bin. The DP
   runs over units keeping the ``k`` best partial plans per bin and recovers the k best
   distinct plans (the k-best DP). Without a budget there is no constraint: the plan that
   maximises Σ value is each unit's best change alone, so the DP instead solves the
   Lagrangian Σ_u value[u, a_u] + λ · savings[u, a_u] for several λ — 0 (the caller's
   reward, which holds its own cost term) and the quartiles of the measured changes'
   break-even prices −value/saving, each of which turns on more of the cheap changes.
3. The remaining evaluations go to the top distinct DP solutions, round robin over the
   variants: with a budget, the targets ``required_saving`` and 0.02 and 0.05 above it
   (hedges against additive savings that overestimate the real ones); without one, the λ
   above. When the space spans several levels (``SearchSpace.levels``), each level alone
   is one more variant (its entries and keep; with a budget at ``required_saving``, without
   one at the median price): the additive estimate misjudges how a joint plan fine-tunes,
   and these plans let the rungs compare the joint plan with every single level's best.
   After each round the savings the scored plans realise (``1 - Evaluation.cost``, in the
   budget's metric) are compared with their estimates, which are additive and misjudge
   how changes to neighbouring units combine. When the median estimated/realised ratio
   exceeds the current scale by more than ``RESOLVE_AT``, every target is multiplied by it
   and the DP solved again (the scale only grows). When every variant's ``k`` solutions
   (``min(remaining, 64)`` each) are scored, the search stops with budget left. If no plan
   reaches ``required_saving`` by the estimate, the plan saving most (each unit at its
   largest saving) is the only candidate.

Every method ends alike: the top-K distinct plans by search reward are scored with
``space.validate`` and the best is returned. ``train_shared`` runs after phase 1 and after
every round of phase 3. The solver is deterministic: ``seed`` is accepted for the common
signature of the searches and changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from natopt.passes.nat.space import PlanEvaluator, Progress, SearchResult, SearchSpace

__all__ = ["KnapsackSolution", "multiple_choice_knapsack", "knapsack_search"]

HEDGES = (0.0, 0.02, 0.05)  # extra saving above the target, phase 3 with a budget
PRICE_QUANTILES = (0.25, 0.5, 0.75)  # the λ of the Lagrangian, without a budget
MAX_K = 64
RESOLVE_AT = 0.02  # re-solve the DP once the calibrated target moves by more than this
_MIN_REALISED = 1e-3  # a plan that saves nothing (or costs more) counts as saving this
_EPS = 1e-9  # slack when flooring savings onto the grid (a multiple of the step stays one)


@dataclass(slots=True, frozen=True)
class KnapsackSolution:
    """A plan (one transition index per unit) with its estimated value and saving."""

    actions: tuple[int, ...]
    value: float
    saving: float


def multiple_choice_knapsack(
    values: np.ndarray,
    savings: np.ndarray,
    mask: np.ndarray,
    required: float | None,
    *,
    bins: int = 1000,
    k: int = 1,
) -> list[KnapsackSolution]:
    """The ``k`` distinct plans of highest Σ_u values[u, a_u] whose Σ_u savings[u, a_u]
    reaches ``required`` on the grid (``None`` or <= 0: no constraint), best first (ties in
    a fixed order: the same inputs give the same list); empty when no plan reaches it.

    Grid: a saving s counts floor(s · bins / required) steps, capped at ``bins``; a plan is
    feasible when its steps sum to ``bins``, which implies Σ s >= required. Time
    O(U · bins · V · k). Shapes: ``values``, ``savings``, ``mask`` [U, V].
    """
    units, _ = values.shape
    top = 0 if required is None or required <= 0 else bins
    steps = np.zeros(savings.shape, dtype=np.int64)
    if top:
        steps = np.minimum(np.floor(savings * (top / required) + _EPS), top).astype(np.int64)
    best = np.full((top + 1, k), -math.inf)
    best[0, 0] = 0.0
    back: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for u in range(units):
        choices = np.flatnonzero(mask[u])
        best, pointers = _extend(best, values[u, choices], steps[u, choices], k)
        back.append((choices[pointers[0]], pointers[1], pointers[2]))
    solutions = []
    for slot in range(k):
        if best[top, slot] == -math.inf:
            break
        actions, b, j = [], top, slot
        for choice, prev_bin, prev_slot in reversed(back):
            actions.append(int(choice[b, j]))
            b, j = int(prev_bin[b, j]), int(prev_slot[b, j])
        plan = tuple(reversed(actions))
        saving = float(sum(savings[u, a] for u, a in enumerate(plan)))
        solutions.append(KnapsackSolution(plan, float(best[top, slot]), saving))
    return solutions


def _extend(
    best: np.ndarray, gains: np.ndarray, steps: np.ndarray, k: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One DP stage: add a unit whose choices have ``gains`` and ``steps`` to the ``k`` best
    partial plans per bin ``best`` [B+1, k]; returns the new table and, per (bin, slot), the
    choice's position, the previous bin and the previous slot."""
    top = best.shape[0] - 1
    n = len(gains)
    value = np.full((top + 1, n, k), -math.inf)
    prev_bin = np.zeros((top + 1, n, k), dtype=np.int64)
    for i, (gain, step) in enumerate(zip(gains, steps, strict=True)):
        if step < top:  # bins below the cap: from exactly one old bin
            value[step:top, i] = best[: top - step] + gain
            prev_bin[step:top, i] = np.arange(top - step)[:, None]
    prev_slot = np.broadcast_to(np.arange(k), value.shape)
    choice = np.broadcast_to(np.arange(n)[:, None], value.shape)
    flat = value.reshape(top + 1, n * k)
    order = _top_k(flat[:top], k)
    rows = np.arange(top)[:, None]
    new = np.full_like(best, -math.inf)
    pointers = tuple(np.zeros(best.shape, dtype=np.int64) for _ in range(3))
    new[:top] = flat[:top][rows, order]
    for pointer, source in zip(pointers, (choice, prev_bin, prev_slot), strict=True):
        pointer[:top] = source.reshape(top + 1, n * k)[:top][rows, order]
    # the cap bin: every old bin at or above top - step reaches it
    cap_value, cap_source = [], []
    for i, (gain, step) in enumerate(zip(gains, steps, strict=True)):
        first = max(top - int(step), 0)
        cap_value.append((best[first:] + gain).ravel())
        old_bins, old_slots = np.divmod(np.arange((top + 1 - first) * k), k)
        cap_source.append(np.stack([np.full_like(old_bins, i), old_bins + first, old_slots]))
    cap_values = np.concatenate(cap_value)
    cap_sources = np.concatenate(cap_source, axis=1)
    chosen = _top_k(cap_values[None], k)[0]
    new[top, : len(chosen)] = cap_values[chosen]
    for pointer, source in zip(pointers, cap_sources[:, chosen], strict=True):
        pointer[top, : len(chosen)] = source
    return new, pointers


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the ``k`` highest scores, highest first (ties among
    those selected: lower index first). Shapes: [R, C] -> [R, min(k, C)]."""
    if scores.shape[1] > k:
        picked = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    else:
        picked = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    ranked = np.take_along_axis(scores, picked, axis=1)
    return np.take_along_axis(picked, np.argsort(-ranked, axis=1, kind="stable"), axis=1)


def knapsack_search(
    space: SearchSpace,
    budget: int,
    *,
    seed: int = 0,
    candidates: int = 10,
    bins: int = 1000,
    max_draws_factor: int = 2,
    progress: Progress | None = None,
) -> SearchResult:
    """Sensitivities, multiple-choice knapsack and top DP solutions for at most ``budget``
    evaluations (see the module docstring); ``space.savings`` is required."""
    del seed  # deterministic; accepted for the searches' common signature
    if space.savings is None:
        raise ValueError(
            "knapsack_search: the space has no savings; give SearchSpace.savings (the "
            "fraction of the original cost each single change saves)"
        )
    evaluator = PlanEvaluator(space, budget, max_draws_factor * budget, progress, method="knapsack")
    savings = space.savings.double().numpy()
    mask = space.mask.numpy()
    values, savings, seen = _sensitivities(space, evaluator, savings, mask)
    remaining = budget - evaluator.used
    k = max(1, min(remaining, MAX_K))
    variants = _variants(space, values, savings, mask)
    scale = 1.0
    lists = _solve(variants, scale, savings, bins, k)
    if not any(lists):
        lists = [[KnapsackSolution(_most_saving(savings, mask), -math.inf, -math.inf)]]
    cursors = [0] * len(lists)
    shortfalls: list[float] = []  # per scored DP plan: estimated saving / realised saving
    while not evaluator.done:
        round_ = []
        for i, solutions in enumerate(lists):
            while cursors[i] < len(solutions) and solutions[cursors[i]].actions in seen:
                cursors[i] += 1
            if cursors[i] == len(solutions):
                continue
            solution = solutions[cursors[i]]
            seen.add(solution.actions)
            scored = evaluator(solution.actions)
            if scored is None:
                break
            round_.append(solution.actions)
            if solution.saving > 0:
                shortfalls.append(solution.saving / max(1.0 - scored.cost, _MIN_REALISED))
        evaluator.shared_step(round_)
        if not round_:
            break
        calibrated = _calibration(shortfalls, space.required_saving)
        if calibrated > scale * (1 + RESOLVE_AT):
            scale = calibrated
            resolved = _solve(variants, scale, savings, bins, k)
            if any(resolved):
                lists, cursors = resolved, [0] * len(resolved)
    return evaluator.result(evaluator.top(candidates))


def _solve(
    variants: list[tuple[np.ndarray, float | None, np.ndarray]],
    scale: float,
    savings: np.ndarray,
    bins: int,
    k: int,
) -> list[list[KnapsackSolution]]:
    """The ``k`` best DP solutions of each variant, its target (if any) times ``scale``; a
    scaled target beyond what the variant's mask can save falls back to that ceiling (but
    never below the unscaled target: a variant that cannot reach it has no solution)."""
    lists = []
    for values, target, allowed in variants:
        if target is not None:
            ceiling = _ceiling(savings, allowed)
            scaled = target * scale
            target = scaled if scaled <= ceiling else max(target, ceiling)
        lists.append(multiple_choice_knapsack(values, savings, allowed, target, bins=bins, k=k))
    return lists


def _calibration(shortfalls: list[float], required: float | None) -> float:
    """How much more saving than the estimate the DP must plan for: the median, over the
    scored DP plans, of estimated over realised saving (>= 1: the target is never lowered;
    1 without a budget, where there is no target to meet)."""
    if required is None or not shortfalls:
        return 1.0
    return max(1.0, float(np.median(shortfalls)))


def _sensitivities(
    space: SearchSpace, evaluator: PlanEvaluator, savings: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, set[tuple[int, ...]]]:
    """Phase 1: value[u, v], the score of changing u alone minus the identity plan's (0 for
    keep and invalid entries; unmeasured changes at the worst measured value, at most 0);
    the savings the DP prices plans with (``_realised``); and the plans it scored."""
    keep = space.identity_index
    budgeted = space.required_saving is not None
    units, vocab = mask.shape
    identity = (keep,) * units
    base = evaluator(identity)
    values = np.zeros((units, vocab))
    if base is None:
        return values, savings, set()
    changes = [(u, v) for u in range(units) for v in range(vocab) if mask[u, v] and v != keep]
    changes.sort(key=lambda uv: -savings[uv])  # stable: ties in unit, then vocabulary order
    affordable = evaluator.budget - evaluator.used
    if affordable < len(changes) + 1:
        affordable -= max(1, evaluator.budget // 4)
    measured, plans, realised = [], [], {}
    for u, v in changes[: max(affordable, 0)]:
        plan = identity[:u] + (v,) + identity[u + 1 :]
        scored = evaluator(plan)
        if scored is None:
            break
        gain = scored.quality - base.quality if budgeted else scored.reward - base.reward
        values[u, v] = gain
        measured.append((u, v))
        plans.append(plan)
        realised[u, v] = 1.0 - scored.cost / max(base.cost, _MIN_REALISED)
    worst = min([0.0] + [values[uv] for uv in measured])
    for uv in changes[len(measured) :]:
        values[uv] = worst
    evaluator.shared_step([identity, *plans])
    return values, _realised(savings, realised), {identity, *plans}


def _realised(savings: np.ndarray, realised: dict[tuple[int, int], float]) -> np.ndarray:
    """The DP's savings: each measured single change's realised saving, in the budget's
    metric (``1 - cost`` over the identity plan's, at least 0), in place of the estimate;
    an unmeasured change's estimate scaled by the median realised/estimated ratio of the
    measured ones. The estimate is the MACs a unit's rewrite removes, which stand in for
    latency and misjudge it unit by unit (a depthwise-separable conv saves most of its MACs
    and less of its latency), while a plan's table latency is nearly the sum of its units'
    (the table times segments): on ResNet8 at latency=0.5, 3 of 12 DP plans priced by MACs
    met the budget."""
    out = savings.copy()
    ratios = [r / savings[uv] for uv, r in realised.items() if savings[uv] > _MIN_REALISED]
    if ratios:
        out *= float(np.median(ratios))
    for uv, saving in realised.items():
        out[uv] = max(saving, 0.0)
    return out


def _variants(
    space: SearchSpace, values: np.ndarray, savings: np.ndarray, mask: np.ndarray
) -> list[tuple[np.ndarray, float | None, np.ndarray]]:
    """Phase 3's DP problems as (values, required saving, mask): hedged targets with a
    budget, Lagrangian prices λ (values + λ · savings, no constraint) without one; then each
    level alone (``SearchSpace.level_masks``) at the plain target, or the median price."""
    required = space.required_saving
    levels = [m.numpy() for m in space.level_masks().values()]
    if required is not None:
        reachable = _ceiling(savings, mask)
        targets = dict.fromkeys(max(required, min(required + h, reachable)) for h in HEDGES)
        joint = [(values, target, mask) for target in targets]
        return joint + [(values, required, level) for level in levels]
    priced = (savings > 0) & (values < 0) & mask
    prices = -values[priced] / savings[priced]
    lambdas = [0.0]
    if prices.size:
        lambdas += [float(q) for q in np.quantile(prices, PRICE_QUANTILES)]
    median = lambdas[2] if len(lambdas) > 2 else 0.0
    joint = [(values + lam * savings, None, mask) for lam in dict.fromkeys(lambdas)]
    return joint + [(values + median * savings, None, level) for level in levels]


def _ceiling(savings: np.ndarray, mask: np.ndarray) -> float:
    """The most a plan within ``mask`` can save by the estimate: each unit at its largest."""
    return float(np.where(mask, savings, 0.0).max(axis=1).sum())


def _most_saving(savings: np.ndarray, mask: np.ndarray) -> tuple[int, ...]:
    """Every unit at its largest estimated saving (first index on ties)."""
    return tuple(int(i) for i in np.where(mask, savings, -1.0).argmax(axis=1))
