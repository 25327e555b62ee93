"""Golden-number helpers: ``tests/data/golden.json`` holds one dict per area, written by scripts/make_golden.py.

A golden test recomputes its area with the script's own function and compares it with the stored numbers, so the
numbers and the code that made them never drift apart silently. Regenerate with ``python scripts/make_golden.py
<area>`` only after a deliberate change of behaviour.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def golden(area: str):
    """(stored, recomputed) numbers of ``area``."""
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = json.loads((ROOT / "tests" / "data" / "golden.json").read_text())[area]
    return stored, module.AREAS[area]()


def assert_tree_close(stored, fresh, path: str = "") -> None:
    """Nested dicts of numbers / lists compared at rtol 1e-10 (cross-machine BLAS/LAPACK rounding is ~1e-15)."""
    if isinstance(stored, dict):
        assert isinstance(fresh, dict) and stored.keys() == fresh.keys(), path
        for k in stored:
            assert_tree_close(stored[k], fresh[k], f"{path}/{k}")
    else:
        np.testing.assert_allclose(fresh, stored, rtol=1e-10, atol=1e-13, err_msg=path)
