"""``WidthOptions``: how width transitions round channel counts and choose channels."""

from __future__ import annotations

from dataclasses import dataclass

from natopt.passes.width.importance import DEFAULT_IMPORTANCE, IMPORTANCE
from natopt.passes.width.rounding import CPU_ROUNDING, ChannelRounding

__all__ = ["WidthOptions"]


@dataclass(frozen=True, slots=True)
class WidthOptions:
    """How width transitions round and choose channels.

    ``rounding``: the device's channel block (``rounding``); ``importance``: a key of
    ``importance.IMPORTANCE`` (without calibration data ``l1`` is used); ``refit``: refit the
    consumers by least squares when calibration data is given.
    """

    rounding: ChannelRounding = CPU_ROUNDING
    importance: str = DEFAULT_IMPORTANCE
    refit: bool = True

    def __post_init__(self) -> None:
        if self.importance not in IMPORTANCE:
            raise ValueError(
                f"WidthOptions: unknown importance {self.importance!r}; "
                f"choose one of {sorted(IMPORTANCE)}"
            )
