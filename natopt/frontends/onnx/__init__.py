"""The ONNX frontend: ``lift_onnx(path_or_model) -> Graph``."""

from natopt.frontends.onnx.lift import SOURCE_PATH, lift_onnx
from natopt.frontends.onnx.onnx_table import supported_ops

__all__ = ["lift_onnx", "supported_ops", "SOURCE_PATH"]
