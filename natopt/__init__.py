"""natopt: an architecture-optimisation compiler pass for trained neural networks."""

from __future__ import annotations

__version__ = "0.1.0"
