"""``python -m icdmin bench``: speed as ratios measured in the same run (never a timed unit test).

Each section is a function ``bench_<area>(quick) -> list[Row]``. A row reports the median and the 90th-percentile
(slow-tail) figure of many timed calls and, where it makes sense, the ratio to a comparison timed in the same
process moments before (the NumPy path, a per-prompt Python loop, one thread, a peer framework), so that a busy
shared machine moves both sides together. Every target is such a ratio; ``main(strict=True)`` returns 1 if one is
missed. ``--peers`` times the same softmax model written plainly in PyTorch and in JAX, and in the authors' layout
(mattsmart/in-context-denoising at commit c8aaeb3, ``TransformerModelV2noresOmitLast``: the query is the last
column of the prompt and is sliced off), each in a child process running ``scripts/bench_peers.py`` pinned to the
same number of CPUs and threads, when the framework is installed (``pip install -e ".[peers]"``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["Row", "best_time", "timings", "problem", "icdmin_times", "run", "main", "SECTIONS", "PEERS"]

B, N, L = 80, 16, 499  # the paper's training batch (§5.1 of the paper: batch 80, n = 16, L = 499 clean tokens)


class Row(NamedTuple):
    """One benchmark result: ``value`` is the median, ``p90`` the slow tail (the 90th percentile of call times)."""

    what: str
    value: float
    unit: str
    p90: float | None = None
    ratio: float | None = None  # over `versus`, from medians measured in the same run (> 1: icdmin is faster)
    versus: str = ""
    target: str = ""
    ok: bool | None = None  # whether the target is met (None: no target)


def timings(fn: Callable[[], object], repeat: int) -> np.ndarray:
    """Wall time of each of ``repeat`` calls of ``fn`` after one warm-up call, in seconds. Shapes: -> (repeat,)."""
    fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def best_time(fn: Callable[[], object], *, repeat: int = 5) -> float:
    """Best of ``repeat`` timed calls of ``fn`` (after one warm-up call), in seconds."""
    return float(timings(fn, repeat).min())


def _rate(what, t, *, ratio=None, versus="", target="", ok=None) -> Row:
    """A prompts/s row from per-call times t of a batch of B prompts: median, and p90 from the 90th-percentile time."""
    return Row(what, B / np.median(t) / 1e3, "k prompts/s", B / np.percentile(t, 90) / 1e3, ratio, versus, target, ok)


def _ms(what, t, *, ratio=None, versus="") -> Row:
    return Row(what, 1e3 * np.median(t), "ms", 1e3 * np.percentile(t, 90), ratio, versus)


def _format(rows: list[Row]) -> str:
    head = f"{'what':<54} {'median':>9} {'p90':>9} {'unit':<12} {'ratio':>7}  {'versus':<34} {'target':<12} ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        p90 = f"{r.p90:9.4g}" if r.p90 is not None else " " * 9
        ratio = f"{r.ratio:6.2f}x" if r.ratio is not None else " " * 7
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        lines.append(f"{r.what:<54} {r.value:9.4g} {p90} {r.unit:<12} {ratio}  {r.versus:<34} {r.target:<12} {ok}")
    return "\n".join(lines)


def problem(dtype=np.float64, seed=0):
    """The benchmark's softmax problem near the trained Case 3 weights. Shapes: X (B, n, L), q, x (B, n), W (n, n)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, N, L)) / np.sqrt(N)  # unit-norm-ish tokens
    x = rng.standard_normal((B, N)) / np.sqrt(N)
    q = x + np.sqrt(0.1) * rng.standard_normal((B, N))
    W_KQ = 5.0 * np.eye(N) + rng.uniform(-0.25, 0.25, (N, N))
    W_PV = np.eye(N) + rng.uniform(-0.25, 0.25, (N, N))
    return tuple(a.astype(dtype) for a in (X, q, x, W_KQ, W_PV))


def _thread_counts() -> list[int]:
    from . import _kernels

    most = _kernels.numba.config.NUMBA_NUM_THREADS if _kernels.JIT_ENABLED else 1
    return sorted({1, min(2, most)})


def icdmin_times(kind, threads, repeat, dtype=np.float64) -> np.ndarray:
    """Per-call times of the public ``loss_and_grads`` (fused kernel when numba's JIT is on) at ``threads``."""
    from . import _kernels
    from .layer import loss_and_grads

    args = problem(dtype)
    if not _kernels.JIT_ENABLED:
        return timings(lambda: loss_and_grads(*args, kind), repeat)
    before = _kernels.numba.get_num_threads()
    _kernels.numba.set_num_threads(threads)
    try:
        return timings(lambda: loss_and_grads(*args, kind), repeat)
    finally:
        _kernels.numba.set_num_threads(before)


def bench_attention(quick: bool) -> list[Row]:
    """Forward+backward of one-layer attention at the paper's size (B = 80, n = 16, L = 499), float64.

    For each kind: the public ``loss_and_grads`` (the fused kernel) at 1 and 2 threads against the NumPy
    specification (``loss_and_grads_numpy``): the kernel must pay for itself (>= 2x). The 2-thread run is timed in
    blocks alternating with the 1-thread run, and its slow tail (p90) must stay >= 0.8x the 1-thread one.
    """
    from .layer import KINDS, loss_and_grads_numpy

    args = problem()
    repeat = 60 if quick else 300
    rows = []
    for kind in KINDS:
        t_np = timings(lambda: loss_and_grads_numpy(*args, kind), 5 if quick else 20)
        blocks = {t: [] for t in _thread_counts()}
        for _ in range(5):  # alternate, so that a load change hits both thread counts
            for t in blocks:
                blocks[t].append(icdmin_times(kind, t, repeat // 5))
        for t, parts in blocks.items():
            times = np.concatenate(parts)
            ratio = np.median(t_np) / np.median(times)
            rows.append(_rate(f"{kind}: loss_and_grads, {t} thread(s)", times, ratio=ratio, versus="NumPy path",
                              target=">= 2x", ok=ratio >= 2.0))
        if len(blocks) == 2:
            one, two = (np.concatenate(p) for p in blocks.values())
            tail = np.percentile(one, 90) / np.percentile(two, 90)
            rows.append(Row(f"{kind}: 2 threads / 1 thread at p90", tail, "x", target=">= 0.8x", ok=tail >= 0.8))
        rows.append(_rate(f"{kind}: NumPy path (loss_and_grads_numpy)", t_np))
    return rows


def bench_energy(quick: bool) -> list[Row]:
    """Energy descent (paper Eq. 17): n = 16, L = 499, 1000 states with their own contexts, 50 steps, against a
    per-state Python loop of ``alpha * X @ softmax(beta * X.T @ s)`` (on ``m`` states, scaled to 1000)."""
    from .dam import descend, softmax

    rng = np.random.default_rng(0)
    n_states, steps, alpha, beta = 1000, 50, 1.0, 10.0
    X = rng.standard_normal((n_states, N, L))
    X /= np.linalg.norm(X, axis=1, keepdims=True)  # unit-norm tokens, as in the sphere task
    s0 = X[:, :, 0] + np.sqrt(0.1) * rng.standard_normal((n_states, N))
    t_fast = timings(lambda: descend(s0, X, alpha, beta, steps=steps), 2 if quick else 5)
    m = 50 if quick else 200

    def loop():
        for b in range(m):
            s, Xb = s0[b], X[b]
            for _ in range(steps):
                s = alpha * Xb @ softmax(beta * (Xb.T @ s))

    ratio = np.median(timings(loop, 1 if quick else 3) * (n_states / m)) / np.median(t_fast)
    return [_ms("descend, 1000 states x 50 steps", t_fast, ratio=ratio, versus=f"per-state loop ({m} states)")]


def bench_tasks(quick: bool) -> list[Row]:
    """Samplers and context-only estimators at the paper's size (n = 16, d = 8, K = 8, L = 499), 1000 prompts."""
    from . import baselines as bl
    from .tasks import GMMTask, LinearTask, SphereTask

    rep, rows, prompts = (3 if quick else 9), [], {}
    for task in (LinearTask(N, 8), SphereTask(N, 8), GMMTask(N, 8)):
        rng, name = np.random.default_rng(0), type(task).__name__
        rows.append(_ms(f"sample {name}, 1000 prompts", timings(lambda: task.sample(rng, 1000, L), rep)))
        prompts[name] = task.sample(np.random.default_rng(1), 1000, L)
    pl, pg = prompts["LinearTask"], prompts["GMMTask"]
    rows.append(_ms("oracle Eq. 7 (mixture), 1000 prompts", timings(lambda: pg.task.posterior_mean(pg), rep)))
    pca = timings(lambda: bl.projection_estimator(pl.X, pl.x_tilde, shrink=2 / 3), rep)
    return rows + [_ms("affine PCA projection (NumPy), 1000 prompts", pca)]


def bench_training(quick: bool) -> list[Row]:
    """Wall time of the training loop (the paper's protocol, exact test MSE every epoch); p90 column: the slowest."""
    from .training import train
    from .tasks import GMMTask, LinearTask

    rows = []
    for name, task, kind in (("subspace", LinearTask(N, 8), "linear"), ("gmm", GMMTask(N, 8), "softmax")):
        seconds = [train(task, kind=kind, seed=0, eval_train=False).train_seconds for _ in range(1 if quick else 3)]
        rows.append(Row(f"train {name}/{kind}, paper protocol", np.median(seconds), "s", np.max(seconds)))
    return rows


# The peers: name -> (framework, dtype, layout). "plain": X (B, n, L) and q (B, n) as icdmin takes them.
PEERS = {"torch float64": ("torch", "float64", "plain"), "torch float32": ("torch", "float32", "plain"),
         "jax-jit float64": ("jax", "float64", "plain"), "jax-jit float32": ("jax", "float32", "plain"),
         "torch authors' layout float32": ("torch", "float32", "authors"),
         "torch authors' layout float64": ("torch", "float64", "authors")}
PEER_TARGETS = {"torch float64": 3.0, "jax-jit float64": 2.0}  # icdmin / peer, float64, same threads
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding this icdmin package
PEER_SCRIPT = PACKAGE_ROOT / "scripts" / "bench_peers.py"  # the models, outside the package


def _child_env(threads: int) -> dict:
    """The environment of a peer's child: this icdmin's parent directory first on PYTHONPATH (the child imports the
    package that runs the benchmark, even where an install points elsewhere or nowhere); OMP_WAIT_POLICY=PASSIVE
    unless set (torch's spinning OpenMP threads collapse on a busy machine); one XLA thread for one thread."""
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    if threads == 1:  # XLA's CPU client ignores torch-style thread counts: one Eigen thread, one CPU
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def _peer_times(name: str, threads: int, repeat: int):
    """Run one peer in a child limited to ``threads`` CPUs; None (with a note) when it cannot run here."""
    import importlib.util

    if importlib.util.find_spec(PEERS[name][0]) is None:
        return None
    if not PEER_SCRIPT.exists():
        print(f"[peer {name}: needs {PEER_SCRIPT} (a repository checkout)]", flush=True)
        return None
    env = _child_env(threads)
    cpus = sorted(os.sched_getaffinity(0))[:threads] if hasattr(os, "sched_getaffinity") else []
    command = [sys.executable, str(PEER_SCRIPT), name, str(threads), str(repeat), ",".join(map(str, cpus))]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        print(f"[peer {name}: failed: {done.stderr.strip().splitlines()[-1:]}]", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_peers(quick: bool) -> list[Row]:
    """Softmax forward+backward (B = 80, n = 16, L = 499) of icdmin and each installed peer at 1 and 2 threads;
    ratio = the peer's median time / icdmin's, both timed in alternating blocks in the peer's child process (same
    CPUs, same dtype). The child gets OMP_WAIT_POLICY=PASSIVE unless set: spinning torch threads collapse under load.
    At 1 thread, float64, it times the floor too (the passes over X only): peer/floor bounds icdmin/peer."""
    from .layer import loss_and_grads

    repeat = 30 if quick else 100
    rows = []
    for threads in _thread_counts():
        for name, (_, dtype, _) in PEERS.items():
            peer = _peer_times(name, threads, repeat)
            if peer is None:
                continue
            want = loss_and_grads(*problem(getattr(np, dtype)), "softmax")[0]
            same = abs(peer["loss"] - want) <= (1e-10 if dtype == "float64" else 1e-5) * abs(want)
            ours, theirs, goal = np.asarray(peer["icdmin"]), np.asarray(peer["times"]), PEER_TARGETS.get(name)
            ratio = np.median(theirs) / np.median(ours)
            rows.append(_rate(f"{name}, {threads} thread(s)" + ("" if same else " LOSS DIFFERS"), theirs,
                              ratio=ratio, versus=f"icdmin {dtype} (ratio icdmin/peer)",
                              target=f">= {goal:g}x" if goal else "", ok=(ratio >= goal and same) if goal else None))
            rows.append(_rate(f"  icdmin {dtype}, {threads} thread(s), alternating with it", ours))
            rows += [_rate(f"  floor, {variant}: passes over X + exp only", np.asarray(t),
                           ratio=np.median(theirs) / np.median(t), versus=f"{name} (ratio peer/floor)")
                     for variant, t in peer.get("floor", {}).items()]
    return rows


SECTIONS: tuple[Callable[[bool], list[Row]], ...] = (bench_attention, bench_energy, bench_tasks, bench_training)


def run(quick: bool = False, json_path: str | None = None, *, peers: bool = False) -> list[Row]:
    """Run every section (and ``bench_peers`` if ``peers``), print one table per section, optionally write JSON."""
    rows: list[Row] = []
    for section in SECTIONS + ((bench_peers,) if peers else ()):
        t0 = time.perf_counter()
        new = section(quick)
        rows.extend(new)
        print(_format(new), f"\n[{section.__name__}: {time.perf_counter() - t0:.1f} s]\n", flush=True)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump([r._asdict() for r in rows], fh, indent=1, default=_plain)
    return rows


def main(quick: bool = False, json_path: str | None = None, *, peers: bool = False, strict: bool = False) -> int:
    """Run the benchmark; return 1 only when ``strict`` and a target is missed, else 0."""
    for name, value in (("quick", quick), ("peers", peers), ("strict", strict)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    if json_path is not None and not isinstance(json_path, (str, os.PathLike)):
        raise TypeError(f"json_path must be a path or None, got {type(json_path).__name__}")
    print(f"icdmin bench: B={B}, n={N}, L={L}; {os.cpu_count()} CPUs; load average {_load()}", flush=True)
    rows = run(quick, json_path, peers=peers)
    missed = [r.what for r in rows if r.ok is not None and not r.ok]
    print(f"{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))
    return 1 if strict and missed else 0


def _plain(value):
    """NumPy scalars in a Row as plain JSON values."""
    return value.item() if isinstance(value, np.generic) else str(value)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
