"""The width ops, one op family per file; importing this package registers every one.

Each file defines ``WidthOp`` subclasses decorated with ``registry.register``; a new op kind
the width pass understands is a new class here (and its test), read by the channel walk, the
slicing and the rewrite through ``natopt.passes.width.registry``.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__: list[str] = []

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
