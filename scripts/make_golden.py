"""Regenerate ``tests/data/golden.json``: static golden numbers, one dict per area.

    python scripts/make_golden.py            # every area
    python scripts/make_golden.py bayes      # only some areas; the other areas in the file are kept

Each area is a function returning a JSON-able dict, registered in ``AREAS``; other icdmin helpers add their own
area the same way. The tests (``tests/test_<module>.py::test_golden_*``) recompute the area with the same function
and compare at rtol 1e-10 (room for BLAS/LAPACK rounding across machines, far below any real change). Regenerate
only after a deliberate change of behaviour, and say so in the commit message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import icdmin.baselines as bl
from icdmin.bayes import (
    bessel_ratio,
    linear_risk,
    optimal_linear_gamma,
    posterior_mean_gmm,
    posterior_mean_gmm_general,
    posterior_mean_linear,
    posterior_mean_sphere,
)
from icdmin.tasks import GMMTask, LinearTask, SphereTask

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden.json"


def _arr(a) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


def golden_tasks() -> dict:
    """Samples of each task with seed 0 (B=2, L=3): pins the order of random draws and the formulas."""
    tasks = {
        "linear": LinearTask(4, 2, 2.0, 1.0),
        "linear_ext": LinearTask(4, 2, 1.5, 0.5, offset_scale=1.0, noise="orthogonal",
                                 transform=np.diag([1.0, 2.0, 0.5, 1.0]) + 0.1, target="transformed"),
        "sphere": SphereTask(4, 2, 1.5, 0.2),
        "gmm": GMMTask(4, 3, 0.02, 0.1, 1.0),
        "gmm_ext": GMMTask(4, 3, 0.02, 0.1, 1.2, weights=[0.5, 0.0, 0.5], sigma2_components=[0.01, 0.2, 0.05]),
    }
    out = {}
    for name, task in tasks.items():
        p = task.sample(np.random.default_rng(0), 2, 3)
        out[name] = {"X": _arr(p.X), "x_tilde": _arr(p.x_tilde), "x": _arr(p.x),
                     "posterior_mean": _arr(task.posterior_mean(p))}
        if p.labels is not None:
            out[name]["labels"] = p.labels.tolist()
    out["linear"]["bayes_risk"] = tasks["linear"].bayes_risk()
    out["linear_ext"]["bayes_risk"] = tasks["linear_ext"].bayes_risk()
    return out


def golden_bayes() -> dict:
    """Bessel ratios over d and κ (all three numerical branches), oracles at fixed inputs, closed-form risks."""
    d = np.array([0, 1, 2, 8, 20, 100])
    kappa = np.array([1e-6, 0.5, 11.0, 3e3, 1e8])
    x_tilde = np.array([0.3, -1.2, 0.7, 0.1])
    basis = np.linalg.qr(np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.3], [0.5, 0.0, 1.0], [0.1, 0.4, 0.2]]))[0]
    centers = np.array([[1.0, 0.0, -0.6], [0.0, 1.0, 0.0], [0.0, 0.0, 0.8], [0.0, 0.0, 0.0]])
    w = [0.25, 0.0, 0.75]
    return {
        "bessel_ratio": _arr(bessel_ratio(d[:, None], kappa[None, :])),
        "posterior_mean_linear": _arr(posterior_mean_linear(x_tilde, basis[:, :2], 2.0, 1.0, offset=[0.1, 0, 0, -0.2])),
        "posterior_mean_sphere": _arr(posterior_mean_sphere(x_tilde, basis, 1.0, 0.1)),
        "posterior_mean_gmm_eq7": _arr(posterior_mean_gmm(x_tilde, centers, 0.02, 0.1, w)),
        "posterior_mean_gmm_eq8": _arr(posterior_mean_gmm(x_tilde, centers, 0.0, 0.1)),
        "posterior_mean_gmm_general": _arr(posterior_mean_gmm_general(x_tilde, centers, [0.01, 0.3, 0.1], 0.1, w)),
        "optimal_linear_gamma_paper": optimal_linear_gamma(8, 499, 2.0, 1.0),
        "linear_risk_paper_gamma_third": linear_risk(16, 8, 499, 2.0, 1.0, 1 / 3),
    }


def golden_baselines() -> dict:
    """Every context-only estimator on fixed deterministic prompts (n=4, L=7): generic, rank-2 affine, a circle."""
    t = np.arange(28.0).reshape(4, 7)
    X = np.sin(0.7 * t) + 0.3 * np.cos(1.3 * t)
    q = np.array([0.4, -0.3, 0.9, 0.2])
    ang = np.linspace(0.1, 6.0, 7)
    S = np.stack([np.cos(ang), np.sin(ang), np.zeros(7), np.zeros(7)]) * 1.2  # a circle in the first plane
    Xa = np.array([[1.0, 0.2], [0.3, -1.0], [0.5, 0.5], [0.0, 0.7]]) @ X[:2] + np.array([[0.2], [-0.1], [0.3], [0.0]])
    S = np.linalg.qr(np.array([[1.0, 0.3, 0.1, 0.0], [0.2, 1.0, 0.0, 0.4], [0.0, 0.1, 1.0, 0.0],
                               [0.3, 0.0, 0.2, 1.0]]))[0] @ S
    return {
        "linear_attention": _arr(bl.linear_attention_estimator(X, q, 2.0, 1.0)),
        "softmax_attention": _arr(bl.softmax_attention_estimator(X, q, 0.1)),
        "tweedie": _arr(bl.tweedie_estimator(X, q, 0.1)),
        "projection": _arr(bl.projection_estimator(Xa, q)),  # rank-2 affine context
        "projection_shrunk": _arr(bl.projection_estimator(Xa, q, shrink=2 / 3)),
        "sphere_paper": _arr(bl.sphere_projection_estimator(S, q, 0.1)),
        "sphere_authors": _arr(bl.sphere_projection_estimator(S, q, 0.1, bessel="authors")),
        "sphere_none": _arr(bl.sphere_projection_estimator(S, q, 0.1, bessel=None)),
        "context_mean": _arr(bl.context_mean_estimator(X, q)),
    }


AREAS = {"tasks": golden_tasks, "bayes": golden_bayes, "baselines": golden_baselines}


def main(areas: list[str]) -> None:
    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    for area in areas or sorted(AREAS):
        if area not in AREAS:
            raise SystemExit(f"unknown area {area!r}; known: {', '.join(sorted(AREAS))}")
        data[area] = AREAS[area]()
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({', '.join(sorted(data))})")


if __name__ == "__main__":
    main(sys.argv[1:])
