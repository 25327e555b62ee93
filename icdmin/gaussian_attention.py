"""Gaussian-kernel attention with separate key and query maps (paper Eq. 14), forward and manual backward.

    out = Σ_t W_PV X_t e^{−½‖W_K X_t − W_Q x̃‖²} / Σ_t e^{−½‖W_K X_t − W_Q x̃‖²}   (Eq. 14)

With tied maps W_K = W_Q = W this is ``attention(..., W_KQ=WᵀW, kind="gaussian")`` (the −½‖W_Q x̃‖² term is the
same for every token and cancels in the softmax). NumPy only: this general form is for study, not for training
speed. Same conventions as :mod:`icdmin.attention` (llm.c-style forward/backward pairs, query not a key or value,
no residual).

Legend: ``B`` batch, ``n`` token dimension, ``m`` key/query dimension, ``L`` context length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._arrays import as_float_array, check_context
from .attention import mse_backward, mse_forward
from .energy import softmax

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


def gaussian_forward(X, x_tilde, W_K, W_Q, W_PV):
    """Eq. 14 for batched arrays, no validation.

    Shapes: X (B, n, L), x_tilde (B, n), W_K, W_Q (m, n), W_PV (n, n) -> out (B, n), GaussianCache.
    """
    keys = np.einsum("ki,bil->bkl", W_K, X)  # (B, m, L)  W_K X_t
    query = x_tilde @ W_Q.T  # (B, m)     W_Q x̃
    diff = keys - query[:, :, None]  # (B, m, L)  W_K X_t − W_Q x̃
    z = -0.5 * np.sum(diff * diff, axis=1)  # (B, L)     −½‖W_K X_t − W_Q x̃‖²
    a = softmax(z, axis=-1)  # (B, L)
    u = np.einsum("bil,bl->bi", X, a)  # (B, n)     X a
    out = u @ W_PV.T  # (B, n)     W_PV X a
    return out, GaussianCache(X, x_tilde, W_PV, diff, a, u)


def gaussian_backward(dout, cache: GaussianCache):
    """Manual backward of :func:`gaussian_forward`.

    Shapes: dout (B, n) -> dW_K (m, n), dW_Q (m, n), dW_PV (n, n).
    """
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


def _prepare(X, x_tilde, W_K, W_Q, W_PV):
    X3, q2, single = check_context(X, x_tilde)
    n = X3.shape[1]
    W_K = as_float_array("W_K", W_K, ndim=2)
    W_Q = as_float_array("W_Q", W_Q, ndim=2)
    W_PV = as_float_array("W_PV", W_PV, ndim=2)
    if W_K.shape[1] != n or W_Q.shape != W_K.shape:
        raise ValueError(f"W_K and W_Q must both have shape (m, {n}) to match X with n={n}, "
                         f"got W_K {W_K.shape} and W_Q {W_Q.shape}")
    if W_PV.shape != (n, n):
        raise ValueError(f"W_PV must have shape ({n}, {n}) to match X with n={n}, got {W_PV.shape}")
    return X3, q2, W_K, W_Q, W_PV, single


def attention_gaussian(X, x_tilde, W_K, W_Q, W_PV):
    """Gaussian-kernel attention, paper Eq. 14 (query not a key or value, no residual).

    Shapes: X (n, L), x_tilde (n,) -> (n,); X (B, n, L), x_tilde (B, n) -> (B, n); W_K, W_Q (m, n); W_PV (n, n).
    """
    X3, q2, W_K, W_Q, W_PV, single = _prepare(X, x_tilde, W_K, W_Q, W_PV)
    out, _ = gaussian_forward(X3, q2, W_K, W_Q, W_PV)
    return out[0] if single else out


def loss_and_grads_gaussian(X, x_tilde, x, W_K, W_Q, W_PV):
    """MSE of Eq. 14's output against the clean targets and its exact gradients.

    Returns (loss, dW_K, dW_Q, dW_PV). Complex input is kept complex (complex-step checks).

    Shapes: X (B, n, L), x_tilde, x (B, n), W_K, W_Q (m, n), W_PV (n, n) -> float, (m, n), (m, n), (n, n).
    """
    X3, q2, W_K, W_Q, W_PV, single = _prepare(X, x_tilde, W_K, W_Q, W_PV)
    x2 = as_float_array("x", x, ndim=(1, 2))
    x2 = x2[None] if x2.ndim == 1 else x2
    if x2.shape != q2.shape:
        raise ValueError(f"x must have the shape of x_tilde, got {np.shape(x)} and {np.shape(x_tilde)}")
    out, cache = gaussian_forward(X3, q2, W_K, W_Q, W_PV)  # (B, n)
    loss, diff = mse_forward(out, x2)
    dW_K, dW_Q, dW_PV = gaussian_backward(mse_backward(diff), cache)
    return loss, dW_K, dW_Q, dW_PV
