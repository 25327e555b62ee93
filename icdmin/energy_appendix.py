"""Paper App. I: the linear-attention ("naive spherical Hopfield") energy (App. I.1, Eqs. A.14-A.17) and, for general
weights, the Jacobian of the attention update (Eq. A.18) with the gradient-flow condition (Eq. A.19).

Same conventions as :mod:`icdmin.dam` (which re-exports every name here): a single state ``s (n,)`` with
``X (n, L)``, a batch ``s (B, n)`` with ``X (B, n, L)``, or a batch sharing one context ``X (n, L)``.

Legend: ``B`` batch of states, ``n`` token dimension, ``L`` number of stored memories (context tokens).
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_float_array, check_positive, finite_output, softmax_inplace
from ._memory import check_states, drop_batch, per_state, readout, scores, softmax_covariance

__all__ = ["linear_energy", "linear_energy_grad", "linear_descent_step", "update_jacobian", "is_gradient_flow"]


# ----------------------------------------------------------------------------------------------------------------
# linear-attention energy, App. I.1 (Eqs. A.14-A.17)


def _second_moment_times(s2, X, shared):
    """(1/L) Σ_t X_t ⟨X_t, s⟩ per state. Shapes: (B, n) -> (B, n)."""
    return readout(scores(s2, X, shared), X, shared) / X.shape[-1]


@finite_output("s", "X", "gamma")
def linear_energy(s, X, gamma):
    """Linear-attention ("naive spherical Hopfield") energy, App. I.1 (Eqs. A.14-A.17).

    E(X, s) = |s|² / (2γ) − (1/(2L)) sᵀ (Σ_t X_t X_tᵀ) s

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> float | (B,).
    """
    gamma = check_positive("gamma", gamma)
    s2, X, shared, single = check_states(s, X)
    L = X.shape[-1]

    def chunk(s2, X):
        z = scores(s2, X, shared)  # (b, L)
        return np.sum(s2 * s2, axis=-1) / (2 * gamma) - np.sum(z * z, axis=-1) / (2 * L)  # (b,)

    e = per_state(chunk, s2, X, shared, temp_per_state=2 * L)
    return e[0] if single else e


@finite_output("s", "X", "gamma")
def linear_energy_grad(s, X, gamma):
    """Gradient of the linear energy (A.14-A.17): s/γ − (1/L) Σ_t X_t ⟨X_t, s⟩.

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    gamma = check_positive("gamma", gamma)
    s2, X, shared, single = check_states(s, X)
    g = per_state(lambda s2, X: s2 / gamma - _second_moment_times(s2, X, shared), s2, X, shared, s2.shape[1:])
    return drop_batch(g, single)


@finite_output("s", "X", "gamma", "step")
def linear_descent_step(s, X, gamma, step=None):
    """One gradient step on the linear energy (App. I.1): s − η ∇E = (1 − η/γ) s + (η/L) Σ_t X_t ⟨X_t, s⟩.

    With η = γ (the default) from s = x̃ this is (γ/L) Σ_t X_t ⟨X_t, x̃⟩: linear attention with αβ = γ, Eq. (10).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    gamma = check_positive("gamma", gamma)
    step = gamma if step is None else check_positive("step", step)
    s2, X, shared, single = check_states(s, X)
    out = per_state(lambda s2, X: (1 - step / gamma) * s2 + step * _second_moment_times(s2, X, shared),
                     s2, X, shared, s2.shape[1:])
    return drop_batch(out, single)


# ----------------------------------------------------------------------------------------------------------------
# general weights: Jacobian of the update (A.18) and the gradient-flow symmetry condition (A.19)


def _weights(name, W, n):
    W = as_float_array(name, W, ndim=2, complex_ok=True)
    if W.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {W.shape}")
    return W


@finite_output("s", "X", "W_KQ", "W_PV")
def update_jacobian(s, X, W_KQ, W_PV):
    """Jacobian of the update f(s) = W_PV X softmax(Xᵀ W_KQ s), App. I.2 Eq. (A.18).

    J(s) = W_PV X (diag(g) − g gᵀ) Xᵀ W_KQ,  g = softmax(Xᵀ W_KQ s).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L); W_KQ, W_PV (n, n) -> (n, n) | (B, n, n).
    """
    s2, X, shared, single = check_states(s, X)
    n = s2.shape[1]
    W_KQ, W_PV = _weights("W_KQ", W_KQ, n), _weights("W_PV", W_PV, n)

    def chunk(s2, X):
        g = softmax_inplace(scores(s2 @ W_KQ.T, X, shared))  # (b, L)
        return W_PV @ softmax_covariance(g, X, shared) @ W_KQ  # (b, n, n)  W_PV X (diag g − g gᵀ) Xᵀ W_KQ

    return drop_batch(per_state(chunk, s2, X, shared, (n, n)), single)


def is_gradient_flow(W_KQ, W_PV, X, s, *, rtol=1e-10) -> bool:
    """Whether the update f(s) = W_PV X softmax(Xᵀ W_KQ s) is a gradient field at the state(s) s, Eq. (A.19).

    f is locally a gradient iff its Jacobian (A.18) is symmetric. Returns True iff, for every state,
    max|J − Jᵀ| <= rtol · max|J| (a zero Jacobian, e.g. with one context token, counts as symmetric).
    Written as J = Jᵀ, i.e. W_PV Y W_KQ = W_KQᵀ Y W_PVᵀ with Y = X (diag g − g gᵀ) Xᵀ; the paper (App. I.2) prints
    the condition with the transposes placed differently, and both agree for the scaled identities it uses.

    Shapes: W_KQ, W_PV (n, n); X (n, L) | (B, n, L); s (n,) | (B, n).
    """
    rtol = check_positive("rtol", rtol, allow_zero=True)
    J = update_jacobian(s, X, W_KQ, W_PV)
    J3 = J[None] if J.ndim == 2 else J  # (B, n, n)
    asym = np.max(np.abs(J3 - J3.transpose(0, 2, 1)), axis=(1, 2))  # (B,)
    scale = np.max(np.abs(J3), axis=(1, 2))  # (B,)
    with np.errstate(over="ignore"):  # rtol * scale = inf for a huge rtol: then everything counts as symmetric
        return bool(np.all(asym <= rtol * scale))
