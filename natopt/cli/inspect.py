"""``natopt inspect MODEL``: the canonical graph's computational units and what they cost.

MODEL is an ONNX file or a Python ``module:attr`` (``attr`` a model instance, a class, or a
zero-argument callable returning one; ``module`` a dotted name or a ``.py`` file). The model
is lifted, canonicalised and split into units; one row per conv/linear/pool unit, one per
remaining node with multiply-adds (attention, matmul), and one ``other`` row for the
parameters no unit owns, so the rows add up to the totals exactly. Residual branches overlap
those rows and are listed after them, outside the totals.

``--json`` prints ``{"nodes": [rows], "branches": [rows], "totals": {...}}`` and nothing
else; ``--json FILE`` writes it there and prints the table (``natopt.cli.json_output``). A
row is ``{name, kind, ops, input_shape, output_shape, params, macs, share, transitions}``
with ``share`` the row's fraction of the graph's MACs (the table prints it in percent) and
``transitions`` the unit's valid transitions (``TransitionMask``; the table leaves out
``keep``).
``--graph`` prints the IR text before the table. Costs count symbolic dims as 1 (batch 1).

The table is built from ``COLUMNS``, a list of column specs: a new column (a unit's valid
transitions, say) is one more ``Column``, reading the ``Row`` and its ``unit``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from natopt._console import console_for, new_table
from natopt.cli import SUMMARIES
from natopt.cli.json_output import add_json_option, check_json_target, emit_json, json_to_stdout
from natopt.cli.models import DEFAULT_SHAPE, load_model
from natopt.errors import NatoptError
from natopt.ir import Graph, Node, Shape, format_graph, graph_cost, node_cost
from natopt.passes import Unit, canonicalize, find_units
from natopt.passes.transitions import compute_mask

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

__all__ = [
    "NAME",
    "COLUMNS",
    "Column",
    "Row",
    "Inspection",
    "register",
    "run",
    "inspect_graph",
    "format_table",
]

NAME = "inspect"


@dataclass(slots=True)
class Row:
    """One line of the report: a unit, a costly node outside any unit, or ``other``."""

    name: str
    kind: str
    ops: list[str]
    input_shape: Shape | None
    output_shape: Shape | None
    params: int
    macs: int
    share: float = 0.0
    unit: Unit | None = None
    transitions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "ops": self.ops,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "share": self.share,
            "transitions": self.transitions,
        }


@dataclass(slots=True)
class Inspection:
    """The rows (a partition of the graph's costs), the branches and the totals."""

    graph: Graph
    rows: list[Row]
    branches: list[Row]
    totals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [r.to_dict() for r in self.rows],
            "branches": [r.to_dict() for r in self.branches],
            "totals": self.totals,
        }


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its header, how a row's cell reads, its alignment (``<``/``>``), and
    whether a cell may wrap onto more lines when the table is wider than the screen."""

    header: str
    cell: Callable[[Row], str]
    align: str = "<"
    wrap: bool = False


def _shape_text(shape: Shape | None) -> str:
    return "-" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


def _ops_text(ops: list[str], limit: int = 4) -> str:
    if len(ops) <= limit:
        return "+".join(ops)
    return f"{'+'.join(ops[: limit - 1])}+...+{ops[-1]} ({len(ops)} ops)"


COLUMNS: list[Column] = [
    Column("name", lambda r: r.name),
    Column("kind", lambda r: r.kind),
    Column("ops", lambda r: _ops_text(r.ops), wrap=True),
    Column(
        "input -> output",
        lambda r: f"{_shape_text(r.input_shape)} -> {_shape_text(r.output_shape)}",
        wrap=True,
    ),
    Column("params", lambda r: f"{r.params:,}", ">"),
    Column("MACs", lambda r: f"{r.macs:,}", ">"),
    Column("share", lambda r: f"{100 * r.share:.2f}%", ">"),
    Column(
        "transitions",
        lambda r: ", ".join(t for t in r.transitions if t != "keep") or "-",
        wrap=True,
    ),
]


def format_table(rows: Sequence[Row], columns: Sequence[Column] = COLUMNS) -> Table:
    """A rich table of ``rows`` under the columns' headers; where it is wider than the
    screen, the wrapping columns' cells go onto more lines (a word too long folds, no
    character is lost)."""
    table = new_table()
    for c in columns:
        justify = "right" if c.align == ">" else "left"
        table.add_column(c.header, justify=justify, no_wrap=not c.wrap, overflow="fold")
    for row in rows:
        table.add_row(*(c.cell(row) for c in columns))
    return table


def _unit_row(unit: Unit) -> Row:
    costs = [node_cost(n) for n in unit.nodes]
    return Row(
        unit.name,
        unit.kind,
        [n.op for n in unit.nodes],
        unit.input.shape,
        unit.output.shape,
        sum(c.params for c in costs),
        sum(c.macs for c in costs),
        unit=unit,
    )


def _node_row(node: Node, params: int, macs: int) -> Row:
    data = node.input_values[0].shape if node.input_values else None
    return Row(node.source or node.name, "op", [node.op], data, node.output.shape, params, macs)


def _add_transitions(graph: Graph, rows: Sequence[Row]) -> None:
    """Each unit row's valid transitions (``TransitionMask``; a separable or low-rank pair is
    one unit, listed on the row of its first half)."""
    mask = compute_mask(graph)
    valid = {(u.main, u.kind == "branch"): mask.valid_names(i) for i, u in enumerate(mask.units)}
    for row in rows:
        if row.unit is not None:
            row.transitions = valid.get((row.unit.main, row.unit.kind == "branch"), [])


def inspect_graph(graph: Graph) -> Inspection:
    """Rows for ``graph``'s units and remaining costly nodes, its branches and totals."""
    units = find_units(graph)
    row_of_main = {u.main: _unit_row(u) for u in units if u.kind != "branch"}
    owned = {n for u in units if u.kind != "branch" for n in u.nodes}
    rows: list[Row] = []
    other = Row("other", "other", [], None, None, 0, 0)
    for node in graph.nodes:
        if node in row_of_main:
            rows.append(row_of_main[node])
        if node in owned:
            continue
        cost = node_cost(node)
        if cost.macs:
            rows.append(_node_row(node, cost.params, cost.macs))
        elif cost.params:
            other.params += cost.params
            other.ops = sorted({*other.ops, node.op})
    if other.params:
        rows.append(other)
    branches = [_unit_row(u) for u in units if u.kind == "branch"]
    total = graph_cost(graph)
    for row in [*rows, *branches]:
        row.share = row.macs / total.macs if total.macs else 0.0
    model_bytes = sum(
        int(w.numel()) * w.element_size() for n in graph.nodes for w in n.weights.values()
    )
    _add_transitions(graph, [*rows, *branches])
    totals = {
        "params": total.params,
        "macs": total.macs,
        "bytes": model_bytes,
        "nodes": len(graph.nodes),
        "ops": dict(sorted(graph.op_counts().items())),
    }
    return Inspection(graph, rows, branches, totals)


def _format_report(report: Inspection) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    totals = report.totals
    ops = ", ".join(f"{op} {count}" for op, count in totals["ops"].items())
    parts: list[RenderableType] = [format_table(report.rows)]
    if report.branches:
        parts += [Text(""), Text("residual branches (they overlap the rows above):")]
        parts.append(format_table(report.branches))
    parts += [
        Text(""),
        Text(
            f"totals: params {totals['params']:,}  MACs {totals['macs']:,}  "
            f"model bytes {totals['bytes']:,}  nodes {totals['nodes']}"
        ),
        Text(f"ops: {ops}"),
    ]
    return Group(*parts)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        NAME,
        parents=[common],
        help=SUMMARIES[NAME],
        description="Lift a model, canonicalise it (fold BN, remove identities, dead code) "
        "and list its computational units with shapes, parameters and multiply-adds.",
    )
    p.add_argument("model", metavar="MODEL", help="an ONNX file or a Python module:attr")
    p.add_argument(
        "--input-shape",
        action="append",
        default=None,
        metavar="D,D,...",
        help=f"example input shape, once per input (default {DEFAULT_SHAPE})",
    )
    p.add_argument(
        "--input-dtype",
        action="append",
        default=None,
        metavar="DTYPE",
        help="example input dtype, once or once per input (default float32)",
    )
    output = p.add_mutually_exclusive_group()
    add_json_option(output, "the report")
    output.add_argument("--graph", action="store_true", help="print the IR text too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Lift, canonicalise, find units and print the report."""
    check_json_target(args.json, [args.model], NatoptError)
    graph = canonicalize(load_model(args.model, args.input_shape or (), args.input_dtype or ()))
    report = inspect_graph(graph)
    if args.json is not None:
        emit_json(args.json, report.to_dict(), NatoptError)
    if json_to_stdout(args.json):
        return 0
    if args.graph:
        print(format_graph(graph))
        print()
    console_for().print(_format_report(report))
    return 0
