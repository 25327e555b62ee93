"""Bayes-optimal (oracle) denoisers, closed-form risks and a Monte-Carlo Bayes risk (paper §2.3, Props. 2-4).

The oracle knows each prompt's task parameters (subspace basis, sphere span, mixture centres and weights).
Context-only estimators live in :mod:`icdmin.baselines`.

Legend: ``B`` batch, ``n`` ambient dimension, ``d`` subspace / sphere dimension, ``K`` mixture components,
``L`` clean context tokens. Every risk is per coordinate (mean over prompts and coordinates), as in the paper's figures.
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_float_array, check_context, check_int, check_positive, check_real, check_rng, finite_output
from ._arrays import softmax_unchecked
from .bessel import bessel_ratio, ive_ratio  # noqa: F401  (bessel_ratio re-exported: the shrink factor, Eq. 6)

__all__ = [
    "bessel_ratio",
    "posterior_mean_linear",
    "posterior_mean_sphere",
    "posterior_mean_gmm",
    "posterior_mean_gmm_general",
    "bayes_risk_linear",
    "optimal_linear_gamma",
    "linear_risk",
    "mc_bayes_risk",
    "check_weights",
]

_WEIGHT_SUM_TOL = 1e-9  # |Σw - 1|: far above the K·eps rounding of user-normalised weights, far below real mistakes


@finite_output("x_tilde", "basis", "offset")
def posterior_mean_linear(x_tilde, basis, sigma2_0, sigma2_z, offset=None):
    """Oracle for the linear task, Eq. (3): E[x | x̃] = m + σ0²/(σ0²+σZ²) P (x̃ - m), with P = V Vᵀ.

    Parameters
    ----------
    x_tilde : array (n,) or (B, n)
    basis : array (n, d) or (B, n, d)
        Orthonormal basis V of each prompt's subspace.
    sigma2_0, sigma2_z : float > 0
    offset : array (n,) or (B, n), optional
        Affine offset m of the subspace (an extension of the paper's linear task); zero by default.

    Shapes: -> same as x_tilde.
    """
    V, q, single = check_context(basis, x_tilde, X_name="basis")
    shrink = check_positive("sigma2_0", sigma2_0) / (sigma2_0 + check_positive("sigma2_z", sigma2_z))
    if offset is not None:
        m = as_float_array("offset", offset, ndim=1 if single else 2)
        m = m[None] if single else m  # (B, n)
        if m.shape != q.shape:
            raise ValueError(f"offset must have the shape of x_tilde, got {np.shape(offset)}")
        q = q - m
    c = shrink * np.einsum("bnd,bn->bd", V, q)  # (B, d) coordinates in the subspace
    out = np.einsum("bnd,bd->bn", V, c)  # (B, n)
    if offset is not None:
        out += m
    out = out.astype(q.dtype, copy=False)  # float32 in, float32 out
    return out[0] if single else out


@finite_output("x_tilde", "basis", "R", "sigma2_z")
def posterior_mean_sphere(x_tilde, basis, R, sigma2_z):
    """Oracle for the sphere task, Eq. (6): A_d(κ) R x̃_∥/||x̃_∥||, x̃_∥ = P x̃, κ = R||x̃_∥||/σZ².

    As ||x̃_∥|| -> 0 the factor R A_d(κ)/||x̃_∥|| -> R²/(σZ²(d+1)), so the output -> 0 smoothly.

    Parameters
    ----------
    x_tilde : array (n,) or (B, n)
    basis : array (n, d+1) or (B, n, d+1)
        Orthonormal basis of the span of each prompt's d-sphere.
    R, sigma2_z : float > 0

    Shapes: -> same as x_tilde.
    """
    V, q, single = check_context(basis, x_tilde, X_name="basis")
    R = check_positive("R", R)
    sigma2_z = check_positive("sigma2_z", sigma2_z)
    d = V.shape[2] - 1
    c = np.einsum("bnk,bn->bk", V, q)  # (B, d+1) coordinates of x̃_∥
    r = np.sqrt(np.einsum("bk,bk->b", c, c))  # (B,) ||x̃_∥||
    A = ive_ratio((d + 1) / 2.0, R * r / sigma2_z)  # (B,)
    pos = r > 0
    factor = np.full(r.shape, R * R / (sigma2_z * (d + 1)))  # the r -> 0 limit
    factor[pos] = R * A[pos] / r[pos]
    out = np.einsum("bnk,bk->bn", V, c * factor[:, None].astype(c.dtype, copy=False))  # (B, n)
    out = out.astype(q.dtype, copy=False)  # float32 in, float32 out
    return out[0] if single else out


def check_weights(weights, K: int, B: int | None = None, *, name: str = "weights", source: str = "K") -> np.ndarray:
    """Validate mixture weights: shape (K,) or (B, K), entries >= 0, each row summing to 1 (within 1e-9).
    ``source`` names where K and B come from in error messages."""
    K = check_int("K", K, minimum=1)
    B = None if B is None else check_int("B", B, minimum=1)
    w = as_float_array(name, weights, ndim=(1, 2))
    if w.shape[-1] != K or (w.ndim == 2 and B is not None and w.shape[0] != B):
        want = f"(K,) = ({K},)" if B is None else f"(K,) or (B, K) = ({K},) or ({B}, {K})"
        raise ValueError(f"{name} must have shape {want} to match {source}, got {w.shape}")
    if np.any(w < 0):
        raise ValueError(f"{name} must be >= 0")
    if np.any(np.abs(w.sum(axis=-1) - 1.0) > _WEIGHT_SUM_TOL):
        raise ValueError(f"{name} must sum to 1 (within {_WEIGHT_SUM_TOL:g}), got sums {w.sum(axis=-1)}")
    return w


def _log_weights(weights, K, B):
    """log w as (1, K) or (B, K), with log 0 = -inf (such components get posterior weight exactly 0)."""
    if weights is None:
        return np.full((1, K), -np.log(K))
    w = check_weights(weights, K, B, source="centers (B, n, K)")
    logw = np.full(w.shape, -np.inf)
    np.log(w, out=logw, where=w > 0)
    return logw if logw.ndim == 2 else logw[None]


@finite_output("x_tilde", "centers", "sigma2_0", "sigma2_z")
def posterior_mean_gmm(x_tilde, centers, sigma2_0, sigma2_z, weights=None):
    """Oracle for the mixture task, Eq. (7) (σ0² = 0 gives Eq. 8).

    E[x | x̃] = σ0²/v x̃ + σZ²/v Σ_a p_a μ_a, v = σ0² + σZ², p = softmax_a(log w_a + (⟨μ_a, x̃⟩ - ||μ_a||²/2)/v).
    The -||μ_a||²/2v term makes this the exact posterior for any centres; it cancels in Eq. (7), where all
    ||μ_a|| = R.

    Parameters
    ----------
    x_tilde : array (n,) or (B, n)
    centers : array (n, K) or (B, n, K)
    sigma2_0 : float >= 0
    sigma2_z : float > 0
    weights : array (K,) or (B, K), optional
        Mixture weights (>= 0, summing to 1; zeros allowed); uniform by default.

    Shapes: -> same as x_tilde.
    """
    M, q, single = check_context(centers, x_tilde, X_name="centers")
    s0 = check_positive("sigma2_0", sigma2_0, allow_zero=True)
    sz = check_positive("sigma2_z", sigma2_z)
    v = s0 + sz
    logw = _log_weights(weights, M.shape[2], M.shape[0])  # (B|1, K)
    logits = (np.einsum("bnk,bn->bk", M, q) - 0.5 * np.einsum("bnk,bnk->bk", M, M)) / v + logw  # (B, K)
    p = softmax_unchecked(logits, axis=-1)  # (B, K)
    out = (s0 / v) * q + (sz / v) * np.einsum("bnk,bk->bn", M, p)  # (B, n)
    out = out.astype(q.dtype, copy=False)  # float32 in, float32 out
    return out[0] if single else out


@finite_output("x_tilde", "centers", "sigma2_components", "sigma2_z")
def posterior_mean_gmm_general(x_tilde, centers, sigma2_components, sigma2_z, weights=None):
    """Oracle for a mixture with per-component variances σ_a² (App. C.3, marginal-likelihood weights).

    E[x | x̃] = Σ_a p_a m_a, m_a = (σ_a² x̃ + σZ² μ_a)/(σ_a² + σZ²),
    p_a ∝ w_a (2π(σ_a²+σZ²))^{-n/2} exp(-||x̃ - μ_a||² / (2(σ_a²+σZ²))).

    Parameters
    ----------
    x_tilde : array (n,) or (B, n)
    centers : array (n, K) or (B, n, K)
    sigma2_components : array (K,) or (B, K), entries >= 0
    sigma2_z : float > 0
    weights : array (K,) or (B, K), optional

    Shapes: -> same as x_tilde.
    """
    M, q, single = check_context(centers, x_tilde, X_name="centers")
    B, n, K = M.shape
    s2 = as_float_array("sigma2_components", sigma2_components, ndim=(1, 2))
    if s2.shape[-1] != K or (s2.ndim == 2 and s2.shape[0] != B):
        raise ValueError(f"sigma2_components must have shape ({K},) or ({B}, {K}) to match centers of shape "
                         f"{M.shape[1:] if single else M.shape}, got {s2.shape}")
    if np.any(s2 < 0):
        raise ValueError("sigma2_components must be >= 0")
    sz = check_positive("sigma2_z", sigma2_z)
    s2 = s2 if s2.ndim == 2 else s2[None]  # (B|1, K)
    v = s2 + sz  # (B|1, K) marginal variance of component a
    diff = q[:, :, None] - M  # (B, n, K)
    logits = _log_weights(weights, K, B) - 0.5 * n * np.log(v) - np.einsum("bnk,bnk->bk", diff, diff) / (2 * v)
    p = softmax_unchecked(logits, axis=-1)  # (B, K)
    out = q * np.sum(p * s2 / v, axis=1, keepdims=True) + np.einsum("bnk,bk->bn", M, p * sz / v)
    out = out.astype(q.dtype, copy=False)  # float32 in, float32 out
    return out[0] if single else out


@finite_output("sigma2_0", "sigma2_z")
def bayes_risk_linear(n, d, sigma2_0, sigma2_z) -> float:
    """Bayes risk of the linear task per coordinate, Eq. (4) / n: d σ0² σZ² / ((σ0² + σZ²) n)."""
    n = check_int("n", n, minimum=1)
    d = check_int("d", d, minimum=1, maximum=n)
    s0, sz = check_positive("sigma2_0", sigma2_0), check_positive("sigma2_z", sigma2_z)
    return d * s0 * sz / ((s0 + sz) * n)


@finite_output("sigma2_0", "sigma2_z")
def optimal_linear_gamma(d, L, sigma2_0, sigma2_z) -> float:
    """Finite-L optimum of γ = αβ for γ Ŝ x̃, Ŝ = (1/L) Σ X_t X_tᵀ (linear attention, scaled identities, paper §3.1).

    γ*(L) = 1 / ((σ0² + σZ²)(1 + (d+1)/L)), from E[Ŝ²] = σ0⁴ (1 + (d+1)/L) P.
    """
    d = check_int("d", d, minimum=1)
    L = check_int("L", L, minimum=1)
    s0, sz = check_positive("sigma2_0", sigma2_0), check_positive("sigma2_z", sigma2_z)
    return 1.0 / ((s0 + sz) * (1.0 + (d + 1) / L))


@finite_output("sigma2_0", "sigma2_z", "gamma")
def linear_risk(n, d, L, sigma2_0, sigma2_z, gamma) -> float:
    """MSE per coordinate of γ Ŝ x̃ on the linear task at finite L (paper §3.1, exact at every L).

    E||γ Ŝ x̃ - x||² = d σ0² - 2γ d σ0⁴ + γ² σ0⁴ (1 + (d+1)/L) d (σ0² + σZ²), divided by n.
    """
    n = check_int("n", n, minimum=1)
    d = check_int("d", d, minimum=1, maximum=n)
    L = check_int("L", L, minimum=1)
    s0, sz = check_positive("sigma2_0", sigma2_0), check_positive("sigma2_z", sigma2_z)
    g = check_real("gamma", gamma)
    total = d * s0 - 2 * g * d * s0 * s0 + g * g * s0 * s0 * (1 + (d + 1) / L) * d * (s0 + sz)  # floats: inf, no raise
    return total / n


def mc_bayes_risk(task, *, rng, batch, L=1):
    """Monte-Carlo Bayes risk per coordinate: mean and standard error of ||E[x|x̃] - x||²/n over prompts.

    Works for every task with ``sample`` and ``posterior_mean`` (the oracle ignores the context, so L = 1 is
    enough). Returns ``(mean, stderr)``; stderr = sample std / sqrt(batch).
    """
    check_rng(rng)
    batch = check_int("batch", batch, minimum=2)
    L = check_int("L", L, minimum=1)
    for attr in ("sample", "posterior_mean"):
        if not callable(getattr(task, attr, None)):
            raise TypeError(f"task must have a {attr}() method (an icdmin task), got {type(task).__name__}")
    if batch * check_int("task.n", getattr(task, "n", None), minimum=1) * L > 2**31:
        raise ValueError(f"batch * n * L = {batch * task.n * L} context entries (> 2**31): reduce batch or L")
    prompts = task.sample(rng, batch, L)
    with np.errstate(all="ignore"):
        err = np.mean((task.posterior_mean(prompts) - prompts.x) ** 2, axis=1)  # (B,)
    if not np.all(np.isfinite(err)):
        raise ValueError("mc_bayes_risk: non-finite squared error (overflow: reduce the task's scale)")
    return float(err.mean()), float(err.std(ddof=1) / np.sqrt(batch))
