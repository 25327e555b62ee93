"""Hypothesis profiles and test-size settings.

Profiles (MyGrad style), chosen by ``HYPOTHESIS_PROFILE``; the default is ``ci``, so that a plain ``pytest``
runs exactly what CI runs:

- ``ci``: 100 examples, derandomized, no deadline (the first Numba call compiles and would trip deadlines);
- ``dev``: 10 examples, for a quick local loop (``HYPOTHESIS_PROFILE=dev pytest``);
- ``intense``: 2000 examples.

Slow Monte-Carlo / training tests (marked ``slow``) use reduced sizes unless ``ICDMIN_FULL=1``; their
tolerances are z-scores of the Monte-Carlo standard error, so they stay valid at either size.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.register_profile("intense", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files; no display is needed or wanted

FULL = os.environ.get("ICDMIN_FULL") == "1"


def size(full: int, reduced: int) -> int:
    """Problem size for slow tests: ``full`` under ``ICDMIN_FULL=1``, ``reduced`` otherwise."""
    return full if FULL else reduced
