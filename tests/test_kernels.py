"""Tests of icdmin._kernels: every kernel equals the NumPy specification, the dispatchers use the kernels exactly
when numba imports (with its JIT on), and results do not depend on the number of threads.

Tolerances: float64 parity rtol 1e-10 with atol 1e-12 times the array's scale (the kernels only reassociate sums,
~1e-15). float32 kernels against the float64 specification on the same float32-representable
inputs: 2e-4 relative to the array's scale, i.e. a few hundred float32 ulps (2^-24 ≈ 6e-8) for sums over
L <= 499 tokens with the exponential's relative error amplified by |z| <= ~10.
These run under NUMBA_DISABLE_JIT=1 too (the kernels are then plain Python), so Hypothesis sizes stay small.
"""

import importlib.util

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import attention_problem, dims, finite_floats, seeds

from icdmin import _kernels
from icdmin.layer import (
    KINDS,
    attention_forward,
    backend_for,
    loss_and_grads,
    loss_and_grads_numpy,
)
from icdmin.loss import loss_and_grads_unchecked

kinds = st.sampled_from(KINDS)




def _kernel_loss(kind, X, q, x, W_KQ, W_PV):
    return _kernels.loss_and_grads(_kernels.KIND_CODES[kind], X, q, x, W_KQ, W_PV, np.arange(X.shape[0]))


def _close(got, want, rtol):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-2 * max(1.0, float(np.max(np.abs(want)))))


@given(dims(max_n=5, max_L=12), seeds, kinds, finite_floats(0.1, 5.0))
def test_kernel_loss_and_grads_equal_numpy_float64(size, seed, kind, w):
    X, q, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w)
    got = _kernel_loss(kind, X, q, x, W_KQ, W_PV)
    want = loss_and_grads_numpy(X, q, x, W_KQ, W_PV, kind)
    for g, v in zip(got, want):
        _close(g, v, 1e-10)


@given(dims(max_n=5, max_L=12), seeds, kinds, finite_floats(0.1, 5.0))
def test_kernel_forward_equals_numpy_float64(size, seed, kind, w):
    X, q, _, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w)
    got = _kernels.forward(_kernels.KIND_CODES[kind], X, q, W_KQ, W_PV)
    _close(got, attention_forward(X, q, W_KQ, W_PV, kind)[0], 1e-10)


@given(dims(max_n=5, max_L=12), seeds, kinds, finite_floats(0.1, 5.0))
def test_kernel_float32_close_to_float64_spec(size, seed, kind, w):
    X, q, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w, np.float32)
    got = _kernel_loss(kind, X, q, x, W_KQ, W_PV)
    assert got[1].dtype == np.float32 and got[2].dtype == np.float32
    want = loss_and_grads_numpy(*(a.astype(np.float64) for a in (X, q, x, W_KQ, W_PV)), kind)
    for g, v in zip(got, want):
        _close(g, v, 2e-4)
    out = _kernels.forward(_kernels.KIND_CODES[kind], X, q, W_KQ, W_PV)
    assert out.dtype == np.float32
    _close(out, attention_forward(*(a.astype(np.float64) for a in (X, q, W_KQ, W_PV)), kind)[0], 2e-4)


needs_jit = pytest.mark.skipif(not _kernels.JIT_ENABLED, reason="compiled kernels only (too slow as Python)")


@needs_jit
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_kernel_parity_at_paper_size(kind, dtype, rtol):
    """n = 16, L = 499, B = 80 with the trained Case 3 scale (β ≈ 5): the training and benchmark setting."""
    X, q, x, W_KQ, W_PV = attention_problem(7, 80, 16, 499, 5.0, dtype)
    got = loss_and_grads(X, q, x, W_KQ, W_PV, kind)
    want = loss_and_grads_numpy(*(a.astype(np.float64) for a in (X, q, x, W_KQ, W_PV)), kind)
    for g, v in zip(got, want):
        _close(g, v, rtol)


def test_kernels_used_exactly_when_numba_imports(monkeypatch):
    has_numba = importlib.util.find_spec("numba") is not None
    assert _kernels.HAS_NUMBA == has_numba
    if has_numba:
        import numba

        assert _kernels.JIT_ENABLED == (not numba.config.DISABLE_JIT)
    X, q, x, W_KQ, W_PV = attention_problem(0, 2, 3, 5)
    calls = []
    real = _kernels.loss_and_grads

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(_kernels, "loss_and_grads", spy)
    loss_and_grads(X, q, x, W_KQ, W_PV, "softmax")
    assert backend_for(X) == ("numba" if _kernels.JIT_ENABLED else "numpy")
    assert calls == ([_kernels.KIND_CODES["softmax"]] if _kernels.JIT_ENABLED else [])
    # complex input (complex-step checks) always takes the NumPy path
    assert backend_for(X.astype(np.complex128)) == "numpy"
    # without numba (simulated), the NumPy specification runs and gives the same numbers
    monkeypatch.setattr(_kernels, "JIT_ENABLED", False)
    calls.clear()
    without = loss_and_grads(X, q, x, W_KQ, W_PV, "softmax")
    assert calls == [] and backend_for(X) == "numpy"
    monkeypatch.undo()
    for g, v in zip(without, loss_and_grads(X, q, x, W_KQ, W_PV, "softmax")):
        _close(g, v, 1e-10)


@needs_jit
@pytest.mark.parametrize("kind", KINDS)
def test_results_do_not_depend_on_thread_count(kind):
    import numba

    X, q, x, W_KQ, W_PV = attention_problem(3, 37, 16, 101, 3.0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert _kernels.get_num_threads() == 1
        one = _kernel_loss(kind, X, q, x, W_KQ, W_PV)
        out_one = _kernels.forward(_kernels.KIND_CODES[kind], X, q, W_KQ, W_PV)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        two = _kernel_loss(kind, X, q, x, W_KQ, W_PV)
        out_two = _kernels.forward(_kernels.KIND_CODES[kind], X, q, W_KQ, W_PV)
    finally:
        numba.set_num_threads(before)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[2], two[2])
    np.testing.assert_array_equal(out_one, out_two)


def test_attention_module_exposes_unchecked_entry_point():
    """The training loop's entry point returns what the checked one does."""
    X, q, x, W_KQ, W_PV = attention_problem(1, 4, 3, 6)
    for kind in KINDS:
        a = loss_and_grads_unchecked(X, q, x, W_KQ, W_PV, kind)
        b = loss_and_grads(X, q, x, W_KQ, W_PV, kind)
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])


@given(dims(max_n=5, max_L=12, max_B=6), seeds, kinds, st.booleans())
def test_index_reads_the_batch_in_place(size, seed, kind, numpy_path):
    """loss_and_grads_unchecked(..., index=idx) equals the NumPy specification on X[idx] (repeats allowed),
    on the kernel path and on the NumPy fallback."""
    X, q, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], 2.0)
    idx = np.random.default_rng(seed).integers(0, size["B"], size=size["B"] + 2)
    want = loss_and_grads_numpy(X[idx], q[idx], x[idx], W_KQ, W_PV, kind)
    jit = _kernels.JIT_ENABLED
    try:
        _kernels.JIT_ENABLED = jit and not numpy_path
        got = loss_and_grads_unchecked(X, q, x, W_KQ, W_PV, kind, index=idx)
    finally:
        _kernels.JIT_ENABLED = jit
    for g, v in zip(got, want):
        _close(g, v, 1e-10)
    direct = _kernels.loss_and_grads(_kernels.KIND_CODES[kind], X, q, x, W_KQ, W_PV, idx)
    for g, v in zip(direct, want):
        _close(g, v, 1e-10)
