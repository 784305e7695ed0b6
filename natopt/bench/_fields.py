"""Typed field access for validating JSON records; every failure is one ``ReportError`` line.

``where`` is the path of the record being read (``"r.json: before"``), so a message says which
file and which field is wrong and what was expected.
"""

from __future__ import annotations

from typing import Any, TypeVar

from natopt.errors import ReportError

__all__ = [
    "SCHEMA",
    "check_schema",
    "require",
    "field",
    "number",
    "optional_number",
    "integer",
    "text",
]

T = TypeVar("T")

SCHEMA = 1
"""The version of every result file natopt writes (``"schema": 1``)."""


def check_schema(record: dict[str, Any], where: str) -> None:
    """Accept ``record`` if it is schema 1, or has no ``schema`` (written before it existed);
    otherwise one ``ReportError`` line saying which schema it is and what to do."""
    schema = record.get("schema", SCHEMA)
    if schema == SCHEMA and not isinstance(schema, bool):
        return
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
        raise ReportError(
            f"{where}: written by a newer natopt (schema {schema}); this natopt reads schema "
            f"{SCHEMA}: upgrade natopt (pip install -U natopt)"
        )
    raise ReportError(f"{where}.schema must be {SCHEMA}, got {_show(schema)}")


def require(value: object, kind: type[T], where: str) -> T:
    """``value`` itself, if it is a ``kind``; otherwise a ``ReportError`` naming ``where``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ReportError(f"{where} must be {_describe(kind)}, got {_show(value)}")
    return value


def field(record: dict[str, Any], key: str, kind: type[T], where: str) -> T:
    """The required ``key`` of ``record``, checked to be a ``kind``."""
    if key not in record:
        raise ReportError(f"{where}: missing field '{key}'")
    return require(record[key], kind, f"{where}.{key}")


def number(record: dict[str, Any], key: str, where: str) -> float:
    """The required numeric ``key`` (int or float, not bool) as a float."""
    value = optional_number(record, key, where)
    if value is None:
        raise ReportError(f"{where}: missing number field '{key}'")
    return value


def optional_number(record: dict[str, Any], key: str, where: str) -> float | None:
    """The numeric ``key`` as a float, or None when it is absent or null."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{where}.{key} must be a number, got {_show(value)}")
    return float(value)


def integer(record: dict[str, Any], key: str, where: str) -> int:
    """The required integer ``key``."""
    return field(record, key, int, where)


def text(record: dict[str, Any], key: str, where: str) -> str:
    """The required string ``key``."""
    return field(record, key, str, where)


def _describe(kind: type) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        bool: "true or false",
    }
    return names.get(kind, kind.__name__)


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
