"""Tests of icdmin.gradcheck: the checkers accept right gradients and reject wrong ones, and
``python -m icdmin gradcheck`` (main) passes and reports.

A checker that cannot fail is no check: each accepting test has a rejecting twin with a 1 % gradient error.
"""

import numpy as np
from hypothesis import given
from strategies import seeds

from icdmin import gradcheck
from icdmin.gradcheck import complex_step_error, directional_error


def _f(C):
    """loss = Σ sin(A) ⊙ C + b³, gradients cos(A) ⊙ C and 3b² (analytic, complex-analytic)."""

    def f(A, b):
        return np.sum(np.sin(A) * C) + b**3, np.cos(A) * C, 3 * b**2

    return f


@given(seeds)
def test_checkers_accept_exact_gradients(seed):
    rng = np.random.default_rng(seed)
    C, A = rng.standard_normal((2, 3, 4))
    b = float(rng.uniform(0.5, 2))
    assert max(complex_step_error(_f(C), (A, b))) < 1e-12
    assert max(directional_error(_f(C), (A, b), rng)) < 1e-6


@given(seeds)
def test_checkers_reject_a_one_percent_error(seed):
    rng = np.random.default_rng(seed)
    C, A = rng.standard_normal((2, 3, 4))
    b = float(rng.uniform(0.5, 2))

    def wrong(A, b):
        loss, dA, db = _f(C)(A, b)
        return loss, 1.01 * dA, db

    cs = complex_step_error(wrong, (A, b))
    assert cs[0] > 5e-3 and cs[1] < 1e-12
    assert directional_error(wrong, (A, b), rng)[0] > 1e-3


def test_main_passes_and_prints(capsys):
    assert gradcheck.main(seed=0) == 0
    text = capsys.readouterr().out
    assert "overall okay: 1" in text
    for name in ("linear", "softmax", "gaussian", "W_KQ", "W_PV", "alpha", "beta", "W_K", "W_Q"):
        assert name in text


def test_main_fails_when_a_tolerance_cannot_be_met(capsys, monkeypatch):
    monkeypatch.setitem(gradcheck.TOLERANCES, "directional", 0.0)
    assert gradcheck.main(seed=1) == 1
    assert "overall okay: 0" in capsys.readouterr().out
