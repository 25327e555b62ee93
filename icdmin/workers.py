"""The worker processes of ``python -m icdmin reproduce``: started so that Ctrl-C stays the parent's, killed on it.

Workers are spawned (a fresh interpreter: safe with Numba's thread pool and on every platform) while SIGINT is
blocked, so a Ctrl-C from the terminal, which reaches the whole process group, never interrupts a worker half-way
through its start-up; :func:`init_worker` then ignores SIGINT for good and gives the worker ``cpu_count // jobs``
Numba threads (``numba.set_num_threads``; nothing is written to ``os.environ``). On Ctrl-C the parent calls
:func:`kill_pool`: the workers are killed, not waited for.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys

__all__ = ["announce_compile", "init_worker", "is_ctrl_c", "kill_pool", "start_pool", "submit_all"]


def start_pool(jobs: int) -> cf.ProcessPoolExecutor:
    """A spawn pool of ``jobs`` workers set up by :func:`init_worker` (they start on the first submit)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                                  initargs=(threads,))


def submit_all(pool, calls, keys) -> dict:
    """Submit ``fn(*args)`` for each ``(fn, *args)`` of ``calls`` with SIGINT blocked; return {future: key}."""
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:  # the spawned workers inherit the mask: no KeyboardInterrupt traceback from their start-up
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return {pool.submit(*call): key for call, key in zip(calls, keys)}
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def init_worker(threads: int) -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; ``threads`` Numba threads (no oversubscription)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from . import experiments  # noqa: F401  (imports the library, and numba if present, once per worker)

    numba = sys.modules.get("numba")
    if numba is None or numba.config.DISABLE_JIT:
        return
    if "NUMBA_THREADING_LAYER" not in os.environ and str(numba.config.THREADING_LAYER) == "default":
        numba.config.THREADING_LAYER = "forksafe"  # the kernels' own choice (icdmin._kernels), made before the
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # threads start here


def kill_pool(pool) -> None:
    """Kill the pool's worker processes (not waiting for their units) and let the pool go."""
    kill = getattr(pool, "kill_workers", None)  # Python >= 3.14
    if kill is not None:
        kill()
    else:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.join(timeout=2)  # SIGKILL is immediate; this only reaps them (no zombies)
    pool.shutdown(wait=False, cancel_futures=True)


def announce_compile() -> None:
    """Say so when Numba's on-disk cache holds none of the kernels: the first run compiles them (tens of seconds)."""
    kernels, numba = sys.modules.get("icdmin._kernels"), sys.modules.get("numba")
    if kernels is None or numba is None or numba.config.DISABLE_JIT:
        return
    dispatchers = [v for v in vars(kernels).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
    try:
        cached = any(d._cache._cache_file._load_index() for d in dispatchers)  # the .nbi index files, no compile
    except (AttributeError, OSError):
        return  # another numba layout: stay silent rather than guess
    if dispatchers and not cached:
        print("compiling Numba kernels (first run only, up to a minute; cached for later runs)...", flush=True)


def is_ctrl_c(err: BaseException) -> bool:
    """True for a KeyboardInterrupt, or an error caused by one: Ctrl-C inside a Numba kernel surfaces as a chain of
    ``SystemError: ... returned a result with an exception set`` with the KeyboardInterrupt at its root."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False
