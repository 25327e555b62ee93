"""Hypothesis strategies shared by the tests (small shapes, seeds, finite floats).

Each test builds ``np.random.default_rng(seed)`` from a drawn ``seed`` so that examples are reproducible and
shrinkable; no test touches global random state.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

seeds = st.integers(0, 2**32 - 1)


def finite_floats(lo: float, hi: float):
    """Finite float64 values in [lo, hi], no NaN, inf or subnormals."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


positive = finite_floats(1e-2, 1e2)  # alpha, beta, sigma2_* and the like


@st.composite
def dims(draw, max_n: int = 6, max_L: int = 16, max_B: int = 3, max_K: int = 4):
    """Small problem sizes: dict with n in 1..max_n, d in 1..n, L in 1..max_L, B in 1..max_B, K in 1..max_K."""
    n = draw(st.integers(1, max_n))
    return {
        "n": n,
        "d": draw(st.integers(1, n)),
        "L": draw(st.integers(1, max_L)),
        "B": draw(st.integers(1, max_B)),
        "K": draw(st.integers(1, max_K)),
    }


def arrays(shape, lo: float = -3.0, hi: float = 3.0):
    """float64 arrays of the given shape with finite entries in [lo, hi]."""
    return hnp.arrays(np.float64, shape, elements=finite_floats(lo, hi))


def attention_problem(seed: int, B: int, n: int, L: int, w: float = 1.0, dtype=np.float64):
    """A random attention problem: X (B, n, L), x_tilde, x (B, n), W_KQ (scaled by w), W_PV (n, n), in ``dtype``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, n, L)) / np.sqrt(n)  # (B, n, L)
    x = rng.standard_normal((B, n)) / np.sqrt(n)  # (B, n)
    x_tilde = x + rng.standard_normal((B, n)) / np.sqrt(n)  # (B, n)
    W_KQ = w * rng.uniform(-1, 1, (n, n))  # (n, n)
    W_PV = rng.uniform(-1, 1, (n, n))  # (n, n)
    return tuple(a.astype(dtype) for a in (X, x_tilde, x, W_KQ, W_PV))
