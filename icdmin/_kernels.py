"""Fused Numba kernels for one-layer attention: the only module that imports numba.

The NumPy code in ``attention.py`` is the specification; these loops must match it (rtol 1e-10 in float64, tests in
``tests/test_kernels.py``). Each prompt is handled by one thread (``prange`` over the batch): its context, 16 × 499
float64 = 64 KB, stays in the core's L2 cache between the forward and the backward passes, so it is read from memory
once. Every prompt writes its own loss and gradient slot; the slots are summed afterwards in prompt order, so the
result does not depend on the number of threads. Loops run along the contiguous token axis t, and
``fastmath={"reassoc", "contract"}`` lets LLVM vectorise the sums over t (FMA, SIMD); the exponential is a vectorised
Cody-Waite/Taylor ``_exp_shifted`` (1e-16 relative; libm's exp is a scalar call that does not vectorise).
Every vectorised loop runs over a whole row from index 0: in numba 0.68 a ``range(lo, hi)`` loop with lo > 0 did not
vectorise (5x slower, measured), and splitting the context into L1-sized chunks (online softmax) was measured
slower than these whole-row passes, whose rows stay in L2.

Kinds are integer codes (``KIND_CODES``), branched on outside the hot loops, so there is one kernel per purpose
(forward, loss and gradients) and dtype (float64, float32): four compiled signatures in all (about 17 s to compile
from scratch, 1 s to load from the on-disk cache).

Threads. Importing this module changes nothing (no environment variable, no thread). The first kernel call picks
numba's ``"forksafe"`` threading layer (TBB when the ``tbb`` package is installed, else numba's own workqueue)
unless the user chose one (``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``) or numba already started
its threads: GNU OpenMP, numba's usual pick, kills a child forked after the parent used it. The workqueue layer is
not thread-safe, so ``forward`` and ``loss_and_grads`` launch under one lock (re-created in a forked child, whose
copy may be held by a parent thread that does not exist there); each launch uses all of numba's threads anyway.
The number of threads is the user's: ``numba.set_num_threads`` or ``NUMBA_NUM_THREADS``.

Legend: ``B`` batch, ``n`` token dimension, ``L`` context length; per prompt q' = W_KQ x̃ (paper §3.1, Eq. 12).
"""

from __future__ import annotations

import os
import threading

import numpy as np

try:
    import numba

    HAS_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; this keeps vendored copies working
    numba = None
    HAS_NUMBA = False

# The dispatchers in attention.py use the kernels only when they are compiled: under NUMBA_DISABLE_JIT=1 they
# would be plain Python loops (correct, tested, but far slower than NumPy).
JIT_ENABLED = HAS_NUMBA and not numba.config.DISABLE_JIT

_launch_lock = threading.Lock()
_layer_checked = False


def _new_lock_in_child() -> None:
    global _launch_lock
    _launch_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def _choose_threading_layer() -> None:
    """Pick numba's fork-safe threading layer before its threads start, unless the user chose one (module doc)."""
    global _layer_checked
    _layer_checked = True
    from numba.np.ufunc import parallel

    user_choice = "NUMBA_THREADING_LAYER" in os.environ or str(numba.config.THREADING_LAYER) != "default"
    if not user_choice and not parallel._is_initialized:
        numba.config.THREADING_LAYER = "forksafe"


def forward(kind, X, x_tilde, W_KQ, W_PV):
    """Attention output W_PV X a of every prompt (Eqs. 11, 12, 14; forward only, for evaluation).

    ``kind`` is a ``KIND_CODES`` value; the arrays share one float dtype and are C-contiguous.
    Shapes: X (B, n, L), x_tilde (B, n), W_KQ, W_PV (n, n) -> (B, n).
    """
    with _launch_lock:
        if not _layer_checked:
            _choose_threading_layer()
        return _forward(kind, X, x_tilde, W_KQ, W_PV)


def loss_and_grads(kind, X, x_tilde, x, W_KQ, W_PV, index):
    """Fused forward + MSE + backward; returns (loss, dW_KQ, dW_PV) as ``attention.loss_and_grads``.

    The batch is the prompts ``index`` of X, x_tilde, x, read in place (no gathered copy of the contexts).
    Shapes: X (N, n, L), x_tilde, x (N, n), W_KQ, W_PV (n, n), index (B,) int64 -> scalar, (n, n), (n, n).
    """
    with _launch_lock:
        if not _layer_checked:
            _choose_threading_layer()
        return _loss_and_grads(kind, X, x_tilde, x, W_KQ, W_PV, index)


KIND_CODES = {"linear": 0, "softmax": 1, "gaussian": 2}
LINEAR, SOFTMAX, GAUSSIAN = 0, 1, 2

__all__ = ["HAS_NUMBA", "JIT_ENABLED", "KIND_CODES", "forward", "loss_and_grads"]


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
def _forward(kind, X, x_tilde, W_KQ, W_PV):
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
def _loss_and_grads(kind, X, x_tilde, x, W_KQ, W_PV, index):
    """Fused forward + MSE + backward for every prompt (the kernel behind ``loss_and_grads``).

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
