"""The runner behind ``python -m icdmin reproduce``: schedule, seed, collect, write, print.

An experiment (``icdmin.experiments.EXPERIMENTS``) is split into *units*: top-level functions with plain keyword
arguments that return plain data (one training run, one Monte-Carlo table, ...). Every unit of every selected
experiment goes into one pool of ``jobs`` processes (spawn start method, so it is safe everywhere); identical units
requested by two experiments (e.g. the Fig. 3 run reused by Fig. 6) run once. Every random draw of a unit comes from
seeds written into its arguments by the planner, derived from the master seed and the unit's *name* (never from the
worker or the order of completion), so ``results.json`` does not depend on ``jobs``.

Outputs in ``out``: ``results.json`` (sorted keys, floats rounded to ``SIG_DIGITS`` significant digits; wall times
only under the top-level ``timings`` key, so two runs with the same seed are byte-identical apart from it), one CSV
per experiment, PNG figures when matplotlib is installed, and the verdict table printed at the end.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import itertools
import json
import math
import multiprocessing
import os
import platform
import sys
import textwrap
import time
import zlib

import numpy as np

__all__ = ["SIG_DIGITS", "derive_seed", "plain", "run", "run_unit"]

SIG_DIGITS = 6  # significant digits kept in results.json (reruns then agree byte for byte)


def derive_seed(master: int, *labels) -> int:
    """A 32-bit seed for the unit named by ``labels``, independent of scheduling (SeedSequence of CRC-32s)."""
    words = [int(master)] + [zlib.crc32(str(label).encode()) for label in labels]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def plain(obj, sig: int = SIG_DIGITS):
    """Convert results to plain JSON data: dicts with str keys, lists, str, bool, int, floats rounded to ``sig``.

    Non-finite floats become ``None`` (JSON has no NaN); NumPy scalars and arrays become Python numbers and lists.
    """
    if isinstance(obj, dict):
        return {str(k): plain(v, sig) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, sig) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist(), sig)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not math.isfinite(x):
            return None
        return float(f"{x:.{sig - 1}e}") if x != 0.0 else 0.0
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"results must be plain data, got {type(obj).__name__}")


def run_unit(fn_name: str, kwargs: dict):
    """Run one unit (a top-level function of ``icdmin.experiments``) and time it. Worker entry point."""
    from . import experiments

    t0, c0 = time.perf_counter(), time.process_time()
    value = getattr(experiments, fn_name)(**kwargs)
    return value, (time.perf_counter() - t0, time.process_time() - c0)


def _unit_key(fn_name: str, kwargs: dict) -> str:
    return fn_name + json.dumps(plain(kwargs, 17), sort_keys=True)


def _write_csv(path: str, table: dict) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(table["columns"])
        for row in table["rows"]:
            writer.writerow(["" if v is None else v for v in row])


def _format_verdicts(rows: list[dict]) -> str:
    """The verdict table as text: one block per claim, cells wrapped to fixed column widths."""
    cols = [("claim", 30), ("paper says", 24), ("icdmin measured", 38), ("authors' code", 18), ("holds?", 30)]
    sep = " | "
    head = sep.join(f"{name:<{width}}" for name, width in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        holds = ("yes" if r["holds"] else "NO") + f": {r['tolerance']}"
        cells = [r["claim"], r["paper"], r["measured"], r["authors"] or "-", holds]
        wrapped = [textwrap.wrap(c, w) or [""] for c, (_, w) in zip(cells, cols)]
        for parts in itertools.zip_longest(*wrapped, fillvalue=""):
            lines.append(sep.join(f"{p:<{w}}" for p, (_, w) in zip(parts, cols)).rstrip())
    return "\n".join(lines)


def _pool(jobs: int):
    """A spawn pool of ``jobs`` workers, each given ``cpu_count // jobs`` Numba threads (no oversubscription)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    saved = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = str(threads)  # inherited by the spawned workers only
    try:
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
        for f in [pool.submit(os.getpid) for _ in range(jobs)]:  # start the workers while the variable is set
            f.result()
    finally:
        if saved is None:
            del os.environ["NUMBA_NUM_THREADS"]
        else:
            os.environ["NUMBA_NUM_THREADS"] = saved
    return pool


def run(out: str = "icdmin-results", *, quick: bool = False, only=None, jobs: int = 2, seed: int = 0) -> int:
    """Run the selected experiments and write ``out/results.json``, CSVs, figures; print the verdict table.

    Returns 0 on success, 2 on bad arguments (unknown experiment name, jobs < 1).
    """
    from . import experiments, verdicts

    names = list(experiments.EXPERIMENTS)
    if only:
        unknown = [name for name in only if name not in experiments.EXPERIMENTS]
        if unknown:
            print(f"reproduce: unknown experiment(s) {unknown}; choose from {names}", file=sys.stderr)
            return 2
        names = [name for name in names if name in only]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        print(f"reproduce: jobs must be an integer >= 1, got {jobs!r}", file=sys.stderr)
        return 2
    mode = "quick" if quick else "default"
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    print(f"icdmin reproduce: {len(names)} experiments ({', '.join(names)}), {mode} mode, seed {seed}, "
          f"{jobs} job(s) -> {out}/", flush=True)

    # Plan: every experiment lists its units; identical units are shared.
    plans, units = {}, {}
    for name in names:
        exp = experiments.EXPERIMENTS[name]
        plan = exp.plan(exp.config(quick), seed)
        plans[name] = plan
        for label, (fn_name, kwargs, cost) in plan.items():
            units.setdefault(_unit_key(fn_name, kwargs), (fn_name, kwargs, cost))
    waiting = {name: {_unit_key(fn, kw) for fn, kw, _ in plan.values()} for name, plan in plans.items()}
    done, seconds, results, timings = {}, {}, {}, {}

    def finish(key):
        for name in names:
            pending = waiting[name]
            if key in pending:
                pending.discard(key)
                if not pending and name not in results:
                    exp = experiments.EXPERIMENTS[name]
                    unit_values = {label: done[_unit_key(fn, kw)] for label, (fn, kw, _) in plans[name].items()}
                    results[name] = plain(exp.combine(exp.config(quick), unit_values))
                    keys = [_unit_key(fn, kw) for fn, kw, _ in plans[name].values()]
                    compute = sum(seconds[k][0] for k in keys)
                    elapsed = time.perf_counter() - t_start
                    timings[name] = {"finished_at_s": elapsed, "unit_wall_s": compute,
                                     "unit_cpu_s": sum(seconds[k][1] for k in keys)}
                    print(f"[{elapsed:6.1f} s] {name:<6} done: {len(plans[name])} unit(s), {compute:5.1f} s of "
                          f"compute. {exp.title}", flush=True)

    order = sorted(units, key=lambda k: -units[k][2])  # longest first: better load balance
    if jobs == 1:
        for key in order:
            fn_name, kwargs, _ = units[key]
            done[key], seconds[key] = run_unit(fn_name, kwargs)
            finish(key)
    else:
        with _pool(jobs) as pool:
            futures = {pool.submit(run_unit, units[k][0], units[k][1]): k for k in order}
            last = time.perf_counter()
            for fut in cf.as_completed(futures):
                key = futures[fut]
                done[key], seconds[key] = fut.result()
                finish(key)
                if time.perf_counter() - last > 15 and len(done) < len(units):  # a heartbeat between experiments
                    last = time.perf_counter()
                    running = [n for n in names if n not in results]
                    print(f"[{last - t_start:6.1f} s] {len(done)}/{len(units)} units done; waiting on: "
                          f"{', '.join(running)}", flush=True)

    table = verdicts.verdicts(results, quick=quick)
    doc = {
        "meta": {
            "paper": "Smart, Bietti, Sengupta, In-context denoising with one-layer transformers, ICML 2025",
            "mode": mode,
            "seed": int(seed),
            "experiments": names,
            "sig_digits": SIG_DIGITS,
            "configs": {name: experiments.EXPERIMENTS[name].config(quick) for name in names},
        },
        "results": {name: results[name] for name in names},
        "verdicts": table,
    }
    for name in names:
        tab = results[name].get("table")
        if tab:
            _write_csv(os.path.join(out, f"{name}.csv"), tab)

    def write(doc_out):
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(plain(doc_out), fh, sort_keys=True, indent=1, allow_nan=False)
            fh.write("\n")

    timing = {"compute_wall_s": time.perf_counter() - t_start, "experiments": timings, "jobs": jobs,
              "python": platform.python_version(), "numpy": np.__version__}
    write(dict(doc, timings=timing))  # the results are safe on disk before any drawing
    print()
    print(_format_verdicts(plain(table)))
    held = sum(r["holds"] for r in table)
    print(f"\n{held}/{len(table)} claims hold within their stated tolerance.", flush=True)
    from . import figures

    t_fig = time.perf_counter()
    pictures = figures.render(doc, out)
    total = time.perf_counter() - t_start
    timing.update(figures_s=time.perf_counter() - t_fig, total_wall_s=total)
    doc = plain(dict(doc, timings=timing))
    write(doc)
    if pictures is None:
        print("figures skipped: matplotlib is not installed (pip install -e \".[plot]\")")
    else:
        print(f"figures: {', '.join(os.path.basename(p) for p in pictures)}")
    print(f"wrote {out}/results.json and {len([n for n in names if results[n].get('table')])} CSV file(s) "
          f"in {total:.1f} s wall", flush=True)
    return 0
