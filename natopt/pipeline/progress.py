"""Progress bars for long phases, on stderr so stdout stays clean for tables and JSON.

On a terminal the bar redraws in place; elsewhere (CI logs) it prints a line at every
quarter, so logs stay short but show that work is moving. Each line shows the elapsed time
and, while work remains, an ETA from the mean pace so far.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 28,
    ) -> None:
        self.label, self.total, self.width = label, max(total, 1), width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = enabled and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_quarter = -1

    def update(self, done: int, info: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(done / self.total, 1.0)
        elapsed = time.perf_counter() - self.start
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        eta = ""
        if 0 < done < self.total:
            eta = f" eta {elapsed / done * (self.total - done):5.1f}s"
        line = f"{self.label:<10} [{bar}] {done}/{self.total} {elapsed:6.1f}s{eta} {info}"
        if self.interactive:
            self.stream.write("\r" + line[:120].ljust(120))
            if done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
            return
        quarter = int(fraction * 4)
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            print(line, file=self.stream, flush=True)

    def close(self, info: str = "") -> None:
        self.update(self.total, info)
