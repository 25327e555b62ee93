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


# Sections, in the order they run. Each helper module's benchmark is added here.
SECTIONS: tuple[Callable[[bool], list[Row]], ...] = (bench_energy,)
