"""natopt: an architecture-optimisation compiler pass for trained neural networks.

``natopt.optimize(model, data, ...)`` is the main job (``natopt.pipeline.api``); the IR, the
frontends, the passes and the backends are libraries of their own (``natopt.ir``,
``natopt.frontends.lift``, ``natopt.passes``, ``natopt.backends``). Imports are lazy, so
``import natopt`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["optimize", "lift", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "optimize":
        from natopt.pipeline.api import optimize

        return optimize
    if name == "lift":
        from natopt.frontends import lift

        return lift
    raise AttributeError(f"module 'natopt' has no attribute {name!r}")
