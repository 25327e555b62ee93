"""Tests of the command line and the runner's behaviour: usage errors, exit codes, safe outputs, Ctrl-C, provenance.

Exit codes and Ctrl-C are checked in subprocesses (``python -m icdmin``), the rest in-process on the cheapest
experiment (``prop32``, about a second in quick mode with one job).
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from icdmin import experiments, outputs, runner
from icdmin.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _icdmin(*args, timeout=120, **kwargs):
    return subprocess.run([sys.executable, "-m", "icdmin", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, **kwargs)


def _cheap(out, **kwargs):
    return runner.reproduce(str(out), quick=True, only=["prop32"], jobs=1, **kwargs)


def _load(path):
    with open(path) as fh:
        return json.load(fh)


# ------------------------------------------------------------------------------------------ usage errors, rc 2
@pytest.mark.parametrize("args, argument", [
    (["--out", ""], "--out"), (["--out", "README.md"], "--out"), (["--out", "README.md/sub"], "--out"),
    (["--seed", "-1"], "--seed"), (["--seed", "1.5"], "--seed"), (["--jobs", "0"], "--jobs"),
    (["--only", ""], "--only"), (["--only", "fig3,,fig5"], "--only"), (["--only", "fig99"], "--only"),
])
def test_bad_arguments_are_one_line_usage_errors_before_any_compute(args, argument):
    t0 = time.perf_counter()
    proc = _icdmin("reproduce", "--quick", *args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith("usage: icdmin reproduce")
    assert f"icdmin reproduce: error: argument {argument}" in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert time.perf_counter() - t0 < 30  # nothing was computed


def test_other_subcommands_validate_their_integers():
    for args in (["gradcheck", "--seed", "-3"], ["bench", "--json", ""]):
        proc = _icdmin(*args, timeout=60)
        assert proc.returncode == 2 and "error: argument" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_out_fails_up_front(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="out: cannot write"):
            _cheap(ro)
    finally:
        ro.chmod(0o755)


def test_unwritable_out_fails_up_front_even_as_root(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)  # what a read-only folder does to a non-root user
    monkeypatch.setattr(runner, "_Run", None)  # any compute would fail with a TypeError, not the expected error
    with pytest.raises(ValueError, match="out: cannot write to directory .*Permission denied"):
        _cheap(tmp_path / "ro")


def test_reproduce_function_rejects_bad_arguments_naming_them(tmp_path):
    out = tmp_path / "never"
    cases = [(dict(only=[]), ValueError, "only"), (dict(only="prop32"), TypeError, "only"),
             (dict(only=["fig99"]), ValueError, "only"), (dict(seed=1.5), TypeError, "seed"),
             (dict(seed=-1), ValueError, "seed"), (dict(jobs=True), TypeError, "jobs"),
             (dict(jobs=0), ValueError, "jobs"), (dict(quick="yes"), TypeError, "quick"),
             (dict(strict=None), TypeError, "strict")]
    for kwargs, error, name in cases:
        with pytest.raises(error, match=f"^{name}:"):
            runner.reproduce(str(out), **{"quick": True, **kwargs})
    assert not out.exists()  # --out is created only once every other argument is valid
    for bad, error in (("", ValueError), (None, TypeError), (str(tmp_path / "f.txt"), ValueError)):
        (tmp_path / "f.txt").write_text("a file")
        with pytest.raises(error, match="^out:"):
            runner.reproduce(bad, quick=True, only=["prop32"])


# ------------------------------------------------------------------------------------------------- exit codes
_FAIL_ALL = ("import sys, icdmin.experiments as v; f = v.verdicts; "
             "v.verdicts = lambda r, quick=False: [dict(row, holds=False) for row in f(r, quick=quick)]; "
             "from icdmin.cli import main; sys.exit(main(sys.argv[1:]))")


def test_reproduce_exits_1_when_a_claim_fails_unless_no_strict(tmp_path):
    args = ["reproduce", "--quick", "--only", "prop32", "--jobs", "1"]
    failing = subprocess.run([sys.executable, "-c", _FAIL_ALL, *args, "--out", str(tmp_path / "a")],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert failing.returncode == 1, failing.stderr
    assert "claim(s) failed" in failing.stderr and "Traceback" not in failing.stderr
    relaxed = subprocess.run([sys.executable, "-c", _FAIL_ALL, *args, "--no-strict", "--out", str(tmp_path / "b")],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert relaxed.returncode == 0, relaxed.stderr
    assert not _load(tmp_path / "b" / "results.json")["verdicts"][0]["holds"]


def test_bench_passes_its_flags_by_keyword_and_returns_bench_main_exit_code(monkeypatch, tmp_path):
    from icdmin import bench

    calls = []
    monkeypatch.setattr(bench, "main", lambda **kw: calls.append(kw) or (3 if kw["strict"] else 0), raising=False)
    assert main(["bench", "--quick"]) == 0
    assert main(["bench", "--peers", "--strict", "--json", str(tmp_path / "b.json")]) == 3
    assert calls == [dict(quick=True, json_path=None, peers=False, strict=False),
                     dict(quick=False, json_path=str(tmp_path / "b.json"), peers=True, strict=True)]


# ----------------------------------------------------------------------------------------------- safe outputs
def test_manifest_lists_the_files_and_stale_outputs_go_but_foreign_files_stay(tmp_path):
    out = tmp_path / "o"
    assert _cheap(out) == 0
    manifest = _load(out / outputs.MANIFEST)["files"]
    assert {"results.json", "prop32.csv"} <= set(manifest)
    assert set(manifest) == {f for f in os.listdir(out) if f != outputs.MANIFEST}  # no temporary file left behind
    assert manifest["prop32.csv"]["bytes"] == os.path.getsize(out / "prop32.csv")
    (out / "notes.txt").write_text("mine")  # not icdmin's
    (out / "fig9.csv").write_text("x")  # not icdmin's either
    manifest_doc = _load(out / outputs.MANIFEST)
    manifest_doc["files"]["fig9.csv"] = {"bytes": 1, "sha256": "0" * 64}  # listed, but not with this content
    manifest_doc["files"]["../escape.txt"] = manifest_doc["files"]["prop32.csv"]
    (out / outputs.MANIFEST).write_text(json.dumps(manifest_doc))
    assert runner.reproduce(str(out), quick=True, only=["thm31"], jobs=1) == 0
    left = set(os.listdir(out))
    assert "prop32.csv" not in left and "thm31.csv" in left  # the earlier run's output went
    assert {"notes.txt", "fig9.csv"} <= left
    assert not [f for f in left if f.startswith(".")]


def test_outputs_replace_symlinks_instead_of_writing_through_them(tmp_path):
    out, outside = tmp_path / "o", tmp_path / "precious.txt"
    out.mkdir()
    outside.write_text("do not overwrite")
    for name in ("results.json", "prop32.csv", "prop32.png", outputs.MANIFEST):
        os.symlink(outside, out / name)
    assert _cheap(out) == 0
    assert outside.read_text() == "do not overwrite"
    for name in ("results.json", "prop32.csv", outputs.MANIFEST):
        assert not os.path.islink(out / name) and os.path.isfile(out / name)
    assert _load(out / "results.json")["meta"]["experiments"] == ["prop32"]


def test_write_atomic_rejects_names_with_a_folder(tmp_path):
    for name in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="name"):
            outputs.write_atomic(str(tmp_path), name, "x")


# ------------------------------------------------------------------------------------------------- provenance
def test_provenance_is_recorded_outside_the_compared_keys(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _cheap(a, seed=5) == 0 and _cheap(b, seed=5) == 0
    doc_a, doc_b = _load(a / "results.json"), _load(b / "results.json")
    prov = doc_a["provenance"]
    assert set(prov) >= {"icdmin", "git_commit", "numpy", "scipy", "numba", "cpu_count", "argv", "python"}
    assert prov["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
    assert prov["cpu_count"] == os.cpu_count() and prov["argv"] == sys.argv
    assert doc_a["meta"]["complete"] is True and doc_a["meta"]["missing"] == []
    for doc in (doc_a, doc_b):
        doc.pop("timings"), doc.pop("provenance")
    assert doc_a == doc_b


# ----------------------------------------------------------------------------------------------------- Ctrl-C
def unit_interrupt(**kwargs):
    """A unit that behaves like Ctrl-C arriving while it runs."""
    raise KeyboardInterrupt


def test_interrupt_keeps_the_finished_experiments_marked_incomplete(tmp_path, monkeypatch, capsys):
    stop = experiments.Experiment("stops", lambda quick: {}, lambda cfg, seed: {"u": (unit_interrupt, {}, 0.0)},
                                  lambda cfg, values: {})
    monkeypatch.setitem(experiments.EXPERIMENTS, "zstop", stop)  # runs after prop32 (cost 0, planned last)
    out = tmp_path / "o"
    assert runner.reproduce(str(out), quick=True, only=["prop32", "zstop"], jobs=1) == runner.INTERRUPTED
    doc = _load(out / "results.json")
    assert list(doc["results"]) == ["prop32"] and doc["meta"]["complete"] is False
    assert doc["meta"]["missing"] == ["zstop"] and doc["verdicts"] == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("interrupted: kept 1 of 2 experiment(s) (prop32)")
    assert set(_load(out / outputs.MANIFEST)["files"]) == {"results.json", "prop32.csv"}


def test_ctrl_c_is_recognised_through_numba_system_errors():
    from icdmin.workers import is_ctrl_c

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as err:
            raise SystemError("returned a result with an exception set") from err
    except SystemError as err:
        assert is_ctrl_c(err)
    assert not is_ctrl_c(SystemError("another bug")) and not is_ctrl_c(ValueError())


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("jobs", ["2", "1"])  # 2: the default, workers killed; 1: Ctrl-C inside a Numba kernel
def test_sigint_stops_reproduce_promptly(tmp_path, jobs):
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "icdmin", "reproduce", "--quick", "--jobs", jobs, "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], 60)  # its first line: the arguments are checked, it runs
    assert ready and proc.stdout.readline().startswith("icdmin reproduce:")
    time.sleep(4)  # then mid-run: planning done, workers started, units computing
    t0 = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group, workers included
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # a second Ctrl-C must not hang it
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert time.perf_counter() - t0 < 5
    assert proc.returncode == runner.INTERRUPTED, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted:"), err
    doc = _load(out / "results.json")
    assert doc["meta"]["complete"] is False and f"kept {len(doc['results'])} of " in line
    assert all(name in line for name in doc["results"])


def test_workers_get_their_thread_count_without_touching_the_environment():
    numba = pytest.importorskip("numba")
    if numba.config.DISABLE_JIT:
        pytest.skip("no Numba threads without the JIT")
    from icdmin import workers

    environ = dict(os.environ)
    pool = workers.start_pool(2)
    try:
        futures = workers.submit_all(pool, [(numba.get_num_threads,), (os.getpid,)], ["threads", "pid"])
        got = {key: fut.result(timeout=60) for fut, key in futures.items()}
    finally:
        pool.shutdown()
    assert got["threads"] == max(1, min((os.cpu_count() or 1) // 2, numba.config.NUMBA_NUM_THREADS))
    assert got["pid"] != os.getpid() and dict(os.environ) == environ


def test_compile_notice_only_while_numba_cache_is_cold(tmp_path, monkeypatch, capsys):
    numba = pytest.importorskip("numba")
    if numba.config.DISABLE_JIT:
        pytest.skip("nothing is compiled without the JIT")
    import importlib.util

    from icdmin import workers

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))  # read when the dispatcher is made
    source = tmp_path / "fake_kernels.py"
    source.write_text("import numba\n\n@numba.njit(cache=True)\ndef twice(x):\n    return 2 * x\n")
    spec = importlib.util.spec_from_file_location("fake_kernels", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "icdmin._kernels", module)
    workers.announce_compile()
    assert "compiling Numba kernels" in capsys.readouterr().out
    assert module.twice(2) == 4  # compiles and writes the on-disk cache
    workers.announce_compile()
    assert capsys.readouterr().out == ""
