"""The ``torch.compile`` backend: ``torch.compile(model, backend="natopt", options={...})``.

Registered through the ``torch_dynamo_backends`` entry point, so the name works as soon as
natopt is installed; ``NatoptBackend(plan=...)`` is the same backend as an object, which
also reports what it did (``applied``, ``unmatched``).

A backend sees the model only as the graphs dynamo captures, at compile time (the first
call), and cannot fine-tune: it replays a plan computed beforehand (``natopt optimize
--save-plan``), or, with ``search=True``, searches a small plan on the example inputs. Per
graph (``natopt.compile.rewrite``): lift, canonicalise, apply the plan entries whose units
are in this graph (units are named by module path, ``layer1.0.conv2``, which every capture
method keeps), lower with ``to_torch`` and hand the result to inductor or run it eagerly.
When dynamo splits the model at graph breaks, entries are matched graph by graph; once a
graph that ends its frame has been compiled (no graph break still to resume), entries that
matched no graph so far are reported in one warning.

Semantics: inference. BatchNorm is folded and the weights are copied at compile time, so
gradients do not reach the model's parameters and later weight updates are not seen.
Symbolic sizes (``dynamic=True``) are fine; a graph the frontend cannot lift is left as it
was, with a warning. Errors (a missing or malformed plan file, an unknown option) are
``NatoptError``s raised at compile time: dynamo passes them through unwrapped, and their
message stays one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch.fx as fx

from natopt.compile.options import CompileOptions, PlanLike, load_plan
from natopt.compile.rewrite import rewrite_graph_module
from natopt.errors import FrontendError, NatoptError
from natopt.pipeline.budget import Budget

__all__ = ["NatoptBackend", "natopt_backend"]


class NatoptBackend:
    """A ``torch.compile`` backend rewriting each captured graph by one plan (module doc)."""

    def __init__(
        self,
        plan: PlanLike | None = None,
        *,
        then: str = "inductor",
        search: bool = False,
        budget: Budget | str | None = None,
        evaluations: int = 16,
        seed: int = 0,
    ) -> None:
        self.options = CompileOptions(
            plan=None if plan is None else load_plan(plan),
            then=then,
            search=search,
            budget=Budget.parse(budget) if isinstance(budget, str) else budget,
            evaluations=evaluations,
            seed=seed,
        )
        self.applied: dict[str, str] = {}
        self.matched: dict[str, str] = {}
        self.graphs = 0
        self._reported: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, options: CompileOptions) -> NatoptBackend:
        backend = cls()
        backend.options = options
        return backend

    @property
    def unmatched(self) -> dict[str, str]:
        """Plan entries whose unit is in none of the graphs compiled so far."""
        plan = self.options.plan
        entries = plan.transitions if plan is not None else {}
        return {u: t for u, t in entries.items() if u not in self.matched}

    def __call__(self, gm: fx.GraphModule, example_inputs: Sequence[Any]) -> Callable[..., Any]:
        try:
            rewritten = rewrite_graph_module(gm, example_inputs, self.options)
        except FrontendError as exc:
            warnings.warn(
                f"natopt backend: graph {self.graphs} is left as it was: {exc}", stacklevel=2
            )
            module = gm
        except NatoptError as exc:
            raise passthrough(exc) from exc
        else:
            module = rewritten.module
            self.matched.update(rewritten.matched)
            self.applied.update(rewritten.applied)
        self.graphs += 1
        if not _resumes_later(gm):
            self._report_unmatched()
        if self.options.then == "eager":
            return module
        from torch._inductor.compile_fx import compile_fx

        return cast(Callable[..., Any], compile_fx(module, list(example_inputs)))

    def _report_unmatched(self) -> None:
        unmatched = self.unmatched
        if unmatched and frozenset(unmatched) != self._reported:
            self._reported = frozenset(unmatched)
            names = ", ".join(sorted(unmatched)[:8]) + (" ..." if len(unmatched) > 8 else "")
            warnings.warn(
                f"natopt backend: {len(unmatched)} plan entr{'y' if len(unmatched) == 1 else 'ies'}"
                f" matched no compiled graph ({names}); units are named by module path, "
                "as `natopt inspect` lists them",
                stacklevel=3,
            )


def _resumes_later(gm: fx.GraphModule) -> bool:
    """Whether dynamo cut this graph at a graph break (its frame goes on in another graph)."""
    reason = getattr(gm, "compile_subgraph_reason", None)
    return bool(getattr(reason, "graph_break", False))


_BACKENDS: dict[int, tuple[Mapping[str, Any], NatoptBackend]] = {}


def natopt_backend(
    gm: fx.GraphModule, example_inputs: Sequence[Any], options: Mapping[str, Any] | None = None
) -> Callable[..., Any]:
    """The registered backend: one ``NatoptBackend`` per ``torch.compile`` options dict
    (dynamo passes the same dict for every graph of one compiled model)."""
    if options is None:
        return NatoptBackend.from_options(CompileOptions())(gm, example_inputs)
    held = _BACKENDS.get(id(options))
    if held is None or held[0] is not options:
        try:
            parsed = CompileOptions.parse(options)
        except NatoptError as exc:
            raise passthrough(exc) from exc
        held = (options, NatoptBackend.from_options(parsed))
        _BACKENDS[id(options)] = held
    return held[1](gm, example_inputs)


class _Passthrough:
    """Mixed into a ``NatoptError`` raised inside dynamo: dynamo re-raises subclasses of its
    ``ShortenTraceback`` unwrapped (anything else becomes ``BackendCompilerFailed``); it
    appends hints to the message, so ``str`` keeps the original one line."""

    message: str

    def __str__(self) -> str:
        return self.message


_PASSTHROUGH: dict[type[NatoptError], type[NatoptError]] = {}


def passthrough(exc: NatoptError) -> NatoptError:
    """``exc`` as an error of the same class that dynamo lets reach the user unchanged."""
    from torch._dynamo.exc import ShortenTraceback

    def init(self: Any, message: str) -> None:
        ShortenTraceback.__init__(self, message, first_useful_frame=None)
        self.message = message

    cls = type(exc)
    if cls not in _PASSTHROUGH:
        bases = (_Passthrough, cls, ShortenTraceback)
        namespace = {"__init__": init, "__module__": cls.__module__}
        _PASSTHROUGH[cls] = type(cls.__name__, bases, namespace)
    return _PASSTHROUGH[cls](str(exc))
