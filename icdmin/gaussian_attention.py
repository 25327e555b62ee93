"""Gaussian-kernel attention with separate key and query maps (paper Eq. 14), forward and manual backward.

    out = Σ_t W_PV X_t e^{−½‖W_K X_t − W_Q x̃‖²} / Σ_t e^{−½‖W_K X_t − W_Q x̃‖²}   (Eq. 14)

With tied maps W_K = W_Q = W this is ``attention(..., W_KQ=WᵀW, kind="gaussian")`` (the −½‖W_Q x̃‖² term is the
same for every token and cancels in the softmax). NumPy only: this general form is for study, not for training
speed. Same conventions as :mod:`icdmin.layer` (llm.c-style forward/backward pairs, query not a key or value,
no residual).

Legend: ``B`` batch, ``n`` token dimension, ``m`` key/query dimension, ``L`` context length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._arrays import as_float_array, check_context, finite_output, softmax_inplace
from .layer import check_dout
from .loss import mse_backward_unchecked, mse_forward_unchecked

__all__ = [
    "GaussianCache",
    "attention_gaussian",
    "gaussian_forward",
    "gaussian_backward",
    "loss_and_grads_gaussian",
]


class GaussianCache(NamedTuple):
    """What :func:`gaussian_backward` needs from :func:`gaussian_forward`."""

    X: np.ndarray  # (B, n, L) context
    x_tilde: np.ndarray  # (B, n) query
    W_PV: np.ndarray  # (n, n)
    diff: np.ndarray  # (B, m, L) W_K X_t − W_Q x̃
    a: np.ndarray  # (B, L) attention weights
    u: np.ndarray  # (B, n) X a


def _forward(X, x_tilde, W_K, W_Q, W_PV):
    """:func:`gaussian_forward` on validated batched arrays."""
    keys = np.einsum("ki,bil->bkl", W_K, X)  # (B, m, L)  W_K X_t
    query = x_tilde @ W_Q.T  # (B, m)     W_Q x̃
    diff = keys - query[:, :, None]  # (B, m, L)  W_K X_t − W_Q x̃
    z = -0.5 * np.sum(diff * diff, axis=1)  # (B, L)     −½‖W_K X_t − W_Q x̃‖²
    a = softmax_inplace(z)  # (B, L)
    u = np.einsum("bil,bl->bi", X, a)  # (B, n)     X a
    out = u @ W_PV.T  # (B, n)     W_PV X a
    return out, GaussianCache(X, x_tilde, W_PV, diff, a, u)


def _backward(dout, cache: GaussianCache):
    """:func:`gaussian_backward` on validated batched arrays."""
    X, x_tilde, W_PV, diff, a, u = cache
    # out = u @ W_PV.T
    dW_PV = dout.T @ u  # (n, n)
    du = dout @ W_PV  # (B, n)
    # u = einsum("bil,bl->bi", X, a)
    da = np.einsum("bil,bi->bl", X, du)  # (B, L)
    # a = softmax(z):  dz = a ⊙ (da − Σ_t a_t da_t)
    dz = a * (da - np.sum(a * da, axis=-1, keepdims=True))  # (B, L)
    # z = -0.5 * sum(diff * diff, axis=1)
    ddiff = -diff * dz[:, None, :]  # (B, m, L)
    # diff = keys − query[:, :, None]
    dkeys = ddiff  # (B, m, L)
    dquery = -np.sum(ddiff, axis=2)  # (B, m)
    # query = x_tilde @ W_Q.T
    dW_Q = dquery.T @ x_tilde  # (m, n)
    # keys = einsum("ki,bil->bkl", W_K, X)
    dW_K = np.einsum("bkl,bil->ki", dkeys, X)  # (m, n)
    return dW_K, dW_Q, dW_PV


def _finite(where, result, names):
    """Raise ``ValueError`` naming the arguments if ``result`` (arrays, a scalar loss) holds NaN or inf."""
    if not all(np.all(np.isfinite(r)) for r in result):
        raise ValueError(f"{where}: non-finite result from finite inputs (overflow: reduce the scale of {names})")
    return result


def gaussian_forward(X, x_tilde, W_K, W_Q, W_PV):
    """Eq. 14 and the cache for :func:`gaussian_backward` (complex input stays complex, for complex-step checks).

    Shapes: X (n, L), x_tilde (n,) -> out (n,); X (B, n, L), x_tilde (B, n) -> out (B, n); W_K, W_Q (m, n),
    W_PV (n, n); the cache holds batched arrays.
    """
    X3, q2, W_K, W_Q, W_PV, single = _prepare(X, x_tilde, W_K, W_Q, W_PV)
    with np.errstate(all="ignore"):
        out, cache = _forward(X3, q2, W_K, W_Q, W_PV)
    _finite("gaussian_forward", (out,), "X, x_tilde, W_K, W_Q or W_PV")
    return (out[0] if single else out), cache


@finite_output("dout")
def gaussian_backward(dout, cache):
    """Manual backward of :func:`gaussian_forward`.

    Shapes: dout (B, n), or (n,) for a cache of one prompt -> dW_K (m, n), dW_Q (m, n), dW_PV (n, n).
    """
    if not isinstance(cache, GaussianCache):
        raise TypeError(f"cache must be the GaussianCache returned by gaussian_forward, got {type(cache).__name__}")
    return _backward(check_dout(dout, cache.x_tilde.shape), cache)


def _prepare(X, x_tilde, W_K, W_Q, W_PV):
    X3, q2, single = check_context(X, x_tilde, complex_ok=True)
    n = X3.shape[1]
    W_K = as_float_array("W_K", W_K, ndim=2, complex_ok=True)
    W_Q = as_float_array("W_Q", W_Q, ndim=2, complex_ok=True)
    W_PV = as_float_array("W_PV", W_PV, ndim=2, complex_ok=True)
    if W_K.shape[1] != n or W_Q.shape != W_K.shape or W_K.shape[0] < 1:
        raise ValueError(f"W_K and W_Q must both have shape (m, {n}) with m >= 1 to match X with n={n}, "
                         f"got W_K {W_K.shape} and W_Q {W_Q.shape}")
    if W_PV.shape != (n, n):
        raise ValueError(f"W_PV must have shape ({n}, {n}) to match X with n={n}, got {W_PV.shape}")
    return X3, q2, W_K, W_Q, W_PV, single


def attention_gaussian(X, x_tilde, W_K, W_Q, W_PV):
    """Gaussian-kernel attention, paper Eq. 14 (query not a key or value, no residual).

    Shapes: X (n, L), x_tilde (n,) -> (n,); X (B, n, L), x_tilde (B, n) -> (B, n); W_K, W_Q (m, n); W_PV (n, n).
    """
    return gaussian_forward(X, x_tilde, W_K, W_Q, W_PV)[0]


def loss_and_grads_gaussian(X, x_tilde, x, W_K, W_Q, W_PV):
    """MSE of Eq. 14's output against the clean targets and its exact gradients.

    Returns (loss, dW_K, dW_Q, dW_PV). Complex input is kept complex (complex-step checks).

    Shapes: X (n, L) | (B, n, L), x_tilde, x (n,) | (B, n), W_K, W_Q (m, n), W_PV (n, n) -> float, (m, n), (m, n),
    (n, n).
    """
    X3, q2, W_K, W_Q, W_PV, single = _prepare(X, x_tilde, W_K, W_Q, W_PV)
    x2 = as_float_array("x", x, ndim=(1, 2), complex_ok=True)
    x2 = x2[None] if x2.ndim == 1 else x2
    if x2.shape != q2.shape:
        raise ValueError(f"x must have the shape of x_tilde, got {np.shape(x)} and {np.shape(x_tilde)}")
    with np.errstate(all="ignore"):
        out, cache = _forward(X3, q2, W_K, W_Q, W_PV)  # (B, n)
        loss, diff = mse_forward_unchecked(out, x2)
        grads = _backward(mse_backward_unchecked(diff), cache)
    return _finite("loss_and_grads_gaussian", (loss, *grads), "X, x_tilde, x, W_K, W_Q or W_PV")
