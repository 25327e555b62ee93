"""The tutorial (scripts/tutorial.py) runs in under 60 s, draws its figures, holds its claims, and
docs/tutorial.md shows exactly its code.

The script asserts every claim itself (``check``); these tests run it in a subprocess, so they fail if the library
were wrong, if a claim were dropped from the script, or if the Markdown drifted from the script.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "tutorial.py"
DOC = ROOT / "docs" / "tutorial.md"
TIME_LIMIT = 60  # seconds, the acceptance criterion
CELL = re.compile(r"^# %%( \[markdown\])?.*$", re.M)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)\n```$", re.M | re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\(tutorial/([^)]+\.png)\)")


def _run(args, cwd, prelude="pass"):
    """Run the tutorial as a script (after ``prelude``, a Python statement) and return the completed process."""
    code = f"import runpy, sys\n{prelude}\nsys.argv = {[str(SCRIPT)] + args!r}\n" \
           f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIME_LIMIT,
                          cwd=cwd, env=dict(os.environ))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tutorial")
    proc = _run(["--out", str(out / "figures"), "--markdown", str(out / "tutorial.md")], cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, out


def _cells(kind):
    """The script's cells of one kind, as the Markdown shows them."""
    source = SCRIPT.read_text(encoding="utf-8")
    marks = list(CELL.finditer(source))
    bodies = []
    for mark, nxt in zip(marks, marks[1:] + [None]):
        if bool(mark.group(1)) != (kind == "markdown"):
            continue
        body = source[mark.end() + 1: nxt.start() if nxt else len(source)]
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
        bodies.append(body.strip("\n"))
    return bodies


def test_runs_in_time_and_writes_its_figures(run):
    stdout, out = run
    linked = IMAGE.findall(DOC.read_text(encoding="utf-8"))
    assert len(linked) >= 3
    for name in linked:
        png = out / "figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (ROOT / "docs" / "tutorial" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == sorted(linked)
    assert "tutorial done in" in stdout


def test_claims_hold(run):
    stdout, _ = run
    claims = re.findall(r"^ok: (.*)$", stdout, re.M)
    assert len(claims) >= 15, claims
    gap = float(re.search(r"descent_step equals softmax attention on \d+ prompts \(max difference (\S+)\)",
                          stdout).group(1))
    assert gap < 1e-12
    beta, alpha = map(float, re.search(r"trained \(beta, alpha\) = \((\S+), (\S+)\)", stdout).groups())
    assert abs(beta / 5.127 - 1) < 0.1 and abs(alpha / 0.998 - 1) < 0.1  # paper Fig. 3, mixture case
    for name in ("linear", "sphere", "mixture"):
        assert f"{name}: the Bayes denoiser beats every baseline" in claims
    assert "one step denoises better than the query itself and than 50 steps" in claims


def test_markdown_shows_the_script(run):
    doc = DOC.read_text(encoding="utf-8")
    code = _cells("code")
    assert PYTHON_BLOCK.findall(doc) == code  # the same code cells, in the same order, verbatim
    for prose in _cells("markdown"):
        assert prose in doc
    fresh = (run[1] / "tutorial.md").read_text(encoding="utf-8")
    assert PYTHON_BLOCK.findall(fresh) == code


def test_runs_without_matplotlib(tmp_path):
    proc = _run(["--out", str(tmp_path)], cwd=tmp_path, prelude="sys.modules['matplotlib'] = None")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "figures skipped (matplotlib is not installed): prompts.png" in proc.stdout
    assert not list(tmp_path.glob("*.png"))
