"""Tests of icdmin.train_setup, the helpers of training: the weight initialisation, the diagonal summaries, the
dataset split and fresh prompts (exactly what train uses), the linear-context compression, bad arguments.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icdmin._arrays import mse
from icdmin.layer import loss_and_grads
from icdmin.tasks import LinearTask
from icdmin.train_setup import compress_linear
from icdmin.training import fresh_prompts, init_weights, mean_abs_offdiagonal, mean_diagonal, split_prompts, train
from strategies import seeds


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


@given(seed=seeds, dims=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(0, 20)))
def test_compressed_linear_context_gives_same_loss_and_grads(seed, dims):
    """X' = sqrt(n/L) Rᵀ (Xᵀ = QR) has X'X'ᵀ/n = XXᵀ/L: linear attention and its gradients are unchanged."""
    B, n, extra = dims
    L = n + 1 + extra
    rng = np.random.default_rng(seed)
    X, q, x = rng.standard_normal((B, n, L)), rng.standard_normal((B, n)), rng.standard_normal((B, n))
    W_KQ, W_PV = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    Xc = compress_linear(X)
    assert Xc.shape == (B, n, n) and Xc.flags.c_contiguous
    full = loss_and_grads(X, q, x, W_KQ, W_PV, "linear")
    comp = loss_and_grads(Xc, q, x, W_KQ, W_PV, "linear")
    for a, b in zip(full, comp):
        scale = np.max(np.abs(a))  # entries near 0 carry the rounding of the largest ones
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * max(scale, 1.0))


@given(seed=seeds, n=st.integers(1, 40))
def test_init_weights(seed, n):
    W_KQ, W_PV = init_weights(n, np.random.default_rng(seed))
    assert W_KQ.shape == W_PV.shape == (n, n)
    assert np.all(np.abs(W_KQ) <= 1 / np.sqrt(n)) and np.all(np.abs(W_PV) <= 1 / np.sqrt(n))
    again = init_weights(n, np.random.default_rng(seed), np.float32)
    assert again[0].dtype == np.float32
    np.testing.assert_allclose(again[0], W_KQ, rtol=1e-6)


def test_init_weights_distribution():
    """U[-b, b] with b = 1/sqrt(n): mean 0, variance b²/3. 2 x 4096 draws, 5 standard errors."""
    n = 64
    W = np.concatenate([w.ravel() for w in init_weights(n, np.random.default_rng(0))])
    b2 = 1.0 / n
    assert abs(W.mean()) < 5 * np.sqrt(b2 / 3 / W.size)
    var_se = np.sqrt((b2**2 / 5 - (b2 / 3) ** 2) / W.size)  # Var(w²) = E w⁴ - (E w²)², E w⁴ = b⁴/5
    assert abs(np.mean(W**2) - b2 / 3) < 5 * var_se


def test_mean_diagonal_and_offdiagonal_by_hand():
    W = np.array([[1.0, -2.0], [4.0, 3.0]])
    assert mean_diagonal(W) == 2.0
    assert mean_abs_offdiagonal(W) == 3.0
    assert mean_abs_offdiagonal(np.array([[5.0]])) == 0.0
    with pytest.raises(ValueError, match="W"):
        mean_abs_offdiagonal(np.ones((2, 3)))


@pytest.mark.parametrize("call, error, name", [
    (lambda t: split_prompts(t, L=0, data_seed=0), ValueError, "L"),
    (lambda t: split_prompts(t, L=5, data_seed=-1), ValueError, "data_seed"),
    (lambda t: split_prompts(t, L=5, data_seed=0, n_prompts=1), ValueError, "n_prompts"),
    (lambda t: split_prompts(t, L=5, data_seed=0, n_prompts=10, test_fraction=0.01), ValueError, "test_fraction"),
    (lambda t: split_prompts(object(), L=5, data_seed=0), TypeError, "task"),
    (lambda t: fresh_prompts(t, L=5, data_seed=0, n_fresh=-1), ValueError, "n_fresh"),
    (lambda t: fresh_prompts(t, L=2.5, data_seed=0, n_fresh=3), TypeError, "L"),
])
def test_dataset_helpers_name_bad_arguments(call, error, name):
    """Checked at the call (fresh_prompts too, although it returns a lazy iterator)."""
    with pytest.raises(error, match=name):
        call(LinearTask(4, 2))


def test_split_and_fresh_prompts_are_what_train_uses():
    """The public dataset helpers rebuild exactly the prompts a run trains, tests and is evaluated on."""
    task = LinearTask(4, 2)
    res = train(task, kind="linear", L=6, seed=3, data_seed=5, epochs=1, n_prompts=20, batch_size=4, n_fresh=7)
    train_set, test_set = split_prompts(task, L=6, data_seed=5, n_prompts=20)
    assert (len(train_set), len(test_set)) == (16, 4)
    assert res.bayes_mse == mse(task.posterior_mean(test_set), test_set.x)
    assert res.bayes_train_mse == mse(task.posterior_mean(train_set), train_set.x)
    fresh = list(fresh_prompts(task, L=6, data_seed=5, n_fresh=7))
    assert sum(len(chunk) for chunk in fresh) == 7
    chunk = fresh[0]
    assert res.fresh_bayes_mse == pytest.approx(mse(task.posterior_mean(chunk), chunk.x), rel=1e-14)
    assert not np.array_equal(chunk.X[0], train_set.X[0])  # its own stream, not the training data
