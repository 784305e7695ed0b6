"""A torchvision resnet18 (random weights), its canonical torch.export graph and a plan.

The plan mixes chosen transitions (named by the units ``compute_mask`` lists) with a seeded
random masked plan, so replays are checked on every kind of rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet

from natopt.frontends.torch import lift_torch
from natopt.ir import Graph
from natopt.passes import canonicalize
from natopt.passes.transitions import Plan, TransitionMask, compute_mask

SHAPE = (1, 3, 64, 64)
CHOSEN = {
    "layer1.0.conv2": "sep_conv_3x3",
    "layer2.1.conv2:branch": "null",
    "layer3.0.downsample.0": "lowrank_1_4",
    "layer4.1.conv1": "conv_1x1",
    "fc": "lowrank_1_2",
}


class ResNet18WithBreak(ResNet):
    """resnet18 whose forward has a graph break between layer2 and layer3 (same module
    paths, so the same unit names)."""

    def __init__(self) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        torch._dynamo.graph_break()
        x = self.layer4(self.layer3(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@dataclass
class Resnet:
    model: torch.nn.Module
    x: torch.Tensor
    graph: Graph  # canonical, from torch.export
    mask: TransitionMask
    plan: Plan

    def with_break(self) -> ResNet18WithBreak:
        model = ResNet18WithBreak().eval()
        model.load_state_dict(self.model.state_dict())
        return model


def _randomise_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator))


@pytest.fixture(scope="session")
def resnet() -> Resnet:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        _randomise_batchnorm(model, generator)
    x = torch.randn(*SHAPE, generator=generator)
    graph = canonicalize(lift_torch(model, x))
    mask = compute_mask(graph)
    transitions = dict(mask.random_plan(torch.Generator().manual_seed(1)).transitions)
    transitions = {u: t for u, t in transitions.items() if not t.startswith("width")}
    transitions.update(CHOSEN)
    return Resnet(model, x, graph, mask, Plan(transitions))
