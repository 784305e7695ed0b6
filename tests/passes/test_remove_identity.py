"""RemoveIdentityPass: Identity, Dropout, no-op Cast and no-op Reshape disappear."""

from __future__ import annotations

import torch

from natopt.ir import Graph, infer_shapes
from natopt.passes import DeadCodePass, PassContext, PassManager, RemoveIdentityPass


def chain_graph() -> Graph:
    g = Graph("chain")
    x = g.add_input("x", (2, 4))
    ident = g.add_node("Identity", [x], name="ident")
    fc = g.add_node("Linear", [ident.output], weights={"weight": torch.randn(6, 4)}, name="fc")
    drop = g.add_node("Dropout", [fc.output], {"p": 0.3}, name="drop")
    same_cast = g.add_node("Cast", [drop.output], {"dtype": "float32"}, name="same_cast")
    shape = g.add_node("Shape", [same_cast.output], name="shape")
    same_reshape = g.add_node("Reshape", [same_cast.output, shape.output], name="same_reshape")
    same_reshape.output.shape = (2, 6)  # a shape tensor's values are invisible to inference
    relu = g.add_node("Relu", [same_reshape.output], name="relu")
    to_double = g.add_node("Cast", [relu.output], {"dtype": "float64"}, name="to_double")
    flat = g.add_node("Reshape", [to_double.output], {"shape": (12,)}, name="flat")
    g.set_outputs([flat.output])
    infer_shapes(g)
    return g


def test_identities_are_removed_and_real_casts_and_reshapes_kept(assert_same_function):
    before = chain_graph()
    after = before.copy()
    result = RemoveIdentityPass()(after)
    assert result.changed
    assert [n.op for n in after.nodes] == ["Linear", "Shape", "Relu", "Cast", "Reshape"]
    assert after.node("fc").inputs[0] is after.inputs[0]
    assert after.node("relu").inputs[0] is after.node("fc").output
    assert_same_function(before, after, [torch.randn(2, 4)])


def test_the_orphaned_shape_input_is_left_for_dead_code():
    g = chain_graph()
    PassManager([RemoveIdentityPass(), DeadCodePass()]).run(g, PassContext())
    assert [n.op for n in g.nodes] == ["Linear", "Relu", "Cast", "Reshape"]


def test_identity_feeding_a_graph_output_is_removed(assert_same_function):
    g = Graph("out")
    x = g.add_input("x", (3,))
    relu = g.add_node("Relu", [x], name="relu")
    ident = g.add_node("Identity", [relu.output], name="ident")
    g.set_outputs([ident.output])
    infer_shapes(g)
    after = g.copy()
    assert RemoveIdentityPass()(after).changed
    assert [n.op for n in after.nodes] == ["Relu"]
    assert after.outputs == [after.node("relu").output]
    assert_same_function(g, after, [torch.randn(3)])


def test_nothing_to_remove_reports_no_change():
    g = Graph("plain")
    x = g.add_input("x", (3,))
    g.set_outputs([g.add_node("Relu", [x]).output])
    infer_shapes(g)
    assert not RemoveIdentityPass()(g).changed
