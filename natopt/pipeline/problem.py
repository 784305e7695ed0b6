"""The search problem of one model: the canonical graph, its data, and how a plan is scored.

A plan is scored by applying it to the super-network (the canonical graph, whose kept
weights shared-weight training adapts), refitting every replacement by least squares on
calibration activations (natopt folds BatchNorm, so this refit stands in for re-estimated
normalisation statistics: it restores each unit's output directly), and comparing quality
with the original's on the same samples: reward = quality(alpha) - quality(beta) + cost
term (``natopt.pipeline.budget``). With ``score_steps``, a plan is first fine-tuned that many
steps (a higher fidelity: ``benchmarks/fidelity_rank.py`` measures which ranks plans best).
For a latency budget, ``latency`` estimates a graph's latency in ms
(``natopt.pipeline.latency_probes.latency_estimator``); it prices every plan.

A plan's cost, latency and quality are a pure function of the plan while the shared weights
stay as they are, so ``evaluate`` keeps them (``train_shared`` forgets them): the searches a
latency budget repeats (``natopt.pipeline.latency_budget``) score the same single changes
again, and each round pays only for the plans it has not seen. The reward is computed anew
each time, under the problem's budget of the moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from natopt.backends import load_weights_into_graph, to_torch
from natopt.ir import Cost, Graph, graph_cost, run_graph
from natopt.passes.calibration import ActivationCache
from natopt.passes.nat import Evaluation, SearchSpace, unit_graph
from natopt.passes.transitions import ApplyPlanPass, TransitionMask
from natopt.passes.transitions.registry import Reason, rule_for
from natopt.pipeline.budget import Budget, reward
from natopt.pipeline.data import Dataset, Splits
from natopt.pipeline.finetune import FinetuneConfig, finetune
from natopt.pipeline.quality import Quality, predict, score

__all__ = [
    "SearchProblem",
    "graph_outputs",
    "strip_keep",
    "plan_key",
    "calibration_batches",
    "cheapest_plan",
    "unit_savings",
]


def strip_keep(plan: dict[str, str]) -> dict[str, str]:
    return {unit: t for unit, t in plan.items() if t != "keep"}


def plan_key(plan: dict[str, str]) -> str:
    """The plan as stable text, ``unit=transition`` sorted by unit ("" for the original)."""
    return ",".join(f"{unit}={t}" for unit, t in sorted(plan.items()))


def graph_outputs(graph: Graph, data: Dataset, batch_size: int | None = None) -> torch.Tensor:
    """The graph's first output on every sample of ``data`` (default batches:
    ``Dataset.inference_batch``)."""
    batch_size = batch_size or data.inference_batch()
    return torch.cat([run_graph(graph, xs)[0] for xs, _ in data.batches(batch_size)])


@dataclass(slots=True)
class SearchProblem:
    graph: Graph  # canonical original: never changed
    mask: TransitionMask
    splits: Splits
    budget: Budget | None
    cost_weight: float
    calibration: ActivationCache
    shared_steps: int = 0
    seed: int = 0
    # fidelity of a plan's score: fine-tuning steps (on the search split, distilling the
    # original) before it is scored; 0: the refit weights as they are
    score_steps: int = 0
    score_lr: float = 1e-3  # their step size (optimize sets the step-size probe's)
    latency: Callable[[Graph], float] | None = None  # ms estimator (latency budget)
    shared: Graph = field(init=False)
    original_cost: Cost = field(init=False)
    original_latency: float | None = field(init=False)
    reference: dict[str, torch.Tensor] = field(init=False)
    baseline: dict[str, Quality] = field(init=False)
    evaluated: list[dict] = field(default_factory=list)
    # (plan, split, score fidelity) -> (cost, latency pair, quality); see the module docstring
    _scores: dict[tuple, tuple[Cost, tuple[float, float] | None, Quality]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.shared = self.graph.copy()
        self.original_cost = graph_cost(self.graph)
        self.original_latency = None if self.latency is None else self.latency(self.graph)
        parts = {
            "search": self.splits.search,
            "val": self.splits.val,
            "finetune": self.splits.finetune,
            "test": self.splits.test,
        }
        self.reference = {name: graph_outputs(self.graph, d) for name, d in parts.items()}
        self.baseline = {name: self.score_outputs(self.reference[name], name) for name in parts}

    def _data(self, split: str) -> Dataset:
        return getattr(self.splits, split)

    def score_outputs(self, outputs: torch.Tensor, split: str) -> Quality:
        """Quality of a model's ``outputs`` on ``split`` against the original's (and labels)."""
        labels = self._data(split).labels
        return score(
            outputs, self.reference[split], None if labels is None else torch.from_numpy(labels)
        )

    def apply_pass(self, plan: dict[str, str]) -> ApplyPlanPass:
        """The pass that applies ``plan`` as every plan of this problem is applied: refit on
        the calibration activations, in the mask's vocabulary and width options."""
        return ApplyPlanPass(
            strip_keep(plan),
            calibration=self.calibration,
            vocabulary=self.mask.vocabulary,
            width=self.mask.width,
        )

    def build(self, plan: dict[str, str], *, base: Graph | None = None) -> Graph:
        """The plan applied to ``base`` (default: the shared super-network), refit; the
        pass runs alone (the search builds hundreds of plans: no pass log, no dumps)."""
        return self.apply_pass(plan)(base or self.shared).graph

    def quality(self, graph: Graph, split: str) -> Quality:
        """``graph``'s quality on ``split``, after ``score_steps`` fine-tuning steps when set
        (on a copy: the shared super-network is left as it is)."""
        if self.score_steps <= 0:
            return self.score_outputs(graph_outputs(graph, self._data(split)), split)
        module = to_torch(graph.copy())
        search = self.splits.search
        config = FinetuneConfig(
            steps=self.score_steps,
            batch_size=search.training_batch(FinetuneConfig().batch_size),
            lr=self.score_lr,
        )
        # every plan sees the same batches: its score differs from another's by the plan only
        finetune(module, self.splits.search, self.reference["search"], config, seed=self.seed)
        return self.module_quality(module, split)

    def module_quality(self, module: torch.nn.Module, split: str) -> Quality:
        """Quality of a (fine-tuned) torch module's first output on ``split``."""

        def first(xs: list[torch.Tensor]) -> torch.Tensor:
            out = module(*xs)
            return out[0] if isinstance(out, (tuple, list)) else out

        return self.score_outputs(predict(first, self._data(split)), split)

    def latency_pair(self, graph: Graph) -> tuple[float, float] | None:
        """(``graph``'s, the original's) estimated latency in ms, with a latency estimator."""
        if self.latency is None or self.original_latency is None:
            return None
        return self.latency(graph), self.original_latency

    def evaluate(self, plan: dict[str, str], split: str = "search") -> Evaluation:
        key = (plan_key(strip_keep(plan)), split, self.score_steps, self.score_lr)
        if key not in self._scores:
            graph = self.build(plan)
            self._scores[key] = (
                graph_cost(graph),
                self.latency_pair(graph),
                self.quality(graph, split),
            )
        cost, latency, quality = self._scores[key]
        gain = quality.quality - self.baseline[split].quality
        value = reward(gain, cost, self.original_cost, self.budget, self.cost_weight, latency)
        if self.budget is not None:  # in the budget's metric, as the savings' target is
            relative = self.budget.ratio(cost, self.original_cost, latency)
        elif latency is not None:
            relative = latency[0] / max(latency[1], 1e-12)
        else:
            relative = cost.macs / max(self.original_cost.macs, 1)
        self.evaluated.append(
            {
                "split": split,
                "quality": quality.quality,
                "macs": cost.macs,
                "params": cost.params,
                "latency_ms": None if latency is None else latency[0],
                "reward": value,
                "within_budget": self.budget is None or relative <= self.budget.fraction,
                "plan": strip_keep(plan),
            }
        )
        return Evaluation(value, quality.quality, relative)

    def validate(self, plan: dict[str, str]) -> Evaluation:
        return self.evaluate(plan, "val")

    def search_space(self, *, validate: bool = True, shared: bool = False) -> SearchSpace:
        """The space every search works on: this problem's units, mask and unit graph, scored
        by ``evaluate`` (and ``validate`` on the validation split; ``shared``: with
        shared-weight training), with each transition's estimated saving and the saving the
        budget needs (for the budgeted solvers)."""
        metric = "params" if self.budget is not None and self.budget.metric == "params" else "macs"
        total = getattr(self.original_cost, metric)
        return SearchSpace(
            units=self.mask.unit_names,
            vocabulary=list(self.mask.vocabulary.names),
            mask=self.mask.valid,
            graph=unit_graph(self.graph, self.mask.units),
            evaluate=self.evaluate,
            validate=self.validate if validate else None,
            train_shared=self.train_shared if shared else None,
            # MACs stand in for latency here; the latency loop corrects the budget
            savings=unit_savings(self.mask, metric, total),
            required_saving=None if self.budget is None else 1.0 - self.budget.fraction,
            levels=[entry.level for entry in self.mask.vocabulary],
        )

    def train_shared(self, plans: list[dict[str, str]]) -> None:
        """A few distillation steps on each sampled sub-network; kept weights flow back.

        Each plan's module trains ``shared_steps`` steps on the search split; the weights of
        every node the plan left as it was are then copied back into the super-network, so
        the shared weights learn to serve many sub-networks (one-shot weight sharing).
        """
        if self.shared_steps <= 0:
            return
        self._scores.clear()  # the shared weights change: every plan's score with them
        config = FinetuneConfig(steps=self.shared_steps, batch_size=64, lr=5e-4)
        for i, plan in enumerate(plans):
            sub = self.build(plan)
            module = to_torch(sub)
            finetune(
                module, self.splits.search, self.reference["search"], config, seed=self.seed + i
            )
            load_weights_into_graph(sub, module)
            by_name = {n.name: n for n in sub.nodes}
            for node in self.shared.nodes:
                twin = by_name.get(node.name)
                if twin is None or twin.op != node.op or twin.weights.keys() != node.weights.keys():
                    continue
                if all(twin.weights[k].shape == w.shape for k, w in node.weights.items()):
                    node.weights = dict(twin.weights)


def calibration_batches(
    data: Dataset, samples: int, batch_size: int = 64
) -> list[list[torch.Tensor]]:
    """Up to ``samples`` inputs from ``data`` as batches for least-squares refits."""
    subset = data.subset(np.arange(min(samples, len(data))))
    return [xs for xs, _ in subset.batches(batch_size)]


def _unit_price(mask: TransitionMask, row: int, name: str, metric: str) -> float:
    """What unit ``row`` costs in ``metric`` under transition ``name`` (skip and null: 0), as
    the mask's check priced it."""
    target = mask.target(row, name)
    cost = mask.states[row].cost if isinstance(target, Reason) else target.cost
    return float(cost.params if metric == "params" else cost.macs)


def cheapest_plan(mask: TransitionMask, metric: str) -> dict[str, str]:
    """Every unit at its cheapest valid transition in ``metric`` (skip and null cost 0; on a
    tie, a rule that ``frees_inputs`` first: null also drops the unit's inputs)."""
    plan = {}
    for row, unit in enumerate(mask.units):

        def price(name: str, row=row) -> tuple[float, bool]:
            rule = rule_for(mask.vocabulary.get(name).op)
            return _unit_price(mask, row, name, metric), rule is None or not rule.frees_inputs

        plan[unit.name] = min(mask.valid_names(row), key=price)
    return plan


def unit_savings(mask: TransitionMask, metric: str, total: float) -> torch.Tensor:
    """[U, V] float: the fraction of ``total`` (the original's cost in ``metric``) that each
    valid transition of each unit saves on its own, every other unit kept (0 where invalid).
    The additive estimate the budgeted solvers plan with (``natopt.passes.nat``)."""
    names = list(mask.vocabulary.names)
    savings = torch.zeros(len(mask.units), len(names))
    for row in range(len(mask.units)):
        kept = _unit_price(mask, row, "keep", metric)
        for name in mask.valid_names(row):
            saved = kept - _unit_price(mask, row, name, metric)
            savings[row, names.index(name)] = max(saved, 0.0) / max(total, 1.0)
    return savings
