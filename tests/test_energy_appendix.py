"""Tests of icdmin.energy_appendix (paper App. I): the linear-attention energy and its descent (A.14-A.17), the
update Jacobian (A.18) and the gradient-flow condition (A.19).
"""

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from icdmin.dam import energy_hessian
from icdmin.energy_appendix import (
    is_gradient_flow,
    linear_descent_step,
    linear_energy,
    linear_energy_grad,
    update_jacobian,
)
from strategies import dims, positive, seeds
from test_dam import _grad_scale, _problem


@given(seed=seeds, dm=dims(), gamma=positive)
def test_linear_step_is_linear_attention(seed, dm, gamma):
    X, x_tilde = _problem(seed, dm, 1.0, batched=False)
    L = X.shape[1]
    ref = (gamma / L) * X @ X.T @ x_tilde
    np.testing.assert_allclose(linear_descent_step(x_tilde, X, gamma), ref, rtol=1e-12,
                               atol=1e-14 * gamma * np.abs(X).max() ** 2 * np.abs(x_tilde).max() * L)


@given(seed=seeds, dm=dims(), gamma=positive, batched=st.booleans())
def test_linear_energy_grad_complex_step(seed, dm, gamma, batched):
    X, s = _problem(seed, dm, 1.0, batched)
    g = linear_energy_grad(s, X, gamma)
    cs = np.empty_like(s)
    for j in range(s.shape[-1]):
        e = np.zeros(s.shape, complex)
        e[..., j] = 1e-30j
        cs[..., j] = np.imag(linear_energy(s + e, X, gamma)) / 1e-30
    np.testing.assert_allclose(g, cs, rtol=1e-8, atol=1e-8 * _grad_scale(s, X, gamma).max())


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
def test_linear_energy_k_steps_population_limit(k):
    """Paper §4 / App. I.1: with (1/L)ΣX_tX_tᵀ = σ0²P exactly (the L -> inf limit), k steps of size γ = 1/(σ0²+σZ²)
    give s_k = c^k P x̃, and MSE/d = (c^k − 1)²σ0² + c^{2k}σZ². Monte Carlo, 5 standard errors."""
    rng = np.random.default_rng(1234 + k)
    n, d, s0, sz, N = 6, 3, 2.0, 1.0, 40000
    V = np.linalg.qr(rng.standard_normal((n, n)))[0][:, :d]  # (n, d) orthonormal basis of the subspace
    X = np.sqrt(d * s0) * V  # (n, d): L = d tokens with (1/L) X Xᵀ = σ0² P exactly
    gamma, c = 1 / (s0 + sz), s0 / (s0 + sz)
    x = (rng.standard_normal((N, d)) * np.sqrt(s0)) @ V.T  # (N, n) clean tokens ~ N(0, σ0² P)
    x_tilde = x + rng.standard_normal((N, n)) * np.sqrt(sz)
    s = x_tilde
    for _ in range(k):
        s = linear_descent_step(s, X, gamma)
    np.testing.assert_allclose(s, c**k * x_tilde @ V @ V.T, rtol=1e-12, atol=1e-12)
    err = np.sum((s - x) ** 2, axis=1) / d  # (N,)
    expected = (c**k - 1) ** 2 * s0 + c ** (2 * k) * sz
    assert abs(err.mean() - expected) < 5 * err.std(ddof=1) / np.sqrt(N)


def test_linear_energy_k_steps_table():
    """The k-step table (paper §4, linear energy) for σ0² = 2, σZ² = 1 (k = 1 is the Bayes risk 2/3)."""
    c = 2 / 3
    table = {1: 0.667, 2: 0.815, 3: 1.078, 5: 1.525, 10: 1.93}
    for k, v in table.items():
        assert abs((c**k - 1) ** 2 * 2 + c ** (2 * k) - v) < 6e-3


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive)
def test_update_jacobian_matches_finite_difference_and_hessian(seed, dm, alpha, beta):
    rng = np.random.default_rng(seed)
    X, s = _problem(seed, dm, 1.0, batched=False, max_score=3.0)
    n = s.shape[0]
    W_KQ, W_PV = rng.standard_normal((n, n)), rng.standard_normal((n, n))

    def f(v):  # the update of App. I.2, written independently
        return W_PV @ X @ scipy.special.softmax(X.T @ W_KQ @ v)

    J = update_jacobian(s, X, W_KQ, W_PV)
    fd = np.column_stack([(f(s + 1e-6 * e) - f(s - 1e-6 * e)) / 2e-6 for e in np.eye(n)])
    scale = np.abs(W_PV).max() * np.abs(W_KQ).max() * np.abs(X).max() ** 2 * n**2
    np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-7 * scale)
    # scaled identities: f = α X softmax(βXᵀs) = s − α∇E, so J = I − α ∇²E
    J_id = update_jacobian(s, X, beta * np.eye(n), alpha * np.eye(n))
    np.testing.assert_allclose(J_id, np.eye(n) - alpha * energy_hessian(s, X, alpha, beta), rtol=1e-9,
                               atol=1e-12 * (1 + alpha * beta * np.abs(X).max() ** 2 * n))


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive)
def test_gradient_flow_condition(seed, dm, alpha, beta):
    """(A.19) holds for scaled identities (of either sign) and fails for generic random weights."""
    rng = np.random.default_rng(seed)
    X, s = _problem(seed, dm, 1.0, batched=True, max_score=2.0)
    n, L = X.shape[1], X.shape[2]
    sign = rng.choice([-1.0, 1.0])
    assert is_gradient_flow(sign * beta * np.eye(n), sign * alpha * np.eye(n), X, s)
    if n >= 2 and L >= 2:
        W_KQ, W_PV = rng.standard_normal((n, n)), rng.standard_normal((n, n))
        assert not is_gradient_flow(W_KQ, W_PV, X, s, rtol=1e-6)
