"""``Plan``: which transition each unit takes — plain data, saved and loaded as JSON.

A plan maps unit names (``Unit.name``: the main node's module path, ``:branch`` for a
residual branch) to vocabulary entry names; units it does not name keep their op. JSON form::

    {"schema": 1,
     "transitions": {"layer1.0.conv2": "sep_conv_3x3", "layer2.1.conv2:branch": "null"}}

Keys are written sorted, so equal plans give equal text. ``schema`` is the version every
natopt JSON file carries; plans saved before it existed say ``"version": 1`` instead, and
are read the same. Any other schema or version is refused. ``Plan.load`` is the one reader
of plan files (``natopt optimize --plan``, the compile backend's ``plan`` option): a file
that is missing, unreadable or malformed is a one-line ``PlanError`` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> Plan:
        """The plan of its JSON form parsed (``{"schema": 1, "transitions": {...}}``)."""
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

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        """The plan in the file ``path`` (as ``natopt optimize --save-plan`` writes it)."""
        path = Path(path)
        if not path.is_file():
            raise PlanError(
                f"cannot read plan file: {path} does not exist; write one with "
                f"`natopt optimize MODEL --save-plan {path}`"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise PlanError(f"plan file {path} is not a natopt plan: {exc}") from None
        try:
            return cls.from_json(text)
        except PlanError as exc:
            detail = " ".join(str(exc).split())
            raise PlanError(f"plan file {path} is not a natopt plan: {detail}") from None
