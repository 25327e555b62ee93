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

from ._arrays import _lse, _softmax, _softmax_inplace, as_float_array, check_bool, check_context, check_int
from ._arrays import check_positive, finite_output, lse, softmax  # noqa: F401  (lse, softmax: re-exported)

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
# shape plumbing: every public function works on s2 (B, n) and X either (n, L) (shared) or (B, n, L)

MAX_STEPS = 10**7  # descend's step budget: far beyond any convergence seen here, small enough to end
_MIN_CHUNK_ELEMENTS = 2**16  # a shared context's temporaries per chunk: at least this many, else the output's size


def _states(s, X):
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


def _per_state(fn, s2, X, shared, tail=(), temp_per_state=None):
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
    s2, X, shared, single = _states(s, X)

    def chunk(s2, X):
        return np.sum(s2 * s2, axis=-1) / (2 * alpha) - _lse(beta * _scores(s2, X, shared)) / beta  # (b,)

    e = _per_state(chunk, s2, X, shared, temp_per_state=3 * X.shape[-1])  # (B,)
    return e[0] if single else e


@finite_output("s", "X", "alpha", "beta")
def energy_grad(s, X, alpha, beta):
    """Gradient of the energy (16): ∇_s E = s/α − X softmax(β Xᵀ s) (paper §4).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> same as s.
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = _states(s, X)
    g = _per_state(lambda s2, X: s2 / alpha - _retrieve(s2, X, shared, beta), s2, X, shared, (s2.shape[1],))
    return _out(g, single)  # (B, n)


def _softmax_covariance(p, X, shared):
    """X (diag(p) − p pᵀ) Xᵀ = Σ_t p_t (X_t − X p)(X_t − X p)ᵀ, the centred form (no cancellation when p is
    nearly one-hot). Shapes: p (B, L), X (n, L) | (B, n, L) -> (B, n, n)."""
    u = _readout(p, X, shared)  # (B, n)  X p
    C = X[None] - u[:, :, None] if shared else X - u[:, :, None]  # (B, n, L)
    C *= np.sqrt(p)[:, None, :]  # (B, n, L)
    return C @ np.swapaxes(C, 1, 2)  # (B, n, n)


@finite_output("s", "X", "alpha", "beta")
def energy_hessian(s, X, alpha, beta):
    """Hessian of the energy (16): ∇²E = I/α − β X (diag(p) − p pᵀ) Xᵀ, p = softmax(β Xᵀ s).

    Shapes: s (n,) | (B, n); X (n, L) | (B, n, L) -> (n, n) | (B, n, n).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    s2, X, shared, single = _states(s, X)
    n = s2.shape[1]

    def chunk(s2, X):
        p = _softmax_inplace(beta * _scores(s2, X, shared))  # (b, L)
        return np.eye(n) / alpha - beta * _softmax_covariance(p, X, shared)  # (b, n, n)

    return _out(_per_state(chunk, s2, X, shared, (n, n)), single)


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
    s2, X, shared, single = _states(s, X)
    return _out(_step(s2, X, shared, alpha, beta, gamma), single)


def _step(s2, X, shared, alpha, beta, gamma):
    """Eq. (17) on validated arrays. Shapes: s2 (B, n) -> (B, n)."""
    keep = 1 - gamma / alpha
    return _per_state(lambda s2, X: keep * s2 + gamma * _retrieve(s2, X, shared, beta), s2, X, shared, s2.shape[1:])


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
    s2, X, shared, single = _states(s, X)
    s2 = s2.copy()  # (B, n)  never hand back the caller's array
    traj = [s2] if return_trajectory else None
    keep = 1 - gamma / alpha

    def read_out(s2):
        return _per_state(lambda s2, X: _retrieve(s2, X, shared, beta), s2, X, shared, s2.shape[1:])  # (B, n)

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
    return DescentResult(_out(s2, single), trajectory, t, _out(converged, single), _out(gnorm, single))


# the linear-attention energy (App. I.1) and the general-weight update Jacobian (App. I.2) live in energy_appendix;
# re-exported here (imported last: that module uses the helpers above)
from .energy_appendix import (  # noqa: E402
    is_gradient_flow,
    linear_descent_step,
    linear_energy,
    linear_energy_grad,
    update_jacobian,
)
