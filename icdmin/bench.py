"""``python -m icdmin bench``: speed as ratios measured in the same run (never a timed unit test).

Each section is a function ``bench_<area>(quick) -> list[Row]`` registered in ``SECTIONS`` at the bottom of this
file. A row reports a measured value and, where it makes sense, the ratio to a comparison measured in the same
process moments before (a plain per-prompt Python loop, the NumPy path, the streaming-bandwidth bound, ...), so
that a noisy shared machine moves both sides together.
"""

from __future__ import annotations

import json
import time
from typing import Callable, NamedTuple

__all__ = ["Row", "best_time", "run", "SECTIONS"]


class Row(NamedTuple):
    """One benchmark result."""

    what: str  # e.g. "sample LinearTask, 1000 prompts"
    value: float  # the measured figure, in `unit`
    unit: str  # "ms", "s", "prompts/s", ...
    ratio: float | None = None  # speed-up over `versus` measured in the same run (> 1: icdmin is faster)
    versus: str = ""  # what the ratio compares against
    target: str = ""  # the target, e.g. "<= 60 ms"
    ok: bool | None = None  # whether the target is met (None: no target)


def best_time(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Best-of-``repeat`` wall time of ``number`` calls of ``fn``, in seconds per call (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _format(rows: list[Row]) -> str:
    head = f"{'what':<58} {'value':>12} {'unit':<10} {'ratio':>8}  {'versus':<34} {'target':<16} ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.ratio:8.1f}x" if r.ratio is not None else " " * 9
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        lines.append(f"{r.what:<58} {r.value:>12.4g} {r.unit:<10} {ratio} {r.versus:<34} {r.target:<16} {ok}")
    return "\n".join(lines)


def run(quick: bool = False, json_path: str | None = None) -> list[Row]:
    """Run every registered section, print one table, optionally write the rows as JSON."""
    rows: list[Row] = []
    for section in SECTIONS:
        t0 = time.perf_counter()
        new = section(quick)
        rows.extend(new)
        print(_format(new), f"\n[{section.__name__}: {time.perf_counter() - t0:.1f} s]\n", flush=True)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump([r._asdict() for r in rows], fh, indent=1)
    return rows


def bench_energy(quick: bool) -> list[Row]:
    """Energy descent (Eq. 17) on the paper's sizes: n=16, L=499, 1000 states with their own contexts, 50 steps.

    Compared with a per-state Python loop of ``alpha * X @ softmax(beta * X.T @ s)`` measured in the same run
    (on ``m`` states and scaled to 1000, since the loop's cost is linear in the number of states).
    """
    import numpy as np

    from .energy import descend, softmax
    from .retrieval import energy_landscape

    rng = np.random.default_rng(0)
    B, n, L, steps, alpha, beta = 1000, 16, 499, 50, 1.0, 10.0
    X = rng.standard_normal((B, n, L))
    X /= np.linalg.norm(X, axis=1, keepdims=True)  # unit-norm tokens, as in the sphere task
    s0 = X[:, :, 0] + np.sqrt(0.1) * rng.standard_normal((B, n))
    repeat = 2 if quick else 5
    t_fast = best_time(lambda: descend(s0, X, alpha, beta, steps=steps), repeat=repeat)
    m = 50 if quick else 200

    def loop():
        for b in range(m):
            s, Xb = s0[b], X[b]
            for _ in range(steps):
                s = alpha * Xb @ softmax(beta * (Xb.T @ s))

    t_loop = best_time(loop, repeat=1 if quick else 3) * (B / m)
    Xc = X[0, :2, :20] / np.linalg.norm(X[0, :2, :20], axis=0)  # a 2-D circle context, L = 20 (Fig. 5)
    grid = np.linspace(-1.5, 1.5, 100)
    t_land = best_time(lambda: energy_landscape(Xc, alpha, beta, grid, grid), repeat=repeat)
    return [
        Row("descend n=16 L=499, 1000 states x 50 steps", t_fast, "s", t_loop / t_fast,
            f"per-state Python loop ({m} states, x{B // m})", "< 1 s", t_fast < 1.0),
        Row("energy landscape 100x100 grid, n=2 L=20 (Fig. 5)", 1e3 * t_land, "ms"),
    ]


def bench_tasks(quick: bool) -> list[Row]:
    """Samplers, oracles and context-only estimators at the paper's size (n=16, L=499, d=8, K=8), per 1000 prompts.

    Each vectorised function is timed against a plain per-prompt Python loop over the same formulas (one
    ``np.linalg.qr`` / ``eigh`` / Bessel call per prompt), measured in the same run; ``--quick`` times the loops on
    200 prompts and scales them by 5.
    """
    import numpy as np

    from . import baselines as bl
    from . import bayes
    from .energy import softmax
    from .tasks import GMMTask, LinearTask, SphereTask

    B, n, d, K, L = 1000, 16, 8, 8, 499
    B_loop = 200 if quick else B
    rep = 3 if quick else 7
    tasks = {"LinearTask": LinearTask(n, d), "SphereTask": SphereTask(n, d), "GMMTask": GMMTask(n, K)}

    def haar(rng, k):
        V, Rm = np.linalg.qr(rng.standard_normal((n, k)))
        return V * np.sign(np.diag(Rm))

    def loop_sample(name, rng):
        for _ in range(B_loop):
            if name == "LinearTask":
                X = haar(rng, d) @ (np.sqrt(2.0) * rng.standard_normal((d, L + 1)))
            elif name == "SphereTask":
                g = rng.standard_normal((d + 1, L + 1))
                X = haar(rng, d + 1) @ (g / np.linalg.norm(g, axis=0))
            else:
                M = rng.standard_normal((n, K))
                M /= np.linalg.norm(M, axis=0)
                X = M[:, rng.integers(0, K, L + 1)] + np.sqrt(0.02) * rng.standard_normal((n, L + 1))
            x_tilde = X[:, -1] + np.sqrt(tasks[name].sigma2_z) * rng.standard_normal(n)  # noqa: F841

    rows = []
    targets = {"LinearTask": 60.0, "SphereTask": 60.0, "GMMTask": 120.0}
    n_normals = {"LinearTask": d * (L + 1), "SphereTask": (d + 1) * (L + 1), "GMMTask": n * (L + 1)}  # per prompt
    prompts = {}
    for name, task in tasks.items():
        rng = np.random.default_rng(0)
        t = best_time(lambda: task.sample(rng, B, L), repeat=rep)
        t_loop = best_time(lambda: loop_sample(name, rng), repeat=1) * B / B_loop
        t_floor = best_time(lambda: rng.standard_normal((B, n_normals[name])), repeat=rep)
        rows.append(Row(f"sample {name}, 1000 prompts", 1e3 * t, "ms", t_loop / t, "per-prompt loop",
                        f"<= {targets[name]:.0f} ms", 1e3 * t <= targets[name]))
        rows.append(Row(f"  its token normals alone ({n_normals[name]} per prompt)", 1e3 * t_floor, "ms",
                        t_floor / t, "sampler (fraction of its time)"))
        prompts[name] = task.sample(np.random.default_rng(1), B, L)
    pl, ps, pg = prompts["LinearTask"], prompts["SphereTask"], prompts["GMMTask"]

    def gmm_one(q, M, w):
        a = softmax((M.T @ q - 0.5 * np.sum(M * M, axis=0)) / 0.12 + np.log(w))
        return (0.02 * q + 0.1 * M @ a) / 0.12

    def sphere_one(q, V):
        c = V.T @ q
        r = np.linalg.norm(c)
        return V @ c * (bayes.bessel_ratio(d, r / 0.1) / r)

    def proj_one(X, q):
        mu = X.mean(axis=1)
        w, V = np.linalg.eigh(X @ X.T / L - np.outer(mu, mu))
        P = V[:, w > 1e-4]
        return mu + P @ (P.T @ (q - mu))

    def sm_one(X, q, tweedie=False):
        u = X.T @ q - (0.5 * np.sum(X * X, axis=0) if tweedie else 0.0)
        return X @ softmax(u / 0.1)

    cases = [  # (label, vectorised call, per-prompt formula, prompts, target ms)
        ("oracle Eq. 3 (linear)", lambda: pl.task.posterior_mean(pl),
         lambda i: 2 / 3 * pl.basis[i] @ (pl.basis[i].T @ pl.x_tilde[i]), 5.0),
        ("oracle Eq. 6 (sphere)", lambda: ps.task.posterior_mean(ps), lambda i: sphere_one(ps.x_tilde[i], ps.basis[i]),
         5.0),
        ("oracle Eq. 7 (mixture)", lambda: pg.task.posterior_mean(pg),
         lambda i: gmm_one(pg.x_tilde[i], pg.centers[i], pg.weights[i]), 5.0),
        ("Eq. 10 linear attention", lambda: bl.linear_attention_estimator(pl.X, pl.x_tilde, 2.0, 1.0),
         lambda i: pl.X[i] @ (pl.X[i].T @ pl.x_tilde[i]) / (3.0 * L), 20.0),
        ("Eq. 13 softmax attention", lambda: bl.softmax_attention_estimator(pg.X, pg.x_tilde, 0.1),
         lambda i: sm_one(pg.X[i], pg.x_tilde[i]), 20.0),
        ("Tweedie (empirical prior)", lambda: bl.tweedie_estimator(pg.X, pg.x_tilde, 0.1),
         lambda i: sm_one(pg.X[i], pg.x_tilde[i], True), 20.0),
        ("affine PCA projection", lambda: bl.projection_estimator(pl.X, pl.x_tilde, shrink=2 / 3),
         lambda i: proj_one(pl.X[i], pl.x_tilde[i]), 20.0),
        ("sphere PCA + Bessel shrink", lambda: bl.sphere_projection_estimator(ps.X, ps.x_tilde, 0.1),
         lambda i: proj_one(ps.X[i], ps.x_tilde[i]), 20.0),
    ]
    for label, fast, one, target in cases:
        t = best_time(fast, repeat=rep)
        t_loop = best_time(lambda: [one(i) for i in range(B_loop)], repeat=1) * B / B_loop
        rows.append(Row(f"{label}, 1000 prompts", 1e3 * t, "ms", t_loop / t, "per-prompt loop",
                        f"<= {target:.0f} ms", 1e3 * t <= target))
    return rows


# Sections, in the order they run. Each helper module's benchmark is added here.
SECTIONS: tuple[Callable[[bool], list[Row]], ...] = (bench_energy, bench_tasks)
