"""Shape plumbing of the dense-associative-memory energies (paper §4, App. I): states against memories.

A package-internal module (used by :mod:`icdmin.dam`, :mod:`icdmin.energy_appendix` and :mod:`icdmin.retrieval`):
every function here takes validated arrays except :func:`check_states`, which validates them.

Shapes: a single state ``s (n,)`` with ``X (n, L)``; a batch ``s (B, n)`` with one context per state ``X (B, n, L)``;
or a batch ``s (B, n)`` sharing one context ``X (n, L)`` (``shared``). Internally the states are always ``s2 (B, n)``.

Legend: ``B`` batch of states, ``n`` token dimension, ``L`` number of stored memories (context tokens, the columns
of ``X``).
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_float_array, check_context

__all__ = ["check_states", "per_state", "scores", "readout", "drop_batch", "softmax_covariance"]


_MIN_CHUNK_ELEMENTS = 2**16  # a shared context's temporaries per chunk: at least this many, else the output's size


def check_states(s, X):
    """Validate a state / memory pair. Returns (s2 (B, n), X (n, L) or (B, n, L), shared, single)."""
    Xa = as_float_array("X", X, ndim=(2, 3), complex_ok=True)
    sa = as_float_array("s", s, ndim=(1, 2), complex_ok=True)
    if sa.ndim == 2 and Xa.ndim == 2:  # many states, one shared context
        if sa.shape[1] != Xa.shape[0]:
            raise ValueError(f"token dimension differs: X has n={Xa.shape[0]}, s has n={sa.shape[1]}")
        if Xa.shape[1] < 1 or sa.shape[0] < 1 or sa.shape[1] < 1:
            raise ValueError(f"X must have n >= 1 and L >= 1 and s at least one state, got {Xa.shape}, {sa.shape}")
        return sa, Xa, True, False
    X3, s2, single = check_context(Xa, sa, q_name="s", complex_ok=True)
    return s2, X3, False, single


def per_state(fn, s2, X, shared, tail=(), temp_per_state=None):
    """``fn(s_chunk, X)`` over chunks of states that share one context, so that a chunk's temporaries ((chunk, L)
    scores, (chunk, n, L) centred tokens) hold about as many elements as the whole output: peak memory stays a small
    multiple of the output's size. Per-prompt contexts go in one call (X itself is already that large).

    Shapes: s2 (B, n), X (n, L) | (B, n, L) -> (B, *tail).
    """
    B, n = s2.shape
    temp = temp_per_state or 3 * (n + 1) * X.shape[-1]
    chunk = max(1, max(B * int(np.prod(tail, dtype=np.int64)), _MIN_CHUNK_ELEMENTS) // temp)
    if not shared or chunk >= B:
        return fn(s2, X)
    out = np.empty((B, *tail), dtype=np.result_type(s2, X))
    for lo in range(0, B, chunk):
        out[lo : lo + chunk] = fn(s2[lo : lo + chunk], X)
    return out


def scores(s2, X, shared):
    """z = Xᵀ s per state. Shapes: s2 (B, n), X (n, L) | (B, n, L) -> (B, L)."""
    return s2 @ X if shared else np.einsum("bnl,bn->bl", X, s2)


def readout(p, X, shared):
    """u = X p per state. Shapes: p (B, L), X (n, L) | (B, n, L) -> (B, n)."""
    return p @ X.T if shared else np.einsum("bnl,bl->bn", X, p)


def drop_batch(a, single):
    """``a[0]`` for a single state (``single``), else ``a``: drops the batch axis the caller added."""
    return a[0] if single else a


def softmax_covariance(p, X, shared):
    """X (diag(p) − p pᵀ) Xᵀ = Σ_t p_t (X_t − X p)(X_t − X p)ᵀ, the centred form (no cancellation when p is
    nearly one-hot). Shapes: p (B, L), X (n, L) | (B, n, L) -> (B, n, n)."""
    u = readout(p, X, shared)  # (B, n)  X p
    C = X[None] - u[:, :, None] if shared else X - u[:, :, None]  # (B, n, L)
    C *= np.sqrt(p)[:, None, :]  # (B, n, L)
    return C @ np.swapaxes(C, 1, 2)  # (B, n, n)
