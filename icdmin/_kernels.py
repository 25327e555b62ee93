"""Fused Numba kernels for one-layer attention: the only module that imports numba.

The NumPy code in ``layer.py`` is the specification (parity at rtol 1e-10 in float64, ``tests/test_kernels.py``).
A prompt's context (16 × 499 float64 = 64 KB) stays in L2 between its passes (blocks kept in L1 across passes were
slower, measured); its loss and gradients go to its own slot, summed in prompt order (results do not depend on
threads). Loops run along the contiguous token axis from 0 and vectorise, the exponential too (``_exp_shifted``).

Threads (``_run``): ``_worker`` releases the GIL and claims prompts one at a time (atomic counter) on the caller and
``get_num_threads() - 1`` daemon helpers (started by the first call using them, again in a forked child; none on
import); the caller then recomputes prompts in flight on a helper (same bits): a descheduled helper never stalls a
call. A helper polls ~1 ms for the next job before it sleeps (a sleeping vCPU woke up to 1.7 ms late here; a call:
0.5 ms). Helpers serve calls of >= GRAIN token·dimensions per thread (``threads_for``) while faster than serial
calls (``_Helpers.use``); of concurrent calls one may use them. No numba ``prange``: its OpenMP layer killed forked
children, its workqueue layer is not thread-safe (5k prompts/s on 2 threads, 110k on one). Legend: ``B`` batch,
``n`` token dimension, ``L`` context length; q' = W_KQ x̃ (paper §3.1, Eq. 12).
"""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np

try:
    import numba
    import numba.extending
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


if JIT_ENABLED:
    @numba.extending.intrinsic
    def _atomic_add(typingctx, state, i, v):
        """state[i] += v atomically (seq_cst: also a fence for the slots written before) -> the old value."""
        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            ptr = numba.core.cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
            return builder.atomic_rmw("add", ptr, args[2], "seq_cst")
        return numba.core.types.int64(state, numba.core.types.intp, numba.core.types.int64), codegen
else:
    def _atomic_add(state, i, v):
        """state[i] += v, returning the old value (one thread: the JIT is off)."""
        state[i], old = state[i] + v, state[i]
        return old


LOG2E, LN2_HI, LN2_LO = 1.4426950408889634, 0.6931471803691238, 1.9082149292705877e-10  # k * LN2_HI is exact
SPIN, PROBE, PERIOD, GRAIN = 500_000, 3, 256, 2**17  # polls (1.8 ns each here); _Helpers.use; threads_for
TAYLOR = tuple(1.0 / math.factorial(k) for k in range(12, -1, -1))  # 1/12!, ..., 1/0!


@njit()
def _exp_shifted(a, m, bits):
    """a[t] <- exp(a[t] - m), a[t] <= m, vectorised (libm's exp is scalar): x = k ln2 + r, |r| <= ln2/2, exp(r) by
    Taylor to degree 12 (error 2e-16), 2^k from exponent bits; x >= -700 (weight < 1e-304). Scratch: bits (L,) int64."""
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
    for i in range(n % 4):
        x0, c0 = Xb[i], c[i]
        for t in range(L):
            out[t] += x0[t] * c0
    for i in range(n % 4, n, 4):
        x0, x1, x2, x3 = Xb[i], Xb[i + 1], Xb[i + 2], Xb[i + 3]  # row views, looped from 0 (vectorises)
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        for t in range(L):
            out[t] += x0[t] * c0 + x1[t] * c1 + x2[t] * c2 + x3[t] * c3


@njit()
def _row_pass(Xb, w, out):
    """out[i] = Σ_t Xb[i, t] w[t] (X w; also W v), four rows per sweep: w is loaded n/4 times, not n (10 % faster
    end to end, measured). Shapes: (n, L), (L,) -> (n,)."""
    n, L = Xb.shape
    for i in range(n % 4):
        x0, acc = Xb[i], 0.0
        for t in range(L):
            acc += x0[t] * w[t]
        out[i] = acc
    for i in range(n % 4, n, 4):
        x0, x1, x2, x3 = Xb[i], Xb[i + 1], Xb[i + 2], Xb[i + 3]
        a0 = a1 = a2 = a3 = 0.0
        for t in range(L):
            a0 += x0[t] * w[t]
            a1 += x1[t] * w[t]
            a2 += x2[t] * w[t]
            a3 += x3[t] * w[t]
        out[i], out[i + 1], out[i + 2], out[i + 3] = a0, a1, a2, a3


@njit()
def _prompt_forward(kind, Xb, q, W_KQ, qk, a, u, y, bits):
    """One prompt's forward pass: a (weights) and u = X a. Scratch y, bits (L,). Shapes: Xb (n, L), q (n,)."""
    n, L = Xb.shape
    _row_pass(W_KQ, q, qk)  # qk = W_KQ q  (n,)
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
def _prompt_grads(kind, Xb, q, xb, W_KQ, W_PV, scale, KQ, PV, qk, a, u, y, bits, du, dz):
    """One prompt's squared error |out − x|² (returned) and its slots KQ, PV (n, n) of dW_KQ, dW_PV, where
    scale = 2 / (B n) (dloss/dout = 2 (out − x) / (B n)). Scratch as in _prompt_forward, du (n,), dz (L,)."""
    n, L = Xb.shape
    _prompt_forward(kind, Xb, q, W_KQ, qk, a, u, y, bits)
    r = dqk = qk  # qk's memory, free after the forward pass, holds r, then dqk
    _row_pass(W_PV, u, r)  # out = W_PV u; loss_b = |out − x|²; r = dloss/dout
    lb = c = 0.0  # c = aᵀ da = aᵀXᵀdu = uᵀ W_PVᵀ r = outᵀ r (softmax, below)
    for i in range(n):
        d = r[i] - xb[i]
        lb += d * d
        r[i], c = scale * d, c + r[i] * scale * d
    _col_pass(W_PV, r, du)  # dW_PV = r uᵀ;  du = W_PVᵀ r
    for i in range(n):
        for j in range(n):
            PV[i, j] = r[i] * u[j]
    _col_pass(Xb, du, dz)  # da = Xᵀ du  (L,), stored in dz
    if kind == LINEAR:  # a = z / L
        dz *= 1.0 / L
    else:  # a = softmax(z): dz = a ⊙ (da − aᵀda)
        for t in range(L):
            dz[t] = a[t] * (dz[t] - c)
    _row_pass(Xb, dz, dqk)  # z = Xᵀ qk  ->  dqk = X dz;  qk = W_KQ q  ->  dW_KQ = dqk qᵀ
    for i in range(n):  # one store per slot element: two threads may compute one prompt at once
        if kind == GAUSSIAN:  # z −= ½ X_tᵀ W_KQ X_t  ->  dW_KQ −= ½ Σ_t dz_t X_t X_tᵀ, row i in du (free now)
            x0 = Xb[i]
            for t in range(L):
                y[t] = x0[t] * dz[t]
            _row_pass(Xb, y, du)
        for j in range(n):
            KQ[i, j] = dqk[i] * q[j] - (0.5 * du[j] if kind == GAUSSIAN else 0.0)
    return lb


@njit()
def _worker(kind, X, x_tilde, x, W_KQ, W_PV, index, scale, loss, KQ, PV, out, state, ticket, caller):
    """Computes prompts index[b] claimed one at a time (b = state[0]++), flagging each once written (state[2 + b] =
    1, or 2 on a helper); the caller (which first publishes: ticket[0] = state[1]) then recomputes those in flight on a
    helper; a helper polls ticket[0] SPIN times for the next job (returns whether it came). With out (B, n): out[b] =
    W_PV X a, else slots loss[b], KQ[b], PV[b]. Shapes: X (N, n, L), x_tilde, x (N, n), index (B,), state (B + 2,)."""
    n, L, B = X.shape[1], X.shape[2], index.shape[0]
    if caller:
        ticket[0] = state[1]
    s, t = np.empty((3, n), X.dtype), np.empty((2, L), X.dtype)
    qk, u, du, a, dz = s[0], s[1], s[2], t[0], t[1]  # rows by index: C-contiguous views (unpacking gives 'A')
    y, bits = np.empty(L if kind == GAUSSIAN else 0, X.dtype), np.empty(L, np.int64)
    while True:
        b = _atomic_add(state, 0, 1)
        if caller and b >= B:  # claims exhausted: the first prompt not flagged done (in flight on a helper)
            b = 0
            while b < B and _atomic_add(state, 2 + b, 0) != 0:
                b += 1
        if b >= B:
            break
        p = index[b]
        if out.shape[0]:
            _prompt_forward(kind, X[p], x_tilde[p], W_KQ, qk, a, u, y, bits)
            _row_pass(W_PV, u, out[b])  # out = W_PV u
        else:
            loss[b] = _prompt_grads(kind, X[p], x_tilde[p], x[p], W_KQ, W_PV, scale, KQ[b], PV[b], qk, a, u, y,
                                    bits, du, dz)
        _atomic_add(state, 2 + b, 1 if caller else 2)
    for _ in range(0 if caller else SPIN):
        if _atomic_add(ticket, 0, 0) > state[1]:
            return True
    return False


def get_num_threads() -> int:
    """Threads per call: ``numba.get_num_threads()`` once numba's pool started, else NUMBA_NUM_THREADS (no start)."""
    if not JIT_ENABLED:
        return 1
    return numba.get_num_threads() if numba.np.ufunc.parallel._is_initialized else numba.config.NUMBA_NUM_THREADS


def threads_for(B, n, L, kind=SOFTMAX) -> int:
    """Threads for B prompts of n × L tokens: at least GRAIN token·dimensions each (n² L per Gaussian prompt)."""
    return max(1, min(get_num_threads(), B * n * L * (n if kind == GAUSSIAN else 1) // GRAIN))


class _Helpers:
    """This process's helper threads (daemon), and whether to use them (``use``). A helper runs the current job (a
    ``_worker`` call) if its rank is in range, then sleeps unless the next job came while it polled."""

    def __init__(self):
        self.pid, self.job, self.ranks, self.wake = os.getpid(), (0, None, 0), 0, threading.Condition()
        self.ticket, self.calls, self.cost = np.zeros(32, np.int64)[16:17], 0, {}  # ticket: alone in a cache line

    def use(self, what) -> bool:
        """Use the helpers while that was faster per unit of work (moving averages), but probe the other choice PROBE
        calls in PERIOD: on a busy machine, a helper sharing the caller's CPU made calls 1.9 ms instead of 0.5."""
        self.calls += 1
        return (self.cost.get((*what, True), 0) <= self.cost.get((*what, False), 0)) != (self.calls % PERIOD < PROBE)

    def record(self, key, s):
        """Moving average of seconds per token·dimension of (kind, dtype, helped) calls (a sample capped at 4x), from
        the second (compiles), without the first after a switch (a helper may be waking up)."""
        if self.calls % PERIOD not in (0, PROBE):
            old = self.cost.get(key)
            self.cost[key] = 0.0 if old is None else s if old == 0.0 else 0.75 * old + 0.25 * min(s, 4 * old)

    def start(self, job, helpers) -> int:  # -> the job's number
        with self.wake:
            while self.ranks < helpers:
                threading.Thread(target=self._loop, args=(self.ranks,), daemon=True, name="icdmin-kernel").start()
                self.ranks += 1
            self.job = (self.job[0] + 1, job, helpers)
            self.wake.notify_all()
            return self.job[0]

    def _loop(self, rank):
        seen, polled = 0, False
        while True:
            with self.wake:
                self.wake.wait_for(lambda: polled or self.job[0] != seen)  # at once if the next job came
                seen, job, helpers = self.job
            polled = rank < helpers and job[0](*job[1], self.ticket, False)


# One call at a time may use the helpers. A forked child has not the parent's helpers; its lock copy may be held.
_helpers, _call_lock = None, threading.Lock()
os.register_at_fork(after_in_child=lambda: globals().update(_helpers=None, _call_lock=threading.Lock()))


def _run(args, B):
    """_worker(*args, state = [claims, job number, done flag per prompt]) on the caller and helpers if threads_for."""
    global _helpers
    threads, state = threads_for(B, *args[1].shape[1:], args[0]), np.zeros(B + 2, np.int64)  # args[:2]: kind, X
    if threads < 2 or not _call_lock.acquire(blocking=False):
        return _worker(*args, state, np.zeros(1, np.int64), True)
    try:
        _helpers = _helpers if _helpers is not None and _helpers.pid == os.getpid() else _Helpers()
        helped, t0 = _helpers.use(what := (args[0], args[1].dtype.char)), time.perf_counter()
        state[1] = _helpers.start((_worker, (*args, state)), threads - 1) if helped else 0
        _worker(*args, state, _helpers.ticket if helped else np.zeros(1, np.int64), True)
        _helpers.record((*what, helped), (time.perf_counter() - t0) / (B * args[1][0].size))
    finally:
        _call_lock.release()


def forward(kind, X, x_tilde, W_KQ, W_PV):
    """Output W_PV X a per prompt (Eqs. 11, 12, 14), C arrays of one dtype: X (B, n, L), x_tilde (B, n) -> (B, n)."""
    B, out, KQ = X.shape[0], np.empty(X.shape[:2], X.dtype), np.empty((0,) + W_KQ.shape, X.dtype)
    _run((kind, X, x_tilde, x_tilde, W_KQ, W_PV, np.arange(B), 1.0, np.empty(0), KQ, KQ, out), B)
    return out


def loss_and_grads(kind, X, x_tilde, x, W_KQ, W_PV, index):
    """Fused forward + MSE + backward of the prompts ``index`` of X, x_tilde, x (read in place); returns (loss,
    dW_KQ, dW_PV). Shapes: X (N, n, L), x_tilde, x (N, n), W (n, n), index (B,) int64 -> float, (n, n), (n, n)."""
    B, n = index.shape[0], X.shape[1]
    loss, KQ, PV = np.empty(B), np.empty((B, n, n), X.dtype), np.empty((B, n, n), X.dtype)  # per-prompt slots
    args = (kind, X, x_tilde, x, W_KQ, W_PV, index, 2.0 / (B * n), loss, KQ, PV, np.empty((0, n), X.dtype))
    _run(args, B)
    return loss.sum() / (B * n), KQ.sum(axis=0), PV.sum(axis=0)  # fixed orders, whoever computed the slots
