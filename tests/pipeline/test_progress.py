"""Progress bars: plain quarter lines off a terminal, one live display on a terminal, nothing
when disabled, never a byte on stdout."""

from __future__ import annotations

import io
import re

from natopt.pipeline.progress import ProgressBar

ANSI = re.compile(r"\x1b\[")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, total: int = 40) -> None:
    bar = ProgressBar("search", total, stream=stream)
    for done in range(1, total + 1):
        bar.update(done, f"best reward {done / 100:+.4f}")
    bar.close(f"{total} evaluations")


def test_off_a_terminal_a_line_per_quarter_and_one_at_close(capsys):
    stream = io.StringIO()
    _run(stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and not ANSI.search(stream.getvalue())
    assert [line.split()[2] for line in lines] == ["1/40", "10/40", "20/40", "30/40", "40/40"]
    assert all(line.startswith("search ") and " eta " in line for line in lines)
    assert re.search(r" \d+:\d\d:\d\d eta ", lines[-1])  # elapsed, then the ETA
    assert lines[-1].endswith("40 evaluations") and "best reward +0.0100" in lines[0]
    assert capsys.readouterr().out == ""


def test_disabled_prints_nothing():
    stream = io.StringIO()
    bar = ProgressBar("search", 4, stream=stream, enabled=False)
    bar.update(2, "half")
    bar.close("done")
    assert stream.getvalue() == ""


def test_closing_twice_prints_the_last_line_once():
    stream = io.StringIO()
    bar = ProgressBar("latency", 2, stream=stream)
    bar.close("2 segments timed")
    bar.close("again")
    bar.update(1, "late")
    assert stream.getvalue().count("\n") == 1 and "again" not in stream.getvalue()


def test_on_a_terminal_nested_bars_share_one_live_display(capsys):
    terminal = FakeTerminal()
    outer = ProgressBar("rungs", 2, stream=terminal)
    inner = ProgressBar("latency", 3, stream=terminal)
    assert inner.live is outer.live is not None
    inner.update(3, "timed")
    inner.close("3 segments timed")
    assert outer.live.open  # the display runs while the outer bar is open
    outer.update(2, "fine-tuned")
    outer.close("2 plans fine-tuned")
    assert not outer.live.open
    text = terminal.getvalue()
    assert ANSI.search(text) and "2 plans fine-tuned" in text and "3 segments timed" in text
    later = ProgressBar("search", 1, stream=terminal)
    assert later.live is not outer.live  # the next phase starts a new display
    later.close()
    assert capsys.readouterr().out == ""
