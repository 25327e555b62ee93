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


def test_grain_rule_keeps_small_calls_serial(monkeypatch):
    """Helpers only for calls of at least GRAIN token·dimensions per thread: never for one prompt, always for the
    paper's batch (B = 80, n = 16, L = 499); a Gaussian prompt (n² L) counts n times a softmax one."""
    monkeypatch.setattr(_kernels, "get_num_threads", lambda: 2)
    assert _kernels.threads_for(1, 16, 499) == 1 and _kernels.threads_for(80, 16, 499) == 2
    assert _kernels.threads_for(10**6, 16, 499) == 2  # never more than get_num_threads()
    smallest = next(B for B in range(1, 100) if _kernels.threads_for(B, 16, 499) == 2)
    assert smallest * 16 * 499 >= 2 * _kernels.GRAIN > (smallest - 1) * 16 * 499
    gauss = next(B for B in range(1, 100) if _kernels.threads_for(B, 16, 499, _kernels.GAUSSIAN) == 2)
    assert gauss < smallest
    monkeypatch.setattr(_kernels, "get_num_threads", lambda: 1)
    assert _kernels.threads_for(10**6, 16, 499) == 1


def test_helpers_are_used_while_faster_and_the_other_choice_is_probed():
    before, soft, lin, period = threading.active_count(), (1, "d"), (0, "d"), _kernels.PERIOD
    for cheaper in (True, False):
        helpers = _kernels._Helpers()  # starts no thread by itself
        helpers.calls = 10  # not just after a switch (calls 0 and PROBE of every PERIOD are not counted)
        for s in (5.0, 1e-9):  # the first call of a kind is not counted (it may compile)
            helpers.record((*soft, cheaper), s)
        for s in (7.0, 3e-9):
            helpers.record((*soft, not cheaper), s)
        assert helpers.cost == {(*soft, cheaper): 1e-9, (*soft, not cheaper): 3e-9}
        choices = [helpers.use(soft) for _ in range(10 * period)]
        assert choices.count(not cheaper) == 10 * _kernels.PROBE  # PROBE calls in PERIOD probe the slower choice
        for calls in (10 * period, 10 * period + _kernels.PROBE):  # the first call after a switch is not counted
            helpers.calls = calls
            helpers.record((*soft, cheaper), 1.0)
        assert helpers.cost[soft + (cheaper,)] == 1e-9
        helpers.calls = 10
        helpers.record((*soft, cheaper), 1.0)  # one preempted call counts as 4 times the average at most
        assert helpers.cost[soft + (cheaper,)] == pytest.approx(1.75e-9, rel=1e-12)
        for _ in range(5):  # the moving average follows a change: the other choice becomes the cheaper
            helpers.record((*soft, cheaper), 9e-9)
        assert [helpers.use(soft) for _ in range(period)].count(not cheaper) == period - _kernels.PROBE
        for key, s in (((*lin, cheaper), 0.0), ((*lin, cheaper), 1e-9), ((*lin, not cheaper), 0.0),
                       ((*lin, not cheaper), 3e-9)):  # the averages are per kind and dtype
            helpers.record(key, s)
        assert [helpers.use(lin) for _ in range(period)].count(cheaper) == period - _kernels.PROBE
    assert threading.active_count() == before


def _worker_args(kind, X, q, x, W_KQ, W_PV):
    """_kernels._worker's arguments for loss_and_grads on X, with fresh slots and state: (args, state, slots)."""
    B, n = X.shape[:2]
    slots = (np.empty(B), np.empty((B, n, n)), np.empty((B, n, n)))
    state = np.zeros(B + 2, np.int64)
    args = (_kernels.KIND_CODES[kind], X, q, x, W_KQ, W_PV, np.arange(B), 2.0 / (B * n), *slots, np.empty((0, n)))
    return args, state, slots


def _small_problem():
    return attention_problem(2, 6, 3, 7, 2.0) if not _kernels.JIT_ENABLED else _problem()


@pytest.mark.parametrize("kind", ["softmax", "gaussian"])
def test_prompts_in_flight_on_a_stalled_helper_are_recomputed_by_the_caller(kind):
    """Every prompt claimed (state[0] = B) and none flagged done, as if a helper had claimed them and stopped: the
    caller computes them all, with the bits of a serial call."""
    problem = _small_problem()
    want = _kernels.loss_and_grads(_kernels.KIND_CODES[kind], *problem, np.arange(problem[0].shape[0]))
    args, state, slots = _worker_args(kind, *problem)
    B = problem[0].shape[0]
    state[0] = B
    assert _kernels._worker(*args, state, np.zeros(1, np.int64), True) is False
    assert list(state[2:]) == [1] * B
    _assert_same((slots[0].sum() / (B * problem[0].shape[1]), slots[1].sum(axis=0), slots[2].sum(axis=0)), want)


@pytest.mark.parametrize("kind", ["softmax", "gaussian"])
def test_a_helper_runs_its_claims_then_polls_for_the_next_job(kind):
    """A helper's worker flags its prompts 2, and returns True if the next job is published while it polls (False
    after SPIN polls); the caller then finds every prompt done and recomputes none."""
    args, state, slots = _worker_args(kind, *_small_problem())
    state[1] = 5  # this job's number
    ticket = np.array([6])  # the next job is out already
    assert _kernels._worker(*args, state, ticket, False) is True
    assert set(state[2:]) == {2}
    assert _kernels._worker(*args, state, ticket, True) is False and set(state[2:]) == {2}
    assert ticket[0] == 5  # the caller publishes its own job
    assert _kernels._worker(*args, state, ticket, False) is False  # no later job: polls, then gives up


@pytest.mark.parametrize("kind", ["softmax", "gaussian"])
def test_two_threads_computing_the_same_prompts_store_the_same_bits(kind):
    """Two callers scanning for unflagged prompts at once compute many prompts twice (nogil, in parallel): every
    slot element is stored once per computation, never read back, so a slot ends with the bits of one (with the
    Gaussian correction subtracted in place from the slot, 3 runs in 20 here ended wrong)."""
    problem = _small_problem()
    B = problem[0].shape[0]
    want = _kernels.loss_and_grads(_kernels.KIND_CODES[kind], *problem, np.arange(B))
    for _ in range(20):
        args, state, slots = _worker_args(kind, *problem)
        state[0] = B
        both = [threading.Thread(target=_kernels._worker, args=(*args, state, np.zeros(1, np.int64), True))
                for _ in range(2)]
        for t in both:
            t.start()
        for t in both:
            t.join(timeout=300)
        _assert_same((slots[0].sum() / (B * problem[0].shape[1]), slots[1].sum(axis=0), slots[2].sum(axis=0)), want)


def test_peer_children_import_this_icdmin_without_an_install(tmp_path):
    """``bench --peers`` children get this package's parent directory first on PYTHONPATH: a child run elsewhere
    without site-packages (``-S``: no install, editable or not, is visible) finds this very icdmin; without the
    entry it finds none (children failed with "No module named 'icdmin'")."""
    from icdmin import bench

    code = "import importlib.util as u; s = u.find_spec('icdmin'); print(s.origin if s else None)"
    env = {**bench._child_env(2), "PYTHONSAFEPATH": "1"}
    found = subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=60).stdout.strip()
    assert os.path.realpath(found) == os.path.realpath(os.path.join(os.path.dirname(_kernels.__file__), "__init__.py"))
    env["PYTHONPATH"] = str(tmp_path)
    none = subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60).stdout.strip()
    assert none == "None"
    assert bench._child_env(1)["XLA_FLAGS"].endswith("--xla_cpu_multi_thread_eigen=false")


@pytest.mark.parametrize("unrolled", [False, True])
def test_bench_floor_makes_the_passes_it_claims(unrolled):
    """The floor of ``bench --peers`` (peer/floor bounds icdmin/peer) makes every pass it names: U = X exp(Xᵀc −
    max) and V = X Xᵀw, per prompt; a floor that skipped work would overstate the bound. n = 5 exercises the
    remainder rows of both loop variants."""
    import importlib.util

    from icdmin.bench import PEER_SCRIPT

    spec = importlib.util.spec_from_file_location("bench_peers", PEER_SCRIPT)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    rng = np.random.default_rng(0)
    X, c, w = rng.standard_normal((3, 5, 37)), rng.standard_normal(5), rng.standard_normal(5)
    U, V = peers.floor_passes(5, unrolled)(X, c, w)
    s = np.einsum("bnl,n->bl", X, c)
    np.testing.assert_allclose(U, np.einsum("bnl,bl->bn", X, np.exp(s - s.max(axis=1, keepdims=True))), rtol=1e-12)
    np.testing.assert_allclose(V, np.einsum("bnl,bl->bn", X, np.einsum("bnl,n->bl", X, w)), rtol=1e-12)
