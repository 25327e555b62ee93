"""One-layer attention by hand: forward and manual backward (paper §3, Eqs. 11, 12, 14).

This file is the readable NumPy *specification*; ``_kernels.py`` holds fused Numba loops that must match it
(rtol 1e-10 in float64). Every forward returns ``(out, cache)`` and every backward takes ``(dout, cache)`` (llm.c
style); each backward line quotes the forward line it inverts. The query is never a key or value and there is no
residual (paper §3).

Kinds (q' = W_KQ x̃, scores z_t over the L context tokens, output W_PV X a):

- ``"linear"``  (Eq. 11): a = Xᵀ q' / L, no softmax.
- ``"softmax"`` (Eq. 12): a = softmax(Xᵀ q').
- ``"gaussian"`` (Eq. 14 with tied keys and queries, W_K = W_Q = W, W_KQ = WᵀW):
  a = softmax(z), z_t = X_tᵀ W_KQ x̃ − ½ X_tᵀ W_KQ X_t, which is −½‖W X_t − W x̃‖² up to a t-independent constant.
  With W_KQ = I/σZ², W_PV = I it is Tweedie's formula x̃ + σZ² ∇log p̂(x̃), p̂ = (1/L) Σ_t N(X_t, σZ² I)
  (paper §3.2, Eq. 14).
  Separate W_K, W_Q: :mod:`icdmin.gaussian_attention`.

The MSE loss (Eq. 9) and its gradients, ``loss_and_grads`` and friends, live in :mod:`icdmin.loss` and are
re-exported here. The ``*_unchecked`` functions and the ``check_*`` helpers are the building blocks on validated
batched arrays that :mod:`icdmin.loss`, :mod:`icdmin.gaussian_attention` and :mod:`icdmin.training` share.

Legend: ``B`` batch, ``n`` token dimension, ``L`` context length (clean tokens only).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _kernels
from ._arrays import as_float_array, check_context, finite_output, softmax_inplace

__all__ = [
    "KINDS",
    "AttentionCache",
    "attention",
    "attention_forward",
    "attention_weights",
    "attention_backward",
    "mse_forward",
    "mse_backward",
    "loss_and_grads",
    "loss_and_grads_numpy",
    "loss_and_grads_identity",
    "loss_and_grads_unchecked",
    "backend_for",
    "check_attention_inputs",
    "check_dout",
    "forward_unchecked",
    "backward_unchecked",
    "raise_non_finite",
]

KINDS = tuple(_kernels.KIND_CODES)  # ("linear", "softmax", "gaussian"): one list of kinds, spec and kernels alike


class AttentionCache(NamedTuple):
    """What the backward pass needs from the forward pass."""

    kind: str
    X: np.ndarray  # (B, n, L) context
    x_tilde: np.ndarray  # (B, n) query
    W_KQ: np.ndarray  # (n, n)
    W_PV: np.ndarray  # (n, n)
    a: np.ndarray  # (B, L) attention weights (softmax) or scores / L (linear)
    u: np.ndarray  # (B, n) X a, the attended context before W_PV


def _weights(X, qk, W_KQ, kind):
    """Attention weights a over the context (batched, unchecked). Shapes: X (B, n, L), qk (B, n) -> (B, L)."""
    z = np.einsum("bil,bi->bl", X, qk)  # (B, L)     z_t = X_tᵀ q'
    if kind == "linear":
        return z / X.shape[2]  # (B, L)     Eq. 11: weights X_tᵀ W_KQ x̃ / L
    if kind == "gaussian":  # tied W_K = W_Q
        z -= 0.5 * np.einsum("bil,ij,bjl->bl", X, W_KQ, X)  # (B, L)  − ½ X_tᵀ W_KQ X_t
    return softmax_inplace(z)  # (B, L)     Eqs. 12, 14: softmax over the L context tokens


def forward_unchecked(X, x_tilde, W_KQ, W_PV, kind):
    """:func:`attention_forward` on validated batched arrays (the training loop's NumPy path), no checks.

    Shapes: X (B, n, L), x_tilde (B, n), W_KQ, W_PV (n, n) -> out (B, n), :class:`AttentionCache`.
    """
    qk = x_tilde @ W_KQ.T  # (B, n)     q' = W_KQ x̃
    a = _weights(X, qk, W_KQ, kind)  # (B, L)
    u = np.einsum("bil,bl->bi", X, a)  # (B, n)     u = X a
    out = u @ W_PV.T  # (B, n)     out = W_PV u
    return out, AttentionCache(kind, X, x_tilde, W_KQ, W_PV, a, u)


def attention_forward(X, x_tilde, W_KQ, W_PV, kind="softmax"):
    """Attention output of each prompt (Eqs. 11, 12, 14) and the cache for :func:`attention_backward`.

    out = W_PV X a, with a = Xᵀ W_KQ x̃ / L (linear) or a = softmax(z) (softmax, gaussian; see module docstring).
    The NumPy specification (complex input stays complex, for complex-step checks); the cache holds batched arrays.

    Shapes: X (n, L), x_tilde (n,) -> out (n,); X (B, n, L), x_tilde (B, n) -> out (B, n); W_KQ, W_PV (n, n).
    """
    X3, q2, _, W_KQ, W_PV, kind, single = check_attention_inputs(X, x_tilde, None, W_KQ, W_PV, kind)
    with np.errstate(all="ignore"):
        out, cache = forward_unchecked(X3, q2, W_KQ, W_PV, kind)
    if not np.all(np.isfinite(out)):
        raise_non_finite("attention_forward", X3)
    return (out[0] if single else out), cache


def attention_weights(X, x_tilde, W_KQ, kind="softmax"):
    """The weights a over the L context tokens that attention averages (Eqs. 11, 12, 14), for inspection.

    softmax: a = softmax(Xᵀ W_KQ x̃); linear: a = Xᵀ W_KQ x̃ / L; gaussian: a = softmax(Xᵀ W_KQ x̃ − ½ diag(Xᵀ W_KQ X)).
    Then ``attention(X, x_tilde, W_KQ, W_PV, kind) == W_PV @ X @ a`` (per prompt).

    Shapes: X (n, L), x_tilde (n,) -> (L,); X (B, n, L), x_tilde (B, n) -> (B, L); W_KQ (n, n).
    """
    X3, q2, _, W_KQ, _, kind, single = check_attention_inputs(X, x_tilde, None, W_KQ, None, kind)
    with np.errstate(all="ignore"):
        a = _weights(X3, q2 @ W_KQ.T, W_KQ, kind)  # (B, L)
    if not np.all(np.isfinite(a)):
        raise_non_finite("attention_weights", X3)
    return a[0] if single else a


@finite_output("dout")
def attention_backward(dout, cache):
    """Gradients of a scalar loss with respect to W_KQ and W_PV, given dloss/dout (manual backprop).

    Shapes: dout (B, n), or (n,) for a cache of one prompt; cache from :func:`attention_forward` -> dW_KQ, dW_PV
    (n, n).
    """
    if not isinstance(cache, AttentionCache):
        raise TypeError(f"cache must be the AttentionCache returned by attention_forward, got {type(cache).__name__}")
    return backward_unchecked(check_dout(dout, cache.x_tilde.shape), cache)


def check_dout(dout, shape):
    """dloss/dout as a (B, n) array for a forward pass over ``shape = (B, n)`` (a single prompt may pass (n,))."""
    dout = as_float_array("dout", dout, ndim=(1, 2), complex_ok=True)
    B, n = shape
    if dout.shape not in ((B, n), (n,) if B == 1 else (B, n)):
        raise ValueError(f"dout must have shape ({B}, {n}) like the forward output, got {dout.shape}")
    return dout.reshape(B, n)


def backward_unchecked(dout, cache: AttentionCache):
    """:func:`attention_backward` on validated batched arrays, no checks.

    Shapes: dout (B, n), cache from :func:`forward_unchecked` -> dW_KQ, dW_PV (n, n).
    """
    kind, X, x_tilde, W_KQ, W_PV, a, u = cache
    L = X.shape[2]
    # out = u @ W_PV.T
    dW_PV = dout.T @ u  # (n, n)     Σ_b dout_b u_bᵀ
    du = dout @ W_PV  # (B, n)     W_PVᵀ dout
    # u = einsum("bil,bl->bi", X, a)
    da = np.einsum("bil,bi->bl", X, du)  # (B, L)     Xᵀ du
    if kind == "linear":
        # a = z / L
        dz = da / L  # (B, L)
    else:
        # a = softmax(z):  dz = a ⊙ (da − Σ_t a_t da_t)  (softmax VJP)
        dz = a * (da - np.sum(a * da, axis=-1, keepdims=True))  # (B, L)
    # z = einsum("bil,bi->bl", X, qk)
    dqk = np.einsum("bil,bl->bi", X, dz)  # (B, n)     X dz
    # qk = x_tilde @ W_KQ.T
    dW_KQ = dqk.T @ x_tilde  # (n, n)     Σ_b dq'_b x̃_bᵀ
    if kind == "gaussian":
        # z = z − 0.5 * einsum("bil,ij,bjl->bl", X, W_KQ, X)
        dW_KQ = dW_KQ - 0.5 * np.einsum("bil,bl,bjl->ij", X, dz, X)  # (n, n)  − ½ Σ_t dz_t X_t X_tᵀ
    return dW_KQ, dW_PV


def backend_for(X, kind="softmax") -> str:
    """``"numba"`` if :func:`loss_and_grads` / :func:`attention` run a fused kernel for this input, else ``"numpy"``.

    The kernel is used exactly when numba imports with its JIT enabled (``_kernels.JIT_ENABLED``) and the
    arrays are real float32/float64; every kind in ``KINDS`` has a kernel (``kind`` is accepted for symmetry).
    Under ``NUMBA_DISABLE_JIT=1`` the kernels would run as plain Python loops, about a thousand times slower than
    NumPy, so the NumPy specification is used (the kernel tests still call the kernels directly).
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    X = as_float_array("X", X, ndim=(2, 3), finite=False, complex_ok=True)  # ints become float64, as in check_attention_inputs
    return "numba" if _kernels.JIT_ENABLED and X.dtype in (np.float64, np.float32) else "numpy"


def attention(X, x_tilde, W_KQ, W_PV, kind="softmax"):
    """Output of one-layer attention for each prompt: W_PV X a (paper Eqs. 11, 12, 14).

    Linear: a = Xᵀ W_KQ x̃ / L. Softmax: a = softmax(Xᵀ W_KQ x̃). Gaussian (tied W_K = W_Q):
    a = softmax(Xᵀ W_KQ x̃ − ½ diag(Xᵀ W_KQ X)). The query is not a key or value; no residual.

    Shapes: X (n, L), x_tilde (n,) -> (n,); X (B, n, L), x_tilde (B, n) -> (B, n); W_KQ, W_PV (n, n).
    Large batches run the fused forward-only Numba kernel (see :func:`backend_for`).
    """
    X3, q2, _, W_KQ, W_PV, kind, single = check_attention_inputs(X, x_tilde, None, W_KQ, W_PV, kind)
    with np.errstate(all="ignore"):  # a non-finite result is diagnosed below, naming the argument
        if backend_for(X3, kind) == "numba":
            out = _kernels.forward(_kernels.KIND_CODES[kind], X3, q2, W_KQ, W_PV)  # (B, n)
        else:
            out, _ = forward_unchecked(X3, q2, W_KQ, W_PV, kind)  # (B, n)
    if not np.all(np.isfinite(out)):
        raise_non_finite("attention", X3)
    return out[0] if single else out


def raise_non_finite(where, X):
    """After a non-finite result (small inputs were checked up front): raise ``ValueError`` naming X if it holds
    NaN/inf, else reporting an overflow in ``where``. Shapes: X (B, n, L)."""
    as_float_array("X", X, finite=True, complex_ok=True)
    raise ValueError(f"{where}: non-finite result from finite inputs (overflow: reduce the scale of X, x_tilde, x, "
                     "W_KQ or W_PV)")


def check_attention_inputs(X, x_tilde, x, W_KQ, W_PV, kind):
    """Validate and bring to batched, C-contiguous arrays of one dtype (``W_PV=None``, ``x=None``: not needed).

    Shapes: X (n, L) | (B, n, L), x_tilde and x (n,) | (B, n), W (n, n) -> X3 (B, n, L), q2 (B, n), x2 (B, n) or
    None, W_KQ, W_PV (n, n), kind, single (True for one prompt without a batch axis).

    Small arrays are checked for NaN/inf here; the context X (the only large one) only if the result is non-finite
    (any NaN/inf in X reaches the output), which keeps the per-call overhead O(n² + B n)."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    X3, q2, single = check_context(X, x_tilde, finite=False, complex_ok=True)
    B, n, _ = X3.shape
    W_KQ = as_float_array("W_KQ", W_KQ, ndim=2, complex_ok=True)
    W_PV = W_KQ if W_PV is None else as_float_array("W_PV", W_PV, ndim=2, complex_ok=True)  # None: weights only
    for name, W in (("W_KQ", W_KQ), ("W_PV", W_PV)):
        if W.shape != (n, n):
            raise ValueError(f"{name} must have shape ({n}, {n}) to match X with n={n}, got {W.shape}")
    arrays = [X3, q2, W_KQ, W_PV]
    if x is not None:
        x2 = as_float_array("x", x, ndim=(1, 2), complex_ok=True)
        x2 = x2[None] if x2.ndim == 1 else x2
        if x2.shape != q2.shape:
            raise ValueError(f"x must have the shape of x_tilde, {q2.shape[1:] if single else q2.shape}, "
                             f"got {np.shape(x)}")
        arrays.append(x2)
    dtype = np.result_type(*arrays)
    X3, q2, W_KQ, W_PV, *rest = (np.ascontiguousarray(a, dtype=dtype) for a in arrays)
    x2 = rest[0] if rest else None
    for name, arr in (("x_tilde", q2), ("W_KQ", W_KQ), ("W_PV", W_PV), ("x", x2)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
    return X3, q2, x2, W_KQ, W_PV, kind, single


# the MSE loss and its gradients (Eq. 9) live in icdmin.loss, which builds on this module; they are re-exported here
# on first use (so that either module may be imported first)
_FROM_LOSS = ("loss_and_grads", "loss_and_grads_identity", "loss_and_grads_numpy", "loss_and_grads_unchecked",
              "mse_backward", "mse_forward")


def __getattr__(name: str):
    """``icdmin.layer.loss_and_grads`` and the other names of :mod:`icdmin.loss` listed in ``_FROM_LOSS``."""
    if name in _FROM_LOSS:
        from . import loss

        return getattr(loss, name)
    raise AttributeError(f"module 'icdmin.layer' has no attribute {name!r}")
