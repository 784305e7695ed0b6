"""``natopt`` start-up: the parser imports only the subcommand it runs, and heavy dependencies
load only where they are used (each check in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_inspect import write_tiny_onnx

from natopt.cli import SUMMARIES
from natopt.cli.main import SUBCOMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
RUN_AND_LIST_MODULES = """
import json, sys
from natopt.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
SUBCOMMAND_MODULES = {f"natopt.cli.{name}" for name in SUBCOMMANDS}


def modules_after(*argv: str) -> set[str]:
    """The modules loaded by ``natopt ARGV`` in a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return set(json.loads(run.stderr.strip().splitlines()[-1]))


def test_help_imports_no_subcommand_and_no_torch():
    loaded = modules_after("--help")
    assert not loaded & SUBCOMMAND_MODULES
    assert not {"torch", "onnx", "numpy", "rich"} & loaded


def test_inspect_loads_neither_torch_geometric_nor_the_pipeline(tmp_path):
    model = tmp_path / "tiny.onnx"
    write_tiny_onnx(model)
    loaded = modules_after("inspect", str(model))
    assert "natopt.cli.inspect" in loaded
    assert not loaded & (SUBCOMMAND_MODULES - {"natopt.cli.inspect"})
    assert not {m for m in loaded if m.split(".")[0] == "torch_geometric"}
    assert not {m for m in loaded if m.startswith(("natopt.pipeline", "natopt.passes.nat"))}


def test_the_listing_is_the_same_with_and_without_the_subcommands_imported():
    assert build_parser(full=[]).format_help() == build_parser().format_help()
    listing = build_parser(full=[]).format_help()
    assert all(f"{name}  " in listing and summary in listing for name, summary in SUMMARIES.items())


def test_a_subcommand_parses_its_arguments_and_an_unknown_one_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect", "--help"])
    assert info.value.code == 0
    assert "--input-shape" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
