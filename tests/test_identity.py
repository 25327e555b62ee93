"""The paper's central identity (§4, Eq. 17): one energy-descent step of size α equals softmax attention.

descent_step(x̃, X, α, β) = α X softmax(β Xᵀ x̃) = attention(X, x̃, βI, αI, "softmax"), and one step on the
linear-attention energy (App. I.1) equals linear attention with αβ = γ (Eq. 10). Two independent code paths
(dam.py and layer.py / its kernels); float64 agreement to 1e-12 relative to the output's scale.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from icdmin.layer import attention
from icdmin.dam import descent_step, linear_descent_step

from strategies import dims, finite_floats, seeds


def _prompt(seed, B, n, L, single):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, n, L)) / np.sqrt(n)  # (B, n, L), tokens of norm about 1
    x_tilde = rng.standard_normal((B, n))  # (B, n)
    return (X[0], x_tilde[0]) if single else (X, x_tilde)


def _close(a, b, rtol=1e-12):
    scale = max(1.0, float(np.max(np.abs(b))))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@given(dims(), seeds, finite_floats(0.05, 20.0), finite_floats(0.05, 20.0), st.booleans())
def test_descent_step_is_softmax_attention(size, seed, alpha, beta, single):
    X, x_tilde = _prompt(seed, size["B"], size["n"], size["L"], single)
    eye = np.eye(size["n"])
    _close(attention(X, x_tilde, beta * eye, alpha * eye, "softmax"), descent_step(x_tilde, X, alpha, beta))


@given(dims(), seeds, finite_floats(0.05, 20.0), finite_floats(0.05, 5.0), st.booleans())
def test_linear_descent_step_is_linear_attention(size, seed, alpha, beta, single):
    X, x_tilde = _prompt(seed, size["B"], size["n"], size["L"], single)
    eye = np.eye(size["n"])
    gamma = alpha * beta
    _close(attention(X, x_tilde, beta * eye, alpha * eye, "linear"), linear_descent_step(x_tilde, X, gamma))


def test_identity_at_paper_size():
    """n = 16, L = 499, 80 prompts, the theory weights of Cases 2-3 (α = 1, β = 1/σZ² = 10)."""
    X, x_tilde = _prompt(0, 80, 16, 499, False)
    eye = np.eye(16)
    _close(attention(X, x_tilde, 10.0 * eye, eye, "softmax"), descent_step(x_tilde, X, 1.0, 10.0))
