"""Progress bars for long phases, drawn by rich on stderr so stdout stays clean for tables and
JSON.

    bar = ProgressBar("search", 48, enabled=not quiet)
    bar.update(12, "best reward +0.0312")   # 12 of 48 done
    bar.close("48 evaluations")             # the bar's last word

Each bar shows its label, how much is done, the elapsed time, an ETA and the caller's text.
On a terminal every open bar is a row of one live display (a bar opened while another runs,
a nested phase, joins it); the display ends when its last bar closes, leaving each bar's
final row on screen, and text written to ``sys.stderr`` meanwhile prints above it. Elsewhere
(CI logs, a pipe, a file) a bar prints a plain line when it passes a quarter and one when it
closes, five lines at most, so logs stay short but show that work moves. ``enabled=False``
(``--quiet``) prints nothing and imports nothing.

A bar is finished by ``close``, not by reaching its total.
"""

from __future__ import annotations

import atexit
import sys
from typing import TYPE_CHECKING, TextIO

from natopt._console import console_for

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["ProgressBar"]


def _new_progress(stream: TextIO) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(bar_width=28),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console_for(stream),
        redirect_stdout=False,  # stdout is for tables and JSON, never for the display
    )


class _LiveDisplay:
    """The terminal's one live display, shared by the bars open on it."""

    current: _LiveDisplay | None = None

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.progress = _new_progress(stream)
        self.open: set[TaskID] = set()
        self.progress.start()
        atexit.register(self.stop)  # a run that fails mid-bar still gives the cursor back

    @classmethod
    def join(cls, stream: TextIO) -> _LiveDisplay:
        """The display running on ``stream`` (seen through the display's own redirection of
        ``sys.stderr``), or a new one."""
        stream = getattr(stream, "rich_proxied_file", stream)
        if cls.current is None or cls.current.stream is not stream:
            cls.current = cls(stream)
        return cls.current

    def finish(self, task: TaskID) -> None:
        self.open.discard(task)
        if not self.open:
            self.stop()

    def stop(self) -> None:
        self.progress.stop()
        atexit.unregister(self.stop)
        if _LiveDisplay.current is self:
            _LiveDisplay.current = None


class ProgressBar:
    """One phase's bar: ``update(done, info)`` as work moves, ``close(info)`` at the end."""

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.closed = not enabled
        if not enabled:
            return
        stream = sys.stderr if stream is None else stream
        self.live = _LiveDisplay.join(stream) if stream.isatty() else None
        self.progress = self.live.progress if self.live else _new_progress(stream)
        self.task = self.progress.add_task(label, total=total, info="")
        if self.live:
            self.live.open.add(self.task)
        self._last_quarter = -1

    def update(self, done: int, info: str = "") -> None:
        if self.closed:
            return
        self.progress.update(self.task, completed=done, info=info)
        if self.live is None:
            quarter = int(4 * min(done / self.total, 1.0)) if self.total else 4
            if quarter < 4 and quarter != self._last_quarter:
                self._last_quarter = quarter
                self._print_line()

    def close(self, info: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.progress.update(self.task, completed=self.total, info=info)
        self.progress.stop_task(self.task)
        if self.live is None:
            self._print_line()
        else:
            self.live.finish(self.task)

    def _print_line(self) -> None:
        task = next(t for t in self.progress.tasks if t.id == self.task)
        self.progress.console.print(self.progress.make_tasks_table([task]))
