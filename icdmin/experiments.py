"""The paper's experiments, one planner + combiner per figure or claim, returning plain data.

An experiment is an :class:`Experiment`: ``config(quick) -> dict`` (its sizes), ``plan(config, seed) -> {label:
(unit function, kwargs, cost)}`` and ``combine(config, {label: unit result}) -> dict``. Units are the top-level
``unit_*`` functions of :mod:`icdmin.experiments_train`, :mod:`icdmin.experiments_weights` and
:mod:`icdmin.experiments_energy`: plain keyword arguments in, plain data out
(dicts of floats, lists and strings; never arrays), so that :mod:`icdmin.runner` can run them in any order in a
process pool and write everything to JSON. Every random draw inside a unit comes from a seed in its arguments.

| name   | paper          | what                                                                          |
| ------ | -------------- | ----------------------------------------------------------------------------- |
| fig3   | Fig. 3, Fig. 7 | three tasks x {softmax, linear} x seeds, paper protocol; online; scaled identity |
| fig4a  | Fig. 4a        | linear attention, Case 1, over the authors' context lengths                     |
| fig4b  | Fig. 4b        | a d = 8 model evaluated at d = 1..15                                           |
| fig5   | Fig. 5, §4     | energy landscape, trajectories, one step vs retrieval (experiments_energy)     |
| fig6   | Fig. 6, App. G | (alpha, beta) loss landscape over scaled identities, Cases 2 and 3             |
| fig8   | Fig. 8, App. H | a global transform A: learned W_PV ~ A^-1, W_KQ ~ (A A^T)^-1                    |
| thm31  | Thm. 3.1       | softmax attention (1, 1/sigma2_z) -> oracle as L grows (experiments_energy)   |
| prop32 | Prop. 3.2      | small-epsilon expansion error O(eps) (experiments_energy)                     |
| oracle | Eqs. 3, 6, 7   | the oracles vs an independent Monte-Carlo posterior mean (experiments_energy) |

Case names: "linear" (Case 1), "sphere" (Case 2), "gmm" (Case 3), at the paper's settings (:mod:`icdmin.paper`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .experiments_energy import (  # noqa: F401  (units re-exported: older plans named them by string)
    ENERGY_EXPERIMENTS,
    unit_circle_landscape,
    unit_low_noise,
    unit_oracle_check,
    unit_prop32,
    unit_retrieval,
    unit_thm31,
)
from .experiments_train import TRAIN_EXPERIMENTS, unit_baselines, unit_d_shift, unit_train  # noqa: F401
from .experiments_weights import WEIGHT_EXPERIMENTS, unit_landscape  # noqa: F401

__all__ = ["ALIASES", "EXPERIMENTS", "Experiment", "reproduce"]


class Experiment(NamedTuple):
    """One figure or claim: its title, sizes, units and how their results combine."""

    title: str
    config: Callable[[bool], dict]
    plan: Callable[[dict, int], dict]
    combine: Callable[[dict, dict], dict]


EXPERIMENTS: dict[str, Experiment] = {}
for _name, _spec in (*TRAIN_EXPERIMENTS.items(), *WEIGHT_EXPERIMENTS.items(), *ENERGY_EXPERIMENTS.items()):
    EXPERIMENTS[_name] = Experiment(*_spec)
ORDER = ("fig3", "fig4a", "fig4b", "fig5", "fig6", "fig8", "thm31", "prop32", "oracle")  # results.json order
EXPERIMENTS = dict(sorted(EXPERIMENTS.items(), key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else len(ORDER)))
ALIASES = {"fig4": ("fig4a", "fig4b"), "fig7": ("fig3",)}  # Fig. 7 is the linear-attention half of fig3


def reproduce(out: str = "icdmin-results", *, quick: bool = False, only=None, jobs: int = 2, seed: int = 0,
              strict: bool = True) -> int:
    """Run the paper's experiments; write ``out/results.json``, CSVs, figures, ``manifest.json``; print the verdicts.

    Parameters
    ----------
    out : str
        Output directory (created if missing; must be writable).
    quick : bool
        Fewer seeds and shorter runs (about 30 s on 2 cores) instead of the default (about 3 minutes).
    only : list of str, optional
        A non-empty list of experiment names (see :data:`EXPERIMENTS`; aliases "fig4", "fig7"); default all.
    jobs : int
        Worker processes, >= 1 (results do not depend on it).
    seed : int
        Master seed in [0, 2**32); every unit's seeds derive from it and the unit's name.
    strict : bool
        When True, a claim that does not hold makes the return code 1.

    Returns
    -------
    int
        0 when every claim holds (or ``strict`` is False), 1 when a claim fails, 130 after Ctrl-C (the experiments
        that finished are kept in results.json, marked incomplete).

    Raises
    ------
    TypeError, ValueError
        On a bad argument, before any compute; the message names the argument.
    """
    from .runner import run

    return run(out, quick=quick, only=only, jobs=jobs, seed=seed, strict=strict)
