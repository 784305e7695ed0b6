"""NatoptFxPass inside torch.fx's own PassManager, on a symbolic_trace'd torchvision resnet18."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from compile_support import assert_close_relative
from torch.fx.passes.infra.pass_base import PassResult
from torch.fx.passes.infra.pass_manager import PassManager
from torch.fx.passes.shape_prop import ShapeProp

from natopt.backends import to_torch
from natopt.compile import NatoptFxPass
from natopt.errors import FrontendError
from natopt.passes.transitions import apply_plan


@pytest.fixture(scope="module")
def traced(resnet) -> fx.GraphModule:
    return fx.symbolic_trace(resnet.model)


def _conv_calls(gm: fx.GraphModule) -> int:
    return sum(
        1
        for n in gm.graph.nodes
        if n.op == "call_function" and getattr(n.target, "__name__", "") == "conv"
    )


def test_the_pass_rewrites_a_traced_model_inside_fx_pass_manager(resnet, traced):
    natopt_pass = NatoptFxPass(resnet.plan, example_inputs=(resnet.x,))
    manager = PassManager(passes=[natopt_pass], steps=2, run_checks_after_each_pass=True)
    result = manager(traced)
    assert isinstance(result, PassResult) and result.modified
    gm = result.graph_module
    assert isinstance(gm, fx.GraphModule) and gm is not traced
    assert natopt_pass.last is not None and natopt_pass.last.applied
    # exactly the convolutions of the plan applied to the torch.export graph (a second
    # application in the manager's second step would have failed: the marked module is
    # left alone)
    expected = apply_plan(resnet.graph, resnet.plan)
    assert _conv_calls(gm) == expected.op_counts()["Conv"]
    with torch.no_grad():
        want = to_torch(expected)(resnet.x)
        assert_close_relative(gm(resnet.x), want)
        assert gm(resnet.x).shape == traced(resnet.x).shape


def test_placeholder_shapes_stand_in_for_example_inputs(resnet, traced):
    gm = fx.symbolic_trace(resnet.model)
    ShapeProp(gm).propagate(resnet.x)
    skip = {"layer1.0.conv2": "skip"}
    natopt_pass = NatoptFxPass(skip)
    result = natopt_pass(gm)
    assert result.modified and natopt_pass.last is not None
    assert natopt_pass.last.applied == skip
    # the rewrite is the graph-level one: one convolution fewer, the same outputs
    expected = apply_plan(resnet.graph, skip)
    assert _conv_calls(result.graph_module) == expected.op_counts()["Conv"]
    assert expected.op_counts()["Conv"] == resnet.graph.op_counts()["Conv"] - 1
    with torch.no_grad():
        assert_close_relative(result.graph_module(resnet.x), to_torch(expected)(resnet.x))
    with pytest.raises(FrontendError, match="needs example_inputs"):
        NatoptFxPass({"layer1.0.conv2": "skip"})(traced)


def test_a_plan_for_other_units_leaves_the_module_as_it_was(resnet, traced):
    result = NatoptFxPass({"encoder.layers.0": "null"}, example_inputs=resnet.x)(traced)
    assert result == PassResult(traced, False)
