"""Tests of icdmin.optim: hand-computed Adam / SGD trajectories, an independent scalar Adam loop, the schedule."""

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icdmin.optim import AdamState, SGDState, adam_step, sgd_step, step_schedule
from strategies import arrays, finite_floats, seeds


# ---------------------------------------------------------------------------------------------------------------
# Adam
# ---------------------------------------------------------------------------------------------------------------
def test_adam_two_steps_by_hand():
    """Two Adam steps with gradients 1 then 3, torch defaults (beta1 0.9, beta2 0.999, eps 1e-8), lr 0.01.

    Step 1: m = 0.1, v = 0.001, m_hat = 1, v_hat = 1        -> p = 1 - 0.01 * 1 / (1 + 1e-8)
    Step 2: m = 0.9*0.1 + 0.1*3 = 0.39,  v = 0.999*0.001 + 0.001*9 = 0.009999,
            m_hat = 0.39 / (1 - 0.81) = 39/19,  v_hat = 0.009999 / (1 - 0.998001) = 9999/1999
            -> p -= 0.01 * (39/19) / (sqrt(9999/1999) + 1e-8)
    """
    p = (np.array(1.0),)
    p, state = adam_step(p, (np.array(1.0),), None, lr=0.01)
    expected1 = 1.0 - 0.01 / (1.0 + 1e-8)
    assert state.step == 1
    np.testing.assert_allclose(state.m[0], 0.1, rtol=1e-15)
    np.testing.assert_allclose(state.v[0], 0.001, rtol=1e-15)
    np.testing.assert_allclose(p[0], expected1, rtol=1e-15)
    p, state = adam_step(p, (np.array(3.0),), state, lr=0.01)
    m_hat = float(Fraction(39, 19))
    v_hat = float(Fraction(9999, 1999))
    expected2 = expected1 - 0.01 * m_hat / (math.sqrt(v_hat) + 1e-8)
    assert state.step == 2
    np.testing.assert_allclose(state.m[0], 0.39, rtol=1e-15)
    np.testing.assert_allclose(state.v[0], 0.009999, rtol=1e-14)
    np.testing.assert_allclose(p[0], expected2, rtol=1e-15)  # 0.99 - 0.00917... = 0.98082...
    assert abs(float(p[0]) - 0.980822) < 1e-6  # written out: 0.01*2.0526316/2.2365600 = 0.0091776


@given(g=finite_floats(-10, 10).filter(lambda g: abs(g) > 1e-3), steps=st.integers(1, 30))
def test_adam_constant_gradient_moves_lr_per_step(g, steps):
    """With a constant gradient the bias-corrected moments are exactly g and g**2, so each step is lr*g/(|g|+eps)."""
    p, state = (np.array(0.0),), None
    for _ in range(steps):
        p, state = adam_step(p, (np.array(g),), state, lr=0.01)
    expected = -steps * 0.01 * g / (abs(g) + 1e-8)
    np.testing.assert_allclose(p[0], expected, rtol=1e-12, atol=1e-15)


def _adam_reference(p0, grad_fn, steps, lr, beta1, beta2, eps):
    """Independent scalar loop in plain Python floats: Kingma & Ba, Alg. 1, with eps added to sqrt(v_hat).

    The update is evaluated in torch's order, p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps),
    algebraically equal to lr m_hat / (sqrt(v_hat) + eps): with eps = 0 Adam is nearly a sign method whose
    iterates amplify a last-bit difference in evaluation order, so the reference must round the same way.
    """
    p, m, v, out = list(p0), [0.0] * len(p0), [0.0] * len(p0), []
    for t in range(1, steps + 1):
        g = grad_fn(p)
        for i in range(len(p)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * (g[i] * g[i])
            step_size = lr / (1 - beta1**t)
            denom = math.sqrt(v[i]) / math.sqrt(1 - beta2**t) + eps
            p[i] = p[i] - step_size * (m[i] / denom)
        out.append(list(p))
    return out


@given(
    p0=arrays((5,), -2.0, 2.0),
    curv=arrays((5,), 0.1, 5.0),
    lr=finite_floats(1e-3, 0.5),
    beta1=finite_floats(0.0, 0.99),
    beta2=finite_floats(0.5, 0.9999),
    eps=st.sampled_from([1e-8, 1e-3, 0.0]),
)
def test_adam_matches_independent_loop_on_quadratic(p0, curv, lr, beta1, beta2, eps):
    """20 steps on f(p) = sum(curv * p**2 / 2 + 0.3 p) agree with the element-by-element reference loop."""

    def grad(p):
        return [c * q + 0.3 for c, q in zip(curv, p)]

    ref = _adam_reference(p0, grad, 20, lr, beta1, beta2, eps)
    p, state = (p0.copy(),), None
    for t in range(20):
        p, state = adam_step(p, (np.array(grad(p[0])),), state, lr=lr, betas=(beta1, beta2), eps=eps)
        # rtol: 20 steps of O(1) operations in float64 in two orders of evaluation
        np.testing.assert_allclose(p[0], ref[t], rtol=1e-12, atol=1e-13)


def test_adam_is_pure_and_keeps_shapes():
    rng = np.random.default_rng(0)
    params = (rng.standard_normal((3, 3)), np.array(0.1))
    grads = (rng.standard_normal((3, 3)), np.array(-2.0))
    before = [a.copy() for a in params + grads]
    new, state = adam_step(params, grads, None)
    new2, state2 = adam_step(new, grads, state)
    for a, b in zip(params + grads, before):
        np.testing.assert_array_equal(a, b)
    assert [a.shape for a in new2] == [(3, 3), ()]
    assert state.step == 1 and state2.step == 2
    assert isinstance(state2, AdamState)
    np.testing.assert_array_equal(state.m[0], (1 - 0.9) * grads[0])  # the old state is untouched


def test_adam_float32_stays_float32():
    p = (np.ones((2, 2), np.float32),)
    g = (np.full((2, 2), 0.5, np.float32),)
    new, state = adam_step(p, g, None)
    assert new[0].dtype == np.float32 and state.m[0].dtype == np.float32


# ---------------------------------------------------------------------------------------------------------------
# SGD with momentum
# ---------------------------------------------------------------------------------------------------------------
def test_sgd_momentum_three_steps_by_hand():
    """f(p) = p**2 / 2 (g = p), p0 = 1, lr 0.1, momentum 0.9 (torch: b1 = g1, b_t = 0.9 b + g):

    b = 1,                  p = 1 - 0.1       = 0.9
    b = 0.9*1 + 0.9 = 1.8,  p = 0.9 - 0.18    = 0.72
    b = 0.9*1.8 + 0.72 = 2.34, p = 0.72 - 0.234 = 0.486
    """
    p, state = (np.array(1.0),), None
    trajectory = []
    for _ in range(3):
        p, state = sgd_step(p, (p[0].copy(),), state, lr=0.1, momentum=0.9)
        trajectory.append(float(p[0]))
    np.testing.assert_allclose(trajectory, [0.9, 0.72, 0.486], rtol=1e-15)
    np.testing.assert_allclose(state.velocity[0], 2.34, rtol=1e-15)
    assert isinstance(state, SGDState)


@given(p0=arrays((4,)), g=arrays((6, 4)), lr=finite_floats(1e-3, 1.0), momentum=finite_floats(0.0, 0.99))
def test_sgd_matches_independent_loop(p0, g, lr, momentum):
    """Six steps with arbitrary gradients against the closed form p_T = p0 - lr sum_t sum_{s<=t} mu^(t-s) g_s."""
    p, state = (p0.copy(),), None
    for t in range(6):
        p, state = sgd_step(p, (g[t],), state, lr=lr, momentum=momentum)
    expected = p0.copy()
    for t in range(6):
        expected = expected - lr * sum(momentum ** (t - s) * g[s] for s in range(t + 1))
    np.testing.assert_allclose(p[0], expected, rtol=1e-12, atol=1e-12)


@given(p0=arrays((3,)), g=arrays((3,)), lr=finite_floats(1e-3, 1.0))
def test_sgd_without_momentum_is_gradient_descent(p0, g, lr):
    (p,), _ = sgd_step((p0,), (g,), None, lr=lr)
    np.testing.assert_array_equal(p, p0 - lr * g)


# ---------------------------------------------------------------------------------------------------------------
# schedule
# ---------------------------------------------------------------------------------------------------------------
def test_schedule_paper_protocol_by_hand():
    """100 epochs: x1 for epochs 0..79, x0.1 for 80..89, x0.01 for 90..99; 200 epochs: steps at 160 and 180."""
    got = [step_schedule(e, 100) for e in range(100)]
    assert got[:80] == [1.0] * 80
    np.testing.assert_allclose(got[80:90], 0.1, rtol=1e-15)
    np.testing.assert_allclose(got[90:], 0.01, rtol=1e-15)
    assert step_schedule(159, 200) == 1.0
    assert step_schedule(160, 200) == pytest.approx(0.1, rel=1e-15)
    assert step_schedule(180, 200) == pytest.approx(0.01, rel=1e-15)


def _multisteplr_reference(n_epochs, milestones, factor):
    """Independent model of torch MultiStepLR stepped once per epoch: lr *= gamma**count when epoch is a milestone."""
    marks = Counter(int(f * n_epochs) for f in milestones)
    lr, out = 1.0, []
    for epoch in range(n_epochs):
        lr *= factor ** marks.get(epoch, 0)
        out.append(lr)
    return out


@given(
    n_epochs=st.integers(1, 300),
    milestones=st.lists(finite_floats(0.0, 1.0), max_size=3),
    factor=finite_floats(0.01, 2.0),
)
def test_schedule_matches_multisteplr_model(n_epochs, milestones, factor):
    ref = _multisteplr_reference(n_epochs, milestones, factor)
    got = [step_schedule(e, n_epochs, milestones, factor) for e in range(n_epochs)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"betas": (1.0, 0.999)}, "betas[0]"),
        ({"betas": (0.9, -0.1)}, "betas[1]"),
        ({"betas": (0.9,)}, "betas"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_adam_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        adam_step((np.zeros(2),), (np.ones(2),), None, **kwargs)


def test_bad_params_and_state():
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        adam_step((np.zeros(2),), (np.ones(3),), None)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        sgd_step((np.zeros(2),), (np.array([1.0, np.nan]),), None, lr=0.1)
    with pytest.raises(ValueError, match="equally long"):
        adam_step((np.zeros(2), np.zeros(2)), (np.ones(2),), None)
    with pytest.raises(TypeError, match="sequences"):
        adam_step(np.zeros(2), np.ones(2), None)
    with pytest.raises(ValueError, match="state.m"):
        adam_step((np.zeros(2),), (np.ones(2),), AdamState(1, (np.zeros(3),), (np.zeros(2),)))
    with pytest.raises(ValueError, match="momentum"):
        sgd_step((np.zeros(2),), (np.ones(2),), None, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="state.velocity"):
        sgd_step((np.zeros(2),), (np.ones(2),), SGDState((np.zeros(1),)), lr=0.1, momentum=0.5)


@given(seed=seeds)
def test_schedule_bad_input(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50))
    with pytest.raises(ValueError, match="epoch"):
        step_schedule(-1, n)
    with pytest.raises(ValueError, match="n_epochs"):
        step_schedule(0, 0)
    with pytest.raises(ValueError, match=r"milestones\[0\]"):
        step_schedule(0, n, milestones=(1.5,))
    with pytest.raises(ValueError, match="factor"):
        step_schedule(0, n, factor=0.0)
    with pytest.raises(TypeError, match="epoch"):
        step_schedule(1.5, n)


def test_bad_state_types_name_the_state():
    p, g = (np.zeros(2),), (np.ones(2),)
    _, adam_state = adam_step(p, g, None)
    _, sgd_state = sgd_step(p, g, None, lr=0.1)
    for call, exc, name in [
        (lambda: adam_step(p, g, sgd_state), TypeError, "state must be None or the AdamState"),
        (lambda: sgd_step(p, g, adam_state, lr=0.1), TypeError, "state must be None or the SGDState"),
        (lambda: adam_step(p, g, (1, p, p)), TypeError, "state"),
        (lambda: adam_step(p, g, AdamState(1.5, p, p)), TypeError, "state.step"),
        (lambda: adam_step(p, g, AdamState(-1, p, p)), ValueError, "state.step"),
        (lambda: adam_step(p, g, AdamState(1, np.zeros(2), p)), TypeError, "state.m"),
        (lambda: adam_step(p, g, AdamState(1, p + p, p)), ValueError, "state.m"),
        (lambda: adam_step(p, g, AdamState(1, p, (np.array([np.nan, 0.0]),))), ValueError, r"state.v\[0\]"),
        (lambda: adam_step(p, g, AdamState(1, p, (-np.ones(2),))), ValueError, "state.v"),
        (lambda: sgd_step(p, g, SGDState(None), lr=0.1), TypeError, "state.velocity"),
        (lambda: adam_step(p, g, None, betas=0.9), TypeError, "betas"),
        (lambda: step_schedule(1, 10, milestones=0.5), TypeError, "milestones"),
        (lambda: sgd_step(p, (np.array([1e308, 1e308]),), None, lr=1e300), ValueError, "overflow"),
    ]:
        with pytest.raises(exc, match=name):
            call()
