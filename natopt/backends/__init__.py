"""Backends lower an IR graph out of natopt: a trainable torch module, or an ONNX file."""

from natopt.backends.onnx import to_onnx
from natopt.backends.torch_module import load_weights_into_graph, to_torch

__all__ = ["to_torch", "load_weights_into_graph", "to_onnx"]
