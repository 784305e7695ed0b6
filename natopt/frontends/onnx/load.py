"""Read and validate an ONNX model before it is lifted; the user's file is never modified.

``load_model`` turns a path or a ``ModelProto`` into a checked model (a private copy) at
opset 13 or newer, with its external data loaded and local functions inlined, plus the value
shapes found by ONNX shape inference (``data_prop=True``) with every dynamic dim named:

- a missing file, a file that is not ONNX (text, truncated), a model onnx.checker rejects,
  or an opset that cannot be converted up to 13: one ``FrontendError`` line naming the file;
- external data: every location is resolved against the model's folder first, and one that
  is absolute or resolves outside it (``..``, a symlink escaping) is refused before anything
  is read;
- symbolic dims: a ``dim_param`` keeps its name (made a Python identifier, e.g. ``"batch"``);
  an unnamed dynamic dim of a graph input becomes ``"<input>_<axis>"``; other unknown dims
  are ``None`` (the IR's own inference fills them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import ModelProto, TensorProto, external_data_helper, helper, inliner

from natopt.errors import FrontendError
from natopt.ir.types import DTYPES

__all__ = ["LoadedModel", "load_model", "MIN_OPSET", "ir_dtype", "symbol_name"]

MIN_OPSET = 13
_SKELETON_NUMEL = 64  # initializers larger than this become plain inputs for shape inference
_IDENT = re.compile(r"[^A-Za-z0-9_]")


@dataclass(slots=True)
class LoadedModel:
    """A checked model ready to lift. ``shapes``: value name -> dims (``None``: unknown)."""

    model: ModelProto
    path: Path | None
    label: str
    opset: int
    shapes: dict[str, tuple[int | str | None, ...] | None]
    dtypes: dict[str, str]


def symbol_name(text: str) -> str:
    """A dim name usable as an IR symbol and a torch.export ``Dim``: ``"N + 1"`` -> ``"N___1"``."""
    name = _IDENT.sub("_", text.strip()) or "dim"
    return name if name[0].isalpha() or name[0] == "_" else f"d_{name}"


def ir_dtype(elem_type: int, where: str) -> str:
    """The IR dtype name of an ONNX element type, or a ``FrontendError`` naming ``where``."""
    try:
        name = helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        name = ""
    if name not in DTYPES:
        label = TensorProto.DataType.Name(elem_type) if elem_type else "undefined"
        raise FrontendError(f"{where}: element type {label} is not supported by natopt")
    return name


def load_model(model: str | os.PathLike[str] | ModelProto) -> LoadedModel:
    """Read, check, convert and shape-infer ``model`` (see the module docstring)."""
    if isinstance(model, ModelProto):
        proto = ModelProto()
        proto.CopyFrom(model)
        path, label = None, f"ONNX model {model.graph.name or '(unnamed)'}"
        if any(t.data_location == TensorProto.EXTERNAL for t in _tensors(proto.graph)):
            raise FrontendError(
                f"{label}: its external data is not loaded; pass the model's file path instead"
            )
        _check(proto, label)
    else:
        path = Path(model)
        label = str(path)
        proto = _read(path)
        _load_external_data(proto, path)
        _check(proto, label, path)
    proto = _at_least_opset(proto, label)
    if proto.functions:
        proto = inliner.inline_local_functions(proto)
    shapes, dtypes = _infer(proto)
    return LoadedModel(proto, path, label, _opset(proto), shapes, dtypes)


def _read(path: Path) -> ModelProto:
    if not path.exists():
        raise FrontendError(f"{path}: no such file; give the path of an .onnx model")
    if not path.is_file():
        raise FrontendError(f"{path}: not a file; give the path of an .onnx model")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise FrontendError(
            f"{path}: not a readable ONNX model (truncated or another format: "
            f"{type(exc).__name__}); export it again"
        ) from None
    if not proto.opset_import or not proto.graph.output:
        raise FrontendError(
            f"{path}: not an ONNX model (no graph outputs or opset imports); export it again"
        )
    return proto


def _tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every tensor stored in ``graph``: initializers and attribute tensors, subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _load_external_data(proto: ModelProto, path: Path) -> None:
    """Refuse external data outside the model's folder, then read it (nothing read before)."""
    base = Path(os.path.abspath(path.parent))
    root = base.resolve()
    for tensor in _tensors(proto.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(root):
            raise FrontendError(
                f"{path}: tensor {tensor.name!r} points at external data {location!r} outside "
                f"the model's folder {base}; refusing to read it (keep data files beside the model)"
            )
    try:
        external_data_helper.load_external_data_for_model(proto, str(base))
    except Exception as exc:
        raise FrontendError(
            f"{path}: its external data cannot be read ({exc}); keep the data files beside it"
        ) from None


def _check(proto: ModelProto, label: str, path: Path | None = None) -> None:
    try:
        onnx.checker.check_model(str(path) if path is not None else proto)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise FrontendError(f"{label}: onnx.checker rejects the model: {detail}") from None


def _opset(proto: ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _at_least_opset(proto: ModelProto, label: str) -> ModelProto:
    """Convert a model older than opset 13 with onnx.version_converter (clear error if not)."""
    version = _opset(proto)
    if version >= MIN_OPSET:
        return proto
    try:
        return onnx.version_converter.convert_version(proto, MIN_OPSET)
    except Exception as exc:
        raise FrontendError(
            f"{label}: opset {version} is older than {MIN_OPSET} and onnx.version_converter "
            f"cannot convert it ({type(exc).__name__}); export it with opset {MIN_OPSET} or newer"
        ) from None


def _skeleton(proto: ModelProto) -> ModelProto:
    """The model with its large initializers turned into typed inputs (cheap to serialise)."""
    graph = proto.graph
    listed = {i.name for i in graph.input}  # old IR versions list initializers as inputs too
    small = [t for t in graph.initializer if _numel(t) <= _SKELETON_NUMEL]
    inputs = [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
        if _numel(t) > _SKELETON_NUMEL and t.name not in listed
    ]
    skeleton = helper.make_graph(
        list(graph.node),
        graph.name,
        [*graph.input, *inputs],
        list(graph.output),
        small,
        value_info=list(graph.value_info),
    )
    return helper.make_model(
        skeleton, opset_imports=list(proto.opset_import), ir_version=proto.ir_version
    )


def _numel(tensor: TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def _infer(proto: ModelProto) -> tuple[dict, dict[str, str]]:
    """Shapes and dtypes of every value ONNX shape inference can find (symbols named)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(_skeleton(proto), data_prop=True)
    except Exception:
        inferred = proto
    graph = inferred.graph
    initializers = {t.name for t in proto.graph.initializer}
    input_names = {i.name for i in graph.input} - initializers
    shapes: dict[str, tuple[int | str | None, ...] | None] = {}
    dtypes: dict[str, str] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.name in initializers or not info.type.HasField("tensor_type"):
            continue
        tensor_type = info.type.tensor_type
        if tensor_type.elem_type:
            dtypes[info.name] = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        if not tensor_type.HasField("shape"):
            shapes[info.name] = None
            continue
        dims: list[int | str | None] = []
        for axis, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            elif dim.dim_param:
                dims.append(symbol_name(dim.dim_param))
            else:
                dims.append(None)
            if dims[-1] is None and info.name in input_names:
                dims[-1] = symbol_name(f"{info.name}_{axis}")
        shapes[info.name] = tuple(dims)
    return shapes, dtypes
