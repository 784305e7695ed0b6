"""Pass infrastructure: ``Pass``, ``PassResult``, ``PassContext`` and ``PassManager``.

A pass is a small named object whose ``run(graph, ctx)`` returns ``PassResult(graph,
changed)``; it may edit ``graph`` in place or return a new graph. A ``PassContext`` carries
what would otherwise be keyword arguments on every pass: whether to verify after each pass,
where to dump the IR before and after each pass, the accumulated timings and the log of the
passes that ran. A ``PassManager`` runs a list of passes in order (to a fixed point when
asked), verifying and timing each; when a pass raises a ``NatoptError`` or leaves a graph the
verifier rejects, the error names that pass and the passes that ran before it. Any other
exception is a bug in the pass and propagates unchanged (its own type and traceback).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from natopt.errors import NatoptError, VerifyError
from natopt.ir import Graph, format_graph, verify

__all__ = ["Pass", "PassResult", "PassContext", "PassManager"]


@dataclass(slots=True)
class PassResult:
    """The graph a pass produced (possibly the same object it was given) and whether it changed."""

    graph: Graph
    changed: bool


@dataclass(slots=True)
class PassContext:
    """Options and instruments shared by the passes of one pipeline run.

    ``verify``: run the IR verifier after every pass (with ``check_shapes``: re-infer every
    node's output shapes too). ``dump_dir``: write ``format_graph`` before and after every
    pass as ``NNN-<pass>-before.txt`` / ``NNN-<pass>-after.txt``. ``timings``: pass name ->
    seconds, accumulated over every run of that pass. ``log``: the names of the passes that
    ran, in order.
    """

    verify: bool = True
    check_shapes: bool = True
    dump_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


class Pass:
    """A graph-to-graph transformation; subclasses implement ``run``.

    ``name`` defaults to the class name. Calling a pass runs it alone, without verification
    or instruments; ``PassManager`` adds those.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise NotImplementedError(f"{type(self).__name__} must implement run(graph, ctx)")

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        return self.run(graph, ctx if ctx is not None else PassContext())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _dump(ctx: PassContext, step: int, name: str, stage: str, graph: Graph) -> None:
    if ctx.dump_dir is None:
        return
    ctx.dump_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.dump_dir / f"{step:03d}-{_UNSAFE.sub('_', name)}-{stage}.txt"
    path.write_text(format_graph(graph) + "\n", encoding="utf-8")


def _history(ran: Sequence[str]) -> str:
    return f"after {', '.join(ran)}" if ran else "as the first pass"


class PassManager(Pass):
    """Run ``passes`` in order, verifying and timing each.

    With ``fixed_point`` the whole list is repeated until no pass reports a change, at most
    ``max_iterations`` times. A ``NatoptError`` a pass raises is re-raised as it is (same
    object: its class, fields such as ``BudgetError.cheapest`` and traceback kept) with its
    message prefixed by the pass and the passes that ran before it in this pipeline; a graph
    the verifier rejects raises ``VerifyError`` saying the same. Any other exception
    propagates untouched. A manager is itself a pass, so pipelines nest.
    """

    name = "PassManager"

    def __init__(
        self, passes: Sequence[Pass], *, fixed_point: bool = False, max_iterations: int = 10
    ) -> None:
        if max_iterations < 1:
            raise ValueError(f"PassManager: max_iterations must be >= 1, got {max_iterations}")
        self.passes = list(passes)
        self.fixed_point = fixed_point
        self.max_iterations = max_iterations

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        changed_any = False
        ran: list[str] = []
        for _ in range(self.max_iterations if self.fixed_point else 1):
            changed = False
            for p in self.passes:
                graph, step_changed = self._run_one(p, graph, ctx, ran)
                changed = changed or step_changed
            changed_any = changed_any or changed
            if not changed:
                break
        return PassResult(graph, changed_any)

    def _run_one(
        self, p: Pass, graph: Graph, ctx: PassContext, ran: list[str]
    ) -> tuple[Graph, bool]:
        step = len(ctx.log)
        _dump(ctx, step, p.name, "before", graph)
        start = time.perf_counter()
        try:
            result = p.run(graph, ctx)
        except NatoptError as exc:
            exc.args = (f"pass {p.name} failed {_history(ran)}: {exc}",)
            raise
        finally:
            ctx.timings[p.name] = ctx.timings.get(p.name, 0.0) + time.perf_counter() - start
        ran.append(p.name)
        ctx.log.append(p.name)
        _dump(ctx, step, p.name, "after", result.graph)
        if ctx.verify:
            try:
                verify(result.graph, check_shapes=ctx.check_shapes)
            except VerifyError as exc:
                raise VerifyError(
                    f"the graph is invalid after pass {p.name} ({_history(ran[:-1])}): {exc}"
                ) from exc
        return result.graph, result.changed

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.passes)
        return f"PassManager([{inner}], fixed_point={self.fixed_point})"
