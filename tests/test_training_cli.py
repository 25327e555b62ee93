"""Tests of the train command line (icdmin.train_cli): one line per evaluation beside the oracle, usage errors
before any compute, Ctrl-C exits 130 without a traceback.
"""

import pytest


def test_cli_prints_one_line_per_evaluation_with_the_oracle():
    import io

    from icdmin.train_cli import main as train_main

    buf = io.StringIO()
    assert train_main("subspace", seed=1, epochs=3, L=20, n_fresh=10, file=buf) == 0
    text = buf.getvalue().splitlines()
    rows = [line.split() for line in text if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3]
    oracle = {r[3] for r in rows}
    assert len(oracle) == 1 and 0.05 < float(oracle.pop()) < 1.0  # the same oracle MSE on every line
    assert any("finite-L optimum" in line for line in text) and any("fresh prompts" in line for line in text)
    assert ".md §" not in buf.getvalue().replace("docs/maths.md §", "")  # cites the paper or docs/maths.md only
    with pytest.raises(ValueError, match="task"):
        train_main("torus")


@pytest.mark.parametrize("argv, name", [
    (["--task", "torus"], "--task"), (["--L", "0"], "--L"), (["--epochs", "0"], "--epochs"),
    (["--n-fresh", "-1"], "--n-fresh"), (["--eval-every", "0"], "--eval-every"), (["--seed", "-1"], "--seed"),
    (["--data-seed", "x"], "--data-seed"), (["--save", "FILE"], "--save"), (["--load", "EMPTY"], "--load"),
    (["--save", "EMPTY", "--load", "EMPTY"], "--load"), (["--load", "RUN", "--epochs", "3"], "--load"),
])
def test_cli_usage_errors_before_any_compute(argv, name, tmp_path, capsys):
    """One argparse line naming the option, exit code 2, nothing printed on stdout (no training started)."""
    from icdmin.cli import main as cli_main

    (tmp_path / "FILE").write_text("not a folder")
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "RUN").mkdir()
    for file in ("weights.npz", "history.json"):
        (tmp_path / "RUN" / file).write_text("")  # present: the option check must come first
    argv = [str(tmp_path / a) if a in ("FILE", "EMPTY", "RUN") else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", *argv])
    err = capsys.readouterr()
    assert exit_info.value.code == 2 and err.out == ""
    assert f"error: argument {name}" in err.err.splitlines()[-1]


def test_cli_ctrl_c_exits_130_without_traceback():
    """SIGINT while the kernels train: one line on stderr, exit code 130 (no SystemError, no traceback)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "icdmin", "train", "--task", "gmm", "--L", "60", "--epochs", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().startswith("icdmin train:")  # the header comes before the training
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "icdmin train: interrupted"
