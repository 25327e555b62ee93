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
import warnings

import numpy as np
import pytest
from strategies import attention_problem

from icdmin import _kernels
from icdmin.attention import loss_and_grads


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
    """GNU OpenMP killed such a child ("fork() called from a process already using GNU OpenMP") and a Pool hung."""
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
    """numba's workqueue layer aborts on concurrent launches; the kernels' launch lock serialises them."""
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


needs_jit = pytest.mark.skipif(not _kernels.JIT_ENABLED, reason="the threading layer matters only to the JIT")
LAYER = ("from strategies import attention_problem; import numba, icdmin; "
         "icdmin.loss_and_grads(*attention_problem(0, 4, 3, 5), 'softmax'); print(numba.threading_layer())")


@needs_jit
def test_first_kernel_call_picks_a_fork_safe_layer():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    full = {**env, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__)] + sys.path)}
    done = subprocess.run([sys.executable, "-c", LAYER], env=full, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] in ("tbb", "workqueue")


@needs_jit
def test_an_explicit_user_layer_is_respected():
    """GNU OpenMP, which icdmin would not pick, chosen through the environment or numba's config."""
    assert _run(LAYER, NUMBA_THREADING_LAYER="omp").split()[-1] == "omp"
    out = _run("import numba; numba.config.THREADING_LAYER = 'omp'; " + LAYER)
    assert out.split()[-1] == "omp"
