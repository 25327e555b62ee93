"""Processes and threads: importing icdmin has no side effect, and the parallel kernels give the parent's numbers
in a child forked after the parent used them and in several Python threads calling them at once.

Equality is bitwise: the kernels sum per-prompt slots in a fixed order, so neither the process nor the thread that
launches them can change a bit (the NumPy path under NUMBA_DISABLE_JIT=1 is deterministic too).
"""

import multiprocessing
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from strategies import attention_problem

from icdmin import _kernels
from icdmin.layer import loss_and_grads


def _problem():
    """The paper's size for the kernels (n = 16, L = 499) at a batch large enough to use every thread."""
    return attention_problem(5, 24, 16, 499, 4.0)


def _loss(kind="softmax"):
    return loss_and_grads(*_problem(), kind)


def _assert_same(got, want):
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


def _run(code, **env):
    """Run ``code`` in a fresh interpreter (the repository's tests directory on its path); return its stdout."""
    full = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__)] + sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_import_and_sampling_change_no_environment_variable_and_start_no_thread():
    _run("import os, threading, icdmin, numpy as np; e = dict(os.environ); "
         "t = icdmin.LinearTask(16, 8).sample(np.random.default_rng(0), 100, 499); "
         "t = icdmin.GMMTask(16, 8).sample(np.random.default_rng(0), 100, 499); "
         "assert dict(os.environ) == e and threading.active_count() == 1")


@pytest.mark.parametrize("kind", ["softmax", "linear"])
def test_forked_pool_after_the_parent_used_the_kernels(kind):
    """The helper threads do not exist in the child, which starts its own (with numba's GNU OpenMP layer such
    a child was killed: "fork() called from a process already using GNU OpenMP", and a Pool hung)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    want = _loss(kind)  # the parent starts numba's threads here (with the JIT on)
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork() in a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = [pool.apply_async(_loss, (kind,)) for _ in range(3)]
            got = [r.get(timeout=120) for r in results]
    for g in got:
        _assert_same(g, want)


def test_four_python_threads_at_once():
    """Concurrent calls: one uses the helper threads, the others run serially in their own thread."""
    want = _loss()
    got, errors = [], []

    def work():
        try:
            for _ in range(5):
                got.append(_loss())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not errors and len(got) == 20
    for g in got:
        _assert_same(g, want)


def test_kernel_calls_start_no_numba_thread_pool():
    """The kernels are serial (their helpers are Python threads): numba's threading layer never starts."""
    _run("from strategies import attention_problem; import icdmin; from numba.np.ufunc import parallel; "
         "icdmin.loss_and_grads(*attention_problem(0, 40, 3, 5), 'softmax'); assert not parallel._is_initialized")


def test_chunks_run_on_the_caller_and_a_helper_in_order(monkeypatch):
    monkeypatch.setattr(_kernels, "get_num_threads", lambda: 2)
    seen = set()

    def chunk(scale, lo, hi):
        seen.add(threading.get_ident())
        time.sleep(0.02)
        return [scale * i for i in range(lo, hi)]

    parts = _kernels._run(chunk, (3,), 16)
    assert [v for p in parts for v in p] == [3 * i for i in range(16)]
    assert len(seen) == 2 and threading.get_ident() in seen


def test_a_stalled_helper_does_not_stall_the_call(monkeypatch):
    """A helper that stops (here: sleeps 2 s, as if descheduled) has its chunk recomputed by the caller."""
    monkeypatch.setattr(_kernels, "get_num_threads", lambda: 2)
    caller = threading.get_ident()

    def chunk(lo, hi):
        time.sleep(0.001 if threading.get_ident() == caller else 2.0)
        return list(range(lo, hi))

    t0 = time.perf_counter()
    parts = _kernels._run(chunk, (), 8)
    assert time.perf_counter() - t0 < 1.0
    assert [v for p in parts for v in p] == list(range(8))
