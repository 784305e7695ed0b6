"""``--json [FILE]``, the same in every command: alone or ``-``, JSON on stdout; FILE, the file.

When the JSON goes to stdout it is the only thing there: a command's human-readable table
goes to stderr instead (``json_to_stdout``), so ``natopt bench a.onnx --json | jq`` works.
A FILE is checked before any work (``check_json_target``): never one of the command's
inputs, never a ``.onnx`` path (``--json`` right before the models would otherwise swallow
the first of them as its FILE), its folder must exist. It is written whole or not at all.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from natopt._files import refuse_overwrite, write_whole
from natopt.errors import NatoptError

__all__ = ["STDOUT", "add_json_option", "json_to_stdout", "check_json_target", "emit_json"]

STDOUT = "-"


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--json [FILE]`` to ``parser``; ``what`` names what is written."""
    parser.add_argument(
        "--json",
        nargs="?",
        const=STDOUT,
        default=None,
        metavar="FILE",
        help=f"write {what} as JSON to FILE; alone or '-': to stdout, and nothing else there",
    )


def json_to_stdout(target: str | None) -> bool:
    """Whether ``--json`` sends the JSON to stdout."""
    return target == STDOUT


def check_json_target(
    target: str | None, inputs: Iterable[str | Path], error: type[NatoptError]
) -> None:
    """Refuse a ``--json FILE`` that is an input, looks like a model, or has no folder."""
    if target is None or target == STDOUT:
        return
    path = Path(target)
    if path.suffix.lower() == ".onnx":
        raise error(
            f"--json {target}: that is a model file name; give the JSON file after --json "
            "(--json out.json), or put --json after the models"
        )
    refuse_overwrite(path, inputs, error)
    if not path.parent.is_dir():
        raise error(f"--json {target}: folder {path.parent} does not exist")


def emit_json(target: str, data: Any, error: type[NatoptError]) -> None:
    """Print ``data`` as JSON (``target`` ``-``) or write it whole to the file ``target``."""
    text = json.dumps(data, indent=2) + "\n"
    if json_to_stdout(target):
        print(text, end="")
    else:
        write_whole(Path(target), text, error)
