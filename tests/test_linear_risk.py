"""Risks of the linear task (icdmin.bayes): the Bayes risk of Eq. (4) and the finite-L risk of the linear estimator
and its optimum [derived], against Monte Carlo, and the closed form's properties.

Monte Carlo: |estimate - closed form| < Z * standard error with Z = 5 (as in tests/test_bayes.py).
"""

import numpy as np
import pytest

from icdmin.bayes import bayes_risk_linear, linear_risk, mc_bayes_risk, optimal_linear_gamma
from icdmin.tasks import LinearTask

Z = 5.0


def test_linear_bayes_risk_eq4_vs_monte_carlo():
    assert bayes_risk_linear(16, 8, 2.0, 1.0) == pytest.approx(1 / 3, rel=1e-15)  # paper Eq. (4): 1/3 per coord
    task = LinearTask(6, 2, 1.5, 0.8)
    m, se = mc_bayes_risk(task, rng=np.random.default_rng(0), batch=20000)
    assert abs(m - bayes_risk_linear(6, 2, 1.5, 0.8)) < Z * se
    assert task.bayes_risk() == bayes_risk_linear(6, 2, 1.5, 0.8)


@pytest.mark.parametrize("L", [1, 3, 20])
def test_linear_finite_L_risk_and_optimum_vs_monte_carlo(L):
    """linear_risk(γ) for γ ∈ {γ*(L), 1/(σ0²+σZ²), 0.1} and the MC optimum E[xᵀ Ŝ x̃]/E||Ŝ x̃||² vs γ*(L)."""
    n, d, s0, sz = 5, 2, 2.0, 1.0
    p = LinearTask(n, d, s0, sz).sample(np.random.default_rng(L), 20000, L)
    Sq = np.einsum("bnl,bl->bn", p.X, np.einsum("bnl,bn->bl", p.X, p.x_tilde)) / L  # (B, n) Ŝ x̃
    g_star = optimal_linear_gamma(d, L, s0, sz)
    for g in (g_star, 1 / (s0 + sz), 0.1):
        err = np.mean((g * Sq - p.x) ** 2, axis=1)
        assert abs(err.mean() - linear_risk(n, d, L, s0, sz, g)) < Z * err.std(ddof=1) / np.sqrt(err.size)
    a, b = np.sum(p.x * Sq, axis=1), np.sum(Sq * Sq, axis=1)  # γ̂ = mean(a)/mean(b), delta-method stderr
    g_hat = a.mean() / b.mean()
    se = np.std(a - g_hat * b, ddof=1) / np.sqrt(a.size) / b.mean()
    assert abs(g_hat - g_star) < Z * se


def test_linear_risk_closed_form_properties():
    """γ*(L) minimises linear_risk (central differences), γ = 0 gives predict-zero, L -> ∞ gives Eq. (4)."""
    n, d, L, s0, sz = 16, 8, 499, 2.0, 1.0
    g = optimal_linear_gamma(d, L, s0, sz)
    assert g == pytest.approx(0.3274, abs=1e-4)  # finite-L optimum (paper §3.1)
    assert linear_risk(n, d, L, s0, sz, g) == pytest.approx(0.3451, abs=1e-4)
    assert linear_risk(n, d, L, s0, sz, 1 / 3) == pytest.approx(0.3454, abs=1e-4)
    h = 1e-5
    slope = (linear_risk(n, d, L, s0, sz, g + h) - linear_risk(n, d, L, s0, sz, g - h)) / (2 * h)
    assert abs(slope) < 1e-9
    assert linear_risk(n, d, L, s0, sz, 0.0) == pytest.approx(d * s0 / n)
    assert linear_risk(n, d, 10**12, s0, sz, 1 / (s0 + sz)) == pytest.approx(bayes_risk_linear(n, d, s0, sz), rel=1e-9)
    for L_, gs in ((19, 0.2262), (49, 0.2816), (99, 0.3056)):  # finite-L optima (paper §3.1)
        assert optimal_linear_gamma(d, L_, s0, sz) == pytest.approx(gs, abs=1e-4)
