"""Refits: least squares on calibration activations, pulled towards the inherited weights.

``ridge_refit``: ``argmin_W ‖A W − Y‖² + λ‖W − W₀‖²`` = ``(AᵀA + λI)⁻¹(AᵀY + λW₀)``, a least
squares fit on calibration features pulled towards the inherited weights ``W₀`` (so an
under-determined fit stays at the inheritance), ``λ = alpha · mean(diag(AᵀA))``; batched over
a leading group axis; solved in float64.

The two refits take the replaced op's input ``X`` and its original output ``Y`` (the unit's
pre-activation output: the trailing norm/activation is not part of the fit; both from
``capture``) and solve a ridge least squares pulled towards the inherited weights, on at
most ``MAX_ROWS`` rows (evenly spaced positions); each transition rule
(``natopt.passes.transitions.rules``) says which one its replacement takes:

- ``refit_conv``: one Conv, the whole kernel and its bias, per group, on the im2col patches
  of ``X`` with the conv's kernel, dilation, padding and stride (a smaller kernel);
- ``refit_last``: the last node of a chain and its bias, on what the others make of ``X``
  (the pointwise half of a separable pair, the second factor of a low-rank pair).

Width refits a layer whose input channels were pruned with the same two
(``natopt.passes.width``'s ``WidthOp.refit``): a Conv as a smaller-kernel conv is refit, a
Linear as the second half of a low-rank pair.

Each unit is refit independently on the original model's activations: every replacement
matches the original unit given the original unit's input. A bias is refit only where the
replaced op had one, so refitting never changes a cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from natopt.ir import Node
from natopt.passes.calibration.capture import run_chain

__all__ = [
    "ridge_refit",
    "solve_each",
    "refit_conv",
    "refit_last",
    "MAX_ROWS",
]

MAX_ROWS = 16384


def solve_each(lhs: Tensor, rhs: Tensor) -> Tensor:
    """``torch.linalg.solve`` one system at a time over the leading (group) dimension.

    A batched solve factorises the systems inside torch's parallel loop, and MKL then starts
    its own thread team inside each iteration; on a loaded machine that nesting was seen to
    spin forever. The systems here are small, so one at a time costs nothing noticeable.
    """
    return torch.stack([torch.linalg.solve(a, b) for a, b in zip(lhs, rhs, strict=True)])


def ridge_refit(features: Tensor, targets: Tensor, init: Tensor, alpha: float = 1e-3) -> Tensor:
    """Ridge least squares pulled towards ``init``.

    Shapes: features ``[G, rows, m]``, targets ``[G, rows, n]``, init ``[G, m, n]`` ->
    ``[G, m, n]`` (``G`` independent groups, e.g. the groups of a grouped conv). With fewer
    rows than features (a classifier after a flatten, refit on a few hundred images) the same
    solution is computed in its dual form ``W₀ + Aᵀ(AAᵀ + λI)⁻¹(Y − AW₀)`` (push-through
    identity), a ``rows x rows`` system instead of ``m x m``.
    """
    a = features.double()
    rows, m = a.shape[1], a.shape[2]
    lam = alpha * a.pow(2).sum(dim=1).mean(dim=1).clamp_min(1e-12)  # alpha·mean(diag(AᵀA))
    w0 = init.double()
    if rows < m:
        eye = torch.eye(rows, dtype=a.dtype)
        residual = targets.double() - a @ w0
        dual = solve_each(a @ a.transpose(1, 2) + lam[:, None, None] * eye, residual)
        return (w0 + a.transpose(1, 2) @ dual).to(init.dtype)
    eye = torch.eye(m, dtype=a.dtype)
    lhs = a.transpose(1, 2) @ a + lam[:, None, None] * eye
    rhs = a.transpose(1, 2) @ targets.double() + lam[:, None, None] * w0
    return solve_each(lhs, rhs).to(init.dtype)


def _rows(tensor: Tensor, channels_first: bool) -> Tensor:
    """``[positions, channels]``: channels from dim 1 (conv layout) or the last dim."""
    if channels_first:
        tensor = tensor.movedim(1, -1)
    return tensor.reshape(-1, tensor.shape[-1])


def _subsample(count: int) -> Tensor:
    return torch.linspace(0, count - 1, min(count, MAX_ROWS)).round().long()


def refit_conv(nodes: Sequence[Node], x: Tensor, y: Tensor, alpha: float) -> None:
    """Refit a single Conv (whole kernel and bias, per group) on im2col patches of ``x``."""
    (conv,) = nodes
    weight = conv.weights["weight"]
    bias = conv.weights.get("bias")
    c_out, per_group, kh, kw = weight.shape
    groups = int(conv.attrs["groups"])
    a = conv.attrs
    patches = F.unfold(x, (kh, kw), a["dilation"], a["padding"], a["stride"])  # [N, I*k*k, L]
    n, _, positions = patches.shape
    m = per_group * kh * kw
    feats = patches.reshape(n, groups, m, positions).permute(1, 0, 3, 2).reshape(groups, -1, m)
    targets = y.reshape(n, groups, c_out // groups, positions).permute(1, 0, 3, 2)
    targets = targets.reshape(groups, -1, c_out // groups)
    init = weight.reshape(groups, c_out // groups, m).transpose(1, 2)
    if bias is not None:
        feats = torch.cat([feats, feats.new_ones(*feats.shape[:2], 1)], dim=2)
        init = torch.cat([init, bias.reshape(groups, 1, -1)], dim=1)
    keep = _subsample(feats.shape[1])
    fitted = ridge_refit(feats[:, keep], targets[:, keep], init, alpha)
    conv.weights["weight"] = fitted[:, :m].transpose(1, 2).reshape(weight.shape).contiguous()
    if bias is not None:
        conv.weights["bias"] = fitted[:, m].reshape(-1).contiguous()


def refit_last(nodes: Sequence[Node], x: Tensor, y: Tensor, alpha: float) -> None:
    """Refit the last of a chain of nodes (weight and bias) on what the others make of ``x``."""
    *front, last = nodes
    channels_first = last.op == "Conv"
    feats = _rows(run_chain(front, x), channels_first)
    targets = _rows(y, channels_first)
    weight = last.weights["weight"]
    bias = last.weights.get("bias")
    init = weight.reshape(weight.shape[0], -1).t()
    if bias is not None:
        feats = torch.cat([feats, feats.new_ones(feats.shape[0], 1)], dim=1)
        init = torch.cat([init, bias[None]], dim=0)
    keep = _subsample(feats.shape[0])
    fitted = ridge_refit(feats[None, keep], targets[None, keep], init[None], alpha)[0]
    m = weight.shape[1]
    last.weights["weight"] = fitted[:m].t().reshape(weight.shape).contiguous()
    if bias is not None:
        last.weights["bias"] = fitted[m].contiguous()
