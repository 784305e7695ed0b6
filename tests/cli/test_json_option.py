"""``--json`` means the same in ``inspect`` and ``bench``: alone or ``-`` the JSON is all of
stdout; ``--json FILE`` writes the file and prints the table; a FILE that is a model or has no
folder is one error line before any work."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from natopt.cli.main import main

MODEL = str(resources.files("natopt") / "data" / "example_mnist.onnx")
ARGS = {
    "inspect": ["inspect", MODEL],
    "bench": ["bench", MODEL, "--warmup", "0", "--min-runs", "2", "--max-runs", "2"],
}
KEYS = {"inspect": "totals", "bench": "models"}


@pytest.mark.parametrize("command", ARGS)
@pytest.mark.parametrize("form", [["--json"], ["--json", "-"]])
def test_json_alone_or_dash_is_all_of_stdout(capsys, command: str, form: list[str]) -> None:
    assert main([*ARGS[command], *form]) == 0
    data = json.loads(capsys.readouterr().out)
    assert KEYS[command] in data


@pytest.mark.parametrize("command", ARGS)
def test_json_file_is_written_and_the_table_printed(capsys, tmp_path, command: str) -> None:
    target = tmp_path / "out.json"
    assert main([*ARGS[command], "--json", str(target)]) == 0
    assert KEYS[command] in json.loads(target.read_text())
    out = capsys.readouterr().out
    assert out.strip() and not out.lstrip().startswith("{")


@pytest.mark.parametrize("command", ARGS)
def test_a_model_after_json_is_refused_not_overwritten(capsys, tmp_path, command: str) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(Path(MODEL).read_bytes())
    name, *rest = ARGS[command]
    status = main([name, "--json", str(other), *rest])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"natopt: error: --json {other}: that is a model file name")
    assert other.read_bytes() == Path(MODEL).read_bytes()


@pytest.mark.parametrize("command", ARGS)
def test_a_json_file_in_a_missing_folder_fails_before_any_work(
    capsys, tmp_path, command: str
) -> None:
    status = main([*ARGS[command], "--json", str(tmp_path / "nope" / "out.json")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "does not exist" in err
