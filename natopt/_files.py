"""Writing outputs whole or not at all, and never over an input.

``write_whole`` is the one atomic writer: the plan, report, markdown, plot, benchmark JSON and
latency-table files all go through it (an ONNX model with its external data is staged as a
folder by ``natopt.backends.onnx.write``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from natopt.errors import NatoptError

__all__ = ["write_whole", "refuse_overwrite"]


def write_whole(
    path: str | os.PathLike[str],
    content: str | bytes,
    error: type[NatoptError] | None = None,
) -> None:
    """Write ``content`` (text as UTF-8) to ``path`` via a temporary file and a rename.

    The temporary file sits beside ``path`` and is removed on any failure, so ``path`` holds
    either its old content or all of the new. An ``OSError`` becomes ``error`` naming the file
    when ``error`` is given, and propagates as it is otherwise.
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from others
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        if error is None:
            raise
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def refuse_overwrite(output: Path, inputs: Iterable[str | Path], error: type[NatoptError]) -> None:
    """Raise ``error`` when ``output`` is one of ``inputs``."""
    target = Path(output).resolve()
    if any(Path(source).resolve() == target for source in inputs):
        raise error(f"{output}: output would overwrite an input; choose another file")
