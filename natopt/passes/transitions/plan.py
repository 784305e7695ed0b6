"""``Plan``: which transition each unit takes — plain data, saved and loaded as JSON.

A plan maps unit names (``Unit.name``: the main node's module path, ``:branch`` for a
residual branch) to vocabulary entry names; units it does not name keep their op. JSON form::

    {"schema": 1,
     "transitions": {"layer1.0.conv2": "sep_conv_3x3", "layer2.1.conv2:branch": "null"}}

Keys are written sorted, so equal plans give equal text. ``schema`` is the version every
natopt JSON file carries; plans saved before it existed say ``"version": 1`` instead, and
are read the same. Any other schema or version is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from natopt.errors import PlanError

__all__ = ["Plan", "PLAN_VERSION"]

PLAN_VERSION = 1


@dataclass(slots=True)
class Plan:
    """``transitions``: unit name -> vocabulary entry name (``keep`` may be left out)."""

    transitions: dict[str, str] = field(default_factory=dict)
    version: int = PLAN_VERSION

    @classmethod
    def of(cls, plan: Plan | Mapping[str, str]) -> Plan:
        """``plan`` itself, or a ``Plan`` of a plain ``{unit: transition}`` mapping."""
        return plan if isinstance(plan, Plan) else cls(dict(plan))

    def to_json(self) -> str:
        return json.dumps(
            {"schema": self.version, "transitions": dict(sorted(self.transitions.items()))},
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"a plan must be JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("transitions"), dict):
            raise PlanError('a plan is a JSON object {"schema": 1, "transitions": {unit: name}}')
        key = "schema" if "schema" in data else "version"
        version = data.get(key)
        if version != PLAN_VERSION or isinstance(version, bool):
            raise PlanError(
                f"plan {key} {version!r} is not supported (this natopt reads {PLAN_VERSION}); "
                "save the plan again with this natopt, or upgrade natopt"
            )
        transitions = data["transitions"]
        bad = [k for k, v in transitions.items() if not isinstance(v, str)]
        if bad:
            raise PlanError(f"plan transitions must be entry names (strings); see units {bad}")
        return cls(dict(transitions), version)
