"""Helpers shared by the torch frontend tests (imported by tests/frontends/test_torch_*.py)."""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
import torchvision
from torch import nn

# name -> (constructor with random weights, input side): vit models need 224, the
# convolutional ones run at 64x64 to keep the default test run fast.
MODELS: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), 64),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), 64),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(weights=None), 64),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(weights=None), 64),
    "vit_b_16": (lambda: torchvision.models.vit_b_16(weights=None), 224),
    "convnext_atto": (lambda: timm.create_model("convnext_atto", pretrained=False), 64),
    "resnet10t": (lambda: timm.create_model("resnet10t", pretrained=False), 64),
    "vit_tiny_patch16_224": (
        lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False),
        224,
    ),
}


def make_model(name: str, batch: int = 2) -> tuple[nn.Module, torch.Tensor]:
    """A randomly initialised model in eval mode and an input batch for it.

    Batch-norm statistics and affine parameters are randomised and zero-initialised weights
    (classifier heads) filled, so the output depends on every layer: a lift that dropped or
    mis-wired one would show in the output.
    """
    torch.manual_seed(0)
    build, side = MODELS[name]
    model = build().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.normal_(std=0.02)
    return model, torch.randn(batch, 3, side, side)


def assert_close(expected: torch.Tensor, actual: torch.Tensor) -> float:
    """Max abs difference, asserted <= 1e-4 * max(1, max |expected|); returns it."""
    assert expected.shape == actual.shape
    diff = (expected - actual).abs().max().item()
    assert diff <= 1e-4 * max(1.0, expected.abs().max().item()), diff
    return diff


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
