"""The ONNX backend: ``to_onnx(graph, path, opset=18, dynamic=True) -> Path``."""

from natopt.backends.onnx.emit import build_model, to_onnx
from natopt.backends.onnx.lower_table import EMITTERS

__all__ = ["to_onnx", "build_model", "EMITTERS"]
