"""The rich consoles natopt prints through: tables on stdout, progress on stderr.

``console_for(stream)`` is the one place the output rules live: on a terminal, rich's own
width and colours; elsewhere (a pipe, a file, a CI log, a test's captured stream) no ANSI
codes at all and a fixed width of ``PIPE_WIDTH`` columns, so logs and tests read the same on
every machine. Markup, emoji codes and highlighting are off: a unit named ``layer[0]`` or an
op count prints as it is. ``new_table`` is natopt's one table style (a bold header over a
rule, no borders), ``plain_text`` renders tables the way a pipe receives them.

rich is imported when a console is made, never at start-up (``natopt --help`` stays fast).
"""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

__all__ = ["PIPE_WIDTH", "console_for", "new_table", "plain_text"]

PIPE_WIDTH = 120


def console_for(stream: TextIO | None = None) -> Console:
    """A console writing to ``stream`` (default: the current ``sys.stdout``)."""
    from rich.console import Console

    stream = sys.stdout if stream is None else stream
    terminal = stream.isatty()
    return Console(
        file=stream,
        force_terminal=terminal,
        force_interactive=terminal,
        width=None if terminal else PIPE_WIDTH,
        markup=False,
        emoji=False,
        highlight=False,
    )


def new_table(**options: Any) -> Table:
    """A ``rich.table.Table`` in natopt's style; ``options`` go to the table (a title...)."""
    from rich import box
    from rich.table import Table

    style = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False}
    return Table(**{**style, "header_style": "bold", "title_justify": "left", **options})


def plain_text(*renderables: RenderableType, width: int = PIPE_WIDTH) -> str:
    """``renderables`` as a pipe receives them: plain text, ``width`` columns at most."""
    buffer = io.StringIO()
    console = console_for(buffer)
    console.width = width
    console.print(*renderables)
    return buffer.getvalue()
