"""The fixed global vocabulary and its restriction by level."""

from __future__ import annotations

import pytest

from natopt.passes.transitions import SPACES, VOCABULARY, Transition, Vocabulary, vocabulary_for


def test_vocabulary_is_fixed_and_keep_comes_first() -> None:
    assert VOCABULARY.names[:3] == ("keep", "skip", "null")
    assert len(VOCABULARY) == 20  # 3 depth, 4 kernel, 7 type, 3 lowrank, 3 width
    assert VOCABULARY.index("sep_conv_3x3") == VOCABULARY.names.index("sep_conv_3x3")
    entry = VOCABULARY.get("lowrank_1_4")
    assert (entry.level, entry.op, entry.divisor) == ("lowrank", "lowrank", 4)
    assert VOCABULARY.get("dil_sep_conv_5x5") == Transition(
        "dil_sep_conv_5x5", "type", "dil_sep_conv", 5
    )
    with pytest.raises(KeyError, match="not in the vocabulary"):
        VOCABULARY.index("conv_9x9")


def test_spaces_reproduce_nat_and_nat_plus_plus() -> None:
    assert SPACES["nat"].names == ("keep", "skip", "null")
    nat_pp = SPACES["nat++"]
    assert nat_pp.levels == {"depth", "type", "kernel"}
    assert "lowrank_1_2" not in nat_pp.names and "conv_3x3" in nat_pp.names
    assert vocabulary_for("full") is VOCABULARY
    assert vocabulary_for(nat_pp) is nat_pp
    with pytest.raises(ValueError, match="unknown transition space"):
        vocabulary_for("nas")


def test_restrict_keeps_order_and_depth() -> None:
    kernel_only = VOCABULARY.restrict(["kernel"])
    assert kernel_only.names == (
        "keep",
        "skip",
        "null",
        "conv_7x7",
        "conv_5x5",
        "conv_3x3",
        "conv_1x1",
    )
    with pytest.raises(ValueError, match="unknown level"):
        VOCABULARY.restrict(["depth", "channels"])


def test_invalid_vocabularies_are_refused() -> None:
    with pytest.raises(ValueError, match="first entry"):
        Vocabulary((Transition("skip", "depth", "skip"),))
    keep = Transition("keep", "depth", "keep")
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary((keep, keep))
    with pytest.raises(ValueError, match="level"):
        Transition("wide", "breadth", "conv")
