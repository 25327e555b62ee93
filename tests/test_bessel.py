"""Tests of icdmin.bessel: the sphere oracle's shrink factor A_d(κ) (Eq. 6) against a θ-quadrature, mpmath, the
recurrence, its limits, the authors' order at the paper's point, and bad input.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import ive

from icdmin.bessel import bessel_ratio


def _theta_ratio(d, kappa):
    """∫ e^{κ cos θ} cos θ sin^{d-1} θ dθ / ∫ e^{κ cos θ} sin^{d-1} θ dθ over [0, π] (App. C.2).

    Folded onto [0, π/2] (θ -> π - θ) so that both integrands are positive (no cancellation), and shifted by
    e^{-κ}. Returns the ratio and a bound on its error propagated from quad's own error estimates.
    """
    opts = dict(epsabs=0.0, epsrel=1e-12, limit=200)
    plus = lambda t: np.exp(kappa * (np.cos(t) - 1)) + np.exp(-kappa * (np.cos(t) + 1))  # noqa: E731
    minus = lambda t: np.exp(kappa * (np.cos(t) - 1)) - np.exp(-kappa * (np.cos(t) + 1))  # noqa: E731
    num, enum = integrate.quad(lambda t: minus(t) * np.cos(t) * np.sin(t) ** (d - 1), 0, np.pi / 2, **opts)
    den, eden = integrate.quad(lambda t: plus(t) * np.sin(t) ** (d - 1), 0, np.pi / 2, **opts)
    return num / den, enum / den + abs(num) * eden / den**2


@pytest.mark.parametrize("d", [1, 2, 3, 8, 20])
@pytest.mark.parametrize("kappa", [0.05, 0.5, 2.0, 11.0, 60.0])
def test_bessel_ratio_matches_theta_quadrature(d, kappa):
    want, bound = _theta_ratio(d, kappa)
    assert bound < 1e-9 * want  # the quadrature itself is accurate to better than 1e-9
    tol = 10 * bound + 1e-13 * want  # 10x quad's error estimate plus float64 rounding of ive
    assert abs(bessel_ratio(d, kappa) - want) <= tol
    # the authors' order I_{d-1/2}/I_{d-3/2} (their repository mattsmart/in-context-denoising at commit c8aaeb3) agrees only for d = 2
    authors = ive(d - 0.5, kappa) / ive(d - 1.5, kappa)
    if d == 2:
        assert abs(authors - want) <= tol
    else:
        assert abs(authors - want) > 1e-3 * want


def test_authors_order_at_paper_point():
    """Paper Eq. (6) vs the authors' code (c8aaeb3): d = 8, κ = 11: correct shrink 0.689, the authors' 0.537."""
    assert round(bessel_ratio(8, 11.0), 3) == 0.689
    assert round(ive(7.5, 11.0) / ive(6.5, 11.0), 3) == 0.537


@given(st.integers(0, 100), st.floats(1e-8, 1e4) | st.floats(1e4, 1e12))
def test_bessel_ratio_recurrence(d, kappa):
    """I_{ν-1} - I_{ν+1} = (2ν/κ) I_ν with ν = (d+1)/2 gives A_d (( d+1)/κ + A_{d+2}) = 1; it links the
    continued-fraction (κ < 1), ive and Hankel (κ >= 1e7) branches, and holds to rounding for d up to 100."""
    a, a2 = bessel_ratio(d, kappa), bessel_ratio(d + 2, kappa)
    assert 0.0 < a <= 1.0 and 0.0 < a2 < a  # A_0 = tanh κ rounds to exactly 1.0 from κ ≈ 19
    if d == 0:
        assert a == pytest.approx(np.tanh(kappa), rel=1e-13)
    np.testing.assert_allclose(a * ((d + 1) / kappa + a2), 1.0, rtol=1e-11)


def test_bessel_ratio_limits_and_special_cases():
    k = np.array([1e-300, 1e-12, 1e-6, 1e-3])
    for d in (0, 1, 8, 100):
        np.testing.assert_allclose(bessel_ratio(d, k), k / (d + 1), rtol=1e-6)  # A ≈ κ/(d+1) (1 - O(κ²))
    assert bessel_ratio(8, 0.0) == 0.0
    big = np.array([1e3, 5e3, 1e5, 1e8])
    for d in (1, 8, 100):
        a = bessel_ratio(d, big)
        np.testing.assert_allclose(1 - a, d / (2 * big), rtol=0.1)  # A ≈ 1 - d/(2κ) for κ >> d²
    kk = np.array([0.3, 0.999999, 1.0, 1.000001, 7.0, 300.0])
    # d = 2: coth κ - 1/κ (κ >= 0.3, so the reference itself has no cancellation)
    np.testing.assert_allclose(bessel_ratio(2, kk), 1 / np.tanh(kk) - 1 / kk, rtol=1e-12)
    np.testing.assert_allclose(bessel_ratio(0, kk), np.tanh(kk), rtol=1e-12)  # d=0: I_{1/2}/I_{-1/2}
    for d in (1, 8, 100):  # the Hankel branch (κ >= 1e7) agrees with ive where both work
        kh = np.array([1e7, 5e7, 1e8])
        np.testing.assert_allclose(bessel_ratio(d, kh), ive((d + 1) / 2, kh) / ive((d - 1) / 2, kh), rtol=1e-14)
    assert np.all(np.isfinite(bessel_ratio(8, np.array([1e9, 1e12, 1e300]))))  # ive itself is NaN here
    grid = np.linspace(0, 50, 2001)
    assert np.all(np.diff(bessel_ratio(20, grid)) > 0)  # monotone across the branch switch at κ = 1
    np.testing.assert_array_equal(bessel_ratio(np.array([1, 8]), 2.0), [bessel_ratio(1, 2.0), bessel_ratio(8, 2.0)])


_MP_D = (1, 2, 3, 8, 50, 290, 300, 1000, 5000)
_MP_KAPPA = (1e-8, 1e-4, 0.1, 1.0, 3.0, 10.0, 100.0, 300.0, 1e3, 2e3, 3e3, 5e3, 1e4, 3e4, 1e5, 1e6, 1e7, 1e8, 1e9,
             1e10, 1e12)


def test_bessel_ratio_matches_mpmath_scalar_and_array():
    """Every branch (continued fraction, ive, Hankel) and its switch points, d up to 5000, κ from 1e-8 to 1e12,
    against mpmath's I_ν at 30 digits; scalars (a former bug returned uninitialised memory past d ≈ 290) and
    arrays give the same numbers. mpmath needs ~40 s for (d, κ) = (5000, 3e4..1e5), so that pair is left out.
    Tolerance 2e-12 relative: scipy's ive is accurate to ~1e-13 near its underflow range (measured worst 9e-13)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    pairs = [(d, k) for d in _MP_D for k in _MP_KAPPA if not (d == 5000 and 2e4 < k < 2e5)]
    want = np.array([float(mpmath.besseli((d + 1) / 2, k, maxterms=10**6)
                           / mpmath.besseli((d - 1) / 2, k, maxterms=10**6)) for d, k in pairs])
    scalar = np.array([bessel_ratio(d, k) for d, k in pairs])
    array = bessel_ratio(np.array([d for d, _ in pairs]), np.array([k for _, k in pairs]))
    np.testing.assert_allclose(scalar, want, rtol=2e-12, atol=0)
    np.testing.assert_array_equal(array, scalar)
    assert bessel_ratio(300, 1.0) == pytest.approx(0.003322222709924435, rel=1e-12)  # mpmath, 40 digits


def test_bessel_ratio_bad_input():
    with pytest.raises(ValueError, match="d"):
        bessel_ratio(-1, 1.0)
    with pytest.raises(TypeError, match="d"):
        bessel_ratio(1.5, 1.0)
    with pytest.raises(TypeError, match="d"):
        bessel_ratio(True, 1.0)
    with pytest.raises(TypeError, match="kappa"):
        bessel_ratio(2, 1.0 + 1j)
    with pytest.raises(ValueError, match="d of shape"):
        bessel_ratio(np.arange(3), np.ones(2))
    with pytest.raises(ValueError, match="kappa"):
        bessel_ratio(2, -1.0)
    with pytest.raises(ValueError, match="kappa"):
        bessel_ratio(2, np.nan)
