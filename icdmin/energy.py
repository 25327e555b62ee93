"""Dense associative memory (modern Hopfield) energy of the paper's §4, and the stable lse / softmax.

Legend: ``B`` batch of states, ``n`` token dimension, ``L`` number of stored memories (context tokens).
The memories are the *columns* of ``X``; the state is ``s``.

Every log-sum-exp and softmax in icdmin goes through :func:`lse` and :func:`softmax` below.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lse", "softmax"]


def lse(z, axis: int = -1):
    """Log-sum-exp along ``axis`` with a max shift: log Σ_i exp(z_i).

    The shift uses ``max(z.real)`` and is held constant, so complex-step derivatives pass through
    exactly. Shapes: z (..., L) -> (...) for the default axis.
    """
    z = np.asarray(z)
    m = np.max(z.real, axis=axis, keepdims=True)  # (..., 1)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))  # (..., 1)
    return np.squeeze(out, axis=axis)


def softmax(z, axis: int = -1):
    """Softmax along ``axis`` with a max shift: exp(z_i) / Σ_j exp(z_j).

    Shapes: z (..., L) -> (..., L). Complex input is supported for complex-step checks.
    """
    z = np.asarray(z)
    m = np.max(z.real, axis=axis, keepdims=True)  # (..., 1)
    e = np.exp(z - m)  # (..., L)
    return e / np.sum(e, axis=axis, keepdims=True)
