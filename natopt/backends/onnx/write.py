"""Write an ONNX model whole or not at all, and never over the model a graph came from.

``write_model`` saves into a temporary folder beside the destination, checks the saved file
with ``onnx.checker`` (``full_check``: strict shape inference too), then moves it into place
with ``os.replace``; on any failure the temporary folder is removed and nothing is left. A
model over 2 GB keeps its tensors in ``<name>.data`` beside it (external data).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import onnx
from onnx import ModelProto

from natopt.errors import BackendError

__all__ = ["write_model", "refuse_source", "EXTERNAL_DATA_BYTES"]

EXTERNAL_DATA_BYTES = 2_000_000_000  # protobuf's limit is 2 GiB; keep a margin


def refuse_source(path: Path, source: str | None) -> None:
    """Raise when ``path`` is (or resolves to) the file a graph was lifted from."""
    if source is None:
        return
    target = path.resolve()
    if target == Path(source).resolve() or (target.exists() and target.samefile(source)):
        raise BackendError(f"{path}: this is the model the graph was read from; write elsewhere")


def _tensor_bytes(model: ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def write_model(model: ModelProto, path: Path) -> Path:
    """Save, check and move ``model`` to ``path`` atomically; returns the absolute path."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        raise BackendError(f"{path}: the folder {path.parent} does not exist")
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        staged = staging / path.name
        if _tensor_bytes(model) > EXTERNAL_DATA_BYTES:
            onnx.save_model(
                model,
                staged,
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=f"{path.name}.data",
            )
        else:
            onnx.save_model(model, staged)
        onnx.checker.check_model(str(staged), full_check=True)
        for item in sorted(staging.iterdir(), key=lambda p: p.name == path.name):
            os.replace(item, path.parent / item.name)
    except BackendError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BackendError(
            f"{path}: the ONNX model could not be written and checked: {detail}"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
