"""Adding an experiment = one new file + one line in the runner's list (issue 8).

A throwaway experiment module is written to a temporary folder and registered by one entry in
``icdmin.experiments.EXPERIMENTS``, nothing else; the runner must then plan it, run its unit, combine, write its CSV,
add its verdict row and draw its figure. A dispatch that needed a second registry (a table of verdict checks or of
figures keyed by name, an order tuple) would miss the row or the figure and fail here. And every ``exp_*`` module
of the package is in the list, so none can be silently dropped.
"""

import importlib
import importlib.util
import json
import textwrap
from pathlib import Path

from icdmin import experiments, runner

PACKAGE = Path(experiments.__file__).parent

TOY = textwrap.dedent('''
    """A toy experiment: one unit draws a number in [0, 1)."""
    import numpy as np

    from icdmin.exp_common import claim, derive_seed, fmt

    TITLE = "Toy: a uniform draw"


    def unit_draw(seed):
        return {"value": float(np.random.default_rng(seed).random())}


    def config(quick):
        return {"quick": quick}


    def plan(cfg, seed):
        return {"draw": (unit_draw, {"seed": derive_seed(seed, "toy")}, 1.0)}


    def combine(cfg, units):
        v = units["draw"]["value"]
        return {"value": v, "table": {"columns": ["value"], "rows": [[v]]}}


    def verdicts(r, rows, quick=False):
        claim(rows, "Toy draw in [0, 1)", "-", fmt(r["value"]), "", "0 <= value < 1", 0 <= r["value"] < 1,
              "nothing: a test of the registry")


    def plot(plt, r, cfg):
        fig, ax = plt.subplots()
        ax.bar([0], [r["value"]])
        return fig


    FIGURES = {"toy_draw": plot}
''')


def test_every_experiment_module_is_in_the_list():
    modules = {p.stem for p in PACKAGE.glob("exp_*.py")} - {"exp_common"}
    assert {f"exp_{name}" for name in experiments.EXPERIMENTS} == modules
    for name, exp in experiments.EXPERIMENTS.items():
        module = importlib.import_module(f"icdmin.exp_{name}")
        assert exp == experiments.Experiment.of(module), name


def test_a_new_experiment_is_one_file_and_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "exp_toy.py").write_text(TOY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = importlib.import_module("exp_toy")
    monkeypatch.setitem(experiments.EXPERIMENTS, "toy", experiments.Experiment.of(toy))  # the one line

    out = tmp_path / "out"
    assert runner.reproduce(str(out), quick=True, only=["toy", "prop32"], jobs=1) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["experiments"] == ["prop32", "toy"]  # the list's order, not --only's
    value = doc["results"]["toy"]["value"]
    assert 0 <= value < 1 and doc["meta"]["configs"]["toy"] == {"quick": True}
    assert [row["claim"] for row in doc["verdicts"]][-1] == "Toy draw in [0, 1)" and doc["verdicts"][-1]["holds"]
    assert (out / "toy.csv").read_text().splitlines() == ["value", f"{value}"]
    assert "Toy: a uniform draw" in capsys.readouterr().out
    if importlib.util.find_spec("matplotlib") is not None:
        assert {"toy_draw.png", "prop32.png"} <= set(json.loads((out / "manifest.json").read_text())["files"])
