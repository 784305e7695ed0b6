"""The torch.compile backend on torchvision resnet18: a plan found on the torch.export graph
replays on dynamo's graphs (split by a graph break) and on the model's ONNX export."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torchvision
from compile_support import assert_close_relative
from torch import nn

from natopt.backends import to_torch
from natopt.compile import NatoptBackend, natopt_backend
from natopt.errors import NatoptError, PlanError
from natopt.frontends import lift
from natopt.frontends.onnx import lift_onnx
from natopt.ir import graph_cost
from natopt.passes import canonicalize
from natopt.passes.transitions import apply_plan, compute_mask


@pytest.fixture(scope="module")
def reference(resnet) -> torch.Tensor:
    """apply_plan on the torch.export graph, run through to_torch."""
    with torch.no_grad():
        return to_torch(apply_plan(resnet.graph, resnet.plan))(resnet.x)


def compiled(model, backend, dynamic=False, **kwargs):
    torch._dynamo.reset()
    return torch.compile(model, backend=backend, dynamic=dynamic, **kwargs)


def test_the_entry_point_registers_the_backend_name():
    assert torch._dynamo.lookup_backend("natopt") is natopt_backend
    assert "natopt" in torch._dynamo.list_backends(exclude_tags=())


def test_a_plan_replays_on_the_graphs_of_a_graph_break(resnet, reference):
    backend = NatoptBackend(resnet.plan, then="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every entry matches some graph: no warning
        with torch.no_grad():
            got = compiled(resnet.with_break(), backend)(resnet.x)
    assert backend.graphs == 2
    assert backend.matched == resnet.plan.transitions and backend.unmatched == {}
    assert set(backend.applied) <= set(resnet.plan.transitions) and backend.applied
    assert_close_relative(got, reference)
    assert not torch.allclose(got, resnet.model(resnet.x), rtol=1e-3)  # the plan changed it


def test_the_registered_name_takes_the_plan_as_a_file(resnet, reference, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(resnet.plan.to_json())
    model = compiled(resnet.with_break(), "natopt", options={"plan": str(path), "then": "eager"})
    with torch.no_grad():
        assert_close_relative(model(resnet.x), reference)


def test_entries_that_match_no_graph_are_reported_once_after_compilation(resnet):
    plan = {**resnet.plan.transitions, "layer9.0.conv1": "skip", "head.proj": "lowrank_1_2"}
    backend = NatoptBackend(plan, then="eager")
    model = compiled(resnet.with_break(), backend)
    matched_none = "2 plan entries matched no compiled graph"
    with torch.no_grad(), pytest.warns(UserWarning, match=matched_none) as caught:
        model(resnet.x)
        model(resnet.x)
    messages = [str(w.message) for w in caught if "natopt backend" in str(w.message)]
    assert len(messages) == 1 and "head.proj, layer9.0.conv1" in messages[0]
    assert backend.unmatched == {"layer9.0.conv1": "skip", "head.proj": "lowrank_1_2"}


def test_the_onnx_export_has_the_same_units_and_computes_the_same(resnet, reference, tmp_path):
    path = tmp_path / "resnet18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(resnet.model, (resnet.x,), path, dynamo=False)
    graph = canonicalize(lift_onnx(path))
    units = compute_mask(graph).unit_names
    assert set(resnet.plan.transitions) <= set(units)
    with torch.no_grad():
        assert_close_relative(to_torch(apply_plan(graph, resnet.plan))(resnet.x), reference)


def test_a_missing_plan_file_is_a_plan_error_at_compile_time(tmp_path):
    model = compiled(nn.Linear(4, 2), "natopt", options={"plan": str(tmp_path / "nope.json")})
    with pytest.raises(PlanError) as caught:
        model(torch.randn(3, 4))
    assert type(caught.value).__module__ == "natopt.errors"  # shown as natopt.errors.PlanError
    message = str(caught.value)
    assert "nope.json does not exist" in message and "\n" not in message


@pytest.mark.parametrize(
    "text", ["{not json", json.dumps({"version": 7, "transitions": {}}), json.dumps([1])]
)
def test_a_malformed_plan_file_is_a_plan_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    model = compiled(nn.Linear(4, 2), "natopt", options={"plan": str(path)})
    with pytest.raises(PlanError, match="bad.json is not a natopt plan") as caught:
        model(torch.randn(3, 4))
    assert "\n" not in str(caught.value)


def test_unknown_options_and_transitions_are_errors():
    model = compiled(nn.Linear(4, 2), "natopt", options={"plan": {}, "than": "eager"})
    with pytest.raises(NatoptError, match="unknown option.*than"):
        model(torch.randn(3, 4))
    backend = NatoptBackend({"0": "sep_conv_3x3"}, then="eager")  # a linear has no such target
    model = compiled(nn.Sequential(nn.Linear(4, 4)), backend)
    with pytest.raises(PlanError, match="sep_conv_3x3 is invalid for unit 0"):
        model(torch.randn(3, 4))


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 5, padding=2), nn.ReLU()
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_search_finds_a_plan_within_its_budget_on_the_example_inputs():
    torch.manual_seed(0)
    model, x = SmallNet().eval(), torch.randn(8, 3, 16, 16)
    backend = NatoptBackend(search=True, budget="macs=0.6", evaluations=6, then="eager")
    with torch.no_grad():
        out = compiled(model, backend)(x)
    assert out.shape == (8, 10) and torch.isfinite(out).all()
    assert backend.applied  # the 5x5 conv alone is most of the MACs: a cheaper plan was chosen
    original = canonicalize(lift(model, x))
    rewritten = apply_plan(original, backend.applied)
    assert graph_cost(rewritten).macs <= 0.6 * graph_cost(original).macs


def test_a_dynamic_batch_graph_is_rewritten_once_for_every_batch_size():
    torch.manual_seed(0)
    model = SmallNet().eval()
    xs = [torch.randn(batch, 3, 16, 16) for batch in (2, 5)]
    static = compiled(model, NatoptBackend({"body.2": "conv_3x3"}, then="eager"))
    with torch.no_grad():
        wants = [static(x) for x in xs]  # one static graph per batch size
    backend = NatoptBackend({"body.2": "conv_3x3"}, then="eager")
    dynamic = compiled(model, backend, dynamic=True)
    with torch.no_grad():
        for x, want in zip(xs, wants, strict=True):
            assert_close_relative(dynamic(x), want)
    assert backend.graphs == 1 and backend.applied == {"body.2": "conv_3x3"}


SQUEEZENET_PLAN = {
    "features.3.expand3x3": "sep_conv_3x3",
    "features.6.expand3x3": "conv_1x1",
    "features.9.squeeze": "lowrank_1_2",
}


def test_the_readmes_inductor_path_on_squeezenet_matches_eager():
    """``backend="natopt"`` with ``then: inductor``, as the README writes it, on torchvision's
    smallest classifier (random weights): inductor runs the rewritten graph as eager does.
    Cold, inductor compiles its C++ kernels: ~40 s on a loaded 2-core box; ~11 s warm."""
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    eager = NatoptBackend(SQUEEZENET_PLAN, then="eager")
    options = {"plan": SQUEEZENET_PLAN, "then": "inductor"}
    with torch.no_grad():
        want = compiled(model, eager)(x)
        got = compiled(model, "natopt", options=options)(x)
        original = model(x)
    assert eager.applied == SQUEEZENET_PLAN
    assert_close_relative(got, want)
    assert not torch.allclose(want, original, rtol=1e-3)  # the plan changed the model


@pytest.mark.slow
def test_inductor_runs_the_rewritten_graphs(resnet, reference):
    backend = NatoptBackend(resnet.plan)  # then="inductor"
    with torch.no_grad():
        got = compiled(resnet.with_break(), backend)(resnet.x)
    assert backend.graphs == 2
    assert_close_relative(got, reference, 1e-3)
