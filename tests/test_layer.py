"""Tests of icdmin.layer (and gaussian_attention): forward against an independent per-prompt loop, manual
gradients against numerical ones, invariances and input validation.

Tolerances: algebraic identities 1e-12 relative to the output scale; complex step 1e-8 relative to
the largest gradient entry (the step h = 1e-20 is exact up to rounding); directional central differences 1e-6 with
eps = 1e-5 (truncation O(eps²) and rounding O(1e-16/eps) are both about 1e-10 for these O(1) problems).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import attention_problem, dims, finite_floats, seeds

from icdmin.layer import (
    KINDS,
    AttentionCache,
    attention,
    attention_backward,
    attention_forward,
    attention_weights,
    loss_and_grads,
    loss_and_grads_identity,
    loss_and_grads_numpy,
)
from icdmin.dam import lse
from icdmin.gaussian_attention import attention_gaussian, loss_and_grads_gaussian
from icdmin.gradcheck import complex_step_error, directional_error

kinds = st.sampled_from(KINDS)




def _loop_attention(X, x_tilde, W_KQ, W_PV, kind):
    """Eqs. 11, 12, 14 token by token, prompt by prompt, in plain Python (the independent reference)."""
    out = []
    for Xb, q in zip(X, x_tilde):
        L = Xb.shape[1]
        scores = []
        for t in range(L):
            xt = Xb[:, t]
            s = xt @ (W_KQ @ q)
            if kind == "gaussian":
                s -= 0.5 * xt @ (W_KQ @ xt)
            scores.append(s)
        scores = np.array(scores)
        w = scores / L if kind == "linear" else np.exp(scores - lse(scores))
        out.append(W_PV @ sum(w[t] * Xb[:, t] for t in range(L)))
    return np.array(out)


@given(dims(), seeds, kinds, st.booleans())
def test_forward_matches_token_loop(size, seed, kind, single):
    X, x_tilde, _, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w=3.0)
    expected = _loop_attention(X, x_tilde, W_KQ, W_PV, kind)
    if single:
        X, x_tilde, expected = X[0], x_tilde[0], expected[0]
    got = attention(X, x_tilde, W_KQ, W_PV, kind)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(expected))))


@given(dims(), seeds, kinds)
def test_loss_is_mse_of_attention(size, seed, kind):
    X, x_tilde, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"])
    loss, _, _ = loss_and_grads(X, x_tilde, x, W_KQ, W_PV, kind)
    expected = np.mean((_loop_attention(X, x_tilde, W_KQ, W_PV, kind) - x) ** 2)
    assert loss == pytest.approx(expected, rel=1e-12)


@given(dims(max_n=4, max_L=6, max_B=2), seeds, kinds, finite_floats(0.1, 5.0))
def test_grads_complex_step(size, seed, kind, w):
    X, x_tilde, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w)

    def f(A, P):
        return loss_and_grads_numpy(X, x_tilde, x, A, P, kind)

    # gradients below 1e-6 x loss (a saturated softmax) are compared in absolute terms: see complex_step_error
    floor = 1e-6 * f(W_KQ, W_PV)[0]
    assert max(complex_step_error(f, (W_KQ, W_PV), floor=floor)) < 1e-8


@given(dims(), seeds, kinds, finite_floats(0.1, 5.0))
def test_grads_directional_dispatched_path(size, seed, kind, w):
    X, x_tilde, x, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w)

    def f(A, P):
        return loss_and_grads(X, x_tilde, x, A, P, kind)

    assert max(directional_error(f, (W_KQ, W_PV), np.random.default_rng(seed))) < 1e-6


@given(dims(), seeds, kinds, finite_floats(0.1, 3.0), finite_floats(0.1, 10.0))
def test_identity_grads_central_difference(size, seed, kind, alpha, beta):
    X, x_tilde, x, _, _ = attention_problem(seed, size["B"], size["n"], size["L"])
    loss, dalpha, dbeta = loss_and_grads_identity(X, x_tilde, x, alpha, beta, kind)
    eye = np.eye(size["n"])
    assert loss == pytest.approx(loss_and_grads(X, x_tilde, x, beta * eye, alpha * eye, kind)[0], rel=1e-12)
    for value, grad, f in (
        (alpha, dalpha, lambda a: loss_and_grads_identity(X, x_tilde, x, a, beta, kind)[0]),
        (beta, dbeta, lambda b: loss_and_grads_identity(X, x_tilde, x, alpha, b, kind)[0]),
    ):
        h = 1e-6 * max(1.0, abs(value))
        numerical = (f(value + h) - f(value - h)) / (2 * h)
        assert grad == pytest.approx(numerical, rel=1e-5, abs=1e-7)


@given(dims(max_n=4, max_L=6, max_B=2), seeds, st.integers(1, 4))
def test_general_gaussian_grads_complex_step(size, seed, m):
    X, x_tilde, x, _, W_PV = attention_problem(seed, size["B"], size["n"], size["L"])
    W_K, W_Q = np.random.default_rng(seed + 1).uniform(-1, 1, (2, m, size["n"]))

    def f(K, Q, P):
        return loss_and_grads_gaussian(X, x_tilde, x, K, Q, P)

    assert max(complex_step_error(f, (W_K, W_Q, W_PV))) < 1e-8


@given(dims(), seeds)
def test_tied_gaussian_is_eq14_with_equal_key_and_query_maps(size, seed):
    X, x_tilde, _, W, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w=2.0)
    expected = attention_gaussian(X, x_tilde, W, W, W_PV)
    got = attention(X, x_tilde, W.T @ W, W_PV, "gaussian")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(expected))))


@given(dims(), seeds, finite_floats(0.05, 2.0))
def test_gaussian_identity_is_tweedie(size, seed, sigma2_z):
    """W_KQ = I/σZ², W_PV = I: x̃ + σZ² ∇ log p̂(x̃), p̂ = (1/L) Σ_t N(X_t, σZ² I) (paper Eq. 14, §3.2); the score by
    central differences of log p̂ (through lse), h = 1e-6: truncation and rounding both below 1e-8 relative."""
    X, x_tilde, _, _, _ = attention_problem(seed, size["B"], size["n"], size["L"])
    n = size["n"]
    got = attention(X, x_tilde, np.eye(n) / sigma2_z, np.eye(n), "gaussian")

    def log_density(Xb, s):  # up to a constant
        return lse(-np.sum((Xb - s[:, None]) ** 2, axis=0) / (2 * sigma2_z))

    h = 1e-6
    for b in range(size["B"]):
        score = [
            (log_density(X[b], x_tilde[b] + h * e) - log_density(X[b], x_tilde[b] - h * e)) / (2 * h)
            for e in np.eye(n)
        ]
        expected = x_tilde[b] + sigma2_z * np.array(score)
        np.testing.assert_allclose(got[b], expected, rtol=0, atol=1e-6 * max(1.0, np.max(np.abs(x_tilde[b]))))


@given(dims(), seeds, kinds)
def test_invariant_to_permuting_context_tokens(size, seed, kind):
    X, x_tilde, _, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"])
    perm = np.random.default_rng(seed).permutation(size["L"])
    a = attention(X, x_tilde, W_KQ, W_PV, kind)
    b = attention(X[:, :, perm], x_tilde, W_KQ, W_PV, kind)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(a))))


def test_float32_in_float32_out():
    X, x_tilde, x, W_KQ, W_PV = (a.astype(np.float32) for a in attention_problem(0, 3, 4, 9))
    assert attention(X, x_tilde, W_KQ, W_PV).dtype == np.float32
    assert loss_and_grads(X, x_tilde, x, W_KQ, W_PV)[1].dtype == np.float32
    assert attention(X, x_tilde, W_KQ.astype(np.float64), W_PV).dtype == np.float64


def test_golden_softmax_value():
    """Hand-computable case: two tokens e1, e2 in R², query e1, W_KQ = log(3) I, W_PV = I:
    weights softmax(log 3, 0) = (3/4, 1/4), output (3/4, 1/4)."""
    X = np.eye(2)
    out = attention(X, np.array([1.0, 0.0]), np.log(3.0) * np.eye(2), np.eye(2), "softmax")
    np.testing.assert_allclose(out, [0.75, 0.25], rtol=1e-15)
    lin = attention(X, np.array([1.0, 0.0]), 2 * np.eye(2), np.eye(2), "linear")  # (1/2) X Xᵀ 2 e1 = e1
    np.testing.assert_allclose(lin, [1.0, 0.0], rtol=1e-15)


BAD = [
    ({"X": np.ones((2, 3, 4)), "x_tilde": np.ones((2, 2))}, "token dimension"),
    ({"X": np.ones((2, 3, 4)), "x_tilde": np.ones((3, 3))}, "batch sizes"),
    ({"W_KQ": np.ones((3, 2))}, "W_KQ"),
    ({"W_PV": np.ones((2, 2))}, "W_PV"),
    ({"x": np.ones((2, 2))}, "x must"),
    ({"kind": "cosine"}, "kind"),
    ({"X": np.full((2, 3, 4), np.nan)}, "X contains NaN"),
    ({"x_tilde": np.array([[1.0, np.inf, 0], [0, 0, 0]])}, "x_tilde"),
    ({"W_KQ": np.full((3, 3), np.nan)}, "W_KQ"),
    ({"x": np.full((2, 3), np.nan)}, "x contains"),
]


@pytest.mark.parametrize("change, message", BAD)
def test_bad_input_names_the_argument(change, message):
    args = {"X": np.ones((2, 3, 4)), "x_tilde": np.ones((2, 3)), "x": np.ones((2, 3)),
            "W_KQ": np.eye(3), "W_PV": np.eye(3), "kind": "softmax"}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        loss_and_grads(**args)
    if "x" not in change:
        del args["x"]
        with pytest.raises(ValueError, match=message):
            attention(**args)


def test_nan_in_one_context_token_is_caught():
    X, x_tilde, x, W_KQ, W_PV = attention_problem(0, 3, 4, 9)
    X[1, 2, 5] = np.inf
    for kind in KINDS:
        with pytest.raises(ValueError, match="X contains NaN or inf"):
            loss_and_grads(X, x_tilde, x, W_KQ, W_PV, kind)
        with pytest.raises(ValueError, match="X contains NaN or inf"):
            attention(X, x_tilde, W_KQ, W_PV, kind)


def test_overflow_from_finite_inputs_is_reported():
    X, x_tilde, x, W_KQ, W_PV = attention_problem(0, 2, 3, 4)
    with pytest.raises(ValueError, match="overflow"):
        loss_and_grads(X, x_tilde, x, 1e300 * np.ones((3, 3)), 1e300 * np.ones((3, 3)), "linear")


@given(dims(), seeds, kinds)
def test_single_prompt_form_equals_batch_of_one(size, seed, kind):
    X, x_tilde, x, W_KQ, W_PV = attention_problem(seed, 1, size["n"], size["L"])
    single = loss_and_grads(X[0], x_tilde[0], x[0], W_KQ, W_PV, kind)
    batch = loss_and_grads(X, x_tilde, x, W_KQ, W_PV, kind)
    assert single[0] == batch[0]
    for a, b in zip(single[1:], batch[1:]):
        np.testing.assert_array_equal(a, b)


def test_bad_input_identity_and_general_gaussian():
    X, x_tilde, x, W_KQ, W_PV = attention_problem(0, 2, 3, 4)
    for alpha, X_ in ((np.nan, X), (1e300, X.astype(np.float32))):  # 1e300 overflows X's float32 (found by fuzzing)
        with pytest.raises(ValueError, match="alpha"):
            loss_and_grads_identity(X_, x_tilde, x, alpha, 1.0)
    with pytest.raises(TypeError, match="beta"):
        loss_and_grads_identity(X, x_tilde, x, 1.0, "big")
    with pytest.raises(ValueError, match="kind"):
        loss_and_grads_identity(X, x_tilde, x, 1.0, 1.0, "cosine")
    with pytest.raises(ValueError, match="W_K and W_Q"):
        loss_and_grads_gaussian(X, x_tilde, x, np.ones((2, 3)), np.ones((3, 3)), W_PV)
    with pytest.raises(ValueError, match="W_PV"):
        attention_gaussian(X, x_tilde, W_KQ, W_KQ, np.ones((2, 2)))
    with pytest.raises(ValueError, match="x must"):
        loss_and_grads_gaussian(X, x_tilde, x[:, :2], W_KQ, W_KQ, W_PV)
    with pytest.raises(ValueError, match="X contains NaN"):
        attention_gaussian(np.full_like(X, np.nan), x_tilde, W_KQ, W_KQ, W_PV)


# ---------------------------------------------------------------- one prompt, attention weights, no silent NaN


@given(dims(), seeds, kinds, st.booleans())
def test_attention_weights_reproduce_the_output(size, seed, kind, single):
    X, x_tilde, _, W_KQ, W_PV = attention_problem(seed, size["B"], size["n"], size["L"], w=3.0)
    if single:
        X, x_tilde = X[0], x_tilde[0]
    a = attention_weights(X, x_tilde, W_KQ, kind)
    assert a.shape == X.shape[:-2] + (X.shape[-1],)
    out = attention(X, x_tilde, W_KQ, W_PV, kind)
    want = np.einsum("ij,...jl,...l->...i", W_PV, X, a)  # W_PV X a, prompt by prompt
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(want))))
    scores = np.einsum("...jl,jk,...k->...l", X, W_KQ, x_tilde)  # Xᵀ W_KQ x̃
    if kind == "linear":
        np.testing.assert_allclose(a, scores / X.shape[-1], rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-12)
        if kind == "softmax":
            np.testing.assert_allclose(a, np.exp(scores - lse(scores)[..., None]), rtol=1e-12, atol=1e-300)


@given(dims(max_B=1), seeds, kinds)
def test_forward_backward_accept_one_prompt(size, seed, kind):
    X, x_tilde, x, W_KQ, W_PV = attention_problem(seed, 1, size["n"], size["L"])
    out1, cache1 = attention_forward(X[0], x_tilde[0], W_KQ, W_PV, kind)
    outB, cacheB = attention_forward(X, x_tilde, W_KQ, W_PV, kind)
    assert out1.shape == (size["n"],) and isinstance(cache1, AttentionCache)
    np.testing.assert_array_equal(out1, outB[0])
    dout = 2 * (out1 - x[0]) / out1.size  # dloss/dout of the MSE
    for g1, gB, g in zip(attention_backward(dout, cache1), attention_backward(dout[None], cacheB),
                         loss_and_grads_numpy(X, x_tilde, x, W_KQ, W_PV, kind)[1:]):
        np.testing.assert_array_equal(g1, gB)
        np.testing.assert_allclose(g1, g, rtol=1e-12, atol=1e-15)


def test_no_silent_nan_and_named_errors():
    X, x_tilde, x, W_KQ, W_PV = attention_problem(0, 2, 3, 4)
    with pytest.raises(TypeError, match="x must"):  # formerly a Numba TypingError
        loss_and_grads(X, x_tilde, None, W_KQ, W_PV)
    Xn = X.copy()
    Xn[0, 1, 2] = np.nan
    for f in (loss_and_grads_numpy, loss_and_grads):  # formerly NaN from the NumPy path
        with pytest.raises(ValueError, match="X contains NaN"):
            f(Xn, x_tilde, x, W_KQ, W_PV, "softmax")
    with pytest.raises(ValueError, match="X contains NaN"):
        attention_weights(Xn, x_tilde, W_KQ)
    with pytest.raises(TypeError, match="cache"):
        attention_backward(x, (X, x_tilde))
    _, cache = attention_forward(X, x_tilde, W_KQ, W_PV)
    with pytest.raises(ValueError, match="dout"):
        attention_backward(x[0], cache)  # a single-prompt dout for a batch of two
    with pytest.raises(TypeError, match="W_KQ"):
        attention_weights(X, x_tilde, "eye")
