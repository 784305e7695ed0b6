"""What every plan search (NAT, random, greedy) works on, and how its evaluations are counted.

A ``SearchSpace`` is a small protocol, so searches are testable without real models: the units
and the transition vocabulary, the validity mask [U, V], the policy's unit graph, and the
caller's callables:

- ``evaluate(plan) -> Evaluation(reward, quality, cost)``: scores a plan on the search split
  (for a real model: inherited shared weights on calibration data; ``reward`` already holds
  the caller's cost term). This is the expensive call; its count is the budget every method
  shares.
- ``validate(plan)``: scores a final candidate on held-out validation data; ``None`` means
  ``evaluate`` is used. Every method validates at most ``candidates`` plans (K), counted
  apart from the budget.
- ``train_shared(plans)``: optional, a few steps of shared-weight fine-tuning on the sampled
  plans (the original model is the super-network). Every method calls it after each round of
  evaluations with that round's plans, so shared-weight training is the same for all.

Optional per-unit costs, for the budgeted solvers (``knapsack_search``, ``grow_search``):

- ``savings`` [U, V] float: ``savings[u, v]`` is the estimated fraction of the original
  model's total cost (in the budget's metric) saved by giving unit u transition v with every
  other unit kept; 0 for keep, >= 0 everywhere (the mask never allows a costlier op). A plan's
  estimated saving is the sum over its units (``SearchSpace.saving``: an additive
  approximation; interactions such as a width change slicing a consumer are ignored).
- ``required_saving``: the fraction the objective's budget needs saved (a budget of
  ``macs=0.7`` needs 0.3); ``None``: no budget.
- ``levels``: the level of each vocabulary entry (depth, type, kernel, low rank, width; the
  identity's is ignored). ``knapsack_search`` also solves the budget within each level
  alone, so that a joint space scores every single level's best plan too.

Counting (``PlanEvaluator``): only distinct plans cost an evaluation. A repeated plan is
answered from a cache and costs nothing — its score is a pure function of the plan while the
shared weights stay fixed. ``train_shared`` changes them, so it empties the cache. A search
stops when ``budget`` evaluations are spent, when it has drawn ``max_draws`` plans (cache hits
included; this bounds a policy that keeps sampling plans it has seen), or when every plan of
the space has been evaluated.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from natopt.passes.nat.features import UnitGraph

__all__ = [
    "Choices",
    "Evaluation",
    "SearchSpace",
    "Trace",
    "SearchResult",
    "PlanEvaluator",
    "Progress",
]

# unit name -> transition name, as the searches draw them; natopt.passes.transitions.Plan is the
# validated, serialisable plan that optimize hands on and apply_plan applies
Choices = dict[str, str]
Progress = Callable[[int, int, dict[str, Any]], None]


@dataclass(slots=True, frozen=True)
class Evaluation:
    """A plan's score: ``reward`` (maximised), ``quality`` (as the caller defines) and
    ``cost``, the plan's cost as a fraction of the original's in the metric of the budget
    (``1 - cost`` is the saving the plan realises, which ``savings`` estimate)."""

    reward: float
    quality: float
    cost: float


@dataclass(slots=True)
class SearchSpace:
    """Units x transition vocabulary with a validity mask, and the caller's scoring callables.

    Preconditions: ``mask`` is bool [len(units), len(vocabulary)] and every row allows
    ``identity`` (the transition that keeps a unit as it is); ``graph.units == units``;
    ``savings``, when given, is float [len(units), len(vocabulary)], >= 0, 0 on ``identity``;
    ``required_saving``, when given, is in [0, 1] and comes with ``savings``.
    """

    units: list[str]
    vocabulary: list[str]
    mask: torch.Tensor
    graph: UnitGraph
    evaluate: Callable[[Choices], Evaluation]
    validate: Callable[[Choices], Evaluation] | None = None
    train_shared: Callable[[list[Choices]], None] | None = None
    identity: str = "keep"
    savings: torch.Tensor | None = None
    required_saving: float | None = None
    levels: list[str] | None = None

    def __post_init__(self) -> None:
        shape = (len(self.units), len(self.vocabulary))
        if self.mask.dtype != torch.bool or tuple(self.mask.shape) != shape:
            raise ValueError(
                f"SearchSpace: mask must be bool {list(shape)} (units x vocabulary), got "
                f"{self.mask.dtype} {list(self.mask.shape)}"
            )
        if list(self.graph.units) != list(self.units):
            raise ValueError("SearchSpace: graph.units must list the same units, in order")
        if self.identity not in self.vocabulary:
            raise ValueError(f"SearchSpace: identity {self.identity!r} is not in the vocabulary")
        if not bool(self.mask[:, self.vocabulary.index(self.identity)].all()):
            raise ValueError(f"SearchSpace: every unit must allow {self.identity!r}")
        self._check_savings(shape)
        if self.levels is not None and len(self.levels) != len(self.vocabulary):
            raise ValueError(
                f"SearchSpace: levels must name one level per vocabulary entry "
                f"({len(self.vocabulary)}), got {len(self.levels)}"
            )

    def _check_savings(self, shape: tuple[int, int]) -> None:
        savings, required = self.savings, self.required_saving
        if savings is not None:
            if not savings.is_floating_point() or tuple(savings.shape) != shape:
                raise ValueError(
                    f"SearchSpace: savings must be float {list(shape)} (units x vocabulary: "
                    f"the fraction of the original cost each single change saves), got "
                    f"{savings.dtype} {list(savings.shape)}"
                )
            if not bool(torch.isfinite(savings).all()) or bool((savings < 0).any()):
                raise ValueError(
                    "SearchSpace: savings must be finite and >= 0 (no valid transition costs "
                    "more than the op it replaces); give 0 where the mask forbids a transition"
                )
            if bool((savings[:, self.identity_index] != 0).any()):
                raise ValueError(f"SearchSpace: savings of {self.identity!r} must be 0")
        if required is not None:
            if savings is None:
                raise ValueError(
                    "SearchSpace: required_saving needs savings (the per-unit estimates the "
                    "budgeted solvers add up); pass both or neither"
                )
            if not 0.0 <= required <= 1.0:
                raise ValueError(
                    f"SearchSpace: required_saving {required} is not a fraction in [0, 1] "
                    f"(a budget of macs=0.7 needs 0.3)"
                )

    @property
    def identity_index(self) -> int:
        return self.vocabulary.index(self.identity)

    def size(self) -> int:
        """The number of distinct plans: the product of the valid transitions per unit."""
        return math.prod(int(n) for n in self.mask.sum(dim=1).tolist())

    def saving(self, actions: tuple[int, ...]) -> float:
        """The plan's estimated saving: ``savings[u, actions[u]]`` summed over the units."""
        if self.savings is None:
            raise ValueError("SearchSpace.saving: this space has no savings")
        index = torch.tensor(actions, dtype=torch.long).unsqueeze(1)
        return float(self.savings.gather(1, index).sum())

    def level_masks(self) -> dict[str, torch.Tensor]:
        """Per level of ``levels`` with at least one valid entry, the mask restricted to the
        identity and that level's entries (empty without ``levels``, or with a single level:
        the restriction would be the whole space)."""
        if self.levels is None:
            return {}
        keep = self.identity_index
        masks = {}
        for level in dict.fromkeys(lv for i, lv in enumerate(self.levels) if i != keep):
            columns = torch.tensor([i == keep or (lv == level) for i, lv in enumerate(self.levels)])
            restricted = self.mask & columns
            if bool(restricted[:, [i for i in range(len(self.levels)) if i != keep]].any()):
                masks[level] = restricted
        return masks if len(masks) > 1 else {}

    def plan(self, actions: tuple[int, ...]) -> Choices:
        """The plan naming, for every unit, the transition with index ``actions[u]``."""
        return {unit: self.vocabulary[a] for unit, a in zip(self.units, actions, strict=True)}


@dataclass(slots=True, frozen=True)
class Trace:
    """One budgeted evaluation: its number (1-based), its score, and the best reward so far."""

    evaluation: int
    reward: float
    quality: float
    cost: float
    best_reward: float


@dataclass(slots=True)
class SearchResult:
    """The chosen plan, its validation score, the search trace and what it cost.

    ``evaluations``: budgeted ``evaluate`` calls; ``validations``: final-candidate scorings.
    """

    method: str
    best_plan: Choices
    best_evaluation: Evaluation
    history: list[Trace]
    evaluations: int
    validations: int
    draws: int


@dataclass(slots=True)
class PlanEvaluator:
    """Budgeted, cached access to ``space.evaluate``; keeps the trace and the top plans."""

    space: SearchSpace
    budget: int
    max_draws: int
    progress: Progress | None = None
    method: str = ""
    history: list[Trace] = field(default_factory=list)
    draws: int = 0
    _cache: dict[tuple[int, ...], Evaluation] = field(default_factory=dict)
    _best: dict[tuple[int, ...], float] = field(default_factory=dict)
    _size: int = 0

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"{self.method or 'search'}: the budget must be >= 1 evaluation")
        self._size = self.space.size()

    @property
    def used(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        """The budget is spent, the draws are used up, or the whole space has been evaluated."""
        return (
            self.used >= self.budget
            or self.draws >= self.max_draws
            or len(self._cache) >= self._size
        )

    def __call__(self, actions: tuple[int, ...]) -> Evaluation | None:
        """The plan's score; ``None`` once the search is done and the plan is not cached."""
        if actions in self._cache:
            self.draws += 1
            return self._cache[actions]
        if self.done:
            return None
        self.draws += 1
        result = self.space.evaluate(self.space.plan(actions))
        self._cache[actions] = result
        previous = self._best.get(actions, -math.inf)
        self._best[actions] = max(previous, result.reward)
        best = max(result.reward, self.history[-1].best_reward if self.history else -math.inf)
        self.history.append(Trace(self.used + 1, result.reward, result.quality, result.cost, best))
        if self.progress is not None:
            self.progress(self.used, self.budget, {"method": self.method, "best_reward": best})
        return result

    def shared_step(self, plans: list[tuple[int, ...]]) -> None:
        """Run the caller's shared-weight fine-tuning on ``plans``; cached scores go stale."""
        if self.space.train_shared is not None and plans:
            self.space.train_shared([self.space.plan(a) for a in plans])
            self._cache.clear()

    def top(self, k: int) -> list[tuple[int, ...]]:
        """The ``k`` distinct plans with the highest search reward seen so far, best first."""
        return heapq.nlargest(k, self._best, key=self._best.__getitem__)

    def result(self, candidates: list[tuple[int, ...]]) -> SearchResult:
        """Score the distinct ``candidates`` on validation and keep the best (ties: first)."""
        validate = self.space.validate or self.space.evaluate
        unique = list(dict.fromkeys(candidates))
        if not unique:
            raise ValueError(f"{self.method}: no candidate plan to validate")
        scored = [(validate(self.space.plan(a)), a) for a in unique]
        best_eval, best = max(scored, key=lambda pair: pair[0].reward)
        return SearchResult(
            self.method,
            self.space.plan(best),
            best_eval,
            self.history,
            self.used,
            len(unique),
            self.draws,
        )
