"""PassManager: order, fixed point, timings, dumps, verification and failure messages."""

from __future__ import annotations

import pytest

from natopt.errors import BudgetError, DataError, VerifyError
from natopt.ir import Graph, infer_shapes
from natopt.passes import (
    DeadCodePass,
    Pass,
    PassContext,
    PassManager,
    PassResult,
    RemoveIdentityPass,
)


def identity_chain(length: int) -> Graph:
    g = Graph("chain")
    value = g.add_input("x", (2, 3))
    for i in range(length):
        value = g.add_node("Identity", [value], name=f"id{i}").output
    g.set_outputs([g.add_node("Relu", [value], name="relu").output])
    infer_shapes(g)
    return g


class RemoveOneIdentity(Pass):
    """Removes a single Identity per run, so a fixed point needs several iterations."""

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        for node in graph.find("Identity"):
            graph.replace_all_uses(node.output, node.inputs[0])
            graph.remove_node(node)
            return PassResult(graph, True)
        return PassResult(graph, False)


class BreakShapes(Pass):
    name = "break-shapes"

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        graph.nodes[-1].output.shape = (99,)
        return PassResult(graph, True)


class Explode(Pass):
    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise RuntimeError("boom")


class RefuseData(Pass):
    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise DataError("calibration data has the wrong shape")


class NoBudget(Pass):
    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise BudgetError("no plan within 10% of the MACs", cheapest=0.25)


class ReplaceGraph(Pass):
    """Returns a new graph instead of editing the one it was given."""

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        new = graph.copy()
        new.name = "replaced"
        return PassResult(new, False)


def test_pass_names_default_to_the_class_name():
    assert RemoveIdentityPass.name == "RemoveIdentityPass"
    assert BreakShapes.name == "break-shapes"


def test_fixed_point_repeats_until_nothing_changes():
    g = identity_chain(3)
    ctx = PassContext()
    result = PassManager([RemoveOneIdentity()], fixed_point=True).run(g, ctx)
    assert result.changed
    assert [n.op for n in result.graph.nodes] == ["Relu"]
    assert ctx.log == ["RemoveOneIdentity"] * 4
    assert set(ctx.timings) == {"RemoveOneIdentity"} and ctx.timings["RemoveOneIdentity"] > 0


def test_without_fixed_point_each_pass_runs_once():
    ctx = PassContext()
    PassManager([RemoveOneIdentity(), DeadCodePass()]).run(identity_chain(3), ctx)
    assert ctx.log == ["RemoveOneIdentity", "DeadCodePass"]


def test_max_iterations_bounds_the_fixed_point():
    g = identity_chain(5)
    PassManager([RemoveOneIdentity()], fixed_point=True, max_iterations=2).run(g, PassContext())
    assert g.op_counts() == {"Identity": 3, "Relu": 1}


def test_a_pass_may_return_a_new_graph():
    result = PassManager([ReplaceGraph(), RemoveIdentityPass()]).run(
        identity_chain(1), PassContext()
    )
    assert result.graph.name == "replaced"
    assert [n.op for n in result.graph.nodes] == ["Relu"]


def test_verifier_failure_names_the_pass_and_its_predecessors():
    manager = PassManager([RemoveIdentityPass(), DeadCodePass(), BreakShapes()])
    with pytest.raises(
        VerifyError,
        match=r"after pass break-shapes \(after RemoveIdentityPass, "
        r"DeadCodePass\).*relu",
    ):
        manager.run(identity_chain(1), PassContext())


def test_verification_can_be_turned_off():
    ctx = PassContext(verify=False)
    PassManager([BreakShapes()]).run(identity_chain(1), ctx)
    assert ctx.log == ["break-shapes"]


def test_an_exception_that_is_no_natopt_error_propagates_unchanged():
    with pytest.raises(RuntimeError, match="^boom$") as info:
        PassManager([RemoveIdentityPass(), Explode()]).run(identity_chain(1), PassContext())
    assert type(info.value) is RuntimeError
    assert isinstance(info.traceback[-1].frame.f_locals["self"], Explode)  # raised there


def test_a_natopt_error_keeps_its_class():
    with pytest.raises(DataError, match="pass RefuseData failed as the first pass: calibration"):
        PassManager([RefuseData()]).run(identity_chain(1), PassContext())


def test_a_natopt_error_keeps_its_fields_and_traceback():
    manager = PassManager([RemoveIdentityPass(), PassManager([NoBudget()])])
    with pytest.raises(BudgetError) as info:
        manager.run(identity_chain(1), PassContext())
    error = info.value
    assert type(error) is BudgetError and error.cheapest == 0.25
    assert str(error) == (
        "pass PassManager failed after RemoveIdentityPass: "
        "pass NoBudget failed as the first pass: no plan within 10% of the MACs"
    )
    assert isinstance(info.traceback[-1].frame.f_locals["self"], NoBudget)  # raised there
    assert error.__cause__ is None


def test_dumps_before_and_after_each_pass(tmp_path):
    ctx = PassContext(dump_dir=tmp_path / "dumps")
    PassManager([RemoveIdentityPass(), DeadCodePass()]).run(identity_chain(2), ctx)
    names = sorted(p.name for p in (tmp_path / "dumps").iterdir())
    assert names == [
        "000-RemoveIdentityPass-after.txt",
        "000-RemoveIdentityPass-before.txt",
        "001-DeadCodePass-after.txt",
        "001-DeadCodePass-before.txt",
    ]
    before = (tmp_path / "dumps" / "000-RemoveIdentityPass-before.txt").read_text()
    after = (tmp_path / "dumps" / "000-RemoveIdentityPass-after.txt").read_text()
    assert before.count("Identity(") == 2 and "Identity(" not in after


def test_managers_nest_and_share_the_context():
    ctx = PassContext()
    inner = PassManager([RemoveIdentityPass()])
    PassManager([inner, DeadCodePass()]).run(identity_chain(1), ctx)
    assert ctx.log == ["RemoveIdentityPass", "PassManager", "DeadCodePass"]


def test_a_pass_runs_alone_when_called():
    g = identity_chain(2)
    result = RemoveIdentityPass()(g)
    assert result.changed and result.graph is g
    assert [n.op for n in g.nodes] == ["Relu"]
    assert g.inputs[0].uses == [(g.node("relu"), 0)]
