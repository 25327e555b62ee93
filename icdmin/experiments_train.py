"""Training experiments of the paper: Fig. 3 / Fig. 7, Fig. 4a, Fig. 4b (Fig. 6, 8: experiments_weights). Plain data.

See :mod:`icdmin.experiments` for the experiment protocol (``config`` / ``plan`` / ``combine``). Units here train
with :func:`icdmin.training.train` under the paper's protocol (arXiv 2502.05164, Fig. 3 set-up: 1000 prompts split
800/200, batch 80, Adam 1e-2, x0.1 at 80 % and 90 %, L = 499 clean tokens, 100 / 200 / 200 epochs) and evaluate
on fresh prompts.
The six Fig. 3 seeds vary the initialisation and batch order with the dataset fixed, as in the authors' code
(mattsmart/in-context-denoising at commit c8aaeb3, src/nn_train_ensemble.py). Settings and reference
numbers come from :mod:`icdmin.paper`. MSEs are per coordinate (mean over prompts and coordinates).

Legend: ``B`` prompts, ``n`` = 16 ambient dimension, ``d`` subspace / sphere dimension, ``L`` context tokens.
"""

from __future__ import annotations

import numpy as np

from .layer import attention
from .baselines import (
    linear_attention_estimator,
    projection_estimator,
    query_estimator,
    softmax_attention_estimator,
    sphere_projection_estimator,
    zero_estimator,
)
from .bayes import bayes_risk_linear, linear_risk, optimal_linear_gamma, posterior_mean_gmm
from .paper import (A_SEED, CASE_TITLES, CASES, EPOCHS, FIG4A_L, FIG4B_D, FIG4B_L, L_PAPER,  # noqa: F401
                    PRIMARY_KIND, TASK_PARAMS, make_task, transform_matrix)  # A_SEED, transform_matrix: re-exported
from .runner import derive_seed
from .training import fresh_prompts, mean_abs_offdiagonal, train

__all__ = ["A_SEED", "TRAIN_EXPERIMENTS", "fig3_config", "fig3_data_seed", "fig3_run", "make_task", "transform_matrix",
           "unit_baselines", "unit_d_shift", "unit_train"]

def _per_prompt_sq(est, x) -> np.ndarray:
    return np.mean((est - x) ** 2, axis=1)  # (B,) squared error per coordinate


def _mean_se(values: np.ndarray) -> dict:
    return {"mse": float(values.mean()), "se": float(values.std(ddof=1) / np.sqrt(values.size))}


# ----------------------------------------------------------------------------------------------------------- units
def unit_train(case, kind, seed, data_seed, epochs, L=L_PAPER, model="full", online=False, n_fresh=0,
               eval_every=1, weights=False, transform_seed=None, target="clean", d=None, eval_train=True,
               lr=1e-2) -> dict:
    """One training run (:func:`icdmin.training.train`), summarised as plain data (curves, scales, fresh MSE).

    With ``eval_train=False`` the train-MSE curve holds NaN (None in JSON) between its two ends.
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


def unit_baselines(case, data_seed, n_fresh, L=L_PAPER) -> dict:
    """MSE (± s.e.) of the baselines of Fig. 3 on the same fresh prompts the trained models are evaluated on.

    zero, noisy query, context projection (paper §2.3, Fig. 2) unshrunk and shrunk, the paper's theory weights
    (Eq. 10 / Eq. 13), the oracle (Eqs. 3, 6, 7); for Case 2 also the authors' wrong Bessel order; for Case 3 also
    Eq. (8) with the oracle centres.
    """
    task = make_task(case)
    p = TASK_PARAMS[case]
    sz = p["sigma2_z"]
    errs: dict[str, list] = {}

    def add(name, est, x):
        errs.setdefault(name, []).append(_per_prompt_sq(est, x))

    for chunk in fresh_prompts(task, L=L, data_seed=data_seed, n_fresh=n_fresh):
        X, q, x = chunk.X, chunk.x_tilde, chunk.x
        add("zero", zero_estimator(X, q), x)
        add("query", query_estimator(X, q), x)
        add("oracle", task.posterior_mean(chunk), x)
        if case == "linear":
            s0 = p["sigma2_0"]
            add("projection", projection_estimator(X, q), x)
            add("projection_shrunk", projection_estimator(X, q, shrink=s0 / (s0 + sz)), x)
            add("theory_weights", linear_attention_estimator(X, q, s0, sz), x)  # Eq. (10), gamma = 1/3
            g = optimal_linear_gamma(p["d"], L, s0, sz)
            add("finite_L_optimum", attention(X, q, g * np.eye(p["n"]), np.eye(p["n"]), "linear"), x)
        elif case == "sphere":
            add("projection", sphere_projection_estimator(X, q, sz, bessel=None), x)
            add("projection_shrunk", sphere_projection_estimator(X, q, sz, bessel="paper"), x)
            add("authors_bayes_line", sphere_projection_estimator(X, q, sz, bessel="authors"), x)
            add("theory_weights", softmax_attention_estimator(X, q, sz), x)  # Eq. (13): alpha 1, beta 1/sigma2_z
        else:
            add("eq8_oracle_centres", posterior_mean_gmm(q, chunk.centers, 0.0, sz, chunk.weights), x)
            add("theory_weights", softmax_attention_estimator(X, q, sz), x)
    errs = {k: np.concatenate(v) for k, v in errs.items()}
    out = {name: _mean_se(v) for name, v in errs.items()}
    if case == "sphere":  # paired difference: the authors' line minus the true oracle, same prompts
        out["authors_minus_oracle"] = _mean_se(errs["authors_bayes_line"] - errs["oracle"])
    if case == "linear":
        out["bayes_theory"] = {"mse": bayes_risk_linear(p["n"], p["d"], p["sigma2_0"], sz), "se": 0.0}
    return out


def unit_d_shift(L, seed, data_seed, epochs, d_values, n_eval, eval_seed) -> dict:
    """Fig. 4b: train linear attention at d = 8 and context L, then evaluate d^{-1} MSE at other d (fresh prompts)."""
    task = make_task("linear")
    res = train(task, kind="linear", L=L, seed=seed, epochs=epochs, data_seed=data_seed)
    p = TASK_PARAMS["linear"]
    n, s0, sz = p["n"], p["sigma2_0"], p["sigma2_z"]
    gamma = res.alpha * res.beta
    measured, se, theory_learned = [], [], []
    for d in d_values:
        prompts = make_task("linear", d=d).sample(np.random.default_rng([eval_seed, d]), n_eval, L)
        err = _per_prompt_sq(attention(prompts.X, prompts.x_tilde, res.W_KQ, res.W_PV, "linear"), prompts.x)
        stats = _mean_se(err * (n / d))  # d^{-1} MSE: squared error summed over coordinates, divided by d
        measured.append(stats["mse"])
        se.append(stats["se"])
        theory_learned.append(linear_risk(n, d, L, s0, sz, gamma) * n / d)  # scaled identity with the learned gamma
    ideal = [2 / 3 + (4 / 3) * (d + 1) / L for d in d_values]  # Fig. 4b's ideal curve, gamma = 1/3
    return {"L": L, "d": list(d_values), "d_inv_mse": measured, "d_inv_mse_se": se,
            "theory_learned_gamma": theory_learned, "theory_ideal": ideal, "gamma": gamma, "alpha": res.alpha,
            "beta": res.beta, "offdiag_KQ": mean_abs_offdiagonal(res.W_KQ),
            "offdiag_PV": mean_abs_offdiagonal(res.W_PV)}


# ------------------------------------------------------------------------------------------- Fig. 3 and Fig. 7
def fig3_config(quick: bool) -> dict:
    """Sizes of Fig. 3 (also used by Fig. 6, which reuses its seed-0 runs and data)."""
    return {
        "seeds": 1 if quick else 6,
        "epochs": dict(EPOCHS),
        # quick mode: 20-epoch online / identity runs at 10x the rate (full-length online sampling: ~35 s of CPU)
        "online_epochs": {"linear": 20, "sphere": 20, "gmm": 20} if quick else dict(EPOCHS),
        "identity_epochs": {"linear": 20, "sphere": 20, "gmm": 20} if quick else dict(EPOCHS),
        "short_lr": 1e-1 if quick else 1e-2,
        "eval_every": 4 if quick else 2,
        "n_fresh": 1000 if quick else 2000,
        "L": L_PAPER,
    }


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


def _fig3_plan(cfg, seed):
    plan = {}
    for case in CASES:
        for kind in ("softmax", "linear"):
            for s in range(cfg["seeds"]):
                plan[f"{case}/{kind}/{s}"] = fig3_run(cfg, seed, case, kind, s)
        kind = PRIMARY_KIND[case]
        # only the end point of these runs is shown: no train-MSE curve, test MSE every 10 epochs
        short = {} if cfg["short_lr"] == 1e-2 else {"lr": cfg["short_lr"]}  # default runs: the same unit keys
        plan[f"{case}/{kind}/online"] = fig3_run(cfg, seed, case, kind, 0, online=True, eval_train=False,
                                                   epochs=cfg["online_epochs"][case], eval_every=10, **short)
        plan[f"{case}/{kind}/identity"] = fig3_run(cfg, seed, case, kind, 0, model="identity", eval_train=False,
                                                     epochs=cfg["identity_epochs"][case], eval_every=10, **short)
        plan[f"{case}/baselines"] = (unit_baselines, dict(case=case, data_seed=fig3_data_seed(seed, case),
                                                          n_fresh=cfg["n_fresh"], L=cfg["L"]), 20.0)
    return plan


def _curve_stats(runs, key):
    arr = np.array([r[key] for r in runs])  # (seeds, T)
    return {"mean": arr.mean(0).tolist(), "min": arr.min(0).tolist(), "max": arr.max(0).tolist()}


def _fig3_combine(cfg, units):
    cases, rows = {}, []
    cols = ["case", "kind", "protocol", "seed", "final_train_mse", "final_test_mse", "fresh_mse", "fresh_bayes_mse",
            "alpha_mean_diag_PV", "beta_mean_diag_KQ", "offdiag_KQ", "offdiag_PV"]

    def row(case, kind, protocol, s, r):
        rows.append([case, kind, protocol, s, r["train_mse"][-1], r["test_mse"][-1], r["fresh_mse"],
                     r["fresh_bayes_mse"], r["alpha"], r["beta"], r["offdiag_KQ"], r["offdiag_PV"]])

    for case in CASES:
        entry = {"title": CASE_TITLES[case], "params": TASK_PARAMS[case], "baselines": units[f"{case}/baselines"],
                 "runs": {}}
        for kind in ("softmax", "linear"):
            runs = [units[f"{case}/{kind}/{s}"] for s in range(cfg["seeds"])]
            for s, r in enumerate(runs):
                row(case, kind, "paper (800 prompts)", s, r)
            summary = {"epoch": runs[0]["epoch"], "train": _curve_stats(runs, "train_mse"),
                       "test": _curve_stats(runs, "test_mse"), "W_KQ": runs[0]["W_KQ"], "W_PV": runs[0]["W_PV"],
                       "bayes_test_mse": runs[0]["bayes_test_mse"], "bayes_train_mse": runs[0]["bayes_train_mse"],
                       "fresh_bayes_mse": runs[0]["fresh_bayes_mse"]}
            for key in ("alpha", "beta", "gamma", "offdiag_KQ", "offdiag_PV", "fresh_mse", "min_test_mse"):
                summary[key] = [r[key] for r in runs]
            summary["final_train_mse"] = [r["train_mse"][-1] for r in runs]
            summary["final_test_mse"] = [r["test_mse"][-1] for r in runs]
            entry["runs"][kind] = summary
        for protocol in ("online", "identity"):
            key = f"{case}/{PRIMARY_KIND[case]}/{protocol}"
            if key in units:
                r = dict(units[key])
                r.pop("W_KQ", None), r.pop("W_PV", None)
                r["kind"] = PRIMARY_KIND[case]
                entry[protocol] = r
                row(case, r["kind"], protocol, 0, r)
        cases[case] = entry
    for case in CASES:
        for name, v in units[f"{case}/baselines"].items():
            rows.append([case, "baseline", name, "", None, None, v["mse"], None, None, None, None, None])
    return {"cases": cases, "table": {"columns": cols, "rows": rows}}


# --------------------------------------------------------------------------------------------------- Fig. 4
def _fig4a_config(quick):
    return {"L": [19, 49, 99, 259, 499] if quick else FIG4A_L, "epochs": 100, "n_fresh": 1000 if quick else 2000,
            "eval_every": 5}


def _fig4a_plan(cfg, seed):
    plan = {}
    for i, L in enumerate(cfg["L"]):  # seed = run index, as the authors' multirun (src/nn_train_ensemble.py)
        plan[f"L{L}"] = (unit_train, dict(case="linear", kind="linear", seed=derive_seed(seed, "fig4a", i),
                                          data_seed=derive_seed(seed, "fig4a", "data", L), epochs=cfg["epochs"],
                                          L=L, n_fresh=cfg["n_fresh"], eval_every=cfg["eval_every"]), L / 100)
    return plan


def _fig4a_combine(cfg, units):
    p = TASK_PARAMS["linear"]
    args = (p["d"], p["sigma2_0"], p["sigma2_z"])
    out = {"L": cfg["L"], "n_fresh": cfg["n_fresh"], "bayes": bayes_risk_linear(p["n"], *args), "gamma": [],
           "gamma_star": [], "fresh_mse": [], "fresh_bayes_mse": [], "min_train_mse": [], "min_test_mse": [],
           "theory_mse_at_gamma_star": [], "theory_mse_at_one_third": [], "theory_mse_at_learned_gamma": []}
    for L in cfg["L"]:
        r = units[f"L{L}"]
        g_star = optimal_linear_gamma(p["d"], L, p["sigma2_0"], p["sigma2_z"])
        out["gamma"].append(r["gamma"])
        out["gamma_star"].append(g_star)
        for key in ("fresh_mse", "fresh_bayes_mse", "min_train_mse", "min_test_mse"):
            out[key].append(r[key])
        out["theory_mse_at_gamma_star"].append(linear_risk(p["n"], p["d"], L, p["sigma2_0"], p["sigma2_z"], g_star))
        out["theory_mse_at_one_third"].append(linear_risk(p["n"], p["d"], L, p["sigma2_0"], p["sigma2_z"], 1 / 3))
        out["theory_mse_at_learned_gamma"].append(linear_risk(p["n"], p["d"], L, p["sigma2_0"], p["sigma2_z"],
                                                              r["gamma"]))
    excess = np.array(out["fresh_mse"]) - np.array(out["fresh_bayes_mse"])
    good = excess > 0
    slope = np.polyfit(np.log(np.array(cfg["L"])[good]), np.log(excess[good]), 1)[0] if good.sum() > 2 else None
    out["loglog_slope_excess_fresh_mse"] = slope
    cols = ["L", "learned_gamma", "gamma_star_L", "fresh_mse", "fresh_bayes_mse", "min_train_mse", "min_test_mse",
            "theory_mse_at_gamma_star", "theory_mse_at_one_third"]
    rows = [[L, out["gamma"][i], out["gamma_star"][i], out["fresh_mse"][i], out["fresh_bayes_mse"][i],
             out["min_train_mse"][i], out["min_test_mse"][i], out["theory_mse_at_gamma_star"][i],
             out["theory_mse_at_one_third"][i]] for i, L in enumerate(cfg["L"])]
    out["table"] = {"columns": cols, "rows": rows}
    return out


def _fig4b_config(quick):
    return {"L": list(FIG4B_L), "d": list(FIG4B_D), "epochs": EPOCHS["linear"], "n_eval": 1000 if quick else 2000}


def _fig4b_plan(cfg, seed):
    return {f"L{L}": (unit_d_shift, dict(L=L, seed=derive_seed(seed, "fig4b", L),
                                         data_seed=derive_seed(seed, "fig4b", "data", L), epochs=cfg["epochs"],
                                         d_values=cfg["d"], n_eval=cfg["n_eval"],
                                         eval_seed=derive_seed(seed, "fig4b", "eval", L)), L / 50 + 5)
            for L in cfg["L"]}


def _fig4b_combine(cfg, units):
    out = {"curves": {str(L): units[f"L{L}"] for L in cfg["L"]}}
    cols = ["L", "d", "d_inv_mse", "d_inv_mse_se", "theory_learned_gamma", "theory_ideal_gamma_one_third"]
    rows = [[L, d, u["d_inv_mse"][i], u["d_inv_mse_se"][i], u["theory_learned_gamma"][i], u["theory_ideal"][i]]
            for L in cfg["L"] for u in [units[f"L{L}"]] for i, d in enumerate(u["d"])]
    out["table"] = {"columns": cols, "rows": rows}
    return out


TRAIN_EXPERIMENTS = {
    "fig3": ("Fig. 3 + Fig. 7: three tasks, softmax and linear attention, seeds; online; scaled identity",
             fig3_config, _fig3_plan, _fig3_combine),
    "fig4a": ("Fig. 4a: linear attention vs context length L", _fig4a_config, _fig4a_plan, _fig4a_combine),
    "fig4b": ("Fig. 4b: a d = 8 model evaluated at d = 1..15", _fig4b_config, _fig4b_plan, _fig4b_combine),
}
