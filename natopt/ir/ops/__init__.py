"""Every op type of the IR, one registry entry each, grouped by family."""

from natopt.ir.ops import activation, elementwise, nn, pool, resize, special, tensor

__all__ = ["activation", "elementwise", "nn", "pool", "resize", "special", "tensor"]
