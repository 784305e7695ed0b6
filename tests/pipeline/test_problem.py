"""How a search problem scores plans: the memo of scores across searches."""

from __future__ import annotations

import dataclasses

from natopt.pipeline.budget import Budget
from natopt.pipeline.problem import SearchProblem


def test_a_plan_scored_again_is_not_rebuilt_but_its_reward_follows_the_budget(
    problem: SearchProblem, monkeypatch
) -> None:
    problem = dataclasses.replace(problem, shared_steps=1)  # a fresh memo and log
    builds = []
    build = SearchProblem.build

    def counting(self, plan, **kwargs):
        builds.append(dict(plan))
        return build(self, plan, **kwargs)

    monkeypatch.setattr(SearchProblem, "build", counting)
    plan = {problem.mask.unit_names[1]: "skip"}
    first = problem.evaluate(plan)
    problem.budget = Budget("macs", 0.5)  # a latency round's new budget
    again = problem.evaluate(plan)
    assert len(builds) == 1
    assert again.quality == first.quality
    assert again.reward != first.reward  # priced under the new budget
    assert problem.evaluated[-1]["within_budget"] == (again.cost <= 0.5)
    problem.evaluate(plan, "val")  # another split is scored on its own
    assert len(builds) == 2
    problem.train_shared([plan])  # the shared weights change: scores are forgotten
    builds.clear()
    problem.evaluate(plan)
    assert builds and builds[-1] == plan
