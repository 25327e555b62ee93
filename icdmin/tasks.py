"""The paper's three task families (§2.2) and their prompt samplers.

Every prompt draws its own task (a subspace, a sphere, a set of centres), then L + 1 clean tokens from it; the last
one is corrupted by one Gaussian noise vector and becomes the query (paper §2.1). Sampling is vectorised over the
batch (no Python loop over prompts), in NumPy only: fused Numba token builders were measured at 0.9-1.4x this code
and removed.

Legend: ``B`` batch, ``n`` ambient dimension, ``d`` subspace / sphere dimension, ``L`` clean context tokens,
``K`` mixture components. Tokens are columns.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import numpy as np

from ._arrays import as_float_array, check_int, check_positive, check_real, check_rng
from .bayes import (
    bayes_risk_linear,
    check_weights,
    posterior_mean_gmm,
    posterior_mean_gmm_general,
    posterior_mean_linear,
    posterior_mean_sphere,
)
from .prompts import Prompts, basis_and_tokens, haar_basis

__all__ = ["Prompts", "LinearTask", "SphereTask", "GMMTask", "haar_basis"]


def _check_sample_args(rng, batch, L):
    return check_rng(rng), check_int("batch", batch, minimum=1), check_int("L", L, minimum=1)


def _check_prompts(task, prompts) -> Prompts:
    if not isinstance(prompts, Prompts):
        raise TypeError(f"prompts must be a Prompts batch, got {type(prompts).__name__}")
    if prompts.n != task.n:
        raise ValueError(f"prompts has n={prompts.n}, the task has n={task.n}")
    return prompts


@dataclass(frozen=True)
class LinearTask:
    """Case 1 (§2.2.1): tokens N(offset, sigma2_0 P), P the projector onto a Haar-random d-dim subspace.

    Parameters
    ----------
    n, d : int
        Ambient and subspace dimension, 1 <= d < n.
    sigma2_0, sigma2_z : float
        Token spread σ0² and query noise σZ² (> 0). Paper setting: n=16, d=8, σ0²=2, σZ²=1.
    offset_scale : float
        Affine offsets m ~ U[-offset_scale, offset_scale]^n per prompt (authors' ``style_origin_subspace=False``
        uses 1); 0 (default) gives the paper's origin subspaces.
    noise : {"isotropic", "orthogonal"}
        Query noise N(0, σZ² I) (paper), or its part orthogonal to the subspace (authors' ``style_corruption_orthog``).
    transform : (n, n) array, optional
        A fixed invertible A (App. H): the prompt becomes (A X, A x_tilde). Stored as a tuple of rows; ``task.A``
        gives the array.
    target : {"clean", "transformed"}
        The target is the clean x (A.12, default) or A x (A.13, the authors' ``corr_scaling_matrix``).
    """

    n: int
    d: int
    sigma2_0: float = 2.0
    sigma2_z: float = 1.0
    _: KW_ONLY
    offset_scale: float = 0.0
    noise: str = "isotropic"
    transform: tuple | None = None
    target: str = "clean"

    def __post_init__(self):
        n = check_int("n", self.n, minimum=2)
        d = check_int("d", self.d, minimum=1)
        if d >= n:
            raise ValueError(f"d must be < n for the linear task, got d={d}, n={n}")
        set_ = object.__setattr__
        set_(self, "n", n)
        set_(self, "d", d)
        set_(self, "sigma2_0", check_positive("sigma2_0", self.sigma2_0))
        set_(self, "sigma2_z", check_positive("sigma2_z", self.sigma2_z))
        set_(self, "offset_scale", check_positive("offset_scale", self.offset_scale, allow_zero=True))
        if self.noise not in ("isotropic", "orthogonal"):
            raise ValueError(f"noise must be 'isotropic' or 'orthogonal', got {self.noise!r}")
        if self.target not in ("clean", "transformed"):
            raise ValueError(f"target must be 'clean' or 'transformed', got {self.target!r}")
        A = None
        if self.transform is not None:
            A = as_float_array("transform", self.transform, ndim=2).astype(np.float64)
            if A.shape != (n, n):
                raise ValueError(f"transform must have shape ({n}, {n}), got {A.shape}")
            if np.linalg.cond(A) > 1e12:  # beyond this, A^{-1} x_tilde loses more than 4 of 16 digits
                raise ValueError("transform must be invertible (condition number <= 1e12)")
            set_(self, "transform", tuple(tuple(float(v) for v in row) for row in A))
            A.setflags(write=False)
        set_(self, "_A", A)

    @property
    def A(self) -> np.ndarray | None:
        """The transform as an (n, n) read-only array, or None."""
        return self._A

    def sample(self, rng: np.random.Generator, batch: int, L: int) -> Prompts:
        """Draw ``batch`` prompts with L clean tokens each; every prompt has its own subspace (and offset).

        Only d normals per token are drawn: x_t = offset + σ0 V g_t with V (n, d) orthonormal, g_t ~ N(0, I_d).

        Shapes: -> Prompts with X (B, n, L), x_tilde, x, offset (B, n), basis (B, n, d).
        """
        rng, batch, L = _check_sample_args(rng, batch, L)
        n, d = self.n, self.d
        basis, X = basis_and_tokens(rng, batch, n, d, L, 0.0, np.sqrt(self.sigma2_0))  # (B, n, d), σ0 V g
        scaled = basis * np.sqrt(self.sigma2_0)  # (B, n, d)
        x = np.einsum("bnd,bd->bn", scaled, rng.standard_normal((batch, d)))  # (B, n) clean query
        offset = np.zeros((batch, n))
        if self.offset_scale > 0:
            offset = rng.uniform(-self.offset_scale, self.offset_scale, (batch, n))  # (B, n)
            X += offset[:, :, None]
            x += offset
        z = np.sqrt(self.sigma2_z) * rng.standard_normal((batch, n))  # (B, n)
        if self.noise == "orthogonal":
            z -= np.einsum("bnd,bd->bn", basis, np.einsum("bnd,bn->bd", basis, z))  # (I - P) z
        x_tilde = x + z
        if self._A is not None:  # App. H: E -> (A X, A x_tilde)
            X = np.matmul(self._A, X)  # (B, n, L)
            x_tilde = x_tilde @ self._A.T
            if self.target == "transformed":
                x = x @ self._A.T
        return Prompts(X=X, x_tilde=x_tilde, x=x, task=self, basis=basis, offset=offset)

    def posterior_mean(self, prompts: Prompts) -> np.ndarray:
        """Oracle E[target | x_tilde] knowing each prompt's subspace and offset (Eq. 3, App. H).

        Isotropic noise: offset + σ0²/(σ0²+σZ²) P (x̃ - offset). Orthogonal noise: the projection itself (exact).
        With a transform A the clean query is A^{-1} x̃; the target "transformed" multiplies the result by A.

        Shapes: -> (B, n).
        """
        prompts = _check_prompts(self, prompts)
        q = prompts.x_tilde
        if self._A is not None:
            q = np.linalg.solve(self._A, q.T).T  # (B, n) back to clean coordinates
        sigma2_z = self.sigma2_z if self.noise == "isotropic" else 0.0
        if sigma2_z == 0.0:  # z ⊥ subspace: P(x̃ - m) = x - m exactly
            c = np.einsum("bnd,bn->bd", prompts.basis, q - prompts.offset)  # (B, d)
            out = prompts.offset + np.einsum("bnd,bd->bn", prompts.basis, c)
        else:
            out = posterior_mean_linear(q, prompts.basis, self.sigma2_0, sigma2_z, offset=prompts.offset)
        if self._A is not None and self.target == "transformed":
            out = out @ self._A.T
        return out

    def bayes_risk(self) -> float:
        """Bayes risk per coordinate (Eq. 4 divided by n); 0 for orthogonal noise.

        Posterior covariance s P with s = σ0²σZ²/(σ0²+σZ²); for the transformed target the risk is
        s E tr(A P Aᵀ) / n = s (d/n) ||A||_F² / n, since E[P] = (d/n) I for a Haar subspace.
        """
        if self.noise == "orthogonal":
            return 0.0
        s = self.sigma2_0 * self.sigma2_z / (self.sigma2_0 + self.sigma2_z)
        if self._A is not None and self.target == "transformed":
            return s * self.d / self.n * float(np.sum(self._A**2)) / self.n
        return bayes_risk_linear(self.n, self.d, self.sigma2_0, self.sigma2_z)


@dataclass(frozen=True)
class SphereTask:
    """Case 2 (§2.2.2): tokens uniform on the radius-R d-sphere in a Haar-random (d+1)-dim subspace of R^n.

    Paper setting: n=16, d=8, R=1, σZ²=0.1. Requires 1 <= d and d + 1 <= n.
    """

    n: int
    d: int
    R: float = 1.0
    sigma2_z: float = 0.1

    def __post_init__(self):
        n = check_int("n", self.n, minimum=2)
        d = check_int("d", self.d, minimum=1)
        if d + 1 > n:
            raise ValueError(f"d + 1 must be <= n for the sphere task, got d={d}, n={n}")
        for name, value in (("n", n), ("d", d), ("R", check_positive("R", self.R)),
                            ("sigma2_z", check_positive("sigma2_z", self.sigma2_z))):
            object.__setattr__(self, name, value)

    def sample(self, rng: np.random.Generator, batch: int, L: int) -> Prompts:
        """Draw ``batch`` prompts: x_t = V R g_t/||g_t||, g_t ~ N(0, I_{d+1}), V (n, d+1) Haar; one noise vector.

        Shapes: -> Prompts with X (B, n, L), x_tilde, x (B, n), basis (B, n, d+1).
        """
        rng, batch, L = _check_sample_args(rng, batch, L)
        k = self.d + 1
        basis, X = basis_and_tokens(rng, batch, self.n, k, L, self.R)  # (B, n, d+1), V R g_t/||g_t||
        gq = rng.standard_normal((batch, k))  # (B, d+1)
        gq *= self.R / np.linalg.norm(gq, axis=1, keepdims=True)
        x = np.einsum("bnk,bk->bn", basis, gq)  # (B, n)
        x_tilde = x + np.sqrt(self.sigma2_z) * rng.standard_normal((batch, self.n))
        return Prompts(X=X, x_tilde=x_tilde, x=x, task=self, basis=basis)

    def posterior_mean(self, prompts: Prompts) -> np.ndarray:
        """Oracle E[x | x_tilde] knowing each prompt's sphere (Eq. 6). Shapes: -> (B, n)."""
        prompts = _check_prompts(self, prompts)
        return posterior_mean_sphere(prompts.x_tilde, prompts.basis, self.R, self.sigma2_z)


@dataclass(frozen=True)
class GMMTask:
    """Case 3 (§2.2.3): isotropic Gaussian mixture with K centres uniform on the radius-R sphere of R^n.

    Parameters
    ----------
    n, K : int
        Ambient dimension (>= 1) and number of components (>= 1).
    sigma2_0 : float
        Common component variance σ0² (>= 0; 0 is the ideal point-mass mixture of Eq. 8).
    sigma2_z, R : float
        Query noise σZ² and centre radius R (> 0). Paper setting: n=16, K=8, σ0²=0.02, σZ²=0.1, R=1.
    weights : sequence of K floats, optional
        Mixture weights w_a (>= 0, summing to 1); uniform by default. Token labels are drawn from them.
    sigma2_components : sequence of K floats, optional
        Per-component variances σ_a² (>= 0, App. C.3); they replace sigma2_0 when given.
    """

    n: int
    K: int
    sigma2_0: float = 0.02
    sigma2_z: float = 0.1
    R: float = 1.0
    weights: tuple | None = None
    _: KW_ONLY
    sigma2_components: tuple | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "n", check_int("n", self.n, minimum=1))
        K = check_int("K", self.K, minimum=1)
        set_(self, "K", K)
        set_(self, "sigma2_0", check_positive("sigma2_0", self.sigma2_0, allow_zero=True))
        set_(self, "sigma2_z", check_positive("sigma2_z", self.sigma2_z))
        set_(self, "R", check_positive("R", self.R))
        if self.weights is not None:
            w = check_weights(self.weights, K)
            if w.ndim != 1:
                raise ValueError(f"weights must have shape ({K},), got {w.shape}")
            set_(self, "weights", tuple(float(v) for v in w))
        if self.sigma2_components is not None:
            s = as_float_array("sigma2_components", self.sigma2_components, ndim=1)
            if s.shape != (K,):
                raise ValueError(f"sigma2_components must have shape ({K},), got {s.shape}")
            set_(self, "sigma2_components", tuple(check_positive("sigma2_components", check_real(
                "sigma2_components", float(v)), allow_zero=True) for v in s))

    def _weights(self) -> np.ndarray:
        return np.full(self.K, 1.0 / self.K) if self.weights is None else np.asarray(self.weights)

    def sample(self, rng: np.random.Generator, batch: int, L: int) -> Prompts:
        """Draw ``batch`` prompts: centres R g/||g||; labels ~ weights per token; token = centre + N(0, σ_a² I).

        Shapes: -> Prompts with X (B, n, L), x_tilde, x (B, n), centers (B, n, K), weights (B, K), labels (B, L+1).
        """
        rng, batch, L = _check_sample_args(rng, batch, L)
        n, K = self.n, self.K
        centers = rng.standard_normal((batch, n, K))  # (B, n, K)
        centers *= self.R / np.sqrt(np.einsum("bnk,bnk->bk", centers, centers))[:, None, :]
        w = self._weights()
        if self.weights is None:
            labels = rng.integers(0, K, (batch, L + 1))  # (B, L+1)
        else:  # inverse CDF; zero-weight components are never drawn (cdf flat there)
            cdf = np.cumsum(w)
            cdf /= cdf[-1]
            labels = np.searchsorted(cdf, rng.random((batch, L + 1)), side="right")  # (B, L+1)
        std = (np.sqrt(self.sigma2_0) if self.sigma2_components is None
               else np.sqrt(np.asarray(self.sigma2_components))[labels])  # scalar or (B, L+1)
        X = rng.standard_normal((batch, n, L))  # (B, n, L)
        X *= std if np.ndim(std) == 0 else std[:, None, :L]
        onehot = np.zeros((batch, K, L))  # (B, K, L); the gather μ_{label} as a matmul beats take_along_axis 3x
        np.put_along_axis(onehot, labels[:, None, :L], 1.0, axis=1)
        X += np.matmul(centers, onehot)  # + μ_{label_t}, exact: one term times 1.0
        x = rng.standard_normal((batch, n))  # (B, n)
        x *= std if np.ndim(std) == 0 else std[:, L, None]
        x += np.take_along_axis(centers, labels[:, None, L:], axis=2)[:, :, 0]
        x_tilde = x + np.sqrt(self.sigma2_z) * rng.standard_normal((batch, n))
        weights = np.repeat(w[None, :], batch, axis=0)  # (B, K)
        return Prompts(X=X, x_tilde=x_tilde, x=x, task=self, centers=centers, weights=weights, labels=labels)

    def posterior_mean(self, prompts: Prompts) -> np.ndarray:
        """Oracle E[x | x_tilde] knowing each prompt's centres and weights: Eq. (7) (Eq. 8 if σ0² = 0), or the
        App. C.3 mixture with per-component variances. Shapes: -> (B, n)."""
        prompts = _check_prompts(self, prompts)
        if self.sigma2_components is None:
            return posterior_mean_gmm(prompts.x_tilde, prompts.centers, self.sigma2_0, self.sigma2_z,
                                      prompts.weights)
        return posterior_mean_gmm_general(prompts.x_tilde, prompts.centers, np.asarray(self.sigma2_components),
                                          self.sigma2_z, prompts.weights)
