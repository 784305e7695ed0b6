"""The transition space on real torchvision models (random weights, small inputs).

- resnet18: the all-null plan over every valid residual branch leaves exactly the parameter
  count computed by hand from the architecture;
- property (hypothesis): every plan drawn from the mask of resnet18 / mobilenet_v2 applies,
  verifies, runs in torch, exports to ONNX that onnxruntime runs to the same outputs, and
  costs no more than the original in parameters and in MACs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from hypothesis import given
from plan_checks import PLAN_SETTINGS, check_plan, masked_plans

from natopt.backends import to_torch
from natopt.frontends.torch import lift_torch
from natopt.ir import Graph, graph_cost
from natopt.passes import canonicalize
from natopt.passes.transitions import Plan, apply_plan, compute_mask

SIZE = 64


def _lifted(name: str, size: int = SIZE) -> Graph:
    torch.manual_seed(0)
    if name == "convnext_atto":
        timm = pytest.importorskip("timm")
        model = timm.create_model(name, pretrained=False).eval()
    else:
        model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():  # a zero-initialised head would make every output the same
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                torch.nn.init.normal_(param, std=0.02)
    return canonicalize(lift_torch(model, torch.randn(1, 3, size, size)))


@pytest.fixture(scope="module")
def resnet18() -> Graph:
    return _lifted("resnet18")


@pytest.fixture(scope="module")
def mobilenet_v2() -> Graph:
    return _lifted("mobilenet_v2")


def _conv(c_in: int, c_out: int, k: int) -> int:
    """Parameters of a conv with its BatchNorm folded in: weight and a per-channel bias."""
    return c_in * c_out * k * k + c_out


def _resnet18_params() -> int:
    def stage(c_in: int, c_out: int, downsample: bool) -> int:
        first = _conv(c_in, c_out, 3) + _conv(c_out, c_out, 3)
        return first + downsample * _conv(c_in, c_out, 1) + 2 * _conv(c_out, c_out, 3)

    stages = stage(64, 64, False) + stage(64, 128, True) + stage(128, 256, True)
    return _conv(3, 64, 7) + stages + stage(256, 512, True) + 512 * 1000 + 1000


def test_resnet18_all_null_plan_matches_the_hand_computed_parameter_count(resnet18) -> None:
    # Nullable: the 5 blocks with an identity shortcut (layer1.0, layer1.1, layer2.1,
    # layer3.1, layer4.1). In layer2.0 / layer3.0 / layer4.0 both Add operands are convs
    # (residual and downsample), so neither is offered null. Each nulled block loses its two
    # 3x3 convs of C -> C channels.
    nulled = {"layer1.0": 64, "layer1.1": 64, "layer2.1": 128, "layer3.1": 256, "layer4.1": 512}
    expected = _resnet18_params() - sum(2 * _conv(c, c, 3) for c in nulled.values())
    assert expected == 5_342_056
    assert graph_cost(resnet18).params == _resnet18_params()

    mask = compute_mask(resnet18)
    null = mask.vocabulary.index("null")
    branches = [
        u.name
        for u, ok in zip(mask.units, mask.valid[:, null], strict=True)
        if ok and u.kind == "branch"
    ]
    assert sorted(branches) == sorted(f"{block}.conv2:branch" for block in nulled)
    after = apply_plan(resnet18, Plan({name: "null" for name in branches}))
    assert graph_cost(after).params == expected
    assert sum(p.numel() for p in to_torch(after).parameters()) == expected
    assert after.op_counts()["Add"] == 3


def _check_random_plans(graph: Graph, tmp_path: Path) -> None:
    mask = compute_mask(graph)
    sizes: list[int] = []

    @PLAN_SETTINGS
    @given(plan=masked_plans(mask))
    def check(plan: Plan) -> None:
        sizes.append(len(plan.transitions))
        check_plan(graph, plan, tmp_path)

    check()
    assert max(sizes) > len(mask.units) // 2  # large plans were exercised, not only keep


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_masked_plans_are_valid_runnable_exportable_and_cheaper(model, request, tmp_path) -> None:
    _check_random_plans(request.getfixturevalue(model), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "size"), [("efficientnet_b0", 64), ("convnext_atto", 64), ("vit_b_16", 224)]
)
def test_masked_plans_on_more_models(model: str, size: int, tmp_path) -> None:
    _check_random_plans(_lifted(model, size), tmp_path)
