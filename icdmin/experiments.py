"""The paper's experiments: the runner's list, one module per figure or claim (``icdmin.exp_<name>``).

An experiment module holds all of one figure: ``TITLE``; ``config(quick) -> dict`` (its sizes); ``plan(config, seed)
-> {label: (unit function, kwargs, cost)}``; its units (top-level ``unit_*`` functions: plain keyword arguments in,
plain data out, never arrays, every random draw seeded from their arguments, so that :mod:`icdmin.runner` can run them
in any order in a process pool); ``combine(config, {label: unit result}) -> dict``; ``verdicts(result, rows,
quick)``, which appends its claims' rows (:func:`icdmin.exp_common.claim`); ``FIGURES = {png stem: draw(plt, result,
config)}``. Shared helpers: :mod:`icdmin.exp_common`. **Adding an experiment = its module + one line (its
name) in** :data:`EXPERIMENTS`; that order is results.json's, the verdict table's and the
figures'. Nothing else dispatches on experiment names.

| name   | paper          | what                                                                             |
| ------ | -------------- | -------------------------------------------------------------------------------- |
| fig3   | Fig. 3, Fig. 7 | three tasks x {softmax, linear} x seeds, paper protocol; online; scaled identity |
| fig4a  | Fig. 4a        | linear attention, Case 1, over the authors' context lengths                      |
| fig4b  | Fig. 4b        | a d = 8 model evaluated at d = 1..15                                             |
| fig5   | Fig. 5, §4     | energy landscape, trajectories, one step vs retrieval                            |
| fig6   | Fig. 6, App. G | (alpha, beta) loss landscape over scaled identities, Cases 2 and 3               |
| fig8   | Fig. 8, App. H | a global transform A: learned W_PV ~ A^-1, W_KQ ~ (A A^T)^-1                     |
| thm31  | Thm. 3.1       | softmax attention (1, 1/sigma2_z) -> oracle as L grows                           |
| prop32 | Prop. 3.2      | small-epsilon expansion error O(eps)                                             |
| oracle | Eqs. 3, 6, 7   | the oracles vs an independent Monte-Carlo posterior mean                         |

Case names: "linear" (Case 1), "sphere" (Case 2), "gmm" (Case 3), at the paper's settings (:mod:`icdmin.paper`).
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType
from typing import Callable, Mapping, NamedTuple

from .exp_common import claim

__all__ = ["ALIASES", "EXPERIMENTS", "Experiment", "render", "verdicts"]


class Experiment(NamedTuple):
    """One figure or claim: its title, sizes, units, how their results combine, its verdict rows, its figures."""

    title: str
    config: Callable[[bool], dict]
    plan: Callable[[dict, int], dict]
    combine: Callable[[dict, dict], dict]
    verdicts: Callable[[dict, list, bool], None] | None = None
    figures: Mapping[str, Callable] = {}

    @classmethod
    def of(cls, module: ModuleType) -> Experiment:
        """The experiment that ``module`` defines (``TITLE``, ``config``, ``plan``, ``combine``, ``verdicts``,
        ``FIGURES``)."""
        return cls(module.TITLE, module.config, module.plan, module.combine, module.verdicts, module.FIGURES)


EXPERIMENTS: dict[str, Experiment] = {name: Experiment.of(import_module(f".exp_{name}", __package__)) for name in (
    "fig3",  # the runner's list, one line per experiment (module icdmin.exp_<name>), in results.json order
    "fig4a",
    "fig4b",
    "fig5",
    "fig6",
    "fig8",
    "thm31",
    "prop32",
    "oracle",
)}
ALIASES = {"fig4": ("fig4a", "fig4b"), "fig7": ("fig3",)}  # Fig. 7 is the linear-attention half of fig3


def verdicts(results: dict, *, quick: bool = False) -> list[dict]:
    """Rows of the verdict table for the experiments present in ``results`` (name -> combined result), in
    :data:`EXPERIMENTS` order.

    Monte-Carlo tolerances scale with each run's own sizes; ``quick`` only widens the upper bound of the short
    online / identity runs of Fig. 3 (stated in their rows). A result that cannot be read (a NaN stored as None, a
    missing key) fails one row of its experiment instead of raising.
    """
    rows: list[dict] = []
    for name, exp in EXPERIMENTS.items():
        if name not in results or exp.verdicts is None:
            continue
        done = len(rows)
        try:
            exp.verdicts(results[name], rows, quick)
        except (TypeError, KeyError, ZeroDivisionError) as err:  # e.g. a NaN result, stored as None in JSON
            del rows[done:]
            claim(rows, f"{name}: results readable", "-", f"{type(err).__name__}: {err}", "", "every value present "
                  "and finite", False, "non-finite or missing results (NaN, overflow, a unit that returned None)")
    return rows


def render(doc: dict, out: str):
    """Draw every figure of the experiments whose results are in ``doc["results"]`` into ``out`` (PNG, matplotlib,
    the paper's symbols in titles, axes and legends); return the paths, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    paths = []
    for name, result in doc["results"].items():
        for stem, draw in (EXPERIMENTS[name].figures if name in EXPERIMENTS else {}).items():
            fig = draw(plt, result, doc["meta"]["configs"].get(name, {}))
            paths.append(os.path.join(out, f"{stem}.png"))
            fig.savefig(paths[-1], dpi=110)
            plt.close(fig)
    return paths
