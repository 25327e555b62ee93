"""Dense associative memory (modern Hopfield) energy of the paper's §4, and the stable lse / softmax.

Legend: ``B`` batch of states, ``n`` token dimension, ``L`` number of stored memories (context tokens).
The memories are the *columns* of ``X``; the state is ``s``.

Shapes accepted by every energy function: a single state ``s (n,)`` with ``X (n, L)``; a batch ``s (B, n)`` with
one context per state ``X (B, n, L)``; or a batch ``s (B, n)`` sharing one context ``X (n, L)`` (the usual Hopfield
setting, used for energy landscapes). Outputs follow ``s``.

Every log-sum-exp and softmax in icdmin goes through :func:`lse` and :func:`softmax` below.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._arrays import as_float_array, check_context, check_int, check_positive

__all__ = [
    "lse",
    "softmax",
    "energy",
    "energy_grad",
    "energy_hessian",
    "descent_step",
    "descend",
    "DescentResult",
    "linear_energy",
    "linear_energy_grad",
    "linear_descent_step",
    "update_jacobian",
    "is_gradient_flow",
]


def lse(z, axis: int = -1):
    """Log-sum-exp along ``axis`` with a max shift: log Σ_i exp(z_i).

    The shift uses ``max(z.real)`` and is held constant, so complex-step derivatives pass through
    exactly. Shapes: z (..., L) -> (...) for the default axis.
    """
    z = np.asarray(z)
    m = np.max(z.real, axis=axis, keepdims=True)  # (..., 1)
    e = _shifted(z, m)  # (..., L)  z − max, a fresh float array
    out = m + np.log(np.sum(np.exp(e, out=e), axis=axis, keepdims=True))  # (..., 1)
    return np.squeeze(out, axis=axis)


def softmax(z, axis: int = -1):
    """Softmax along ``axis`` with a max shift: exp(z_i) / Σ_j exp(z_j).

    Shapes: z (..., L) -> (..., L). Complex input is supported for complex-step checks.
    """
    z = np.asarray(z)
    e = z.astype(np.float64) if z.dtype.kind not in "fc" else z.copy()  # (..., L)
    return _softmax_inplace(e, axis)


def _softmax_inplace(e, axis: int = -1):
    """Overwrite the float (or complex) array ``e`` with its softmax along ``axis`` (the max-shifted formula of
    :func:`softmax`, without large temporaries). Shapes: (..., L) -> (..., L)."""
    e -= np.max(e.real, axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _shifted(z, m):
    """z − m as a fresh float (or complex) array that the caller may overwrite."""
    e = z - m
    return e if e.dtype.kind in "fc" else e.astype(np.float64)


# ----------------------------------------------------------------------------------------------------------------
# shape plumbing: every public function works on s2 (B, n) and X either (n, L) (shared) or (B, n, L)


def _states(s, X):
    """Validate a state / memory pair. Returns (s2 (B, n), X (n, L) or (B, n, L), shared, single)."""
    Xa = as_float_array("X", X, ndim=(2, 3))
    sa = as_float_array("s", s, ndim=(1, 2))
    if sa.ndim == 2 and Xa.ndim == 2:  # many states, one shared context
        if sa.shape[1] != Xa.shape[0]:
            raise ValueError(f"token dimension differs: X has n={Xa.shape[0]}, s has n={sa.shape[1]}")
        if Xa.shape[1] < 1 or sa.shape[0] < 1 or sa.shape[1] < 1:
            raise ValueError(f"X must have n >= 1 and L >= 1 and s at least one state, got {Xa.shape}, {sa.shape}")
        return sa, Xa, True, False
    X3, s2, single = check_context(Xa, sa, q_name="s")
    return s2, X3, False, single


def _scores(s2, X, shared):
    """z = Xᵀ s per state. Shapes: s2 (B, n), X (n, L) | (B, n, L) -> (B, L)."""
    return s2 @ X if shared else np.einsum("bnl,bn->bl", X, s2)


def _readout(p, X, shared):
    """u = X p per state. Shapes: p (B, L), X (n, L) | (B, n, L) -> (B, n)."""
    return p @ X.T if shared else np.einsum("bnl,bl->bn", X, p)


def _out(a, single):
    return a[0] if single else a


def _retrieve(s2, X, shared, beta):
    """X softmax(β Xᵀ s): the attention read-out of Eq. (17). Shapes: (B, n) -> (B, n).

    The softmax is done in place on the fresh (B, L) score array: one large temporary per call instead of four,
    which at n=16, L=499 is a sizeable part of the cost.
    """
    z = _scores(s2, X, shared)  # (B, L)
    z *= beta
    p = _softmax_inplace(z)  # (B, L)  softmax(β Xᵀ s)
    return _readout(p, X, shared)  # (B, n)


# ----------------------------------------------------------------------------------------------------------------
# the energy of Eq. (16), its derivatives, and gradient descent (Eq. 17)


def energy(s, X, alpha, beta):
    """Dense-associative-memory energy of the context, paper Eq. (16).

    E(X, s) = |s|² / (2α) − (1/β) log Σ_t exp(β X_tᵀ s)

    ``|s|²`` is written ``Σ s_i s_i`` (no conjugate), so the function is analytic and complex-step safe.

    Parameters
    ----------
    s : array_like, the state(s).  X : array_like, the memories (context tokens as columns).
    alpha, beta : float > 0, the value scale α and inverse temperature β.

    Returns
    -------
    float or ndarray (B,)

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> () | (B,).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = _states(s, X)
    z = _scores(s2, X, shared)  # (B, L)
    e = np.sum(s2 * s2, axis=-1) / (2 * alpha) - lse(beta * z) / beta  # (B,)
    return e[0] if single else e


def energy_grad(s, X, alpha, beta):
    """Gradient of the energy (16): ∇_s E = s/α − X softmax(β Xᵀ s) (PAPER.md §4).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = _states(s, X)
    return _out(s2 / alpha - _retrieve(s2, X, shared, beta), single)  # (B, n)


def _softmax_covariance(p, X, shared):
    """X (diag(p) − p pᵀ) Xᵀ = Σ_t p_t (X_t − X p)(X_t − X p)ᵀ, the centred form (no cancellation when p is
    nearly one-hot). Shapes: p (B, L), X (n, L) | (B, n, L) -> (B, n, n)."""
    u = _readout(p, X, shared)  # (B, n)  X p
    C = X[None] - u[:, :, None] if shared else X - u[:, :, None]  # (B, n, L)
    Cp = C * np.sqrt(p)[:, None, :]  # (B, n, L)
    return Cp @ np.swapaxes(Cp, 1, 2)  # (B, n, n)


def energy_hessian(s, X, alpha, beta):
    """Hessian of the energy (16): ∇²E = I/α − β X (diag(p) − p pᵀ) Xᵀ, p = softmax(β Xᵀ s).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> (n, n) | (B, n, n).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = _states(s, X)
    p = softmax(beta * _scores(s2, X, shared))  # (B, L)
    H = np.eye(s2.shape[1]) / alpha - beta * _softmax_covariance(p, X, shared)  # (B, n, n)
    return _out(H, single)


def _gamma(gamma, alpha):
    return alpha if gamma is None else check_positive("gamma", gamma)


def descent_step(s, X, alpha, beta, gamma=None):
    """One gradient-descent step on the energy (16), paper Eq. (17).

    s(t+1) = s(t) − γ ∇E = (1 − γ/α) s(t) + γ X softmax(β Xᵀ s(t)).

    Written in the second form, so with γ = α (the default) the step is exactly α X softmax(β Xᵀ s): the
    softmax attention output with W_KQ = βI, W_PV = αI (the paper's central identity).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    gamma = _gamma(gamma, alpha)
    s2, X, shared, single = _states(s, X)
    return _out((1 - gamma / alpha) * s2 + gamma * _retrieve(s2, X, shared, beta), single)


class DescentResult(NamedTuple):
    """Result of :func:`descend` (shapes for a batch; a single state drops the ``B`` axis)."""

    s: np.ndarray  # (B, n) final states
    trajectory: np.ndarray | None  # (T+1, B, n) states s(0..T), or None
    n_steps: int  # T, the number of steps taken
    converged: np.ndarray  # (B,) bool, grad_norm < tol (all False when tol is None)
    grad_norm: np.ndarray  # (B,) |∇E| at the final states


def descend(s, X, alpha, beta, *, gamma=None, steps=50, tol=None, return_trajectory=False) -> DescentResult:
    """Iterate Eq. (17) from s(0) = s: at most ``steps`` steps, stopping early once every |∇E| < ``tol``.

    Parameters
    ----------
    s, X, alpha, beta : as in :func:`energy`.
    gamma : float > 0, optional. Step size (default α; γ ≤ α never increases the energy, see tests).
    steps : int >= 0. Maximum number of steps.
    tol : float > 0, optional. Stop when every state's gradient norm is below it.
    return_trajectory : bool. Keep every iterate.

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> s like s; trajectory (T+1, ...) like s; converged,
    grad_norm () | (B,).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    gamma = _gamma(gamma, alpha)
    steps = check_int("steps", steps, minimum=0)
    tol = None if tol is None else check_positive("tol", tol)
    s2, X, shared, single = _states(s, X)
    keep = 1 - gamma / alpha
    traj = [s2] if return_trajectory else None
    u = _retrieve(s2, X, shared, beta)  # (B, n)
    gnorm = np.linalg.norm(s2 / alpha - u, axis=-1)  # (B,)
    t = 0
    while t < steps and not (tol is not None and np.all(gnorm < tol)):
        s2 = keep * s2 + gamma * u  # (B, n)  Eq. (17)
        u = _retrieve(s2, X, shared, beta)
        gnorm = np.linalg.norm(s2 / alpha - u, axis=-1)
        t += 1
        if traj is not None:
            traj.append(s2)
    converged = np.zeros(gnorm.shape, bool) if tol is None else gnorm < tol
    trajectory = None if traj is None else np.stack(traj)  # (T+1, B, n)
    if single and trajectory is not None:
        trajectory = trajectory[:, 0]
    return DescentResult(_out(s2, single), trajectory, t, _out(converged, single), _out(gnorm, single))


# ----------------------------------------------------------------------------------------------------------------
# linear-attention energy, App. I.1 (Eqs. A.14-A.17)


def _second_moment_times(s2, X, shared):
    """(1/L) Σ_t X_t ⟨X_t, s⟩ per state. Shapes: (B, n) -> (B, n)."""
    L = X.shape[-1]
    return _readout(_scores(s2, X, shared), X, shared) / L


def linear_energy(s, X, gamma):
    """Linear-attention ("naive spherical Hopfield") energy, App. I.1 (Eqs. A.14-A.17).

    E(X, s) = |s|² / (2γ) − (1/(2L)) sᵀ (Σ_t X_t X_tᵀ) s

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> () | (B,).
    """
    gamma = check_positive("gamma", gamma)
    s2, X, shared, single = _states(s, X)
    z = _scores(s2, X, shared)  # (B, L)
    e = np.sum(s2 * s2, axis=-1) / (2 * gamma) - np.sum(z * z, axis=-1) / (2 * X.shape[-1])  # (B,)
    return e[0] if single else e


def linear_energy_grad(s, X, gamma):
    """Gradient of the linear energy (A.14-A.17): s/γ − (1/L) Σ_t X_t ⟨X_t, s⟩.

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    gamma = check_positive("gamma", gamma)
    s2, X, shared, single = _states(s, X)
    return _out(s2 / gamma - _second_moment_times(s2, X, shared), single)


def linear_descent_step(s, X, gamma, step=None):
    """One gradient step on the linear energy (App. I.1): s − η ∇E = (1 − η/γ) s + (η/L) Σ_t X_t ⟨X_t, s⟩.

    With η = γ (the default) from s = x̃ this is (γ/L) Σ_t X_t ⟨X_t, x̃⟩: linear attention with αβ = γ, Eq. (10).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    gamma = check_positive("gamma", gamma)
    step = gamma if step is None else check_positive("step", step)
    s2, X, shared, single = _states(s, X)
    return _out((1 - step / gamma) * s2 + step * _second_moment_times(s2, X, shared), single)


# ----------------------------------------------------------------------------------------------------------------
# general weights: Jacobian of the update (A.18) and the gradient-flow symmetry condition (A.19)


def _weights(name, W, n):
    W = as_float_array(name, W, ndim=2)
    if W.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {W.shape}")
    return W


def update_jacobian(s, X, W_KQ, W_PV):
    """Jacobian of the update f(s) = W_PV X softmax(Xᵀ W_KQ s), App. I.2 Eq. (A.18).

    J(s) = W_PV X (diag(g) − g gᵀ) Xᵀ W_KQ,  g = softmax(Xᵀ W_KQ s).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L); W_KQ, W_PV (n, n) -> (n, n) | (B, n, n).
    """
    s2, X, shared, single = _states(s, X)
    n = s2.shape[1]
    W_KQ, W_PV = _weights("W_KQ", W_KQ, n), _weights("W_PV", W_PV, n)
    g = softmax(_scores(s2 @ W_KQ.T, X, shared))  # (B, L)
    Y = _softmax_covariance(g, X, shared)  # (B, n, n)  X (diag g − g gᵀ) Xᵀ
    return _out(W_PV @ Y @ W_KQ, single)  # (B, n, n)


def is_gradient_flow(W_KQ, W_PV, X, s, *, rtol=1e-10) -> bool:
    """Whether the update f(s) = W_PV X softmax(Xᵀ W_KQ s) is a gradient field at the state(s) s, Eq. (A.19).

    f is locally a gradient iff its Jacobian (A.18) is symmetric. Returns True iff, for every state,
    max|J − Jᵀ| <= rtol · max|J| (a zero Jacobian, e.g. with one context token, counts as symmetric).
    Written as J = Jᵀ, i.e. W_PV Y W_KQ = W_KQᵀ Y W_PVᵀ with Y = X (diag g − g gᵀ) Xᵀ; PAPER.md §4 prints the
    condition with the transposes placed differently, and both agree for the scaled identities the paper uses.

    Shapes: W_KQ, W_PV (n, n); X (n, L) | (B, n, L); s (n,) | (B, n).
    """
    rtol = check_positive("rtol", rtol, allow_zero=True)
    J = update_jacobian(s, X, W_KQ, W_PV)
    J3 = J[None] if J.ndim == 2 else J  # (B, n, n)
    asym = np.max(np.abs(J3 - J3.transpose(0, 2, 1)), axis=(1, 2))  # (B,)
    scale = np.max(np.abs(J3), axis=(1, 2))  # (B,)
    return bool(np.all(asym <= rtol * scale))
