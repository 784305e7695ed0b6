"""Entry point of the ``natopt`` command.

Each subcommand lives in its own module exposing ``register(subparsers, common)``, which adds
its parser (with ``parents=[common]``, so ``--debug`` works after the subcommand too) and sets
``func`` to a callable ``(args) -> int``. ``main`` imports only the module of the subcommand
it runs (the others are listed by their ``natopt.cli.SUMMARIES`` line), so ``natopt --help``
loads no subcommand and each subcommand only what it uses. ``main`` turns a ``NatoptError``
into one line on stderr and its exit status: 2 for bad input, 3 for a model refused by the
quality guard (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

from natopt.cli import SUMMARIES
from natopt.errors import NatoptError

__all__ = ["main", "build_parser"]

SUBCOMMANDS = tuple(SUMMARIES)


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``natopt`` parser; the subcommands in ``full`` (default: all) are imported and
    registered with their arguments, the others listed by name and summary only."""
    parser = argparse.ArgumentParser(
        prog="natopt",
        description="Architecture-optimisation compiler pass for trained neural networks.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        if full is None or name in full:
            importlib.import_module(f"natopt.cli.{name}").register(subparsers, common)
        else:
            subparsers.add_parser(name, help=SUMMARIES[name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = next((arg for arg in argv if not arg.startswith("-")), None)  # the subcommand
    args = build_parser(full=[named] if named else []).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NatoptError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"natopt: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("natopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
