"""Context-only estimators (they see only the prompt, not the task) and trivial baselines.

Eq. (10) (linear attention with the ideal weights), Eq. (13) (softmax attention with α = 1, β = 1/σZ²), the
empirical-prior Tweedie estimator (an extension: Eq. 14 attention with W_K = W_Q = I/σZ), the authors' affine-PCA
projection baselines (mattsmart/in-context-denoising at commit c8aaeb3, src/nn_loss_baselines.py), and the zero /
noisy-query / context-mean predictors.

Every function takes ``(X, x_tilde, ...)`` for one prompt, X (n, L) and x_tilde (n,), or a batch, X (B, n, L) and
x_tilde (B, n), and returns (n,) or (B, n) to match. The O(BnL) NaN/inf scan of X is folded into a quantity the
estimator computes anyway (any non-finite entry of X makes Xᵀx̃ or X Xᵀ non-finite).

Legend: ``B`` batch, ``n`` token dimension, ``L`` clean context tokens.
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_float_array, check_context, check_positive
from .bessel import ive_ratio
from .dam import softmax

__all__ = [
    "linear_attention_estimator",
    "softmax_attention_estimator",
    "tweedie_estimator",
    "projection_estimator",
    "sphere_projection_estimator",
    "zero_estimator",
    "query_estimator",
    "context_mean_estimator",
]


def _context(X, x_tilde):
    """check_context with the cheap query scan only; callers check a derived quantity for X."""
    X3, q2, single = check_context(X, x_tilde, finite=False)
    as_float_array("x_tilde", q2)  # finiteness of the query (B n values)
    return X3, q2, single


_NONFINITE = "X contains NaN or inf (or values so large that X^T x_tilde overflows)"


def _require_finite(derived) -> None:
    if not np.all(np.isfinite(derived)):
        raise ValueError(_NONFINITE)


def _scores(X3, q2):
    """u_t = ⟨X_t, x̃⟩ for every token, with the finiteness check of X. Shapes: -> (B, L)."""
    u = np.einsum("bnl,bn->bl", X3, q2)  # (B, L)
    if np.any(q2 == 0):  # a BLAS may skip zero query entries, hiding a NaN of X from u: scan X itself
        _require_finite(X3)
    _require_finite(u)
    return u


def _out(out, single):
    return out[0] if single else out


def linear_attention_estimator(X, x_tilde, sigma2_0, sigma2_z):
    """Eq. (10): σ0²/(σ0²+σZ²) P̂ x̃ = 1/((σ0²+σZ²) L) Σ_t X_t ⟨X_t, x̃⟩ (linear attention, αβ = 1/(σ0²+σZ²)).

    Shapes: X (n, L) | (B, n, L), x_tilde (n,) | (B, n) -> (n,) | (B, n).
    """
    X3, q2, single = _context(X, x_tilde)
    v = check_positive("sigma2_0", sigma2_0) + check_positive("sigma2_z", sigma2_z)
    u = _scores(X3, q2)  # (B, L)
    return _out(np.einsum("bnl,bl->bn", X3, u) / (v * X3.shape[2]), single)  # (B, n)


def softmax_attention_estimator(X, x_tilde, sigma2_z):
    """Eq. (13): Σ_t X_t e^{⟨X_t, x̃⟩/σZ²} / Σ_t e^{⟨X_t, x̃⟩/σZ²} (softmax attention, α = 1, β = 1/σZ²).

    Shapes: X (n, L) | (B, n, L), x_tilde (n,) | (B, n) -> (n,) | (B, n).
    """
    X3, q2, single = _context(X, x_tilde)
    sz = check_positive("sigma2_z", sigma2_z)
    a = softmax(_scores(X3, q2) / sz, axis=-1)  # (B, L)
    return _out(np.einsum("bnl,bl->bn", X3, a), single)


def tweedie_estimator(X, x_tilde, sigma2_z):
    """Posterior mean under the empirical prior (1/L) Σ_t δ_{X_t} (Tweedie's formula; an extension, not in the paper).

    x̂ = x̃ + σZ² ∇ log p̂_σ(x̃) = Σ_t X_t w_t, w = softmax_t(-||x̃ - X_t||² / 2σZ²)
      = softmax_t((⟨X_t, x̃⟩ - ||X_t||²/2) / σZ²): Eq. (13) with the token-norm correction (= Eq. 14 with
    W_K = W_Q = I/σZ, W_PV = I). Equals Eq. (13) when all ||X_t|| are equal.

    Shapes: X (n, L) | (B, n, L), x_tilde (n,) | (B, n) -> (n,) | (B, n).
    """
    X3, q2, single = _context(X, x_tilde)
    sz = check_positive("sigma2_z", sigma2_z)
    u = _scores(X3, q2)  # (B, L)
    u -= 0.5 * np.einsum("bnl,bnl->bl", X3, X3)  # - ||X_t||²/2
    _require_finite(u)
    a = softmax(u / sz, axis=-1)  # (B, L)
    return _out(np.einsum("bnl,bl->bn", X3, a), single)


def _second_moment(X3):
    """S = X Xᵀ / L with the finiteness check of X (its diagonal is Σ_t X_it²). Shapes: -> (B, n, n)."""
    S = np.matmul(X3, X3.transpose(0, 2, 1)) / X3.shape[2]  # (B, n, n)
    _require_finite(np.diagonal(S, axis1=1, axis2=2))
    return S


def _principal_basis(C, eig_tol):
    """Eigenvectors of the symmetric C with eigenvalue > eig_tol, the others zeroed. Shapes: -> (B, n, n), (B,)."""
    w, V = np.linalg.eigh(C)  # (B, n), (B, n, n)
    keep = w > eig_tol  # (B, n)
    return V * keep[:, None, :], keep.sum(axis=1)


def projection_estimator(X, x_tilde, *, shrink=None, eig_tol=1e-4):
    """Affine PCA projection of the query onto the context's span (the authors' ``proj_affine_subspace_estimator``).

    μ̂ = mean_t X_t; C = (1/L) Σ_t (X_t - μ̂)(X_t - μ̂)ᵀ; V = eigenvectors of C with eigenvalue > eig_tol;
    x̂ = μ̂ + s V Vᵀ (x̃ - μ̂), with s = shrink (e.g. σ0²/(σ0²+σZ²), Eq. 3) or 1. Paper §2.2.1. (The authors scale
    the whole affine projection by s; here only the deviation from μ̂, the Bayes form for an affine subspace. The
    two agree for the paper's origin subspaces up to O(1/√L).) C is formed as X Xᵀ/L - μ̂ μ̂ᵀ: its null-space
    eigenvalues are ~eps ||μ̂||², far below eig_tol unless offsets are ~1e6.

    Shapes: X (n, L) | (B, n, L), x_tilde (n,) | (B, n) -> (n,) | (B, n).
    """
    X3, q2, single = _context(X, x_tilde)
    s = 1.0 if shrink is None else check_positive("shrink", shrink)
    eig_tol = check_positive("eig_tol", eig_tol)
    mu = X3.mean(axis=2)  # (B, n)
    C = _second_moment(X3) - mu[:, :, None] * mu[:, None, :]  # (B, n, n)
    V, _ = _principal_basis(C, eig_tol)  # (B, n, n)
    c = np.einsum("bnk,bn->bk", V, q2 - mu)  # (B, n)
    return _out(mu + s * np.einsum("bnk,bk->bn", V, c), single)


def sphere_projection_estimator(X, x_tilde, sigma2_z, *, bessel="paper", eig_tol=1e-4):
    """Context-only sphere baseline: PCA span, radius from the context, Bessel shrink (paper §2.2.2, Eq. 6).

    V = eigenvectors of S = (1/L) Σ X_t X_tᵀ with eigenvalue > eig_tol (k of them, so the sphere dimension is
    d̂ = k - 1); R̂ = sqrt(tr S) (RMS token norm); p = V Vᵀ x̃; κ = R̂ ||p|| / σZ²; x̂ = A(κ) R̂ p / ||p||.
    For a centred sphere μ̂ lies in span(V), so this equals the authors' affine projection.

    bessel : {"paper", "authors", None}
        "paper": A = I_{(d̂+1)/2}(κ)/I_{(d̂-1)/2}(κ) (Eq. 6); "authors": I_{d̂-1/2}(κ)/I_{d̂-3/2}(κ), the order used in
        the authors' code (src/nn_loss_baselines.py at commit c8aaeb3), correct only for d̂ = 2; None: A = 1
        (unshrunk radial projection, the label "P x̃ (onto S)").

    Shapes: X (n, L) | (B, n, L), x_tilde (n,) | (B, n) -> (n,) | (B, n).
    """
    X3, q2, single = _context(X, x_tilde)
    sz = check_positive("sigma2_z", sigma2_z)
    eig_tol = check_positive("eig_tol", eig_tol)
    if bessel not in ("paper", "authors", None):
        raise ValueError(f"bessel must be 'paper', 'authors' or None, got {bessel!r}")
    S = _second_moment(X3)  # (B, n, n)
    R_hat = np.sqrt(np.trace(S, axis1=1, axis2=2))  # (B,)
    V, k = _principal_basis(S, eig_tol)  # (B, n, n), (B,)
    c = np.einsum("bnk,bn->bk", V, q2)  # (B, n) = Vᵀ x̃
    r = np.sqrt(np.einsum("bk,bk->b", c, c))  # (B,) ||p||
    if bessel is None:
        A = np.ones_like(r)
    else:
        d_hat = k - 1.0
        nu = (d_hat + 1.0) / 2.0 if bessel == "paper" else d_hat - 0.5
        A = ive_ratio(nu, R_hat * r / sz)  # (B,)
    factor = np.zeros(r.shape)
    np.divide(A * R_hat, r, out=factor, where=r > 0)  # p = 0 -> output 0
    scaled = c * factor[:, None].astype(c.dtype, copy=False)  # (B, n)
    return _out(np.einsum("bnk,bk->bn", V, scaled), single)


def zero_estimator(X, x_tilde):
    """Predict 0 (the prior mean of every task in the paper). Shapes: -> like x_tilde."""
    X3, q2, single = check_context(X, x_tilde, finite=False)
    return _out(np.zeros_like(q2), single)


def query_estimator(X, x_tilde):
    """Predict the noisy query x̃ itself. Shapes: -> like x_tilde."""
    X3, q2, single = check_context(X, x_tilde, finite=False)
    as_float_array("x_tilde", q2)
    return _out(q2.copy(), single)


def context_mean_estimator(X, x_tilde):
    """Predict the context mean (1/L) Σ_t X_t. Shapes: -> like x_tilde."""
    X3, q2, single = _context(X, x_tilde)
    mu = X3.mean(axis=2)  # (B, n)
    _require_finite(mu)
    return _out(mu, single)
