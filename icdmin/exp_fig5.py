"""Fig. 5 and §4 (arXiv 2502.05164): the energy landscape of a circle context; one step vs iterating vs retrieval.

The dense-associative-memory energy (Eq. 16) of a circle context with 1-step and 50-step descent (Eq. 17), and the
table of §4: one step (= softmax attention, α = 1, β = 1/σ_Z²) against k steps, convergence, exact retrieval and the
oracle, on the circle and on the Fig. 3 sphere and mixture tasks. "Total squared error" sums over coordinates.
"""

from __future__ import annotations

import numpy as np

from .exp_common import Z, claim, derive_seed, fmt
from .paper import CIRCLE, CIRCLE_TOTAL_SQ_ERROR, L_PAPER, TASK_PARAMS
from .retrieval import circle_trajectories, retrieval_comparison
from .tasks import GMMTask, SphereTask

__all__ = ["FIGURES", "RETRIEVAL_TASKS", "TITLE", "combine", "config", "plan", "unit_circle_landscape",
           "unit_retrieval", "verdicts"]

TITLE = "Fig. 5 / §4: energy landscape, one step vs retrieval vs iterating"
RETRIEVAL_TASKS = {  # Fig. 5's circle and the Fig. 3 tasks (icdmin.paper): (task class, parameters, L)
    "circle": (SphereTask, {k: CIRCLE[k] for k in ("n", "d", "R", "sigma2_z")}, CIRCLE["L"]),
    "sphere": (SphereTask, TASK_PARAMS["sphere"], L_PAPER),
    "gmm": (GMMTask, TASK_PARAMS["gmm"], L_PAPER),
}


def unit_circle_landscape(seed, L=20, grid=100, steps=(1, 50), n_traj=3) -> dict:
    """Fig. 5: energy (16) of a circle context on a grid over [−1.5, 1.5]², and 1-step / 50-step trajectories."""
    d = circle_trajectories(np.random.default_rng(seed), L=L, R=1.0, sigma2_z=0.1, alpha=1.0, beta=10.0,
                            n_traj=n_traj, steps=steps, grid=grid, lim=1.5)
    return {"X": d["X"].tolist(), "x": d["x"].tolist(), "x_tilde": d["x_tilde"].tolist(), "xs": d["xs"].tolist(),
            "ys": d["ys"].tolist(), "energy": d["energy"].tolist(), "one_step": d["one_step"].tolist(),
            "trajectories": {str(k): v.tolist() for k, v in d["trajectories"].items()},
            "alpha": 1.0, "beta": 10.0, "sigma2_z": 0.1, "L": L}


def unit_retrieval(case, seed, batch, converge_steps, steps=(1, 2, 5, 50)) -> dict:
    """One step vs k steps vs convergence vs retrieval vs oracle at α = 1, β = 1/σZ² (paper §4)."""
    cls, params, L = RETRIEVAL_TASKS[case]
    task = cls(**params)
    res = retrieval_comparison(task, L, 1.0, 1.0 / params["sigma2_z"], rng=np.random.default_rng(seed), batch=batch,
                               steps=steps, converge_steps=converge_steps)
    res["setting"]["task"] = f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in params.items())})"
    return res


def config(quick):
    return {"grid": 60 if quick else 100, "circle_batch": 4000 if quick else 20000,
            "batch_L499": 200 if quick else 600, "converge_steps": 200, "steps": [1, 2, 5, 50]}


def plan(cfg, seed):
    out = {"landscape": (unit_circle_landscape, dict(seed=derive_seed(seed, "fig5", "landscape"), grid=cfg["grid"]),
                         1.0)}
    for case in RETRIEVAL_TASKS:
        batch = cfg["circle_batch"] if case == "circle" else cfg["batch_L499"]
        out[case] = (unit_retrieval, dict(case=case, seed=derive_seed(seed, "fig5", case), batch=batch,
                                          converge_steps=cfg["converge_steps"], steps=cfg["steps"]),
                     2.0 if case == "circle" else batch * cfg["converge_steps"] / 2e4)
    return out


def combine(cfg, units):
    out = {"landscape": units["landscape"], "tables": {}, "circle_paper_total_sq_error": CIRCLE_TOTAL_SQ_ERROR}
    rows = []
    for case in RETRIEVAL_TASKS:
        r = units[case]
        out["tables"][case] = r
        for name, st in r["estimators"].items():
            rows.append([case, name, st["total_sq_error"], st["total_sq_error_se"], st["mse"], st["mse_se"]])
    out["table"] = {"columns": ["task", "estimator", "total_sq_error", "total_sq_error_se", "mse", "mse_se"],
                    "rows": rows}
    return out


def verdicts(r, rows, quick=False) -> None:
    """The Fig. 5 / §4 rows of the verdict table."""
    t = r["tables"]
    c = t["circle"]["estimators"]
    one, ret, fifty = c["1 step"], c["retrieval"], c["50 steps"]
    claim(rows, "Fig5 circle: 1 step < retrieval < 50 steps", "one step beats retrieval and iterating",
          f"{fmt(one['total_sq_error'], 3)} < {fmt(ret['total_sq_error'], 3)} < {fmt(fifty['total_sq_error'], 3)}",
          "", "strict order", one["total_sq_error"] < ret["total_sq_error"] < fifty["total_sq_error"],
          "a wrong energy gradient or step (Eq. 17)")
    scale = np.sqrt(1 + t["circle"]["setting"]["batch"] / 20000)  # the reference table's own 20000-prompt noise
    z = {k: (c[k]["total_sq_error"] - v) / (c[k]["total_sq_error_se"] * scale)
         for k, v in CIRCLE_TOTAL_SQ_ERROR.items()}
    zmax = max(abs(v) for v in z.values())
    ref = ", ".join(f"{k} {CIRCLE_TOTAL_SQ_ERROR[k]}" for k in ("1 step", "retrieval", "50 steps"))
    claim(rows, "Fig5 circle table (paper §4 setting) [derived]", ref,
          f"{fmt(one['total_sq_error'], 3)}, {fmt(ret['total_sq_error'], 3)}, {fmt(fifty['total_sq_error'], 3)}"
          f" (max |z| {fmt(zmax, 2)})", "", f"every entry within {Z:g} s.e. (both tables' Monte-Carlo noise)",
          zmax < Z, "a wrong energy step or Bessel order (the circle oracle is I_1/I_0)")
    for case in ("sphere", "gmm"):
        e = t[case]["estimators"]
        claim(rows, f"Fig5 {case} L=499: 1 step beats retrieval, converged", "one step is best of the DAM uses",
              f"1 step {fmt(e['1 step']['mse'], 3)}, retrieval {fmt(e['retrieval']['mse'], 3)}, converged "
              f"{fmt(e['converged']['mse'], 3)}, oracle {fmt(e['oracle']['mse'], 3)}", "", "1 step < both",
              e["1 step"]["mse"] < min(e["retrieval"]["mse"], e["converged"]["mse"]), "a wrong energy step or descent")
    conv = t["circle"]["converged"]
    claim(rows, "Fig5 iterating ends in spurious minima", "minima are not context tokens",
          f"{fmt(100 * conv['near_token_fraction'], 3)}% of endpoints within 1e-3 of a token; median distance "
          f"{fmt(conv['median_nearest_distance'], 3)}", "", "< 5% near a token", conv["near_token_fraction"] < 0.05,
          "descent that snaps to the nearest token (retrieval mistaken for convergence)")


def plot(plt, r, cfg):
    ls = r["landscape"]
    xs, ys, E = np.array(ls["xs"]), np.array(ls["ys"]), np.array(ls["energy"])
    X = np.array(ls["X"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), constrained_layout=True)
    for ax, k in zip(axes, sorted(ls["trajectories"], key=int)):
        cs = ax.contourf(xs, ys, E, levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="energy E(X, s), Eq. (16)")
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(t), np.sin(t), color="w", lw=0.6, alpha=0.6)
        ax.plot(X[0], X[1], "o", color="w", mec="k", ms=5, label="context tokens X_t (stored memories)")
        traj = np.array(ls["trajectories"][k])  # (k+1, n_traj, 2)
        for m in range(traj.shape[1]):
            ax.plot(traj[:, m, 0], traj[:, m, 1], "-", color="C3", lw=1.5, label="descent trajectory" if m == 0
                    else None)
            ax.plot(*traj[0, m], "s", color="C1", mec="k", ms=7, label="query x̃ = s(0)" if m == 0 else None)
            ax.plot(*traj[-1, m], "X", color="C3", mec="k", ms=9, label=f"s({k})" if m == 0 else None)
            ax.plot(*ls["x"][m], "*", color="yellow", mec="k", ms=12, label="clean token x" if m == 0 else None)
        ax.set_xlim(xs[0], xs[-1]), ax.set_ylim(ys[0], ys[-1])
        ax.set_aspect("equal")
        ax.set_xlabel("s₁"), ax.set_ylabel("s₂")
        ax.set_title(f"{k} gradient step{'s' if int(k) > 1 else ''} (γ = α = 1, β = 1/σ_Z² = 10, L = {ls['L']})")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Fig. 5: energy landscape of a circle context; one step (= attention) vs 50 steps")
    return fig


def plot_retrieval(plt, r, cfg):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    for ax, (case, tab) in zip(axes, r["tables"].items()):
        est = tab["estimators"]
        names = list(est)
        vals = [est[n]["mse"] for n in names]
        err = [est[n]["mse_se"] for n in names]
        colors = ["C2" if n == "1 step" else "C6" if n == "oracle" else "C7" for n in names]
        ax.bar(range(len(names)), vals, yerr=err, color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("MSE per coordinate (± s.e.)")
        s = tab["setting"]
        ax.set_title(f"{case}: L={s['L']}, α={s['alpha']:g}, β={s['beta']:g}, {s['batch']} prompts", fontsize=9)
    fig.suptitle("§4 / Fig. 5: one descent step (green) vs iterating, converging, exact retrieval, the oracle (pink)")
    return fig


FIGURES = {"fig5": plot, "fig5_retrieval": plot_retrieval}
