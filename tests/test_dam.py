"""Tests of icdmin.dam: the DAM energy (Eq. 16), its derivatives, descent (Eq. 17), lse and softmax. The App. I
functions (linear energy, update Jacobian, gradient-flow condition): ``tests/test_energy_appendix.py``.

Tolerances: complex step 1e-8 relative (the step is exact up to rounding of the cancelling terms,
so the absolute floor is 1e-8 times the size of those terms); central differences 1e-5 relative with
h = 1e-6·max(1, |s|) (truncation O(h²) ≈ 1e-12 times the third derivative, rounding O(1e-16/h)); algebraic
identities 1e-12. Monte-Carlo checks use a z-score of 5 standard errors with a fixed seed.
"""

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from icdmin.dam import (
    descend,
    lse,
    softmax,
    descent_step,
    energy,
    energy_grad,
    energy_hessian,
    linear_descent_step,
    linear_energy,
    update_jacobian,
)
from strategies import dims, positive, seeds


def _problem(seed, dm, beta, batched, max_score=30.0):
    """Random memories and states with beta·|Xᵀ s| <= max_score (valid by construction)."""
    rng = np.random.default_rng(seed)
    n, L, B = dm["n"], dm["L"], dm["B"]
    X = rng.standard_normal((B, n, L)) / np.sqrt(n)  # (B, n, L)
    s = rng.standard_normal((B, n))  # (B, n)
    z = np.abs(np.einsum("bnl,bn->bl", X, s)).max()
    s *= min(1.0, max_score / (beta * z + 1e-300))
    return (X, s) if batched else (X[0], s[0])


def _grad_scale(s, X, alpha):
    """Size of the two cancelling terms of ∇E = s/α − X p, the natural absolute floor of a gradient check."""
    return np.linalg.norm(s, axis=-1, keepdims=True) / alpha + np.abs(X).max()


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, batched=st.booleans())
def test_grad_equals_complex_step(seed, dm, alpha, beta, batched):
    X, s = _problem(seed, dm, beta, batched)
    g = energy_grad(s, X, alpha, beta)
    h = 1e-30
    cs = np.empty_like(s)
    for j in range(s.shape[-1]):
        e = np.zeros(s.shape, complex)
        e[..., j] = 1j * h
        cs[..., j] = np.imag(energy(s + e, X, alpha, beta)) / h
    np.testing.assert_allclose(g, cs, rtol=1e-8, atol=1e-8 * _grad_scale(s, X, alpha).max())


def _central_differences(f, s):
    """Central differences of f along each coordinate of the state(s) s, h = 1e-6 max(1, |s|), stacked last.

    Shapes: f(s) (...) -> (..., n); f(s) (..., m) -> (..., m, n).
    """
    h = 1e-6 * max(1.0, np.abs(s).max())
    columns = []
    for j in range(s.shape[-1]):
        e = np.zeros(s.shape)
        e[..., j] = h
        columns.append((f(s + e) - f(s - e)) / (2 * h))
    return np.stack(columns, axis=-1)


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, batched=st.booleans())
def test_grad_equals_central_difference(seed, dm, alpha, beta, batched):
    X, s = _problem(seed, dm, beta, batched)
    g = energy_grad(s, X, alpha, beta)
    fd = _central_differences(lambda state: energy(state, X, alpha, beta), s)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7 * _grad_scale(s, X, alpha).max())


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, batched=st.booleans())
def test_hessian_equals_jacobian_of_grad(seed, dm, alpha, beta, batched):
    X, s = _problem(seed, dm, beta, batched)
    H = energy_hessian(s, X, alpha, beta)
    fd = _central_differences(lambda state: energy_grad(state, X, alpha, beta), s)
    scale = 1 / alpha + beta * np.abs(X).max() ** 2 * X.shape[-2]  # size of the terms of I/α − βX(·)Xᵀ
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(H, np.swapaxes(H, -1, -2), rtol=0, atol=1e-12 * scale)


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, batched=st.booleans())
def test_hessian_equals_complex_step_of_grad(seed, dm, alpha, beta, batched):
    X, s = _problem(seed, dm, beta, batched)
    H = energy_hessian(s, X, alpha, beta)
    cs = np.empty_like(H)
    for j in range(s.shape[-1]):
        e = np.zeros(s.shape, complex)
        e[..., j] = 1e-30j
        cs[..., :, j] = np.imag(energy_grad(s + e, X, alpha, beta)) / 1e-30
    scale = 1 / alpha + beta * np.abs(X).max() ** 2 * X.shape[-2]
    np.testing.assert_allclose(H, cs, rtol=1e-8, atol=1e-8 * scale)


def test_float32_stays_float32():
    rng = np.random.default_rng(3)
    X, s = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    for out in (energy_grad(s, X, 1.0, 2.0), descent_step(s, X, 1.0, 2.0), descend(s, X, 1.0, 2.0, steps=3).s):
        assert out.dtype == np.float32
    np.testing.assert_allclose(descent_step(s, X, 1.0, 2.0), descent_step(s.astype(float), X.astype(float), 1.0, 2.0),
                               rtol=1e-5, atol=1e-6)  # float32 rounding


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive)
def test_descent_step_is_attention_read_out(seed, dm, alpha, beta):
    """The central identity (Eq. 17 with γ = α): one step from x_tilde is α X softmax(β Xᵀ x_tilde)."""
    X, x_tilde = _problem(seed, dm, beta, batched=True)
    out = descent_step(x_tilde, X, alpha, beta)
    for b in range(X.shape[0]):
        ref = alpha * X[b] @ scipy.special.softmax(beta * X[b].T @ x_tilde[b])
        np.testing.assert_allclose(out[b], ref, rtol=1e-12, atol=1e-12 * alpha * np.abs(X).max())
        single = descent_step(x_tilde[b], X[b], alpha, beta)
        np.testing.assert_allclose(single, ref, rtol=1e-12, atol=1e-12 * alpha * np.abs(X).max())


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, frac=st.floats(0.05, 1.5))
def test_descent_step_is_gradient_step(seed, dm, alpha, beta, frac):
    X, s = _problem(seed, dm, beta, batched=True)
    gamma = frac * alpha
    ref = s - gamma * energy_grad(s, X, alpha, beta)
    np.testing.assert_allclose(descent_step(s, X, alpha, beta, gamma), ref, rtol=1e-10,
                               atol=1e-12 * gamma * _grad_scale(s, X, alpha).max())


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, frac=st.floats(0.01, 1.0))
def test_descent_never_increases_energy(seed, dm, alpha, beta, frac):
    """γ <= α: the step is a convex combination of s and the concave-convex (CCCP) minimiser, so E cannot rise."""
    X, s = _problem(seed, dm, beta, batched=True)
    res = descend(s, X, alpha, beta, gamma=frac * alpha, steps=20, return_trajectory=True)
    E = np.array([energy(st_, X, alpha, beta) for st_ in res.trajectory])  # (T+1, B)
    scale = np.abs(E).max() + np.linalg.norm(s, axis=-1).max() ** 2 / alpha + np.abs(X).max() * 10
    assert np.all(np.diff(E, axis=0) <= 1e-12 * scale)


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, tol=st.floats(1e-10, 1e-4))
def test_converged_states_have_small_gradient(seed, dm, alpha, beta, tol):
    X, s = _problem(seed, dm, beta, batched=True)
    # αβ max|X_t|² <= 1/4 makes s -> αX softmax(βXᵀs) a contraction, so descent must converge.
    X = X * np.sqrt(0.25 / (alpha * beta * (np.sum(X * X, axis=1).max() + 1e-300)))
    res = descend(s, X, alpha, beta, steps=500, tol=tol)
    assert np.all(res.converged) and res.n_steps < 500
    assert np.all(np.linalg.norm(energy_grad(res.s, X, alpha, beta), axis=-1) < tol)
    np.testing.assert_allclose(res.grad_norm, np.linalg.norm(energy_grad(res.s, X, alpha, beta), axis=-1))


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive, k=st.integers(0, 6))
def test_descend_trajectory_repeats_descent_step(seed, dm, alpha, beta, k):
    X, s = _problem(seed, dm, beta, batched=False)
    res = descend(s, X, alpha, beta, steps=k, return_trajectory=True)
    assert res.trajectory.shape == (k + 1, s.shape[0]) and res.n_steps == k and not res.converged
    state = s
    for t in range(k):
        state = descent_step(state, X, alpha, beta)
        np.testing.assert_allclose(res.trajectory[t + 1], state, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(res.s, res.trajectory[-1])


@given(seed=seeds, dm=dims(), alpha=positive, beta=positive)
def test_shared_context_equals_broadcast(seed, dm, alpha, beta):
    X, s = _problem(seed, dm, beta, batched=True)
    Xb = np.broadcast_to(X[0], X.shape)
    # absolute floor: rounding of the cancelling terms (|s|²/α, β-scaled lse, β X p pᵀ Xᵀ), 1e-12 of their size
    scale = 1 + (1 + np.abs(s).max() ** 2) / alpha + beta * np.abs(X).max() ** 2 * X.shape[1]
    for f in (energy, energy_grad, energy_hessian, descent_step):
        np.testing.assert_allclose(f(s, X[0], alpha, beta), f(s, Xb, alpha, beta), rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("score", [1e2, 1e3, 1e4])
def test_no_overflow_large_scores(score):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 4, 30))
    s = rng.standard_normal((2, 4))
    beta = score / np.abs(np.einsum("bnl,bn->bl", X, s)).max()
    for out in (energy(s, X, 1.0, beta), energy_grad(s, X, 1.0, beta), energy_hessian(s, X, 1.0, beta),
                descend(s, X, 1.0, beta, steps=20, tol=1e-12).s):
        assert np.all(np.isfinite(out))
    # at this temperature the step is hard retrieval of the best-matching token
    best = np.argmax(np.einsum("bnl,bn->bl", X, s), axis=1)
    if score >= 1e3:
        np.testing.assert_allclose(descent_step(s, X, 1.0, beta), X[np.arange(2), :, best], atol=1e-12)


def test_long_context_and_single_token():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 100_000))
    s = rng.standard_normal(3)
    for out in (energy(s, X, 0.5, 40.0), energy_grad(s, X, 0.5, 40.0), descend(s, X, 0.5, 40.0, steps=5).s,
                linear_energy(s, X, 0.5), linear_descent_step(s, X, 0.5)):
        assert np.all(np.isfinite(out))
    X1 = rng.standard_normal((3, 1))  # L = 1: softmax is 1, E = |s|²/2α − X_1ᵀs
    np.testing.assert_allclose(energy(s, X1, 2.0, 3.0), s @ s / 4 - X1[:, 0] @ s, rtol=1e-14)
    np.testing.assert_allclose(descent_step(s, X1, 2.0, 3.0), 2.0 * X1[:, 0], rtol=1e-15)


def test_golden_values():
    """Hand-derived: X = I_2, s = e_1, α = β = 1 -> E = 1/2 − log(e + 1), ∇E = (1/(e+1))(1, −1)."""
    X, s = np.eye(2), np.array([1.0, 0.0])
    assert energy(s, X, 1.0, 1.0) == pytest.approx(0.5 - np.log(np.e + 1), rel=1e-15)
    np.testing.assert_allclose(energy_grad(s, X, 1.0, 1.0), np.array([1, -1]) / (np.e + 1), rtol=1e-14)
    np.testing.assert_allclose(linear_energy(s, X, 2.0), 0.25 - 0.25, atol=1e-16)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_scalars_raise(bad):
    X, s = np.ones((2, 3)), np.ones(2)
    for name, call in [("alpha", lambda: energy(s, X, bad, 1.0)), ("beta", lambda: energy_grad(s, X, 1.0, bad)),
                       ("alpha", lambda: descend(s, X, bad, 1.0)), ("beta", lambda: descent_step(s, X, 1.0, bad)),
                       ("gamma", lambda: descent_step(s, X, 1.0, 1.0, gamma=bad)),
                       ("gamma", lambda: linear_energy(s, X, bad)), ("tol", lambda: descend(s, X, 1, 1, tol=bad))]:
        with pytest.raises(ValueError, match=name):
            call()


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="X"):
        energy(np.ones(2), np.ones((2, 3, 4, 5)), 1.0, 1.0)
    with pytest.raises(ValueError, match="s"):
        energy_grad(np.ones((2, 2, 2)), np.ones((2, 3)), 1.0, 1.0)
    with pytest.raises(ValueError, match="token dimension"):
        descent_step(np.ones(3), np.ones((2, 4)), 1.0, 1.0)
    with pytest.raises(ValueError, match="token dimension"):
        energy(np.ones((5, 3)), np.ones((2, 4)), 1.0, 1.0)
    with pytest.raises(ValueError, match="batch"):
        descend(np.ones((2, 3)), np.ones((3, 3, 4)), 1.0, 1.0)
    with pytest.raises(ValueError, match="L >= 1"):
        energy(np.ones(3), np.ones((3, 0)), 1.0, 1.0)
    with pytest.raises(ValueError, match="W_KQ"):
        update_jacobian(np.ones(3), np.ones((3, 4)), np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="X contains NaN"):
        energy(np.ones(2), np.full((2, 3), np.nan), 1.0, 1.0)
    with pytest.raises(TypeError, match="steps"):
        descend(np.ones(2), np.ones((2, 3)), 1.0, 1.0, steps=2.5)


def test_descend_never_returns_the_callers_array():
    X, s = np.eye(3), np.array([[0.3, 0.1, 0.0], [0.0, 0.2, 0.4]])
    for form in (s, s[0]):
        kept = form.copy()
        res = descend(form, X, 1.0, 2.0, steps=0, return_trajectory=True)
        assert res.s is not form and not np.shares_memory(res.s, form)
        res.s[...] = 7.0  # writing into the result leaves the caller's state alone
        np.testing.assert_array_equal(form, kept)
        assert not np.shares_memory(res.trajectory, form)


@pytest.mark.parametrize("z, axis, exc, name", [
    (None, -1, TypeError, "z"), ("abc", -1, TypeError, "z"), ([[1.0, 2.0]], 2, ValueError, "axis"),
    ([1.0, 2.0], 1.5, TypeError, "axis"), (np.ones((2, 0)), -1, ValueError, "z must be non-empty"),
    ([1.0, np.nan], -1, ValueError, "z contains NaN"), ([np.inf, 1.0], -1, ValueError, "z contains"),
    ([-np.inf, -np.inf], -1, ValueError, "-inf"), (3.0, -1, ValueError, "z must have"),
])
def test_lse_softmax_validate(z, axis, exc, name):
    for f in (lse, softmax):
        with pytest.raises(exc, match=name):
            f(z, axis=axis)


def test_lse_softmax_allow_minus_inf_weights():
    z = np.array([[0.0, -np.inf, np.log(3.0)], [1e300, 0.0, -1e300]])
    np.testing.assert_allclose(softmax(z), [[0.25, 0.0, 0.75], [1.0, 0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(lse(z, axis=1), [np.log(4.0), 1e300], rtol=1e-15)
