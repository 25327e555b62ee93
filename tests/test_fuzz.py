"""Adversarial fuzz of every public function of the numerical core (no silent wrong answers, arXiv 2502.05164).

Each function starts from a valid call (small shapes); Hypothesis replaces one or two arguments by an adversarial
value: None, strings, bools, complex numbers, NaN / inf, negative or zero sizes, huge numbers, nested or ragged
lists, arrays of the wrong dtype, ndim or shape, empty arrays, or the same array as a list / float32 / int (which
must work). Every call must either

- return a result with no NaN or inf anywhere (all inputs are finite or rejected), leaving every input unchanged; or
- raise ``ValueError`` / ``TypeError`` whose message names the argument that was replaced.

Any other exception (IndexError, AttributeError, numba's TypingError, a RuntimeWarning, which pytest turns into an
error) fails. Profiles (conftest): ``dev`` 10, ``ci`` 100, ``intense`` 2000 examples per function.
"""

import copy
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import icdmin
from icdmin.layer import attention_backward, attention_forward, backend_for, mse_backward, mse_forward
from icdmin.bayes import check_weights
from icdmin.gaussian_attention import gaussian_backward, gaussian_forward
from icdmin.gradcheck import check_all, complex_step_error, directional_error, main
from icdmin.prompts import haar_from_normals

RNG = np.random.default_rng(7)
n, L, B, K, m = 3, 4, 2, 2, 2
X3, X2 = RNG.standard_normal((B, n, L)), RNG.standard_normal((n, L))  # contexts
Q2, Q1 = RNG.standard_normal((B, n)), RNG.standard_normal(n)  # queries / states
W = np.eye(n) + 0.1 * RNG.standard_normal((n, n))
V = np.linalg.qr(RNG.standard_normal((n, 2)))[0]  # (n, 2) orthonormal basis
_, CACHE = attention_forward(X3, Q2, W, W)
_, GCACHE = gaussian_forward(X3, Q2, W[:m], W[:m], W)


def _quadratic(a, b):
    """loss = Σ a² + b³ with its exact gradients (a target for the gradient checkers)."""
    return np.sum(a * a) + b**3, 2 * a, 3 * b**2


# name -> (function, valid keyword arguments); every array argument is fuzzed from its valid value
SPECS = {
    "mse": (icdmin.mse, {"pred": Q2, "target": Q2 + 1}),
    "lse": (icdmin.lse, {"z": X3, "axis": -1}),
    "softmax": (icdmin.softmax, {"z": X3, "axis": 1}),
    "energy": (icdmin.energy, {"s": Q2, "X": X3, "alpha": 1.0, "beta": 2.0}),
    "energy_shared": (icdmin.energy, {"s": Q2, "X": X2, "alpha": 1.0, "beta": 2.0}),
    "energy_grad": (icdmin.energy_grad, {"s": Q1, "X": X2, "alpha": 1.0, "beta": 2.0}),
    "energy_hessian": (icdmin.energy_hessian, {"s": Q2, "X": X2, "alpha": 1.0, "beta": 2.0}),
    "descent_step": (icdmin.descent_step, {"s": Q2, "X": X3, "alpha": 1.0, "beta": 2.0, "gamma": 0.5}),
    "descend": (icdmin.descend, {"s": Q2, "X": X3, "alpha": 1.0, "beta": 2.0, "gamma": 0.5, "steps": 3,
                                 "tol": 1e-3, "return_trajectory": True}),
    "linear_energy": (icdmin.linear_energy, {"s": Q2, "X": X3, "gamma": 0.5}),
    "linear_energy_grad": (icdmin.linear_energy_grad, {"s": Q1, "X": X2, "gamma": 0.5}),
    "linear_descent_step": (icdmin.linear_descent_step, {"s": Q2, "X": X2, "gamma": 0.5, "step": 0.2}),
    "update_jacobian": (icdmin.update_jacobian, {"s": Q2, "X": X3, "W_KQ": W, "W_PV": W}),
    "is_gradient_flow": (icdmin.is_gradient_flow, {"W_KQ": W, "W_PV": W, "X": X2, "s": Q1, "rtol": 1e-8}),
    "energy_landscape": (icdmin.energy_landscape, {"X": X2[:2], "alpha": 1.0, "beta": 2.0, "xs": Q1, "ys": Q1[:2]}),
    "energy_along_step": (icdmin.energy_along_step, {"s": Q2, "X": X3, "alpha": 1.0, "beta": 2.0, "ts": Q1,
                                                     "gamma": 0.5}),
    "retrieval_comparison": (icdmin.retrieval_comparison, {
        "task": icdmin.LinearTask(n, 1), "L": 3, "alpha": 1.0, "beta": 2.0, "rng": np.random.default_rng(0),
        "batch": 3, "steps": (1, 2), "converge_steps": 4, "tol": 1e-6, "near_tol": 1e-3}),
    "format_retrieval_table": (icdmin.format_retrieval_table, {"result": icdmin.retrieval_comparison(
        icdmin.LinearTask(n, 1), 3, 1.0, 2.0, rng=np.random.default_rng(0), batch=3, steps=(1,), converge_steps=2)}),
    "circle_trajectories": (icdmin.circle_trajectories, {
        "rng": np.random.default_rng(0), "L": 5, "R": 1.0, "sigma2_z": 0.1, "alpha": 1.0, "beta": 3.0, "n_traj": 2,
        "steps": (1, 3), "grid": 4, "lim": 1.5}),
    "bessel_ratio": (icdmin.bessel_ratio, {"d": 3, "kappa": np.abs(Q1)}),
    "posterior_mean_linear": (icdmin.posterior_mean_linear, {"x_tilde": Q1, "basis": V, "sigma2_0": 1.0,
                                                             "sigma2_z": 0.5, "offset": Q1}),
    "posterior_mean_sphere": (icdmin.posterior_mean_sphere, {"x_tilde": Q1, "basis": V, "R": 1.0, "sigma2_z": 0.5}),
    "posterior_mean_gmm": (icdmin.posterior_mean_gmm, {"x_tilde": Q2, "centers": X3[:, :, :K], "sigma2_0": 0.1,
                                                       "sigma2_z": 0.5, "weights": np.array([0.25, 0.75])}),
    "posterior_mean_gmm_general": (icdmin.posterior_mean_gmm_general, {
        "x_tilde": Q2, "centers": X3[:, :, :K], "sigma2_components": np.array([0.1, 0.2]), "sigma2_z": 0.5,
        "weights": np.array([0.5, 0.5])}),
    "bayes_risk_linear": (icdmin.bayes_risk_linear, {"n": 4, "d": 2, "sigma2_0": 1.0, "sigma2_z": 0.5}),
    "optimal_linear_gamma": (icdmin.optimal_linear_gamma, {"d": 2, "L": 10, "sigma2_0": 1.0, "sigma2_z": 0.5}),
    "linear_risk": (icdmin.linear_risk, {"n": 4, "d": 2, "L": 10, "sigma2_0": 1.0, "sigma2_z": 0.5, "gamma": 0.3}),
    "mc_bayes_risk": (icdmin.mc_bayes_risk, {"task": icdmin.LinearTask(n, 1), "rng": np.random.default_rng(0),
                                             "batch": 4, "L": 1}),
    "check_weights": (check_weights, {"weights": np.array([0.5, 0.5]), "K": 2, "B": 3}),
    "attention": (icdmin.attention, {"X": X3, "x_tilde": Q2, "W_KQ": W, "W_PV": W, "kind": "softmax"}),
    "attention_forward": (attention_forward, {"X": X2, "x_tilde": Q1, "W_KQ": W, "W_PV": W, "kind": "gaussian"}),
    "attention_weights": (icdmin.attention_weights, {"X": X3, "x_tilde": Q2, "W_KQ": W, "kind": "linear"}),
    "attention_backward": (attention_backward, {"dout": Q2, "cache": CACHE}),
    "mse_forward": (mse_forward, {"out": Q2, "x": Q2 + 1}),
    "mse_backward": (mse_backward, {"diff": Q2}),
    "loss_and_grads": (icdmin.loss_and_grads, {"X": X3, "x_tilde": Q2, "x": Q2, "W_KQ": W, "W_PV": W,
                                               "kind": "softmax"}),
    "loss_and_grads_numpy": (icdmin.loss_and_grads_numpy, {"X": X3, "x_tilde": Q2, "x": Q2, "W_KQ": W, "W_PV": W,
                                                           "kind": "linear"}),
    "loss_and_grads_identity": (icdmin.loss_and_grads_identity, {"X": X2, "x_tilde": Q1, "x": Q1, "alpha": 1.0,
                                                                 "beta": 2.0, "kind": "softmax"}),
    "backend_for": (backend_for, {"X": X3, "kind": "softmax"}),
    "attention_gaussian": (icdmin.attention_gaussian, {"X": X3, "x_tilde": Q2, "W_K": W[:m], "W_Q": W[:m],
                                                       "W_PV": W}),
    "gaussian_forward": (gaussian_forward, {"X": X2, "x_tilde": Q1, "W_K": W[:m], "W_Q": W[:m], "W_PV": W}),
    "gaussian_backward": (gaussian_backward, {"dout": Q2, "cache": GCACHE}),
    "loss_and_grads_gaussian": (icdmin.loss_and_grads_gaussian, {"X": X3, "x_tilde": Q2, "x": Q2, "W_K": W[:m],
                                                                 "W_Q": W[:m], "W_PV": W}),
    "sgd_step": (icdmin.sgd_step, {"params": (W, Q1), "grads": (W, Q1), "lr": 0.1, "momentum": 0.5,
                                   "state": icdmin.SGDState((W, Q1))}),
    "adam_step": (icdmin.adam_step, {"params": (W, Q1), "grads": (W, Q1), "lr": 0.1, "betas": (0.9, 0.99),
                                     "eps": 1e-8, "state": icdmin.AdamState(2, (W, Q1), (W * W, Q1 * Q1))}),
    "step_schedule": (icdmin.step_schedule, {"epoch": 5, "n_epochs": 10, "milestones": (0.5, 0.9), "factor": 0.1}),
    "haar_basis": (icdmin.haar_basis, {"rng": np.random.default_rng(0), "batch": 2, "n": 3, "k": 2}),
    "haar_from_normals": (haar_from_normals, {"G": X3[:, :, :2]}),
    "directional_error": (directional_error, {"f": _quadratic, "params": (Q1, 0.5), "rng": np.random.default_rng(0),
                                              "eps": 1e-5}),
    "complex_step_error": (complex_step_error, {"f": _quadratic, "params": (Q1, 0.5), "h": 1e-20, "floor": 1e-300}),
}


def _variants(value):
    """Adversarial replacements for one argument, derived from its valid value (some of them still valid)."""
    common = [None, "abc", b"x", True, 1 + 2j, np.nan, np.inf, -np.inf, -1, 0, -0.5, 1e308, 10**30, [],
              [[1.0, 2.0], [3.0]], object(), {"a": 1}, np.ones((2, 2, 2, 2, 2))]
    if isinstance(value, np.ndarray):
        v = value
        extra = [v.tolist(), v.astype(np.float32), np.round(v).astype(int), v * 1e200, -v * 1e200,
                 v.astype(complex) + 1j, np.where(v == v.flat[0], np.nan, v), np.where(v == v.flat[0], np.inf, v),
                 v[..., :0], v[None], v.reshape(-1), v.T, v.astype(bool), v.astype(str), v[..., :1], v * 0]
        return common + extra
    if isinstance(value, tuple) and value and all(isinstance(x, np.ndarray) for x in value):
        return common + [list(value), value[:1], value + value, tuple(x.tolist() for x in value),
                         tuple(x * 1e200 for x in value), tuple(x.astype(complex) for x in value), value[0]]
    if isinstance(value, (bool, int, float)) and not isinstance(value, bool):
        return common + [value * 1e300, -value, 2 * value, float(value) + 0.5, np.float32(value), np.int64(value)]
    return common + [value]


def _names(msg: str, name: str) -> bool:
    """Whether the error message names the argument (as a word: ``x`` does not match ``x_tilde``)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", msg) is not None


def _finite(result) -> bool:
    if isinstance(result, dict):
        return all(_finite(v) for v in result.values())
    if isinstance(result, (tuple, list)):
        return all(_finite(v) for v in result)
    if isinstance(result, (np.ndarray, float, np.floating, complex, np.complexfloating)):
        return bool(np.all(np.isfinite(result)))
    return True


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


@pytest.mark.parametrize("name", sorted(SPECS))
@given(data=st.data())
def test_adversarial_input_fails_loudly_or_works(name, data):
    fn, valid = SPECS[name]
    keys = sorted(valid)
    chosen = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2, unique=True), label="replaced")
    kwargs = {k: copy.deepcopy(v) for k, v in valid.items()}
    for k in chosen:
        kwargs[k] = data.draw(st.sampled_from(_variants(valid[k])), label=k)
    before = copy.deepcopy(kwargs)
    try:
        result = fn(**kwargs)
    except (ValueError, TypeError) as exc:
        assert any(_names(str(exc), k) for k in chosen), f"{type(exc).__name__} does not name {chosen}: {exc}"
        return
    assert _finite(result), f"non-finite result for {chosen}"
    for k in kwargs:
        assert _same(before[k], kwargs[k]), f"{k} was modified in place"


@pytest.mark.parametrize("bad", [None, "0", 1.5, True, -1, [0]])
def test_gradcheck_entry_points_name_their_argument(bad):
    """check_all / main run for seconds when valid, so they are checked with invalid values only."""
    with pytest.raises((TypeError, ValueError), match="seed"):
        check_all(seed=bad)
    with pytest.raises((TypeError, ValueError), match="repeats"):
        check_all(seed=0, repeats=bad if bad != -1 else 0)
    with pytest.raises((TypeError, ValueError), match="seed"):
        main(seed=bad)


def test_former_silent_wrong_answers_now_fail_loudly():
    """The cases found by the audit: each used to return garbage (or a foreign exception) without complaint."""
    with pytest.raises(TypeError, match="pred"):
        icdmin.mse([1j, 0], [0, 0])  # was -0.5: z² is not |z|²
    with pytest.raises(TypeError, match="rng"):
        icdmin.haar_basis(np.random, 1, 3, 2)  # the legacy module is not a Generator
    with pytest.raises(ValueError, match="k"):
        icdmin.haar_basis(np.random.default_rng(0), 1, 3, 4)  # was 3 columns for k = 4
    with pytest.raises(TypeError, match="z"):
        icdmin.softmax(None)  # was nan
    with pytest.raises(TypeError, match="x must"):
        icdmin.loss_and_grads(X3, Q2, None, W, W)  # was a Numba TypingError
    with pytest.raises(ValueError, match="X contains NaN"):
        icdmin.loss_and_grads_numpy(np.where(X3 > 0, np.nan, X3), Q2, Q2, W, W)  # was NaN
    V3 = icdmin.haar_basis(np.random.default_rng(0), 4, 5, 3)
    np.testing.assert_allclose(np.einsum("bnk,bnj->bkj", V3, V3), np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-14)
