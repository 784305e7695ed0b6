"""The transition rules, one family per file; importing this package registers every one.

Each file defines one ``TransitionRule`` subclass decorated with ``registry.register``; a new
transition is a new file here (and its test), read by the mask, the rewrite and the refits
through ``natopt.passes.transitions.registry``.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__: list[str] = []

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
