"""What the experiment modules (``icdmin.exp_*``, one per figure or claim) share: seeds, statistics, verdict rows,
the training unit, plot helpers. Plain data in and out; matplotlib is only passed in (``plt``), never imported.

A verdict row (:func:`claim`) reads: ``claim``; ``paper`` (what the paper says); ``measured`` (icdmin);
``authors`` (the authors' PyTorch code on the same protocol, :data:`icdmin.paper.AUTHORS`; empty where unknown);
``tolerance`` (the stated criterion and where it comes from); ``holds`` (bool); ``guards`` (the kind of bug the row
would catch). Tolerances: a Monte-Carlo or seed spread enters through its standard error with z = :data:`Z` (valid at
--quick sizes too); a ratio to a Bayes oracle is two-sided (beating the Bayes risk beyond noise is a bug too); the
rest are the paper's precision (figure numbers) or a stated modelling allowance. MSEs are per coordinate ("MSE/n").

Legend: ``B`` prompts, ``n`` = 16 ambient dimension, ``d`` subspace / sphere dimension, ``L`` context tokens.
"""

from __future__ import annotations

import zlib

import numpy as np

from .paper import CASE_TITLES, EPOCHS, L_PAPER, TASK_PARAMS, make_task
from .training import mean_abs_offdiagonal, train

__all__ = ["LABEL", "Z", "case_title", "claim", "derive_seed", "fig3_config", "fig3_data_seed", "fig3_run",
           "fit_slope", "fmt", "loglog", "mean_se", "per_prompt_sq", "unit_train"]

Z = 4.0  # z-score for Monte-Carlo comparisons (two-sided p ~ 6e-5 per comparison)
LABEL = {"linear": "C1", "sphere": "C2", "gmm": "C3"}  # the paper's Cases 1, 2, 3
_SYMBOL = {"d": "d", "K": "K", "R": "R", "sigma2_0": "σ₀²", "sigma2_z": "σ_Z²"}


def derive_seed(master: int, *labels) -> int:
    """A 32-bit seed for the unit named by ``labels``, independent of scheduling (SeedSequence of CRC-32s)."""
    words = [int(master)] + [zlib.crc32(str(label).encode()) for label in labels]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def per_prompt_sq(est, x) -> np.ndarray:
    """Squared error per coordinate of each prompt: (B, n), (B, n) -> (B,)."""
    return np.mean((est - x) ** 2, axis=1)


def mean_se(v) -> dict:
    """``{"mse": mean, "se": standard error}`` of per-prompt errors ``v`` (B,)."""
    return {"mse": float(np.mean(v)), "se": float(np.std(v, ddof=1) / np.sqrt(len(v)))}


def fit_slope(x, y) -> dict:
    """Least-squares slope of log y against log x, with its standard error."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    A = np.stack([lx, np.ones_like(lx)], axis=1)
    coef, res, *_ = np.linalg.lstsq(A, ly, rcond=None)
    dof = max(len(lx) - 2, 1)
    resid = ly - A @ coef
    cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / dof
    return {"slope": float(coef[0]), "slope_se": float(np.sqrt(cov[0, 0])), "intercept": float(coef[1])}


def unit_train(case, kind, seed, data_seed, epochs, L=L_PAPER, model="full", online=False, n_fresh=0,
               eval_every=1, weights=False, transform_seed=None, target="clean", d=None, eval_train=True,
               lr=1e-2) -> dict:
    """One training run (:func:`icdmin.training.train`), summarised as plain data (curves, scales, fresh MSE).

    The unit of Figs. 3, 4a, 6 and 8, by default under the paper's protocol (arXiv 2502.05164, Fig. 3 set-up: 1000
    prompts split 800/200, batch 80, Adam 1e-2, x0.1 at 80 % and 90 %, L = 499 clean tokens). With
    ``eval_train=False`` the train-MSE curve holds NaN (None in JSON) between its two ends.
    """
    task = make_task(case, d=d, transform_seed=transform_seed, target=target)
    res = train(task, kind=kind, L=L, seed=seed, epochs=epochs, model=model, online=online, n_fresh=n_fresh,
                eval_every=eval_every, data_seed=data_seed, eval_train=eval_train, lr=lr)
    h = res.history
    out = {
        "epoch": h["epoch"], "train_mse": h["train_mse"], "test_mse": h["test_mse"],
        "alpha": res.alpha, "beta": res.beta, "gamma": res.alpha * res.beta,
        "offdiag_KQ": mean_abs_offdiagonal(res.W_KQ), "offdiag_PV": mean_abs_offdiagonal(res.W_PV),
        "bayes_test_mse": res.bayes_mse, "bayes_train_mse": res.bayes_train_mse,
        "fresh_mse": res.fresh_mse, "fresh_bayes_mse": res.fresh_bayes_mse,
        "min_train_mse": float(np.nanmin(h["train_mse"])), "min_test_mse": float(np.min(h["test_mse"])),
    }
    if weights:
        out["W_KQ"], out["W_PV"] = res.W_KQ.tolist(), res.W_PV.tolist()
    return out


# ------------------------------------------------------------------------ Fig. 3's runs (Fig. 6 reuses them)
def fig3_config(quick: bool) -> dict:
    """Sizes of Fig. 3 (also used by Fig. 6, which reuses its seed-0 runs and data).

    Quick mode: 20-epoch online / identity runs at 10x the rate (full-length online sampling: ~35 s of CPU)."""
    short = {"linear": 20, "sphere": 20, "gmm": 20} if quick else dict(EPOCHS)
    return {"seeds": 1 if quick else 6, "epochs": dict(EPOCHS), "online_epochs": short,
            "identity_epochs": dict(short), "short_lr": 1e-1 if quick else 1e-2, "eval_every": 4 if quick else 2,
            "n_fresh": 1000 if quick else 2000, "L": L_PAPER}


def fig3_data_seed(seed: int, case: str) -> int:
    """The data seed of a case's Fig. 3 runs (fixed across the six seeds, as in the authors' code)."""
    return derive_seed(seed, "fig3", case, "data")


def fig3_run(cfg, seed, case, kind, s, **extra):
    """The planned unit (unit_train, kwargs, cost) of Fig. 3's run ``s`` of ``kind`` on ``case``."""
    kwargs = dict(case=case, kind=kind, seed=derive_seed(seed, "fig3", case, kind, s),
                  data_seed=fig3_data_seed(seed, case), epochs=cfg["epochs"][case], L=cfg["L"],
                  n_fresh=cfg["n_fresh"], eval_every=cfg["eval_every"], weights=(s == 0))
    kwargs.update(extra)
    cost = kwargs["epochs"] * (3.0 if kind == "softmax" else 1.0) * (3.0 if kwargs.get("online") else 1.0)
    return (unit_train, kwargs, cost)


# ------------------------------------------------------------------------------------------------- verdict rows
def fmt(x, digits=4) -> str:
    """``x`` with ``digits`` significant digits, as the verdict table prints it."""
    return f"{x:.{digits}g}"


def claim(rows, text, paper, measured, authors, tolerance, holds, guards) -> None:
    """Append the verdict row of the claim ``text`` to ``rows`` (fields as in this module's docstring)."""
    rows.append({"claim": text, "paper": paper, "measured": measured, "authors": authors, "tolerance": tolerance,
                 "holds": bool(holds), "guards": guards})


# -------------------------------------------------------------------------------------------------------- plots
def case_title(case: str) -> str:
    """A figure title with the case's parameters, e.g. "Case 1: linear subspaces (d=8, σ₀²=2, σ_Z²=1)"."""
    params = ", ".join(f"{_SYMBOL[k]}={v:g}" for k, v in TASK_PARAMS[case].items() if k != "n")
    return f"{CASE_TITLES[case]} ({params})"


def loglog(plt, x, y, yerr, fit, xlabel, ylabel, title, ref_slope, label):
    """A log-log plot of ``y`` (± ``yerr``) against ``x`` with the fitted power law (:func:`fit_slope`, over x >=
    ``fit["L_min"]`` when given, else x <= 0.1) and a reference slope through its first point."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8), constrained_layout=True)
    ax.errorbar(x, y, yerr=yerr, fmt="o", color="C0", label=label)
    x = np.array(x, float)
    sel = x >= fit.get("L_min", 0) if "L_min" in fit else x <= 0.1
    xf = x[sel]
    ax.plot(xf, np.exp(fit["intercept"]) * xf ** fit["slope"], "-", color="C3",
            label=f"fit: slope {fit['slope']:.3f} ± {fit['slope_se']:.3f}")
    ax.plot(xf, np.exp(fit["intercept"]) * xf[0] ** (fit["slope"] - ref_slope) * xf ** ref_slope, ":", color="k",
            label=f"reference slope {ref_slope:g}")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig
