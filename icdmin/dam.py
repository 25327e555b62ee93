"""Dense associative memory (modern Hopfield) energy of the paper's §4, and the stable lse / softmax.

Legend: ``B`` batch of states, ``n`` token dimension, ``L`` number of stored memories (context tokens).
The memories are the *columns* of ``X``; the state is ``s``.

Shapes accepted by every energy function: a single state ``s (n,)`` with ``X (n, L)``; a batch ``s (B, n)`` with
one context per state ``X (B, n, L)``; or a batch ``s (B, n)`` sharing one context ``X (n, L)`` (the usual Hopfield
setting, used for energy landscapes). Outputs follow ``s``.

Every log-sum-exp and softmax in icdmin goes through :func:`lse` and :func:`softmax` (defined in ``_arrays``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._arrays import check_bool, check_int, check_positive, finite_output, lse_unchecked, softmax_inplace
from ._arrays import lse, softmax  # noqa: F401  (re-exported)
from ._memory import check_states, drop_batch, per_state, readout, scores, softmax_covariance
# the linear-attention energy (App. I.1) and the general-weight update Jacobian (App. I.2), re-exported
from .energy_appendix import (  # noqa: F401
    is_gradient_flow,
    linear_descent_step,
    linear_energy,
    linear_energy_grad,
    update_jacobian,
)

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


# ----------------------------------------------------------------------------------------------------------------
# the attention read-out; the shape plumbing (states s2 (B, n) against X (n, L) shared or (B, n, L)) is in _memory

MAX_STEPS = 10**7  # descend's step budget: far beyond any convergence seen here, small enough to end


def _retrieve(s2, X, shared, beta):
    """X softmax(β Xᵀ s): the attention read-out of Eq. (17). Shapes: (B, n) -> (B, n).

    The softmax is done in place on the fresh (B, L) score array: one large temporary per call instead of four,
    which at n=16, L=499 is a sizeable part of the cost.
    """
    z = scores(s2, X, shared)  # (B, L)
    z *= beta
    p = softmax_inplace(z)  # (B, L)  softmax(β Xᵀ s)
    return readout(p, X, shared)  # (B, n)


# ----------------------------------------------------------------------------------------------------------------
# the energy of Eq. (16), its derivatives, and gradient descent (Eq. 17)


@finite_output("s", "X", "alpha", "beta")
def energy(s, X, alpha, beta):
    """Dense-associative-memory energy of the context, paper Eq. (16).

    E(X, s) = |s|² / (2α) − (1/β) log Σ_t exp(β X_tᵀ s)

    ``|s|²`` is written ``Σ s_i s_i`` (no conjugate), so the function is analytic and complex-step safe.
    s: the state(s); X: the memories (context tokens as columns); alpha, beta > 0: value scale α and inverse
    temperature β.

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> float | (B,).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = check_states(s, X)

    def chunk(s2, X):
        return np.sum(s2 * s2, axis=-1) / (2 * alpha) - lse_unchecked(beta * scores(s2, X, shared)) / beta  # (b,)

    e = per_state(chunk, s2, X, shared, temp_per_state=3 * X.shape[-1])  # (B,)
    return e[0] if single else e


@finite_output("s", "X", "alpha", "beta")
def energy_grad(s, X, alpha, beta):
    """Gradient of the energy (16): ∇_s E = s/α − X softmax(β Xᵀ s) (paper §4).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = check_states(s, X)
    g = per_state(lambda s2, X: s2 / alpha - _retrieve(s2, X, shared, beta), s2, X, shared, (s2.shape[1],))
    return drop_batch(g, single)  # (B, n)


@finite_output("s", "X", "alpha", "beta")
def energy_hessian(s, X, alpha, beta):
    """Hessian of the energy (16): ∇²E = I/α − β X (diag(p) − p pᵀ) Xᵀ, p = softmax(β Xᵀ s).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> (n, n) | (B, n, n).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = check_states(s, X)
    n = s2.shape[1]

    def chunk(s2, X):
        p = softmax_inplace(beta * scores(s2, X, shared))  # (b, L)
        return np.eye(n) / alpha - beta * softmax_covariance(p, X, shared)  # (b, n, n)

    return drop_batch(per_state(chunk, s2, X, shared, (n, n)), single)


def _gamma(gamma, alpha):
    return alpha if gamma is None else check_positive("gamma", gamma)


@finite_output("s", "X", "alpha", "beta", "gamma")
def descent_step(s, X, alpha, beta, gamma=None):
    """One gradient-descent step on the energy (16), paper Eq. (17).

    s(t+1) = s(t) − γ ∇E = (1 − γ/α) s(t) + γ X softmax(β Xᵀ s(t)).

    Written in the second form, so with γ = α (the default) the step is exactly α X softmax(β Xᵀ s): the
    softmax attention output with W_KQ = βI, W_PV = αI (the paper's central identity).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s (a fresh array).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    gamma = _gamma(gamma, alpha)
    s2, X, shared, single = check_states(s, X)
    return drop_batch(_step(s2, X, shared, alpha, beta, gamma), single)


def _step(s2, X, shared, alpha, beta, gamma):
    """Eq. (17) on validated arrays. Shapes: s2 (B, n) -> (B, n)."""
    keep = 1 - gamma / alpha
    return per_state(lambda s2, X: keep * s2 + gamma * _retrieve(s2, X, shared, beta), s2, X, shared, s2.shape[1:])


class DescentResult(NamedTuple):
    """Result of :func:`descend` (shapes for a batch; a single state drops the ``B`` axis)."""

    s: np.ndarray  # (B, n) final states
    trajectory: np.ndarray | None  # (T+1, B, n) states s(0..T), or None
    n_steps: int  # T, the number of steps taken
    converged: np.ndarray  # (B,) bool, grad_norm < tol (all False when tol is None)
    grad_norm: np.ndarray  # (B,) |∇E| at the final states


@finite_output("s", "X", "alpha", "beta", "gamma")
def descend(s, X, alpha, beta, *, gamma=None, steps=50, tol=None, return_trajectory=False) -> DescentResult:
    """Iterate Eq. (17) from s(0) = s: at most ``steps`` steps, stopping early once every |∇E| < ``tol``.

    s, X, alpha, beta: as in :func:`energy`; gamma > 0: step size (default α; γ ≤ α never increases the energy);
    0 <= steps <= MAX_STEPS: maximum number of steps; tol > 0 (optional): stop when every state's gradient norm is
    below it; return_trajectory: keep every iterate. Every returned array is fresh (never the caller's ``s``).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> s like s; trajectory (T+1, ...) like s; converged,
    grad_norm () | (B,).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    gamma = _gamma(gamma, alpha)
    steps = check_int("steps", steps, minimum=0, maximum=MAX_STEPS)
    tol = None if tol is None else check_positive("tol", tol)
    return_trajectory = check_bool("return_trajectory", return_trajectory)
    s2, X, shared, single = check_states(s, X)
    s2 = s2.copy()  # (B, n)  never hand back the caller's array
    traj = [s2] if return_trajectory else None
    keep = 1 - gamma / alpha

    def read_out(s2):
        return per_state(lambda s2, X: _retrieve(s2, X, shared, beta), s2, X, shared, s2.shape[1:])  # (B, n)

    u = read_out(s2)
    gnorm = np.linalg.norm(s2 / alpha - u, axis=-1)  # (B,)
    t = 0
    while t < steps and not (tol is not None and np.all(gnorm < tol)):
        s2 = keep * s2 + gamma * u  # (B, n)  Eq. (17)
        u = read_out(s2)
        gnorm = np.linalg.norm(s2 / alpha - u, axis=-1)
        t += 1
        if traj is not None:
            traj.append(s2)
    converged = np.zeros(gnorm.shape, bool) if tol is None else gnorm < tol
    trajectory = None if traj is None else np.stack(traj)  # (T+1, B, n)
    if single and trajectory is not None:
        trajectory = trajectory[:, 0]
    return DescentResult(drop_batch(s2, single), trajectory, t, drop_batch(converged, single),
                         drop_batch(gnorm, single))

