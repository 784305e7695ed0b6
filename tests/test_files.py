"""``write_whole``: an output is written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from natopt._files import write_whole
from natopt.errors import ReportError


def test_text_and_bytes_are_written_whole_with_no_temporary_left(tmp_path):
    path = tmp_path / "out.json"
    write_whole(path, "{}\n")
    assert path.read_text(encoding="utf-8") == "{}\n"
    write_whole(str(path), b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")

    def refuse(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("natopt._files.os.replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_whole(path, "new")
    with pytest.raises(ReportError, match="out.txt: cannot write: No space left on device"):
        write_whole(path, "new", ReportError)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_written_file_has_the_umasks_permissions_and_no_temporary_is_left(
    tmp_path: Path,
) -> None:
    previous = os.umask(0o022)
    try:
        write_whole(tmp_path / "r.json", "{}\n", ReportError)
    finally:
        os.umask(previous)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_folder_that_is_missing_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot write"):
        write_whole(tmp_path / "nope" / "r.json", "{}", ReportError)
