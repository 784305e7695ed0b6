"""The fixed global vocabulary of transitions: one policy logit per entry.

Every unit of every graph is scored against the same ordered list of entries, so a policy can
emit a ``[units, len(vocabulary)]`` logit matrix and the validity mask (``TransitionMask``)
switches off what a unit cannot do. The entries are those of the registered transition rules
(``registry.rules()``, one file per family under ``rules/``), in rule ``order``; a rule marked
``optional`` keeps its entries out of ``VOCABULARY``. An entry says what a unit becomes:

| level   | entries                                        | target                      |
| ------- | ---------------------------------------------- | --------------------------- |
| depth   | keep, skip, null                               | itself, identity, zero      |
| kernel  | conv_7x7, conv_5x5, conv_3x3, conv_1x1         | same conv, smaller kernel   |
| type    | sep_conv_{7,5,3}, dil_sep_conv_{5,3} (kxk),    | depthwise-separable conv,   |
|         | max_pool_3x3, avg_pool_3x3                     | dilated separable, pooling  |
| lowrank | lowrank_1_2, lowrank_1_4, lowrank_1_8          | rank = full rank // divisor |
| width   | width_3_4, width_1_2, width_1_4                | that fraction of the unit's |
|         |                                                | output channels (its group) |

Levels combine (NAT++): a type entry may also shrink the kernel (conv 5x5 -> sep_conv_3x3)
only when the vocabulary also holds the ``kernel`` level; otherwise it keeps the unit's kernel.
``restrict(levels)`` gives the smaller spaces: ``SPACES["nat"]`` (keep/skip/null, NAT),
``SPACES["nat++"]`` (depth + type + kernel) and ``SPACES["full"]`` (all levels). A width entry
keeps ``fraction`` of a conv/linear unit's output channels, rounded up to the device's channel
block, and acts on the unit's whole channel group (``natopt.passes.width``); it is offered only
on the group's leader (``rules.width``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from natopt.passes.transitions.registry import LEVELS, Transition, rules

__all__ = [
    "LEVELS",
    "Transition",
    "Vocabulary",
    "VOCABULARY",
    "SPACES",
    "vocabulary_for",
]


def _entries() -> tuple[Transition, ...]:
    """The entries of every registered rule that is not ``optional``, in rule order."""
    return tuple(entry for rule in rules() if not rule.optional for entry in rule.entries)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """An ordered, immutable list of transitions; ``keep`` is always entry 0."""

    entries: tuple[Transition, ...]

    def __post_init__(self) -> None:
        if not self.entries or self.entries[0].name != "keep":
            raise ValueError("Vocabulary: the first entry must be 'keep'")
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            raise ValueError(f"Vocabulary: duplicate entry names in {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    @property
    def levels(self) -> frozenset[str]:
        return frozenset(e.level for e in self.entries)

    def index(self, name: str) -> int:
        for i, entry in enumerate(self.entries):
            if entry.name == name:
                return i
        raise KeyError(f"transition {name!r} is not in the vocabulary; known: {self.names}")

    def get(self, name: str) -> Transition:
        return self.entries[self.index(name)]

    def restrict(self, levels: Iterable[str]) -> Vocabulary:
        """The sub-vocabulary of the given levels (``depth`` is always kept), order preserved."""
        wanted = {*levels, "depth"}
        unknown = wanted - set(LEVELS)
        if unknown:
            raise ValueError(f"Vocabulary.restrict: unknown level(s) {sorted(unknown)}; {LEVELS}")
        return Vocabulary(tuple(e for e in self.entries if e.level in wanted))

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Transition]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> Transition:
        return self.entries[i]


VOCABULARY = Vocabulary(_entries())
SPACES: dict[str, Vocabulary] = {
    "nat": VOCABULARY.restrict(["depth"]),
    "nat++": VOCABULARY.restrict(["depth", "type", "kernel"]),
    "full": VOCABULARY,
}


def vocabulary_for(space: str | Vocabulary) -> Vocabulary:
    """The vocabulary named ``space`` ("nat", "nat++", "full"), or ``space`` itself."""
    if isinstance(space, Vocabulary):
        return space
    try:
        return SPACES[space]
    except KeyError:
        raise ValueError(
            f"unknown transition space {space!r}; choose one of {sorted(SPACES)}"
        ) from None
