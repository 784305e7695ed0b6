"""``write_whole``: a file appears whole, with the permissions the umask gives new files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from natopt.bench._files import write_whole
from natopt.errors import ReportError


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
