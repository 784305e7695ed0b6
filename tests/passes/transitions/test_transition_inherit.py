"""Weight inheritance maths: kernel resampling, separable fit, truncated SVD, ridge refit."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from natopt.passes.calibration import ridge_refit
from natopt.passes.transitions.inherit import (
    low_rank_from_dense,
    relative_error,
    resample_kernel,
    separable_from_dense,
)


def test_smaller_kernel_takes_the_centre() -> None:
    w = torch.arange(2 * 3 * 25, dtype=torch.float32).reshape(2, 3, 5, 5)
    torch.testing.assert_close(resample_kernel(w, 1, 3, 1), w[..., 1:4, 1:4])
    torch.testing.assert_close(resample_kernel(w, 1, 1, 1), w[..., 2:3, 2:3])


def test_dilated_target_samples_the_old_kernel_on_its_grid() -> None:
    w = torch.randn(2, 3, 5, 5)
    dilated = resample_kernel(w, 1, 3, 2)  # taps at offsets -2, 0, 2
    torch.testing.assert_close(dilated, w[..., ::2, ::2])
    old = torch.randn(2, 3, 3, 3)
    sparse = resample_kernel(old, 1, 3, 2)  # offsets +-2 fall outside the old 3x3
    centre_only = torch.zeros(3, 3, dtype=torch.bool)
    centre_only[1, 1] = True
    assert torch.equal(sparse != 0, centre_only.expand(2, 3, 3, 3))
    torch.testing.assert_close(sparse[..., 1, 1], old[..., 1, 1])


def test_centre_kernel_computes_the_same_conv_when_outer_taps_are_zero() -> None:
    w = torch.zeros(4, 3, 5, 5)
    w[..., 1:4, 1:4] = torch.randn(4, 3, 3, 3)
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(
        F.conv2d(x, resample_kernel(w, 1, 3, 1), padding=1), F.conv2d(x, w, padding=2)
    )


def test_separable_fit_is_exact_for_a_separable_kernel() -> None:
    depthwise = torch.randn(3, 1, 3, 3)
    pointwise = torch.randn(5, 3, 1, 1)
    dense = pointwise * depthwise[:, 0][None]
    dw, pw = separable_from_dense(dense)
    x = torch.randn(2, 3, 7, 7)
    want = F.conv2d(x, dense, padding=1)
    got = F.conv2d(F.conv2d(x, dw, padding=1, groups=3), pw)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_separable_fit_is_the_best_rank_one_per_input_channel() -> None:
    dense = torch.randn(6, 4, 3, 3)
    dw, pw = separable_from_dense(dense)
    approx = pw * dw[:, 0][None]
    for c in range(4):
        slice_ = dense[:, c].reshape(6, 9)
        s = torch.linalg.svdvals(slice_)
        residual = (slice_ - approx[:, c].reshape(6, 9)).norm()
        torch.testing.assert_close(residual, s[1:].norm(), atol=1e-5, rtol=1e-4)


def test_low_rank_is_the_truncated_svd() -> None:
    w = torch.randn(12, 8)
    first, second = low_rank_from_dense(w, 3)
    assert first.shape == (3, 8) and second.shape == (12, 3)
    s = torch.linalg.svdvals(w)
    torch.testing.assert_close((w - second @ first).norm(), s[3:].norm(), atol=1e-5, rtol=1e-4)
    exact = torch.randn(12, 2) @ torch.randn(2, 8)
    first, second = low_rank_from_dense(exact, 2)
    torch.testing.assert_close(second @ first, exact, atol=1e-5, rtol=1e-4)


def test_ridge_refit_recovers_the_solution_and_keeps_the_init_without_data() -> None:
    a = torch.randn(1, 200, 6)
    w = torch.randn(1, 6, 3)
    fitted = ridge_refit(a, a @ w, torch.zeros(1, 6, 3), alpha=1e-8)
    torch.testing.assert_close(fitted, w, atol=1e-4, rtol=1e-4)
    init = torch.randn(2, 6, 3)
    kept = ridge_refit(torch.zeros(2, 10, 6), torch.randn(2, 10, 3), init)
    torch.testing.assert_close(kept, init)


def test_relative_error() -> None:
    ref = torch.tensor([3.0, 4.0])
    assert relative_error(ref, ref) == 0.0
    assert relative_error(torch.zeros(2), ref) == 1.0
    assert relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
