"""The one check both op registries make (transition rules, width ops): an op has one handler."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

__all__ = ["register_ops"]

T = TypeVar("T")


def register_ops(table: dict[str, T], handler: T, ops: Iterable[str]) -> None:
    """Put ``handler`` in ``table`` under each of ``ops``; an op another handler already has is
    a ``ValueError`` naming both classes."""
    for op in ops:
        if op in table:
            raise ValueError(
                f"register: {type(handler).__name__} and {type(table[op]).__name__} both "
                f"handle {op!r}"
            )
        table[op] = handler
