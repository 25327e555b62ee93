"""``Prompts``: a batch of in-context denoising prompts with each prompt's own task parameters, the Haar basis
sampler and the token builder shared by the task families of :mod:`icdmin.tasks`.

Legend: ``B`` batch, ``n`` ambient dimension, ``d`` subspace / sphere dimension, ``L`` clean context tokens,
``K`` mixture components. Tokens are columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._arrays import as_float_array, check_context, check_int, check_rng

__all__ = ["Prompts", "haar_basis"]


@dataclass(frozen=True, eq=False)
class Prompts:
    """A batch of prompts, each with its own task parameters (None where a field does not apply).

    Shapes: X (B, n, L); x_tilde, x (B, n); basis (B, n, d) [LinearTask] or (B, n, d+1) [SphereTask], orthonormal
    columns; offset (B, n) [LinearTask]; centers (B, n, K), weights (B, K), labels (B, L+1) [GMMTask; the last
    label is the query's component]. ``x`` is the target: the clean query (or A times it, ``target="transformed"``).
    """

    X: np.ndarray
    x_tilde: np.ndarray
    x: np.ndarray
    task: object
    basis: np.ndarray | None = None
    offset: np.ndarray | None = None
    centers: np.ndarray | None = None
    weights: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n(self) -> int:
        """Ambient dimension."""
        return self.X.shape[1]

    @property
    def L(self) -> int:
        """Number of clean context tokens."""
        return self.X.shape[2]

    @classmethod
    def from_arrays(cls, X, x_tilde, x) -> Prompts:
        """Prompts from one's own arrays: contexts, corrupted queries and their targets (no task, so no oracle).

        One prompt, X (n, L), x_tilde (n,), x (n,), becomes a batch of one. The arrays are validated (real,
        finite, matching shapes) and copied, as float64 (float32 input stays float32). ``task`` and the
        per-prompt task parameters are None: :func:`icdmin.train` and :func:`icdmin.evaluate` accept the
        batch and report no oracle (Bayes) MSE for it.

        Shapes: X (B, n, L) or (n, L); x_tilde, x (B, n) or (n,) -> Prompts with B prompts.
        """
        X3, q2, single = check_context(X, x_tilde)  # (B, n, L), (B, n)
        x2 = as_float_array("x", x, ndim=(1, 2))
        x2 = x2[None] if single and x2.ndim == 1 else x2  # (B, n)
        if x2.shape != q2.shape:
            raise ValueError(f"x must have the shape of x_tilde {tuple(np.shape(x_tilde))}, got {np.shape(x)}")
        dtype = np.result_type(X3.dtype, q2.dtype, x2.dtype)
        return cls(X=np.array(X3, dtype=dtype), x_tilde=np.array(q2, dtype=dtype), x=np.array(x2, dtype=dtype),
                   task=None)

    def subset(self, idx) -> Prompts:
        """The prompts selected by ``idx`` (integer indices or a boolean mask of length B), as a new batch."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"idx: boolean mask must have shape ({len(self)},), got {idx.shape}")
        elif idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise ValueError(f"idx must be a 1-d integer array or a boolean mask, got dtype {idx.dtype}")
        elif idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(f"idx out of range for a batch of {len(self)} prompts")
        if idx.size == 0 or (idx.dtype == bool and not idx.any()):
            raise ValueError("idx selects no prompt")

        def take(a):
            return None if a is None else a[idx]

        return Prompts(X=self.X[idx], x_tilde=self.x_tilde[idx], x=self.x[idx], task=self.task,
                       basis=take(self.basis), offset=take(self.offset), centers=take(self.centers),
                       weights=take(self.weights), labels=take(self.labels))


def haar_basis(rng: np.random.Generator, batch: int, n: int, k: int) -> np.ndarray:
    """Orthonormal bases of Haar-random k-dim subspaces of R^n (the paper's random subspaces, §2.2).

    QR of a Gaussian matrix with the sign fix Q ← Q diag(sign diag R) (Mezzadri 2007): the columns are then
    Haar on the Stiefel manifold, so their span is uniform on the Grassmannian G(k, n).
    rng: a ``numpy.random.Generator``; batch >= 1, n >= 1, 1 <= k <= n integers.

    Shapes: -> (batch, n, k).
    """
    check_rng(rng)
    batch, n = check_int("batch", batch, minimum=1), check_int("n", n, minimum=1)
    k = check_int("k", k, minimum=1, maximum=n)
    if batch * n * k > 2**31:
        raise ValueError(f"batch * n * k = {batch * n * k} entries (> 2**31): reduce batch, n or k")
    return haar_from_normals(rng.standard_normal((batch, n, k)))


def haar_from_normals(G: np.ndarray) -> np.ndarray:
    """The orthonormal factor of ``haar_basis`` from its Gaussian draw G, sign-fixed. Shapes: G (B, n, k) -> same,
    with 1 <= k <= n and G finite (a fresh array)."""
    G = as_float_array("G", G, ndim=3)
    if min(G.shape) < 1 or G.shape[2] > G.shape[1]:
        raise ValueError(f"G must have shape (B, n, k) with B, n, k >= 1 and k <= n, got {G.shape}")
    Q, Rm = np.linalg.qr(G)  # (B, n, k), (B, k, k)
    sign = np.sign(np.diagonal(Rm, axis1=1, axis2=2))  # (B, k)
    sign[sign == 0] = 1.0  # probability zero; keeps the columns unit-norm
    return Q * sign[:, None, :]


def basis_and_tokens(rng, batch, n, k, L, R, scale=1.0):
    """Draw a Haar basis V (``haar_basis``) and then g ~ N(0, I_k) per token; return V and the tokens
    scale V g_t (R = 0; x_t = σ0 V g_t, paper §2.2.1) or V R g_t/||g_t|| (R > 0, onto the radius-R sphere, §2.2.2).

    Shapes: -> V (B, n, k), X (B, n, L).
    """
    V = haar_basis(rng, batch, n, k)  # (B, n, k)
    g = rng.standard_normal((batch, k, L))  # (B, k, L)
    if R > 0:
        g *= R / np.sqrt(np.einsum("bkl,bkl->bl", g, g))[:, None, :]  # onto the radius-R sphere
    return V, np.matmul(V * scale if scale != 1.0 else V, g)  # (B, n, L)
