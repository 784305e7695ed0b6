"""Weight inheritance: the replacement of a unit starts from the unit's own weights.

All functions are pure tensor maths on a *dense* kernel ``W[C_out, C_in/groups, k, k]`` with
dilation ``d`` (a separable or low-rank unit is first multiplied back into its dense kernel by
``natopt.passes.transitions.state.dense_weight``):

- ``resample_kernel``: a kernel of size ``k'`` and dilation ``d'`` whose tap at input offset
  ``o = (i - (k'-1)/2)·d'`` takes the old tap at the same offset ``(j - (k-1)/2)·d`` when one
  exists, else 0. With ``d' = d`` and ``k' < k`` this is the centre ``k'×k'`` crop of the old
  kernel (a smaller kernel takes the centre); a dilated target samples the old kernel on its
  dilated grid.
- ``separable_from_dense``: per input channel ``c`` the slice ``M_c = W[:, c].reshape(C_out,
  k·k)`` is replaced by its best rank-1 approximation ``σ₁ u₁ v₁ᵀ`` (SVD, Eckart–Young):
  depthwise kernel ``D[c] = √σ₁ · v₁`` (reshaped k×k), pointwise column ``P[:, c] = √σ₁ · u₁``.
  Then ``Σ_c P[o,c] · D[c] ⋆ x_c`` equals the dense conv exactly when every slice has rank 1,
  and is the closest such conv (per slice, in Frobenius norm) otherwise. Signs are fixed so
  that the largest-magnitude entry of ``v₁`` is positive (deterministic output).
- ``low_rank_from_dense``: truncated SVD ``W ≈ U_r Σ_r V_rᵀ`` split evenly,
  ``first = √Σ_r V_rᵀ`` (``[r, in]``), ``second = U_r √Σ_r`` (``[out, r]``): the best rank-r
  approximation in Frobenius and spectral norm.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "resample_kernel",
    "separable_from_dense",
    "low_rank_from_dense",
    "relative_error",
]


def resample_kernel(weight: Tensor, dilation: int, kernel: int, new_dilation: int) -> Tensor:
    """Kernel ``[O, I, k', k']`` with dilation ``new_dilation`` inherited from ``weight``.

    Preconditions: square odd kernels (``weight.shape[-1] == weight.shape[-2]``, both odd).
    """
    old = weight.shape[-1]
    out = weight.new_zeros((*weight.shape[:-2], kernel, kernel))
    taps: list[tuple[int, int]] = []
    for i in range(kernel):
        offset = (i - (kernel - 1) // 2) * new_dilation
        j, rem = divmod(offset + (old - 1) // 2 * dilation, dilation)
        if rem == 0 and 0 <= j < old:
            taps.append((i, j))
    for i_row, j_row in taps:
        for i_col, j_col in taps:
            out[..., i_row, i_col] = weight[..., j_row, j_col]
    return out


def separable_from_dense(weight: Tensor) -> tuple[Tensor, Tensor]:
    """``(depthwise [C_in,1,k,k], pointwise [C_out,C_in,1,1])`` from ``[C_out,C_in,k,k]``."""
    c_out, c_in, kh, kw = weight.shape
    slices = weight.detach().permute(1, 0, 2, 3).reshape(c_in, c_out, kh * kw).double()
    u, s, vh = torch.linalg.svd(slices, full_matrices=False)
    root = s[:, :1].sqrt()  # [C_in, 1]
    v1 = vh[:, 0, :]  # [C_in, k*k]
    u1 = u[:, :, 0]  # [C_in, C_out]
    sign = torch.sign(v1.gather(1, v1.abs().argmax(dim=1, keepdim=True)))
    sign[sign == 0] = 1
    depthwise = (v1 * sign * root).reshape(c_in, 1, kh, kw)
    pointwise = (u1 * sign * root).t().reshape(c_out, c_in, 1, 1)
    return depthwise.to(weight.dtype), pointwise.to(weight.dtype)


def low_rank_from_dense(weight: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """``(first [r, in], second [out, r])``: ``second @ first`` is the best rank-r fit."""
    if not 1 <= rank <= min(weight.shape):
        raise ValueError(f"low_rank_from_dense: rank {rank} outside [1, {min(weight.shape)}]")
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    v = vh[:rank]
    sign = torch.sign(v.gather(1, v.abs().argmax(dim=1, keepdim=True)))
    sign[sign == 0] = 1
    first = root[:, None] * v * sign
    second = u[:, :rank] * root[None, :] * sign.t()
    return first.to(weight.dtype), second.to(weight.dtype)


def relative_error(approx: Tensor, reference: Tensor) -> float:
    """``‖approx − reference‖_F / ‖reference‖_F`` (0 when both are zero)."""
    ref = float(torch.linalg.vector_norm(reference.detach().double()))
    diff = float(torch.linalg.vector_norm((approx - reference).detach().double()))
    if ref == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / ref
