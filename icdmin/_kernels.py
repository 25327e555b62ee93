"""Fused Numba kernels for one-layer attention: the only module that imports numba.

The NumPy code in ``layer.py`` is the specification (parity at rtol 1e-10 in float64, ``tests/test_kernels.py``).
A prompt's context (16 × 499 float64 = 64 KB) stays in L2 between its forward and backward passes; its loss and
gradients go to its own slot, and slots are summed in prompt order (results do not depend on threads). Loops run
along the contiguous token axis from index 0 and vectorise (``fastmath`` reassoc/contract; numba 0.68 did not
vectorise ``range(lo, hi)`` with lo > 0), the exponential too (``_exp_shifted``: with libm's scalar exp the softmax
kernel was 1.4x slower, under 2x the NumPy path, whose np.exp is SIMD; measured).

Threads: serial kernels that release the GIL; ``forward`` and ``loss_and_grads`` give one chunk of the batch to the
caller and one to each of ``get_num_threads() - 1`` daemon helper threads (started by the first multi-threaded call,
again in a forked child; nothing happens on import). A helper's chunk unfinished a quarter of a chunk's time after
the caller's is recomputed by the caller (same bits): a descheduled helper cannot stall a call on a busy machine.
Concurrent calls are safe: one uses the helpers, the others run serially. This replaces numba's ``prange``: its GNU
OpenMP layer killed a child forked after the parent used it; its workqueue layer is not thread-safe and collapsed
under load (measured: 5k prompts/s on 2 threads against 110k on one).

Legend: ``B`` batch, ``n`` token dimension, ``L`` context length; per prompt q' = W_KQ x̃ (paper §3.1, Eq. 12).
"""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np

try:
    import numba

    HAS_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; this keeps vendored copies working
    numba = None
    HAS_NUMBA = False

# layer.py uses the kernels only when compiled (under NUMBA_DISABLE_JIT=1 they are slow Python loops).
JIT_ENABLED = HAS_NUMBA and not numba.config.DISABLE_JIT

KIND_CODES = {"linear": 0, "softmax": 1, "gaussian": 2}
LINEAR, SOFTMAX, GAUSSIAN = 0, 1, 2

__all__ = ["HAS_NUMBA", "JIT_ENABLED", "KIND_CODES", "forward", "loss_and_grads", "get_num_threads"]


def njit():
    """The one decorator factory for every kernel; the identity without numba."""
    if not HAS_NUMBA:
        return lambda fn: fn
    return numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})


LOG2E, LN2_HI, LN2_LO = 1.4426950408889634, 0.6931471803691238, 1.9082149292705877e-10  # k * LN2_HI is exact
TAYLOR = tuple(1.0 / math.factorial(k) for k in range(12, -1, -1))  # 1/12!, ..., 1/0!


@njit()
def _exp_shifted(a, m, bits):
    """a[t] <- exp(a[t] - m) for a[t] <= m, in a loop LLVM vectorises (libm's exp is a scalar call): Cody-Waite
    reduction x = k ln2 + r, |r| <= ln2/2, exp(r) by Taylor to degree 12 (remainder 2e-16), 2^k from the exponent
    bits; x clamped at -700 (weight < 1e-304 next to the largest, 1). Scratch: bits (L,) int64."""
    for t in range(a.shape[0]):
        x = max(a[t] - m, -700.0)
        k = -int(0.5 - x * LOG2E)  # round(x / ln 2), x <= 0
        r = x - k * LN2_HI - k * LN2_LO
        p = TAYLOR[0]
        for c in TAYLOR[1:]:  # Horner
            p = p * r + c
        a[t] = p
        bits[t] = (k + 1023) << 52
    a *= bits.view(np.float64)


@njit()
def _col_pass(Xb, c, out):
    """out[t] = Σ_i Xb[i, t] c[i] (Xᵀc), four rows per sweep: out is loaded and stored n/4 times, not n (20 % faster,
    measured). Shapes: (n, L), (n,) -> (L,)."""
    n, L = Xb.shape
    out[:] = 0.0
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
def _matvec(W, v, out):
    """out = W v. Shapes: (n, n), (n,) -> (n,)."""
    n = W.shape[0]
    for i in range(n):
        acc = 0.0
        for j in range(n):
            acc += W[i, j] * v[j]
        out[i] = acc


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
    """One prompt's forward pass: a (weights) and u = X a. Scratch y, bits (L,). Shapes: Xb (n, L), q (n,)."""
    n, L = Xb.shape
    _matvec(W_KQ, q, qk)  # qk = W_KQ q  (n,)
    _col_pass(Xb, qk, a)  # z = Xᵀ qk  (L,)
    if kind == GAUSSIAN:  # z_t −= ½ X_tᵀ W_KQ X_t, one row of W_KQ X at a time
        for i in range(n):
            _col_pass(Xb, W_KQ[i], y)  # y = (W_KQ X)[i]  (L,)
            x0 = Xb[i]
            for t in range(L):
                a[t] -= 0.5 * x0[t] * y[t]
    if kind == LINEAR:  # a = z / L  (Eq. 11)
        a *= 1.0 / L
    else:  # a = softmax(z), max-shifted  (Eqs. 12, 14)
        m = np.max(a)
        _exp_shifted(a, m, bits)
        a *= 1.0 / np.sum(a)
    _row_pass(Xb, a, u)  # u = X a  (n,)


@njit()
def _forward_chunk(kind, X, x_tilde, W_KQ, W_PV, lo, hi):
    """Attention output W_PV X a of prompts lo..hi-1 (forward only). Shapes: X (B, n, L) -> (hi - lo, n)."""
    n, L = X.shape[1], X.shape[2]
    out = np.empty((hi - lo, n), X.dtype)
    qk, a, u = np.empty(n, X.dtype), np.empty(L, X.dtype), np.empty(n, X.dtype)
    y, bits = np.empty(L if kind == GAUSSIAN else 0, X.dtype), np.empty(L, np.int64)
    for b in range(hi - lo):
        _prompt_forward(kind, X[lo + b], x_tilde[lo + b], W_KQ, qk, a, u, y, bits)
        _matvec(W_PV, u, out[b])  # out = W_PV u
    return out


@njit()
def _loss_and_grads_chunk(kind, X, x_tilde, x, W_KQ, W_PV, index, scale, lo, hi):
    """Per-prompt loss and gradient slots of the prompts index[lo:hi], read in place from X, x_tilde, x.

    scale = 2 / (B n) for the whole batch of B prompts (dloss/dout = 2 (out − x) / (B n)).
    Shapes: X (N, n, L), x_tilde, x (N, n), index (B,) int64 -> (hi - lo,), (hi - lo, n, n), (hi - lo, n, n).
    """
    n, L = X.shape[1], X.shape[2]
    slot_loss = np.empty(hi - lo, np.float64)
    slot_KQ = np.empty((hi - lo, n, n), X.dtype)
    slot_PV = np.empty((hi - lo, n, n), X.dtype)
    qk, a, u = np.empty(n, X.dtype), np.empty(L, X.dtype), np.empty(n, X.dtype)
    y, bits = np.empty(L if kind == GAUSSIAN else 0, X.dtype), np.empty(L, np.int64)
    r, du, dqk, dz = np.empty(n, X.dtype), np.empty(n, X.dtype), np.empty(n, X.dtype), np.empty(L, X.dtype)
    for b in range(hi - lo):
        p = index[lo + b]
        Xb, q = X[p], x_tilde[p]
        _prompt_forward(kind, Xb, q, W_KQ, qk, a, u, y, bits)
        _matvec(W_PV, u, r)  # out = W_PV u; loss_b = |out − x|²; r = dloss/dout
        lb = 0.0
        for i in range(n):
            d = r[i] - x[p, i]
            lb += d * d
            r[i] = scale * d
        slot_loss[b] = lb
        du[:] = 0.0  # dW_PV = r uᵀ;  du = W_PVᵀ r
        for i in range(n):
            for j in range(n):
                slot_PV[b, i, j] = r[i] * u[j]
                du[j] += W_PV[i, j] * r[i]
        _col_pass(Xb, du, dz)  # da = Xᵀ du  (L,), stored in dz
        if kind == LINEAR:  # a = z / L
            dz *= 1.0 / L
        else:  # a = softmax(z): dz = a ⊙ (da − aᵀda), and aᵀda = aᵀXᵀdu = uᵀdu
            c = 0.0
            for i in range(n):
                c += u[i] * du[i]
            for t in range(L):
                dz[t] = a[t] * (dz[t] - c)
        _row_pass(Xb, dz, dqk)  # z = Xᵀ qk  ->  dqk = X dz;  qk = W_KQ q  ->  dW_KQ = dqk qᵀ
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
    return slot_loss, slot_KQ, slot_PV


def get_num_threads() -> int:
    """Threads per call: ``numba.get_num_threads()`` once numba's pool has started (``numba.set_num_threads``), else
    ``NUMBA_NUM_THREADS`` (default: the CPU count); never starts numba's pool."""
    if not JIT_ENABLED:
        return 1
    from numba.np.ufunc import parallel

    return numba.get_num_threads() if getattr(parallel, "_is_initialized", False) else numba.config.NUMBA_NUM_THREADS


class _Job:
    """One call's chunks, claimed in order by the caller and the helpers; the first result stored for a chunk wins."""

    def __init__(self, fn, args, bounds, helpers):
        self.fn, self.args, self.bounds, self.helpers = fn, args, bounds, helpers
        self.results, self.next, self.done = [None] * len(bounds), 0, threading.Condition()

    def work(self) -> int:  # -> the number of chunks this thread ran
        ran = 0
        while True:
            with self.done:
                i, self.next = self.next, self.next + 1
            if i >= len(self.bounds):
                return ran
            ran += 1
            r = self.fn(*self.args, *self.bounds[i])  # the GIL is released inside the kernel
            with self.done:
                self.results[i] = r if self.results[i] is None else self.results[i]
                self.done.notify_all()


class _Helpers:
    """This process's helper threads (daemon); each runs the chunks of the current job if its rank is in range."""

    def __init__(self):
        self.pid, self.job, self.ranks, self.wake = os.getpid(), None, 0, threading.Condition()

    def start(self, job):
        with self.wake:
            while self.ranks < job.helpers:
                threading.Thread(target=self._loop, args=(self.ranks,), daemon=True, name="icdmin-kernel").start()
                self.ranks += 1
            self.job = job
            self.wake.notify_all()

    def _loop(self, rank):
        seen = None
        while True:
            with self.wake:
                self.wake.wait_for(lambda: self.job is not seen)
                job = seen = self.job
            if rank < job.helpers:
                job.work()


_helpers, _call_lock = None, threading.Lock()  # one call at a time uses the helpers; concurrent calls run serially
# The parent's helper threads do not exist in a forked child, and its copy of the lock may be held.
os.register_at_fork(after_in_child=lambda: globals().update(_helpers=None, _call_lock=threading.Lock()))


def _run(fn, args, total):
    """fn(*args, lo, hi) over chunks of range(total) on the caller and its helpers; the results in chunk order."""
    global _helpers
    threads = min(get_num_threads(), total)
    if threads < 2 or not _call_lock.acquire(blocking=False):
        return [fn(*args, 0, total)]
    size = math.ceil(total / threads)  # one chunk per thread (measured: more, smaller chunks were slower under load)
    bounds = [(lo, min(total, lo + size)) for lo in range(0, total, size)]
    try:
        _helpers = _helpers if _helpers is not None and _helpers.pid == os.getpid() else _Helpers()
        job = _Job(fn, args, bounds, threads - 1)
        _helpers.start(job)
        t0 = time.perf_counter()
        ran = job.work()
        with job.done:  # wait for the helpers' chunks at most a quarter of a chunk's time, then do them here
            job.done.wait_for(lambda: all(r is not None for r in job.results),
                              timeout=0.25 * (time.perf_counter() - t0) / max(ran, 1))
        return [r if r is not None else fn(*args, *b) for r, b in zip(job.results, job.bounds)]
    finally:
        _call_lock.release()


def forward(kind, X, x_tilde, W_KQ, W_PV):
    """Attention output W_PV X a of every prompt (Eqs. 11, 12, 14); ``kind`` a ``KIND_CODES`` value, C-contiguous
    arrays of one float dtype. Shapes: X (B, n, L), x_tilde (B, n), W_KQ, W_PV (n, n) -> (B, n)."""
    parts = _run(_forward_chunk, (kind, X, x_tilde, W_KQ, W_PV), X.shape[0])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def loss_and_grads(kind, X, x_tilde, x, W_KQ, W_PV, index):
    """Fused forward + MSE + backward of the prompts ``index`` of X, x_tilde, x (read in place); returns (loss,
    dW_KQ, dW_PV). Shapes: X (N, n, L), x_tilde, x (N, n), W (n, n), index (B,) int64 -> float, (n, n), (n, n)."""
    B, n = index.shape[0], X.shape[1]
    parts = _run(_loss_and_grads_chunk, (kind, X, x_tilde, x, W_KQ, W_PV, index, 2.0 / (B * n)), B)
    loss, KQ, PV = parts[0] if len(parts) == 1 else (np.concatenate(p) for p in zip(*parts))
    return loss.sum() / (B * n), KQ.sum(axis=0), PV.sum(axis=0)  # fixed orders, whoever computed the slots
