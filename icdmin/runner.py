"""The runner behind ``python -m icdmin reproduce``: check, schedule, seed, collect, write, print.

The experiments are the runner's list, :data:`icdmin.experiments.EXPERIMENTS` (one module per figure); each is split
into *units*: top-level functions with plain keyword arguments that return plain data (one training run, one
Monte-Carlo table, ...). Every unit of every selected experiment goes into one pool of ``jobs`` processes (spawn start
method, so it is safe everywhere); identical units requested by two experiments (e.g. the Fig. 3 run reused by Fig. 6)
run once. Every random draw of a unit comes from seeds written into its arguments by the planner, derived from the
master seed and the unit's *name* (:func:`icdmin.exp_common.derive_seed`; never from the worker or the order of
completion), so ``results.json`` does not depend on ``jobs``.

Outputs in ``out`` (by :mod:`icdmin.outputs`, with ``manifest.json``): ``results.json`` (sorted keys, floats rounded
to ``SIG_DIGITS`` significant digits; wall times only under ``timings``, machine, versions and command line only under
``provenance``: two runs with the same seed are byte-identical apart from those two keys), one CSV per experiment,
PNG figures when matplotlib is installed. Ctrl-C kills the workers and keeps the experiments that finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import signal
import sys
import time

import numpy as np

from . import experiments, outputs, workers

__all__ = ["INTERRUPTED", "SIG_DIGITS", "check_args", "plain", "reproduce", "run_unit"]

SIG_DIGITS = 6  # significant digits kept in results.json (reruns then agree byte for byte)
INTERRUPTED = 130  # exit code after Ctrl-C (128 + SIGINT), as shells report it


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


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer from {low} to {high}, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name}: expected an integer from {low} to {high}, got {value}")
    return int(value)


def check_args(out, *, quick=False, only=None, jobs=2, seed=0, strict=True) -> dict:
    """Validate :func:`reproduce`'s arguments before any compute; return them, ``only`` as a list of names.

    ``only``: None (every experiment) or a non-empty list of names of ``EXPERIMENTS`` or ``ALIASES``; ``jobs`` in
    [1, 1024]; ``seed`` in [0, 2**32); ``quick``, ``strict``: booleans. ``out`` is checked last (it is created and a
    test file written and removed in it, :func:`icdmin.outputs.check_out_dir`). Raises TypeError / ValueError whose
    message starts with the argument's name.
    """
    known, aliases = experiments.EXPERIMENTS, experiments.ALIASES
    for name, flag in (("quick", quick), ("strict", strict)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name}: expected True or False, got {type(flag).__name__} {flag!r}")
    names = list(known)
    if only is not None:
        if isinstance(only, str) or not isinstance(only, (list, tuple)):
            raise TypeError(f"only: expected a list of experiment names, got {type(only).__name__} {only!r}")
        if not only:
            raise ValueError(f"only: expected at least one experiment name, got {only!r}; choose from {names}")
        unknown = [x for x in only if not isinstance(x, str) or (x not in known and x not in aliases)]
        if unknown:
            raise ValueError(f"only: unknown experiment(s) {unknown}; choose from {names} or {sorted(aliases)}")
        wanted = {m for x in only for m in aliases.get(x, (x,))}
        names = [x for x in names if x in wanted]
    jobs, seed = _check_int("jobs", jobs, 1, 1024), _check_int("seed", seed, 0, 2**32 - 1)
    out = outputs.check_out_dir(out)
    return dict(out=out, quick=bool(quick), only=names, jobs=jobs, seed=seed, strict=bool(strict))


def run_unit(fn, kwargs: dict):
    """Run one unit (a top-level function) on ``kwargs`` and time it. Worker entry point."""
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn(**kwargs)
    return value, (time.perf_counter() - t0, time.process_time() - c0)


def _unit_key(fn, kwargs: dict) -> str:
    return f"{fn.__module__}.{fn.__qualname__}" + json.dumps(plain(kwargs, 17), sort_keys=True)


class _Run:
    """One reproduction: its plan, the units' results as they arrive, and the files written so far."""

    def __init__(self, out, quick, names, seed, jobs):
        self.out, self.quick, self.names, self.seed, self.jobs = out, quick, names, seed, jobs
        self.exps = {name: experiments.EXPERIMENTS[name] for name in names}
        self.configs = {name: exp.config(quick) for name, exp in self.exps.items()}
        self.plans, self.units = {}, {}  # name -> {label: (key, fn, kwargs)}; key -> (fn, kwargs, cost)
        for name, exp in self.exps.items():
            self.plans[name] = {}
            for label, (fn, kwargs, cost) in exp.plan(self.configs[name], seed).items():
                if not callable(fn):  # a top-level function: it is sent to the workers by reference
                    raise TypeError(f"experiment {name!r}, unit {label!r}: expected a unit function, got {fn!r}")
                key = _unit_key(fn, kwargs)
                self.plans[name][label] = (key, fn, kwargs)
                self.units.setdefault(key, (fn, kwargs, cost))
        self.waiting = {name: {key for key, _, _ in plan.values()} for name, plan in self.plans.items()}
        self.done, self.seconds, self.results, self.timings = {}, {}, {}, {}
        self.folder, self.pool, self.t_start = outputs.Folder(out), None, time.perf_counter()
        self.provenance = outputs.provenance()

    def finish(self, key, value, seconds) -> None:
        """Record a unit's result; combine and announce every experiment it completes."""
        self.done[key], self.seconds[key] = value, seconds
        for name in self.names:
            if key not in self.waiting[name]:
                continue
            self.waiting[name].discard(key)
            if self.waiting[name]:
                continue
            keys = [k for k, _, _ in self.plans[name].values()]
            values = {label: self.done[k] for label, (k, _, _) in self.plans[name].items()}
            self.results[name] = plain(self.exps[name].combine(self.configs[name], values))
            compute, elapsed = sum(self.seconds[k][0] for k in keys), time.perf_counter() - self.t_start
            self.timings[name] = {"finished_at_s": elapsed, "unit_wall_s": compute,
                                  "unit_cpu_s": sum(self.seconds[k][1] for k in keys)}
            print(f"[{elapsed:6.1f} s] {name:<6} done: {len(keys)} unit(s), {compute:5.1f} s of compute. "
                  f"{self.exps[name].title}", flush=True)

    def execute(self) -> None:
        """Run every unit, longest first (better load balance), in this process or in a spawn pool."""
        order = sorted(self.units, key=lambda k: -self.units[k][2])
        if self.jobs == 1:
            for key in order:
                self.finish(key, *run_unit(*self.units[key][:2]))
            return
        self.pool = workers.start_pool(self.jobs)
        futures = workers.submit_all(self.pool, [(run_unit, *self.units[k][:2]) for k in order], order)
        last = time.perf_counter()
        try:
            for fut in cf.as_completed(futures):
                self.finish(futures[fut], *fut.result())
                if time.perf_counter() - last > 15 and len(self.done) < len(self.units):  # a heartbeat
                    last = time.perf_counter()
                    running = [n for n in self.names if n not in self.results]
                    print(f"[{last - self.t_start:6.1f} s] {len(self.done)}/{len(self.units)} units done; "
                          f"waiting on: {', '.join(running)}", flush=True)
        except Exception:  # a unit failed: stop the others now rather than at exit (Ctrl-C: see `interrupted`)
            workers.kill_pool(self.pool)
            self.pool = None
            raise
        self.pool.shutdown()
        self.pool = None

    def document(self, table, **timing) -> dict:
        """results.json's content: meta, the finished experiments' results, verdicts, timings, provenance."""
        finished = [n for n in self.names if n in self.results]
        meta = {"paper": "Smart, Bietti, Sengupta, In-context denoising with one-layer transformers, ICML 2025",
                "mode": "quick" if self.quick else "default", "seed": self.seed, "experiments": self.names,
                "complete": finished == self.names, "missing": [n for n in self.names if n not in finished],
                "sig_digits": SIG_DIGITS, "configs": self.configs}
        timings = dict(timing, experiments=self.timings, jobs=self.jobs)
        return plain({"meta": meta, "results": {n: self.results[n] for n in finished}, "verdicts": table,
                      "timings": timings, "provenance": self.provenance})

    def write_tables(self) -> None:
        for name in self.names:
            if self.results.get(name, {}).get("table"):
                self.folder.write(f"{name}.csv", outputs.csv_text(self.results[name]["table"]))

    def publish(self):
        """Verdicts, results.json (before any drawing), the table, figures, manifest; (table, pictures, removed)."""
        table = experiments.verdicts(self.results, quick=self.quick)
        self.write_tables()
        self.folder.write("results.json", self.document(table, compute_wall_s=time.perf_counter() - self.t_start))
        held = sum(row["holds"] for row in table)
        print(f"\n{outputs.format_verdicts(plain(table))}\n\n{held}/{len(table)} claims hold within their stated "
              "tolerance.", flush=True)
        t_fig = time.perf_counter()
        pictures = self.folder.write_rendered(lambda folder: experiments.render(self.document(table), folder))
        self.total_s = time.perf_counter() - self.t_start
        timing = dict(compute_wall_s=t_fig - self.t_start, total_wall_s=self.total_s,
                      figures_s=time.perf_counter() - t_fig)
        self.folder.write("results.json", self.document(table, **timing))
        return table, pictures, self.folder.close()

    def interrupted(self) -> int:
        """After Ctrl-C: kill the workers, keep what finished (marked incomplete), say so in one line; 130."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        try:
            if self.pool is not None:
                workers.kill_pool(self.pool)
            path = os.path.join(self.out, "results.json")
            if "results.json" in self.folder.written:  # every experiment had finished: Ctrl-C while drawing
                message = f"{path} is complete; the figures drawn so far are kept"
            else:
                self.write_tables()
                self.folder.write("results.json", self.document([], compute_wall_s=time.perf_counter() - self.t_start))
                kept = [n for n in self.names if n in self.results]
                what = ", ".join(kept) if kept else "no experiment had finished"
                message = f"kept {len(kept)} of {len(self.names)} experiment(s) ({what}) in {path}, marked incomplete"
            self.folder.close()
            print(f"\ninterrupted: {message}", file=sys.stderr, flush=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        return INTERRUPTED


def reproduce(out: str = "icdmin-results", *, quick: bool = False, only=None, jobs: int = 2, seed: int = 0,
              strict: bool = True) -> int:
    """Run the paper's experiments; write ``out/results.json``, CSVs, figures, ``manifest.json``; print the verdicts.

    ``out``: output directory (created if missing; must be writable). ``quick``: fewer seeds and shorter runs (about
    30 s on 2 cores) instead of the default (about 3 minutes). ``only``: a non-empty list of experiment names (see
    :data:`icdmin.experiments.EXPERIMENTS`; aliases "fig4", "fig7"); default all. ``jobs``: worker processes, >= 1
    (results do not depend on it). ``seed``: master seed in [0, 2**32); every unit's seeds derive from it and the
    unit's name. ``strict``: when True, a claim that does not hold makes the return code 1. Bad arguments raise
    TypeError / ValueError naming the argument, before any compute (:func:`check_args`).

    Returns 0 when every claim holds (or ``strict`` is False), 1 when a claim fails, 130 after Ctrl-C (the
    experiments that finished are kept in results.json, marked incomplete).
    """
    args = check_args(out, quick=quick, only=only, jobs=jobs, seed=seed, strict=strict)
    names, out, mode = args["only"], args["out"], "quick" if args["quick"] else "default"
    print(f"icdmin reproduce: {len(names)} experiments ({', '.join(names)}), {mode} mode, seed {args['seed']}, "
          f"{args['jobs']} job(s) -> {out}/", flush=True)
    r = None
    try:
        r = _Run(out, args["quick"], names, args["seed"], args["jobs"])
        workers.announce_compile()
        r.execute()
        table, pictures, removed = r.publish()
    except (KeyboardInterrupt, SystemError) as err:
        if not workers.is_ctrl_c(err):
            raise
        if r is None:
            print("\ninterrupted before any experiment started: nothing written", file=sys.stderr, flush=True)
        return r.interrupted() if r is not None else INTERRUPTED
    if pictures is None:
        print("figures skipped: matplotlib is not installed (pip install -e \".[plot]\")")
    else:
        print(f"figures: {', '.join(os.path.basename(p) for p in pictures)}")
    if removed:
        print(f"removed {len(removed)} file(s) of an earlier run: {', '.join(removed)}")
    csvs = len([name for name in r.folder.written if name.endswith(".csv")])
    print(f"wrote {out}/results.json, {csvs} CSV file(s) and manifest.json in {r.total_s:.1f} s wall", flush=True)
    held = sum(row["holds"] for row in table)
    if held < len(table) and args["strict"]:
        print(f"reproduce: {len(table) - held} claim(s) failed: exit code 1 (--no-strict: 0)", file=sys.stderr)
        return 1
    return 0
