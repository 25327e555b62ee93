"""Tests of icdmin._kernels: every kernel equals the NumPy specification, the dispatchers use the kernels exactly
when numba imports (with its JIT on), and results do not depend on the number of threads.

Tolerances: float64 parity rtol 1e-10 with atol 1e-12 times the array's scale (STYLE.md §E; the kernels only
reassociate sums, ~1e-15). float32 kernels against the float64 specification on the same float32-representable
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
from icdmin.attention import (
    KINDS,
    _loss_and_grads_unchecked,
    attention_forward,
    backend_for,
    loss_and_grads,
    loss_and_grads_numpy,
)

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

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    X, q, x, W_KQ, W_PV = attention_problem(3, 37, 16, 101, 3.0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _kernel_loss(kind, X, q, x, W_KQ, W_PV)
        out_one = _kernels.forward(_kernels.KIND_CODES[kind], X, q, W_KQ, W_PV)
        numba.set_num_threads(2)
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
        a = _loss_and_grads_unchecked(X, q, x, W_KQ, W_PV, kind)
        b = loss_and_grads(X, q, x, W_KQ, W_PV, kind)
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])


@given(seeds, finite_floats(1e-3, 800.0), st.integers(1, 40), finite_floats(-50.0, 50.0))
def test_vectorised_exp_matches_numpy(seed, spread, L, m):
    """_exp_shifted: exp(a − m) to 1e-14 relative (Cody-Waite reduction, degree-12 Taylor, remainder 2e-16);
    arguments below −700 are clamped there (their weight is < 1e-304 next to the largest one, 1)."""
    z = m + np.random.default_rng(seed).uniform(-spread, 0.0, L)  # (L,), all <= m
    z[0] = m  # the max-shifted softmax always has one argument 0
    a = z.copy()
    _kernels._exp_shifted(a, m, np.empty(L, np.int64))
    x = z - m
    big = x >= -700
    np.testing.assert_allclose(a[big], np.exp(x[big]), rtol=1e-14, atol=0)
    assert np.all(a[~big] <= np.exp(-700.0) * (1 + 1e-14))


@given(seeds, st.integers(1, 300))
def test_stream_sum_equals_numpy_sum(seed, size):
    """The benchmark's bandwidth probe sums correctly (sums of N(0,1) values: 1e-12 relative to Σ|a|)."""
    a = np.random.default_rng(seed).standard_normal(size)
    assert abs(_kernels.stream_sum(a) - np.sum(a)) <= 1e-12 * np.sum(np.abs(a))


@given(dims(max_n=5, max_L=12, max_B=6), seeds, kinds, st.booleans())
def test_index_reads_the_batch_in_place(size, seed, kind, numpy_path):
    """_loss_and_grads_unchecked(..., index=idx) equals the NumPy specification on X[idx] (repeats allowed),
    on the kernel path and on the NumPy fallback."""
    X, q, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], 2.0)
    idx = np.random.default_rng(seed).integers(0, size["B"], size=size["B"] + 2)
    want = loss_and_grads_numpy(X[idx], q[idx], x[idx], W_KQ, W_PV, kind)
    jit = _kernels.JIT_ENABLED
    try:
        _kernels.JIT_ENABLED = jit and not numpy_path
        got = _loss_and_grads_unchecked(X, q, x, W_KQ, W_PV, kind, index=idx)
    finally:
        _kernels.JIT_ENABLED = jit
    for g, v in zip(got, want):
        _close(g, v, 1e-10)
    direct = _kernels.loss_and_grads(_kernels.KIND_CODES[kind], X, q, x, W_KQ, W_PV, idx)
    for g, v in zip(direct, want):
        _close(g, v, 1e-10)


# --- pca_project: the projection baselines' kernel (baselines.projection_estimator, sphere_projection_estimator) ---


def _numpy_path(fn, *args, **kwargs):
    """Run a baseline with the kernel switched off: the NumPy specification."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_kernels, "JIT_ENABLED", False)
        return fn(*args, **kwargs)


def _low_rank_context(seed, B, n, d, L, centre):
    """Tokens offset + V G on a d-dim subspace (d = n: full rank), the kept eigenvalues of C >= 1e-3 λmax.

    Returns X (B, n, L), x_tilde (B, n) and eig_tol = 1e-6 λmax: discarded eigenvalues are rounding (~1e-16 λmax),
    so the kept set is unambiguous and the eigenvector rounding is ~1e-16 / 1e-3 << 1e-10 (projections compared).
    """
    from hypothesis import assume

    rng = np.random.default_rng(seed)
    V = np.linalg.qr(rng.standard_normal((B, n, d)))[0]  # (B, n, d)
    X = np.matmul(V, rng.standard_normal((B, d, L)))  # (B, n, L)
    if centre:
        X += rng.uniform(-2, 2, (B, n, 1))
    mu = X.mean(axis=2, keepdims=True) if centre else 0.0
    w = np.linalg.eigvalsh(np.matmul(X - mu, (X - mu).transpose(0, 2, 1)) / L)  # (B, n) ascending
    lam = w[:, -1:]  # (B, 1)
    assume(np.all(w[:, n - d] >= 1e-3 * lam))
    return X, rng.standard_normal((B, n)) * 2.0, float(1e-6 * lam.min())


@given(dims(max_n=6, max_L=10), seeds, st.booleans())
def test_pca_project_equals_numpy_spec(size, seed, centre):
    from icdmin.baselines import projection_estimator, sphere_projection_estimator

    n, d = size["n"], size["d"]
    X, q, tol = _low_rank_context(seed, size["B"], n, d, d + 2 + size["L"], centre)
    proj, mu, rank, trace, finite = _kernels.pca_project(X, q, centre, tol)
    assert finite.all() and np.all(rank == d)
    np.testing.assert_allclose(trace, np.einsum("bnl,bnl->b", X, X) / X.shape[2], rtol=1e-12)
    if centre:
        _close(mu + proj, _numpy_path(projection_estimator, X, q, eig_tol=tol), 1e-10)
        _close(mu + 0.7 * proj, _numpy_path(projection_estimator, X, q, shrink=0.7, eig_tol=tol), 1e-10)
    else:
        assert np.all(mu == 0.0)
        _close(proj, _numpy_path(sphere_projection_estimator, X, q, 0.3, bessel=None, eig_tol=tol)
               * (np.linalg.norm(proj, axis=1) / np.sqrt(trace))[:, None], 1e-10)


@needs_jit
@pytest.mark.parametrize("bessel", ["paper", "authors", None])
def test_projection_baselines_kernel_parity_at_paper_size(bessel):
    """n = 16, L = 499, d = 8, 200 prompts of the paper's linear (affine offsets) and sphere tasks, through the
    public estimators: kernel against the NumPy path at rtol 1e-10 (kept eigenvalues ~σ0² or R²/(d+1), discarded
    ~1e-16: well-defined spans)."""
    from icdmin.baselines import pca_backend, projection_estimator, sphere_projection_estimator
    from icdmin.tasks import LinearTask, SphereTask

    lin = LinearTask(16, 8, offset_scale=1.0).sample(np.random.default_rng(3), 200, 499)
    sph = SphereTask(16, 8).sample(np.random.default_rng(4), 200, 499)
    assert pca_backend(lin.X) == "numba"
    _close(projection_estimator(lin.X, lin.x_tilde, shrink=2 / 3),
           _numpy_path(projection_estimator, lin.X, lin.x_tilde, shrink=2 / 3), 1e-10)
    _close(sphere_projection_estimator(sph.X, sph.x_tilde, 0.1, bessel=bessel),
           _numpy_path(sphere_projection_estimator, sph.X, sph.x_tilde, 0.1, bessel=bessel), 1e-10)
    # one prompt: the single form goes through the same kernel
    _close(projection_estimator(lin.X[0], lin.x_tilde[0]), _numpy_path(projection_estimator, lin.X[0], lin.x_tilde[0]),
           1e-10)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_pca_project_flags_non_finite_prompts(bad):
    from icdmin.baselines import projection_estimator, sphere_projection_estimator

    X = np.random.default_rng(0).standard_normal((3, 4, 7))
    X[1, 2, 5] = bad
    with np.errstate(invalid="ignore"):  # inf - inf in the centring when the kernel runs as Python (JIT off)
        proj, _, _, _, finite = _kernels.pca_project(X, X[:, :, 0].copy(), True, 1e-4)
    assert finite.tolist() == [True, False, True] and np.all(np.isnan(proj[1])) and np.all(np.isfinite(proj[[0, 2]]))
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        projection_estimator(X, X[:, :, 0])
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        sphere_projection_estimator(X, X[:, :, 0], 0.1)


def test_pca_backend_is_numba_exactly_for_float64_under_jit():
    from icdmin.baselines import pca_backend

    X = np.zeros((2, 3, 4))
    assert pca_backend(X) == ("numba" if _kernels.JIT_ENABLED else "numpy")
    assert pca_backend(X.astype(np.float32)) == "numpy"
    assert _numpy_path(pca_backend, X) == "numpy"
