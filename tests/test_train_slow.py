"""Slow training checks: the paper's protocol against the authors' code, online training against the finite-L
optimum of linear attention (docs/maths.md §3).

Bounds and where they come from (the authors' code, mattsmart/in-context-denoising at commit c8aaeb3, run at
seed 0; docs/maths.md §3; arXiv 2502.05164 Fig. 3):
- near scaled identities: mean |off-diagonal| / |mean diagonal| is 0.02-0.08 for the authors' weights; 0.15 allowed.
- subspace (linear attention): alpha*beta 0.319 (authors) / 0.327 (paper) / gamma*(499) = 0.3274; [0.30, 0.345].
- mixture (softmax): (beta, alpha) = (5.154, 0.996) (authors), (5.127, 0.998) (paper); beta in [4.6, 5.7],
  alpha in [0.9, 1.1] (the sign may flip for origin-symmetric tasks: (-alpha, -beta) is as good).
- sphere (softmax): on the alpha*beta valley, 3.359 x 1.681 = 5.65 (authors), 3.596 x 1.603 = 5.76 (paper);
  alpha*beta in [5.0, 6.5], |beta| in [2.5, 4.5].
- held-out MSE / oracle MSE on the same test prompts: authors 0.3725 / 0.335 = 1.11, 0.02859 / 0.02307 = 1.24,
  0.03150 / 0.02887 = 1.09 (oracle on fresh prompts); allowed [1.0, 1.2], [1.0, 1.35], [1.0, 1.2].
These runs take a few seconds each once the kernels are compiled. The online runs sample a new batch every step,
so ``conftest.size`` shortens them (fewer epochs) unless ``ICDMIN_FULL=1``; the online sphere run (400 epochs) runs
only under ``ICDMIN_FULL=1``.
"""

import numpy as np
import pytest
from conftest import FULL, size

from icdmin.layer import attention
from icdmin.bayes import linear_risk, optimal_linear_gamma
from icdmin.tasks import GMMTask, LinearTask, SphereTask
from icdmin.training import mean_abs_offdiagonal, train

pytestmark = pytest.mark.slow

# the authors' code at seed 0, "exact" test MSE
AUTHORS_TEST_MSE = {"subspace": 0.3725, "gmm": 0.02859, "sphere": 0.03150}
CASES = {"subspace": (LinearTask(16, 8), "linear"), "gmm": (GMMTask(16, 8), "softmax"),
         "sphere": (SphereTask(16, 8), "softmax")}


def _near_scaled_identity(res, ratio=0.15):
    assert np.sign(res.alpha) == np.sign(res.beta)  # the mirrored solution flips both
    assert mean_abs_offdiagonal(res.W_KQ) <= ratio * abs(res.beta)
    assert mean_abs_offdiagonal(res.W_PV) <= ratio * abs(res.alpha)


@pytest.mark.parametrize("case", ["subspace", "gmm", "sphere"])
def test_paper_protocol_seed0_matches_reference(case):
    task, kind = CASES[case]
    res = train(task, kind=kind, seed=0)
    _near_scaled_identity(res)
    ratio = res.history["test_mse"][-1] / res.bayes_mse
    alpha, beta = abs(res.alpha), abs(res.beta)
    if case == "subspace":
        assert 0.30 <= res.alpha * res.beta <= 0.345
        assert 1.0 <= ratio <= 1.2
    elif case == "gmm":
        assert 4.6 <= beta <= 5.7 and 0.9 <= alpha <= 1.1
        assert 1.0 <= ratio <= 1.35
    else:
        assert 5.0 <= res.alpha * res.beta <= 6.5 and 2.5 <= beta <= 4.5
        assert 1.0 <= ratio <= 1.2
    # over-fitting through the off-diagonal weights: the train MSE ends below the held-out one (as in the authors' code)
    assert res.history["train_mse"][-1] < res.history["test_mse"][-1]


def test_online_linear_reaches_the_finite_L_optimum():
    """Online training on the subspace task ends within 1 % of min MSE = 0.3451 at L = 499 (docs/maths.md §3).

    Measured at seed 0: 0.3471 (+0.56 %, standard error 0.03 %), alpha*beta = 0.3281 (gamma* = 0.3274).

    The trained model's MSE is estimated on fresh prompts with the optimal scaled identity gamma*(L) S x̃ as a
    control variate: MSE_trained = linear_risk(gamma*) + mean(err_trained - err_opt), whose standard error (the
    paired difference's) is far smaller than that of either mean. Allowed: the 1 % band minus 3 standard errors.
    """
    task, L = LinearTask(16, 8), 499
    # the paper's 100 epochs: with 60 the lr-1e-2 noise in the off-diagonals still costs 0.9 % (measured)
    res = train(task, kind="linear", L=L, seed=0, online=True, epochs=100, eval_train=False)
    g = optimal_linear_gamma(task.d, L, task.sigma2_0, task.sigma2_z)  # 0.3274
    best = linear_risk(task.n, task.d, L, task.sigma2_0, task.sigma2_z, g)  # 0.34514
    rng = np.random.default_rng(12345)
    err_tr, err_opt = [], []
    for _ in range(size(8, 3)):  # 1000 fresh prompts per chunk
        p = task.sample(rng, 1000, L)
        pred_tr = attention(p.X, p.x_tilde, res.W_KQ, res.W_PV, "linear")
        pred_opt = attention(p.X, p.x_tilde, g * np.eye(16), np.eye(16), "linear")
        err_tr.append(np.mean((pred_tr - p.x) ** 2, axis=1))
        err_opt.append(np.mean((pred_opt - p.x) ** 2, axis=1))
    err_tr, err_opt = np.concatenate(err_tr), np.concatenate(err_opt)
    # the closed form is right on this sample (5 standard errors)
    assert abs(err_opt.mean() - best) < 5 * err_opt.std(ddof=1) / np.sqrt(err_opt.size)
    diff = err_tr - err_opt
    estimate = best + diff.mean()
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    assert abs(estimate - best) + 3 * se <= 0.01 * best, (estimate, se)
    assert 0.31 <= res.alpha * res.beta <= 0.345
    assert err_tr.mean() < AUTHORS_TEST_MSE["subspace"]


def test_online_gmm_beats_the_authors_held_out_mse():
    """Without over-fitting, the held-out and fresh MSEs fall below the authors' held-out MSE (their code at seed 0)."""
    task, kind = CASES["gmm"]
    res = train(task, kind=kind, seed=0, online=True, epochs=size(200, 60), eval_train=False, n_fresh=size(5000, 2000))
    _near_scaled_identity(res)
    assert res.history["test_mse"][-1] < AUTHORS_TEST_MSE["gmm"]
    assert res.fresh_mse < AUTHORS_TEST_MSE["gmm"]


@pytest.mark.skipif(not FULL, reason="4000 online steps with a fresh sphere batch each (~30 s): ICDMIN_FULL=1")
def test_online_sphere_beats_the_authors_held_out_mse():
    """Online sphere training, 400 epochs (the authors' repository, commit c8aaeb3, also has a 400-epoch sphere run).

    With 200 epochs, seed 0 stays near the saddle at the origin: the weights grow only from about epoch 150 and the
    step-down at epoch 160 freezes them at (alpha, beta) = (0.57, 1.04), MSE 0.047 (seed 1 escapes by epoch 60).
    With 400 epochs seed 0 ends at (alpha, beta) = (1.60, 3.59), the paper's Fig. 7 values (1.603, 3.596).
    """
    task, kind = CASES["sphere"]
    res = train(task, kind=kind, seed=0, online=True, epochs=400, eval_train=False, n_fresh=5000)
    _near_scaled_identity(res)
    assert 5.0 <= res.alpha * res.beta <= 6.5
    assert res.history["test_mse"][-1] < AUTHORS_TEST_MSE["sphere"]
    assert res.fresh_mse < AUTHORS_TEST_MSE["sphere"]
