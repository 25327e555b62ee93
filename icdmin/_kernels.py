"""Fused Numba kernels for one-layer attention: the only module that imports numba.

The NumPy code in ``attention.py`` is the specification; these loops must match it (rtol 1e-10 in float64, tests in
``tests/test_kernels.py``). Each prompt is handled by one thread (``prange`` over the batch): its context, 16 × 499
float64 = 64 KB, stays in the core's L2 cache between the forward and the backward passes, so it is read from memory
once. Every prompt writes its own loss and gradient slot; the slots are summed afterwards in prompt order, so the
result does not depend on the number of threads. Loops run along the contiguous token axis t, and
``fastmath={"reassoc", "contract"}`` lets LLVM vectorise the sums over t (FMA, SIMD); the exponential is a vectorised
Cody-Waite/Taylor ``_exp_shifted`` (1e-16 relative, 1.4x faster softmax than libm's scalar exp, measured).
Every vectorised loop runs over a whole row from index 0: in numba 0.68 a ``range(lo, hi)`` loop with lo > 0 did not
vectorise (5x slower, measured), and splitting the context into L1-sized chunks (online softmax) was measured
slower than these whole-row passes, whose rows stay in L2.

Kinds are integer codes (``KIND_CODES``), branched on outside the hot loops, so there is one kernel per purpose
(forward, loss and gradients) and dtype (float64, float32): four compiled signatures in all (about 17 s to compile
from scratch, 1 s to load from the on-disk cache), plus ``stream_sum``, the benchmark's bandwidth probe, and
``pca_project``, the per-prompt PCA projection of the projection baselines (``baselines.py``), and the samplers'
token builders ``span_tokens_serial`` and ``mixture_tokens`` (``tasks.py``).

Legend: ``B`` batch, ``n`` token dimension, ``L`` context length; per prompt q' = W_KQ x̃ (paper §3.2).
"""

from __future__ import annotations

import os

import numpy as np

# Numba's OpenMP layer (GNU libgomp) spin-waits at the end of every parallel region by default. On a shared or
# oversubscribed machine (other processes, or `reproduce --jobs 2`), a spinning thread burns the time slice that its
# descheduled partner needs: measured here under load, 2 threads fell to a median of 3k prompts/s against 230k/s on
# one thread; with passive waiting 2 threads never fall below the one-thread speed. Read by libgomp when numba
# first starts its thread pool (after this import); an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import numba

    HAS_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; this keeps vendored copies working
    numba = None
    HAS_NUMBA = False

# The dispatchers in attention.py use the kernels only when they are compiled: under NUMBA_DISABLE_JIT=1 they
# would be plain Python loops (correct, tested, but far slower than NumPy).
JIT_ENABLED = HAS_NUMBA and not numba.config.DISABLE_JIT

KIND_CODES = {"linear": 0, "softmax": 1, "gaussian": 2}
LINEAR, SOFTMAX, GAUSSIAN = 0, 1, 2

__all__ = ["HAS_NUMBA", "JIT_ENABLED", "KIND_CODES", "forward", "loss_and_grads", "pca_project",
           "span_tokens_serial", "mixture_tokens"]


def njit(parallel: bool = False):
    """The one decorator factory for every kernel (numba-stats style); the identity without numba."""
    if not HAS_NUMBA:
        return lambda fn: fn
    return numba.njit(
        cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"}, parallel=parallel
    )


prange = numba.prange if HAS_NUMBA else range


LOG2E = 1.4426950408889634  # 1 / ln 2
LN2_HI = 0.6931471803691238  # ln 2 split in two (Cody-Waite): LN2_HI has 32 significant bits, so k * LN2_HI is exact
LN2_LO = 1.9082149292705877e-10


@njit()
def _exp_shifted(a, m, bits):
    """a[t] <- exp(a[t] - m) for a[t] <= m, in a loop LLVM vectorises (libm's exp is a scalar call).

    exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2] (Cody-Waite), exp(r) by its Taylor
    series to degree 12 (remainder < 0.35^13/13! = 2e-16), 2^k from the exponent bits. x is clamped at -700: the
    weight exp(-700) < 1e-304 is negligible next to the largest weight, 1. Relative error ~1e-16 (tests: parity
    with NumPy at rtol 1e-10). Scratch: bits (L,) int64.
    """
    L = a.shape[0]
    for t in range(L):
        x = max(a[t] - m, -700.0)
        k = -int(0.5 - x * LOG2E)  # round(x / ln 2), x <= 0
        r = x - k * LN2_HI - k * LN2_LO
        p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (
            1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (
                1.0 / 479001600))))))))))))
        a[t] = p
        bits[t] = (k + 1023) << 52
    scale = bits.view(np.float64)
    for t in range(L):
        a[t] *= scale[t]


@njit()
def _col_pass(Xb, c, out):
    """out[t] = Σ_i Xb[i, t] c[i] (a Xᵀc product along the contiguous t axis), four rows per sweep so that out is
    loaded and stored n/4 times instead of n (measured 20 % faster than one row per sweep). Shapes: (n, L), (n,)
    -> (L,)."""
    n, L = Xb.shape
    for t in range(L):
        out[t] = 0.0
    i0 = n % 4
    for i in range(i0):
        x0, c0 = Xb[i], c[i]
        for t in range(L):
            out[t] += x0[t] * c0
    for i in range(i0, n, 4):
        x0, x1, x2, x3 = Xb[i], Xb[i + 1], Xb[i + 2], Xb[i + 3]  # row views, looped from 0 (vectorises)
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        for t in range(L):
            out[t] += x0[t] * c0 + x1[t] * c1 + x2[t] * c2 + x3[t] * c3


@njit()
def _row_pass(Xb, w, out):
    """out[i] = Σ_t Xb[i, t] w[t] (an X w product: one dot product per row). Shapes: (n, L), (L,) -> (n,)."""
    n, L = Xb.shape
    for i in range(n):
        x0 = Xb[i]
        acc = 0.0
        for t in range(L):
            acc += x0[t] * w[t]
        out[i] = acc


@njit()
def _prompt_forward(kind, Xb, q, W_KQ, qk, a, u, y, bits):
    """One prompt's forward pass: a (weights) and u = X a. Scratch y (L,). Shapes: Xb (n, L), q (n,)."""
    n, L = Xb.shape
    for i in range(n):  # qk = W_KQ q  (n,)
        acc = 0.0
        for j in range(n):
            acc += W_KQ[i, j] * q[j]
        qk[i] = acc
    _col_pass(Xb, qk, a)  # z = Xᵀ qk  (L,)
    if kind == GAUSSIAN:  # z_t −= ½ X_tᵀ W_KQ X_t, one row of W_KQ X at a time
        for i in range(n):
            _col_pass(Xb, W_KQ[i], y)  # y = (W_KQ X)[i]  (L,)
            x0 = Xb[i]
            for t in range(L):
                a[t] -= 0.5 * x0[t] * y[t]
    if kind == LINEAR:  # a = z / L  (Eq. 11)
        inv_L = 1.0 / L
        for t in range(L):
            a[t] *= inv_L
    else:  # a = softmax(z), max-shifted  (Eqs. 12, 14)
        m = a[0]
        for t in range(1, L):
            m = max(m, a[t])
        _exp_shifted(a, m, bits)
        s = 0.0
        for t in range(L):
            s += a[t]
        inv_s = 1.0 / s
        for t in range(L):
            a[t] *= inv_s
    _row_pass(Xb, a, u)  # u = X a  (n,)


@njit(parallel=True)
def forward(kind, X, x_tilde, W_KQ, W_PV):
    """Attention output W_PV X a of every prompt (forward only, for evaluation). Shapes: X (B, n, L) -> (B, n)."""
    B, n, L = X.shape
    out = np.empty((B, n), X.dtype)
    for b in prange(B):
        qk = np.empty(n, X.dtype)
        a = np.empty(L, X.dtype)
        u = np.empty(n, X.dtype)
        y = np.empty(L if kind == GAUSSIAN else 0, X.dtype)
        _prompt_forward(kind, X[b], x_tilde[b], W_KQ, qk, a, u, y, np.empty(L, np.int64))
        for i in range(n):  # out = W_PV u
            acc = 0.0
            for j in range(n):
                acc += W_PV[i, j] * u[j]
            out[b, i] = acc
    return out


@njit(parallel=True)
def loss_and_grads(kind, X, x_tilde, x, W_KQ, W_PV, index):
    """Fused forward + MSE + backward for every prompt; returns (loss, dW_KQ, dW_PV) as attention.loss_and_grads.

    The batch is the prompts ``index`` of X, x_tilde, x, read in place: a training loop passes its whole training
    set and each mini-batch's indices, and no gathered copy of the contexts is made.

    Shapes: X (N, n, L), x_tilde, x (N, n), W_KQ, W_PV (n, n), index (B,) int64 -> scalar, (n, n), (n, n).
    """
    B = index.shape[0]
    n, L = X.shape[1], X.shape[2]
    scale = 2.0 / (B * n)  # dloss/dout = 2 (out − x) / (B n)
    slot_loss = np.empty(B, np.float64)
    slot_KQ = np.empty((B, n, n), X.dtype)
    slot_PV = np.empty((B, n, n), X.dtype)
    for b in prange(B):
        p = index[b]
        Xb = X[p]
        q = x_tilde[p]
        qk = np.empty(n, X.dtype)
        a = np.empty(L, X.dtype)
        u = np.empty(n, X.dtype)
        y = np.empty(L if kind == GAUSSIAN else 0, X.dtype)
        _prompt_forward(kind, Xb, q, W_KQ, qk, a, u, y, np.empty(L, np.int64))
        # out = W_PV u; loss_b = |out − x|²; r = dloss/dout
        r = np.empty(n, X.dtype)
        lb = 0.0
        for i in range(n):
            acc = 0.0
            for j in range(n):
                acc += W_PV[i, j] * u[j]
            d = acc - x[p, i]
            lb += d * d
            r[i] = scale * d
        slot_loss[b] = lb
        # dW_PV = r uᵀ;  du = W_PVᵀ r
        du = np.zeros(n, X.dtype)
        for i in range(n):
            for j in range(n):
                slot_PV[b, i, j] = r[i] * u[j]
                du[j] += W_PV[i, j] * r[i]
        # da = Xᵀ du  (L,), stored in dz
        dz = np.empty(L, X.dtype)
        _col_pass(Xb, du, dz)
        if kind == LINEAR:  # a = z / L
            inv_L = 1.0 / L
            for t in range(L):
                dz[t] *= inv_L
        else:  # a = softmax(z): dz = a ⊙ (da − aᵀda), and aᵀda = aᵀXᵀdu = uᵀdu
            c = 0.0
            for i in range(n):
                c += u[i] * du[i]
            for t in range(L):
                dz[t] = a[t] * (dz[t] - c)
        # z = Xᵀ qk  ->  dqk = X dz;  qk = W_KQ q  ->  dW_KQ = dqk qᵀ
        dqk = np.empty(n, X.dtype)
        _row_pass(Xb, dz, dqk)
        for i in range(n):
            for j in range(n):
                slot_KQ[b, i, j] = dqk[i] * q[j]
        if kind == GAUSSIAN:  # z −= ½ X_tᵀ W_KQ X_t  ->  dW_KQ −= ½ Σ_t dz_t X_t X_tᵀ
            for i in range(n):
                x0 = Xb[i]
                for t in range(L):
                    y[t] = x0[t] * dz[t]
                _row_pass(Xb, y, dqk)  # dqk reused: (X diag(dz) X)[i, :]
                for j in range(n):
                    slot_KQ[b, i, j] -= 0.5 * dqk[j]
    # Sum the per-prompt slots in prompt order: independent of the thread count.
    loss = 0.0
    dW_KQ = np.zeros((n, n), X.dtype)
    dW_PV = np.zeros((n, n), X.dtype)
    for b in range(B):
        loss += slot_loss[b]
        for i in range(n):
            for j in range(n):
                dW_KQ[i, j] += slot_KQ[b, i, j]
                dW_PV[i, j] += slot_PV[b, i, j]
    return loss / (B * n), dW_KQ, dW_PV


@njit(parallel=True)
def stream_sum(a):
    """Sum of a large 1-D array with every thread streaming its own contiguous share: the benchmark's
    multi-threaded memory-bandwidth probe (no arithmetic to speak of). Shapes: a (N,) -> scalar."""
    chunks = 64
    size = (a.size + chunks - 1) // chunks
    partial = np.zeros(chunks)
    for c in prange(chunks):
        share = a[c * size:(c + 1) * size]  # a view, looped from 0: range(lo, hi) with lo > 0 does not vectorise
        acc = 0.0
        for k in range(share.size):
            acc += share[k]
        partial[c] = acc
    return partial.sum()




@njit()
def _gram_block(Xb, I, J, out):
    """out[I:I+4, J:J+4] = Xb[I:I+4] Xb[J:J+4]ᵀ: sixteen dot products in one sweep along t, so that each loaded
    element feeds four FMAs (measured 1.6x faster than one dot product per sweep). Shapes: Xb (n, L), out (n, n)."""
    L = Xb.shape[1]
    a0, a1, a2, a3 = Xb[I], Xb[I + 1], Xb[I + 2], Xb[I + 3]
    b0, b1, b2, b3 = Xb[J], Xb[J + 1], Xb[J + 2], Xb[J + 3]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
    for t in range(L):
        x0, x1, x2, x3 = a0[t], a1[t], a2[t], a3[t]
        y0, y1, y2, y3 = b0[t], b1[t], b2[t], b3[t]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s23 += x2 * y3
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
        s33 += x3 * y3
    out[I, J], out[I, J + 1], out[I, J + 2], out[I, J + 3] = s00, s01, s02, s03
    out[I + 1, J], out[I + 1, J + 1], out[I + 1, J + 2], out[I + 1, J + 3] = s10, s11, s12, s13
    out[I + 2, J], out[I + 2, J + 1], out[I + 2, J + 2], out[I + 2, J + 3] = s20, s21, s22, s23
    out[I + 3, J], out[I + 3, J + 1], out[I + 3, J + 2], out[I + 3, J + 3] = s30, s31, s32, s33


@njit(parallel=True)
def _second_moments(X, centre):
    """Per prompt: μ̂ = mean_t X_t (0 unless ``centre``), C = X Xᵀ/L - μ̂ μ̂ᵀ and tr X Xᵀ/L (uncentred).

    X Xᵀ is built from 4 × 4 blocks on and below the diagonal (``_gram_block``), rows beyond the last multiple of
    4 by single dot products; the upper triangle is mirrored, so C is exactly symmetric.

    Shapes: X (B, n, L) -> C (B, n, n), mu (B, n), trace (B,).
    """
    B, n, L = X.shape
    C = np.empty((B, n, n))
    mu = np.zeros((B, n))
    trace = np.empty(B)
    inv_L = 1.0 / L
    n4 = n - n % 4
    for b in prange(B):
        Xb = X[b]
        G = C[b]
        if centre:
            for i in range(n):
                x0 = Xb[i]
                acc = 0.0
                for t in range(L):
                    acc += x0[t]
                mu[b, i] = acc * inv_L
        for I in range(0, n4, 4):
            for J in range(0, I + 1, 4):
                _gram_block(Xb, I, J, G)
        for i in range(n4, n):
            x0 = Xb[i]
            for j in range(i + 1):
                x1 = Xb[j]
                acc = 0.0
                for t in range(L):
                    acc += x0[t] * x1[t]
                G[i, j] = acc
        tr = 0.0
        for i in range(n):
            tr += G[i, i] * inv_L
            for j in range(i + 1):
                G[i, j] = G[i, j] * inv_L - mu[b, i] * mu[b, j]
                G[j, i] = G[i, j]
        trace[b] = tr
    return C, mu, trace


@njit(parallel=True)
def pca_project(X, x_tilde, centre, eig_tol):
    """Per-prompt PCA projection for the projection baselines of ``baselines.py`` (PAPER.md §2.1-2.2).

    For each prompt: μ̂ = mean_t X_t if ``centre`` else 0; C = X Xᵀ/L - μ̂ μ̂ᵀ; V = eigenvectors of C with
    eigenvalue > eig_tol (``np.linalg.eigh``, LAPACK); proj = V Vᵀ (x̃ - μ̂). The NumPy code in
    ``baselines.projection_estimator`` / ``sphere_projection_estimator`` is the specification (parity at rtol 1e-10,
    ``tests/test_kernels.py``). Two parallel passes: the second moments (``_second_moments``; each context,
    16 × 499 float64, read from L2 in 4 × 4 row blocks), then the 16 × 16 eigendecompositions. A prompt whose
    X Xᵀ has a non-finite diagonal (NaN/inf in X) skips the eigendecomposition: ``finite[b]`` is False and its
    proj is NaN, for the caller to raise.

    Shapes: X (B, n, L) float64, x_tilde (B, n) -> proj (B, n), mu (B, n), rank (B,) int64 (number of kept
    eigenvalues), trace (B,) (tr X Xᵀ/L, uncentred), finite (B,) bool.
    """
    B, n = x_tilde.shape
    C, mu, trace = _second_moments(X, centre)
    proj = np.zeros((B, n))
    rank = np.zeros(B, np.int64)
    finite = np.ones(B, np.bool_)
    for b in prange(B):
        for i in range(n):
            if not np.isfinite(C[b, i, i]):
                finite[b] = False
        if not finite[b]:
            proj[b, :] = np.nan
            continue
        w, V = np.linalg.eigh(C[b])
        r = x_tilde[b] - mu[b]  # (n,)
        k = 0
        for e in range(n):
            if w[e] > eig_tol:
                k += 1
                c = 0.0
                for i in range(n):
                    c += V[i, e] * r[i]
                for i in range(n):
                    proj[b, i] += V[i, e] * c
        rank[b] = k
    return proj, mu, rank, trace, finite



@njit()
def _span_prompt(V, G, shift, R, out):
    """One prompt of ``span_tokens_serial``. Shapes: V (n, k), G (k, L), shift (n,), out (n, L)."""
    n, k = V.shape
    L = G.shape[1]
    s = np.empty(L)
    if R > 0:
        for t in range(L):
            s[t] = 0.0
        for j in range(k):
            g0 = G[j]
            for t in range(L):
                s[t] += g0[t] * g0[t]
        for t in range(L):
            s[t] = R / np.sqrt(s[t])
    j0 = k % 4
    for i in range(n):
        o = out[i]
        v = V[i]
        for t in range(L):
            o[t] = 0.0
        for j in range(j0):
            g0, c0 = G[j], v[j]
            for t in range(L):
                o[t] += c0 * g0[t]
        for j in range(j0, k, 4):  # four rows of G per sweep: o loaded and stored k/4 times, not k
            g0, g1, g2, g3 = G[j], G[j + 1], G[j + 2], G[j + 3]
            c0, c1, c2, c3 = v[j], v[j + 1], v[j + 2], v[j + 3]
            for t in range(L):
                o[t] += c0 * g0[t] + c1 * g1[t] + c2 * g2[t] + c3 * g3[t]
        m = shift[i]
        if R > 0:
            for t in range(L):
                o[t] = o[t] * s[t] + m
        else:
            for t in range(L):
                o[t] += m


@njit()
def span_tokens_serial(V, G, shift, R, out):
    """Tokens of the subspace and sphere samplers of ``tasks.py``: out[b] = shift[b] + V[b] (G[b] diag(s_b)).

    s_t = R / ||G[b][:, t]|| (a Gaussian column pushed onto the radius-R sphere, PAPER.md §2.2.2) if R > 0, else 1
    (x_t = σ0 V g_t, §2.2.1, with σ0 folded into V). The NumPy code in ``tasks._basis_and_tokens`` is the
    specification (same draws; parity at rtol 1e-12 in ``tests/test_tasks.py``): one pass per prompt along the
    contiguous t axis instead of a scaled copy of G and a batched matmul. Serial (no ``prange``): the samplers run
    it on a worker thread for one chunk of prompts while the main thread draws the next chunk's normals
    (``nogil``); writing X (64 MB per 1000 prompts at the paper's size) is its floor.

    Shapes: V (B, n, k), G (B, k, L), shift (B, n), R scalar, out (B, n, L) written in place.
    """
    for b in range(V.shape[0]):
        _span_prompt(V[b], G[b], shift[b], R, out[b])


@njit()
def mixture_tokens(X, centers, labels, std):
    """Mixture tokens in place (``GMMTask.sample``, PAPER.md §2.2.3): X[b, :, t] <- std[a] X[b, :, t] + μ_a with
    a = labels[b, t], X holding standard normals. Serial: the sampler runs it on a worker thread, one chunk of
    prompts at a time, while the main thread draws the next chunk's normals. The NumPy code in ``GMMTask.sample``
    is the specification (parity at rtol 1e-12 in ``tests/test_tasks.py``).

    Shapes: X (B, n, L), centers (B, n, K), labels (B, >= L) int, std (K,).
    """
    B, n, L = X.shape
    s = np.empty(L)
    lab = np.empty(L, np.int64)
    for b in range(B):
        for t in range(L):
            lab[t] = labels[b, t]
            s[t] = std[lab[t]]
        for i in range(n):
            o = X[b, i]
            c = centers[b, i]
            for t in range(L):
                o[t] = o[t] * s[t] + c[lab[t]]
