"""Oracle posterior means and risks of icdmin.bayes, each against an independent numerical computation.

Tolerance origins:
- quadrature: ``scipy.integrate.quad`` with epsabs = epsrel = 1e-13 and its own error estimate asserted < 1e-11,
  so the comparison at rtol 1e-9 has margin for the ratio of two integrals;
- algebraic identities (Bessel recurrence, Gaussian conditioning by a linear solve, rotation): rtol 1e-10 (float64
  rounding of O(n) operations, with a condition-number allowance);
- Monte Carlo: |estimate - closed form| < Z * standard error with Z = 5 (two-sided false-alarm rate 6e-7 per
  coordinate); self-normalised importance sampling uses the delta-method standard error of a ratio estimator.

The Bessel ratio of Eq. (6) has its own file, ``tests/test_bessel.py``; the risks of the linear task (Eq. 4,
the finite-L optimum), ``tests/test_linear_risk.py``.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

from conftest import size
from icdmin.bayes import (
    bayes_risk_linear,
    linear_risk,
    mc_bayes_risk,
    optimal_linear_gamma,
    posterior_mean_gmm,
    posterior_mean_gmm_general,
    posterior_mean_linear,
    posterior_mean_sphere,
)
from icdmin.tasks import GMMTask, LinearTask, SphereTask, haar_basis
from strategies import finite_floats, positive, seeds

Z = 5.0  # Monte-Carlo tolerance in standard errors (module docstring)


# ---------------------------------------------------------------- posterior means vs independent computations


@given(seeds, st.integers(2, 6), st.data())
def test_linear_posterior_equals_gaussian_conditioning(seed, n, data):
    """Eq. (3) vs E[x|x̃] = m + Σ_x (Σ_x + σZ² I)^{-1} (x̃ - m) with Σ_x = σ0² P, solved numerically."""
    d = data.draw(st.integers(1, n - 1))
    s0, sz = data.draw(positive), data.draw(positive)
    rng = np.random.default_rng(seed)
    V = haar_basis(rng, 2, n, d)
    q, m = rng.standard_normal((2, n)), rng.standard_normal((2, n))
    got = posterior_mean_linear(q, V, s0, sz, offset=m)
    Sx = s0 * V @ V.transpose(0, 2, 1)
    want = m + np.einsum("bij,bj->bi", Sx, np.linalg.solve(Sx + sz * np.eye(n), (q - m)[:, :, None])[:, :, 0])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(posterior_mean_linear(q[0], V[0], s0, sz), posterior_mean_linear(q, V, s0, sz)[0])


def _sphere_mc(q, V, R, sz, rng, N):
    """Self-normalised MC of E[x|x̃] with x uniform on the sphere (proposal = prior)."""
    g = rng.standard_normal((N, V.shape[1]))
    x = R * (g / np.linalg.norm(g, axis=1, keepdims=True)) @ V.T  # (N, n)
    logw = -np.sum((q - x) ** 2, axis=1) / (2 * sz)
    w = np.exp(logw - logw.max())
    est = w @ x / w.sum()
    se = np.sqrt(np.sum((w[:, None] * (x - est)) ** 2, axis=0)) / w.sum()  # delta method
    return est, se


def _gmm_mc(q, M, s2, sz, w, rng, N):
    """Self-normalised MC of E[x|x̃] for the mixture, drawing from the prior."""
    lab = rng.choice(M.shape[1], size=N, p=w)
    x = M[:, lab].T + np.sqrt(s2[lab])[:, None] * rng.standard_normal((N, M.shape[0]))
    logw = -np.sum((q - x) ** 2, axis=1) / (2 * sz)
    wt = np.exp(logw - logw.max())
    est = wt @ x / wt.sum()
    se = np.sqrt(np.sum((wt[:, None] * (x - est)) ** 2, axis=0)) / wt.sum()
    return est, se


@given(seeds, st.integers(1, 3), finite_floats(0.2, 2.0))
@settings(max_examples=15)
def test_sphere_posterior_vs_self_normalised_mc(seed, d, sz):
    rng = np.random.default_rng(seed)
    n, R = d + 2, 1.3
    V = haar_basis(rng, 1, n, d + 1)[0]
    q = R * V @ rng.standard_normal(d + 1) / np.sqrt(d + 1) + np.sqrt(sz) * rng.standard_normal(n)
    est, se = _sphere_mc(q, V, R, sz, rng, 40000)
    assert np.all(np.abs(posterior_mean_sphere(q, V, R, sz) - est) < Z * se + 1e-12)


@given(seeds, st.integers(1, 3), st.integers(1, 4), st.booleans())
@settings(max_examples=15)
def test_gmm_posteriors_vs_self_normalised_mc(seed, n, K, equal_var):
    """Eq. (7) (equal variances, with a zero weight) and the App. C.3 general mixture vs brute-force MC."""
    rng = np.random.default_rng(seed)
    R, sz = 1.0, 0.3
    M = rng.standard_normal((n, K))
    M *= R / np.linalg.norm(M, axis=0)
    w = rng.dirichlet(np.ones(K))
    if K > 1:
        w[0] = 0.0
        w /= w.sum()
    s2 = np.full(K, 0.1) if equal_var else rng.uniform(0.0, 0.3, K)
    a = rng.choice(K, p=w)
    q = M[:, a] + np.sqrt(s2[a] + sz) * rng.standard_normal(n)
    est, se = _gmm_mc(q, M, s2, sz, w, rng, 40000)
    got = posterior_mean_gmm_general(q, M, s2, sz, w)
    assert np.all(np.abs(got - est) < Z * se + 1e-12)
    if equal_var:
        np.testing.assert_allclose(posterior_mean_gmm(q, M, 0.1, sz, w), got, rtol=1e-10, atol=1e-12)


@given(seeds, st.integers(1, 5), st.integers(1, 5), finite_floats(0.0, 1.0), positive)
def test_gmm_eq7_is_the_general_formula_with_equal_variances(seed, n, K, s0, sz):
    """Eq. (7) written with ⟨μ, x̃⟩ logits equals App. C.3 with σ_a = σ0 for any centres (the norm term)."""
    rng = np.random.default_rng(seed)
    M, q = rng.standard_normal((3, n, K)), rng.standard_normal((3, n))
    w = rng.dirichlet(np.ones(K), size=3)
    got = posterior_mean_gmm(q, M, s0, sz, w)
    np.testing.assert_allclose(got, posterior_mean_gmm_general(q, M, np.full(K, s0), sz, w), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- limits σZ² -> 0 and σZ² -> ∞


@given(seeds)
@settings(max_examples=30)
def test_small_noise_limits(seed):
    rng = np.random.default_rng(seed)
    n, d, R = 5, 2, 1.7
    V = haar_basis(rng, 1, n, d + 1)[0]
    q = rng.standard_normal(n)
    P = V @ V.T
    # linear: shrink σ0²/(σ0²+σZ²) -> 1, the projection P x̃
    np.testing.assert_allclose(posterior_mean_linear(q, V, 1.0, 1e-10), P @ q, rtol=1e-9, atol=1e-9)
    # sphere: A(κ) -> 1 at rate d/(2κ): the radial projection R P x̃ / ||P x̃||
    qp = P @ q
    assume(np.linalg.norm(qp) > 1e-3)
    sz = 1e-9
    rad = R * qp / np.linalg.norm(qp)
    err = np.linalg.norm(posterior_mean_sphere(q, V, R, sz) - rad)
    assert err <= R * d / (2 * R * np.linalg.norm(qp) / sz) * 1.01 + 1e-12
    # mixture with σ0 = 0: softmax -> argmax, the nearest centre
    M = rng.standard_normal((n, 4))
    M /= np.linalg.norm(M, axis=0)
    dist = np.sum((q[:, None] - M) ** 2, axis=0)
    gap = np.sort(dist)[1] - np.sort(dist)[0]
    assume(gap > 1e-3)
    np.testing.assert_allclose(posterior_mean_gmm(q, M, 0.0, 1e-6, None), M[:, np.argmin(dist)], atol=1e-12)


@given(seeds)
@settings(max_examples=30)
def test_large_noise_limits_give_the_prior_mean(seed):
    """σZ² = 1e10: linear -> m (the offset), sphere -> 0, mixture -> Σ w_a μ_a; errors O(|x̃| R²/σZ²)."""
    rng = np.random.default_rng(seed)
    n, d, sz = 5, 2, 1e10
    V = haar_basis(rng, 1, n, d + 1)[0]
    q, m = rng.standard_normal(n), rng.standard_normal(n)
    np.testing.assert_allclose(posterior_mean_linear(q, V, 2.0, sz, offset=m), m, atol=1e-9)
    assert np.linalg.norm(posterior_mean_sphere(q, V, 1.0, sz)) <= np.linalg.norm(q) / (sz * (d + 1)) * 1.01
    M = rng.standard_normal((n, 3))
    M /= np.linalg.norm(M, axis=0)
    w = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(posterior_mean_gmm(q, M, 0.02, sz, w), M @ w, atol=1e-8)
    np.testing.assert_allclose(posterior_mean_gmm_general(q, M, [0.0, 0.1, 0.2], sz, w), M @ w, atol=1e-8)


# ---------------------------------------------------------------- rotation equivariance


@given(seeds, st.integers(2, 6))
def test_posterior_means_are_rotation_equivariant(seed, n):
    rng = np.random.default_rng(seed)
    Q = special_ortho_group.rvs(n, random_state=rng) if n > 1 else np.eye(1)
    d = max(1, n - 2)
    V, q, m = haar_basis(rng, 1, n, d)[0], rng.standard_normal(n), rng.standard_normal(n)
    M = rng.standard_normal((n, 3))
    w = np.array([0.3, 0.0, 0.7])
    pairs = [
        (posterior_mean_linear(Q @ q, Q @ V, 1.5, 0.4, offset=Q @ m), posterior_mean_linear(q, V, 1.5, 0.4, offset=m)),
        (posterior_mean_sphere(Q @ q, Q @ V, 1.2, 0.3), posterior_mean_sphere(q, V, 1.2, 0.3)),
        (posterior_mean_gmm(Q @ q, Q @ M, 0.05, 0.2, w), posterior_mean_gmm(q, M, 0.05, 0.2, w)),
        (posterior_mean_gmm_general(Q @ q, Q @ M, [0.1, 0.2, 0.0], 0.2, w),
         posterior_mean_gmm_general(q, M, [0.1, 0.2, 0.0], 0.2, w)),
    ]
    for rotated, plain in pairs:
        np.testing.assert_allclose(rotated, Q @ plain, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: posterior_mean_linear(np.ones(4), np.ones((3, 2)), 1.0, 1.0), "basis"),
        (lambda: posterior_mean_linear(np.ones(4), np.ones((4, 2)), 0.0, 1.0), "sigma2_0"),
        (lambda: posterior_mean_linear(np.ones(4), np.ones((4, 2)), 1.0, -1.0), "sigma2_z"),
        (lambda: posterior_mean_linear(np.ones(4), np.ones((4, 2)), 1.0, 1.0, offset=np.ones(3)), "offset"),
        (lambda: posterior_mean_linear([np.nan] * 4, np.ones((4, 2)), 1.0, 1.0), "x_tilde"),
        (lambda: posterior_mean_sphere(np.ones(4), np.full((4, 2), np.inf), 1.0, 1.0), "basis"),
        (lambda: posterior_mean_sphere(np.ones(4), np.ones((4, 2)), 0.0, 1.0), "R"),
        (lambda: posterior_mean_sphere(np.ones((2, 4)), np.ones((3, 4, 2)), 1.0, 1.0), "batch"),
        (lambda: posterior_mean_gmm(np.ones(4), np.ones((4, 2)), -0.1, 1.0), "sigma2_0"),
        (lambda: posterior_mean_gmm(np.ones(4), np.ones((4, 2)), 0.1, 0.0), "sigma2_z"),
        (lambda: posterior_mean_gmm(np.ones(4), np.ones((4, 2)), 0.1, 1.0, [0.5, 0.6]), "weights"),
        (lambda: posterior_mean_gmm(np.ones(4), np.ones((4, 2)), 0.1, 1.0, [-0.5, 1.5]), "weights"),
        (lambda: posterior_mean_gmm(np.ones(4), np.ones((4, 2)), 0.1, 1.0, [1.0]), "weights"),
        (lambda: posterior_mean_gmm_general(np.ones(4), np.ones((4, 2)), [0.1, -1.0], 1.0), "sigma2_components"),
        (lambda: posterior_mean_gmm_general(np.ones(4), np.ones((4, 2)), [0.1], 1.0), "sigma2_components"),
        (lambda: bayes_risk_linear(4, 5, 1.0, 1.0), "d"),
        (lambda: optimal_linear_gamma(2, 0, 1.0, 1.0), "L"),
        (lambda: linear_risk(4, 2, 3, 1.0, 1.0, np.inf), "gamma"),
        (lambda: mc_bayes_risk(LinearTask(3, 1), rng=np.random.default_rng(0), batch=1), "batch"),
    ],
)
def test_bad_input_names_the_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


# ---------------------------------------------------------------- derived reference numbers (paper §2.3, §4 set-ups)


def _paper_z(m, se, ref, n_ref, sd):
    """z-score of our MC mean against a reference MC mean made with n_ref prompts (its stderr ≈ sd/√n_ref)."""
    return abs(m - ref) / np.sqrt(se**2 + sd**2 / n_ref)


@pytest.mark.slow
def test_paper_reference_bayes_risks():
    """Paper §2.2, §2.3, §4 set-ups: sphere oracle 0.0290 (2000 prompts), GMM Eq. 7 0.0236 and Eq. 8 0.0270 (3000),
    circle oracle 0.107 total (20000); compared at z < 4 with both standard errors (ours and the reference's)."""
    N = size(200000, 40000)
    rng = np.random.default_rng(11)
    p = SphereTask(16, 8, 1.0, 0.1).sample(rng, N, 1)
    e = np.mean((p.task.posterior_mean(p) - p.x) ** 2, axis=1)
    assert _paper_z(e.mean(), e.std() / np.sqrt(N), 0.0290, 2000, e.std()) < 4
    p = GMMTask(16, 8, 0.02, 0.1).sample(rng, N, 1)
    e7 = np.mean((p.task.posterior_mean(p) - p.x) ** 2, axis=1)
    e8 = np.mean((posterior_mean_gmm(p.x_tilde, p.centers, 0.0, 0.1) - p.x) ** 2, axis=1)
    for e, ref in ((e7, 0.0236), (e8, 0.0270)):
        assert _paper_z(e.mean(), e.std() / np.sqrt(N), ref, 3000, e.std()) < 4
    assert e7.mean() < e8.mean()  # Eq. (7) is the optimum; Eq. (8) ignores σ0²
    p = SphereTask(2, 1, 1.0, 0.1).sample(rng, N, 1)
    e = np.sum((p.task.posterior_mean(p) - p.x) ** 2, axis=1)  # total, not per coordinate
    assert _paper_z(e.mean(), e.std() / np.sqrt(N), 0.107, 20000, e.std()) < 4


def test_golden_bayes():
    """Static golden numbers (tests/data/golden.json, area "bayes"), regenerated by scripts/make_golden.py."""
    from golden import assert_tree_close, golden

    stored, fresh = golden("bayes")
    assert_tree_close(stored, fresh)


def test_float32_in_float32_out():
    q, V, M = np.ones(4, np.float32), np.eye(4, 2, dtype=np.float32), np.eye(4, 3, dtype=np.float32)
    assert posterior_mean_linear(q, V, 1.0, 1.0).dtype == np.float32
    assert posterior_mean_sphere(q, V, 1.0, 1.0).dtype == np.float32
    assert posterior_mean_gmm(q, M, 0.1, 1.0).dtype == np.float32
    assert posterior_mean_gmm_general(q, M, [0.1, 0.2, 0.0], 1.0).dtype == np.float32
