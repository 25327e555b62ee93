"""Experiments without training: Fig. 5 (energy, one step vs retrieval), Theorem 3.1 and Proposition 3.2.

See :mod:`icdmin.experiments` for the experiment protocol (``config`` / ``plan`` / ``combine``). Units return plain
data only. MSEs are per coordinate; "total squared error" sums over coordinates (PAPER.md §4's circle table).

Legend: ``B`` prompts, ``n`` ambient dimension, ``L`` context tokens, ``eps`` the scale ε of Prop. 3.2.
"""

from __future__ import annotations

import numpy as np

from .attention import attention
from .baselines import softmax_attention_estimator
from .retrieval import circle_trajectories, retrieval_comparison
from .runner import derive_seed
from .tasks import GMMTask, LinearTask, SphereTask
from .train import init_weights

__all__ = ["ENERGY_EXPERIMENTS", "unit_circle_landscape", "unit_prop32", "unit_retrieval", "unit_thm31"]

RETRIEVAL_TASKS = {  # PAPER.md §5.6 (circle) and §5.1 (sphere, mixture)
    "circle": ("SphereTask", dict(n=2, d=1, R=1.0, sigma2_z=0.1), 20),
    "sphere": ("SphereTask", dict(n=16, d=8, R=1.0, sigma2_z=0.1), 499),
    "gmm": ("GMMTask", dict(n=16, K=8, sigma2_0=0.02, sigma2_z=0.1, R=1.0), 499),
}
_TASK_CLASSES = {"SphereTask": SphereTask, "GMMTask": GMMTask, "LinearTask": LinearTask}
CIRCLE_PAPER = {"query": 0.198, "1 step": 0.132, "2 steps": 0.170, "5 steps": 0.260, "50 steps": 0.451,
                "retrieval": 0.149, "oracle": 0.107}  # PAPER.md §4 [derived], total squared error, 20000 prompts


def _fit_slope(x, y) -> dict:
    """Least-squares slope of log y against log x, with its standard error."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    A = np.stack([lx, np.ones_like(lx)], axis=1)
    coef, res, *_ = np.linalg.lstsq(A, ly, rcond=None)
    dof = max(len(lx) - 2, 1)
    resid = ly - A @ coef
    cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / dof
    return {"slope": float(coef[0]), "slope_se": float(np.sqrt(cov[0, 0])), "intercept": float(coef[1])}


# ----------------------------------------------------------------------------------------------------------- units
def unit_circle_landscape(seed, L=20, grid=100, steps=(1, 50), n_traj=3) -> dict:
    """Fig. 5: energy (16) of a circle context on a grid over [−1.5, 1.5]², and 1-step / 50-step trajectories."""
    d = circle_trajectories(np.random.default_rng(seed), L=L, R=1.0, sigma2_z=0.1, alpha=1.0, beta=10.0,
                            n_traj=n_traj, steps=steps, grid=grid, lim=1.5)
    return {"X": d["X"].tolist(), "x": d["x"].tolist(), "x_tilde": d["x_tilde"].tolist(), "xs": d["xs"].tolist(),
            "ys": d["ys"].tolist(), "energy": d["energy"].tolist(), "one_step": d["one_step"].tolist(),
            "trajectories": {str(k): v.tolist() for k, v in d["trajectories"].items()},
            "alpha": 1.0, "beta": 10.0, "sigma2_z": 0.1, "L": L}


def unit_retrieval(case, seed, batch, converge_steps, steps=(1, 2, 5, 50)) -> dict:
    """One step vs k steps vs convergence vs retrieval vs oracle at α = 1, β = 1/σZ² (PAPER.md §4)."""
    cls, params, L = RETRIEVAL_TASKS[case]
    task = _TASK_CLASSES[cls](**params)
    res = retrieval_comparison(task, L, 1.0, 1.0 / params["sigma2_z"], rng=np.random.default_rng(seed), batch=batch,
                               steps=steps, converge_steps=converge_steps)
    res["setting"]["task"] = f"{cls}({', '.join(f'{k}={v}' for k, v in params.items())})"
    return res


def unit_thm31(L, seed, batch, chunk=100) -> dict:
    """Theorem 3.1: softmax attention with (α, β) = (1, 1/σZ²) (Eq. 13) against the oracle (Eq. 6) on the sphere.

    Returns the mean over prompts of ||F − f_opt||²/n (with s.e.), and both MSEs to the clean token.
    """
    task = SphereTask(n=16, d=8, R=1.0, sigma2_z=0.1)
    rng = np.random.default_rng(seed)
    dev, mse_att, mse_opt = [], [], []
    for start in range(0, batch, chunk):
        p = task.sample(rng, min(chunk, batch - start), L)
        F = softmax_attention_estimator(p.X, p.x_tilde, task.sigma2_z)  # (b, n)
        f_opt = task.posterior_mean(p)  # (b, n)
        dev.append(np.mean((F - f_opt) ** 2, axis=1))
        mse_att.append(np.mean((F - p.x) ** 2, axis=1))
        mse_opt.append(np.mean((f_opt - p.x) ** 2, axis=1))
    dev, mse_att, mse_opt = (np.concatenate(v) for v in (dev, mse_att, mse_opt))
    return {"L": L, "deviation": float(dev.mean()), "deviation_se": float(dev.std(ddof=1) / np.sqrt(dev.size)),
            "mse_attention": float(mse_att.mean()), "mse_oracle": float(mse_opt.mean())}


def unit_prop32(seed, L, batch, eps) -> dict:
    """Prop. 3.2: |F(E, (W_PV/ε, ε W_KQ)) − RHS(15)| for random weights on Case 1 prompts, for each ε.

    RHS(15) = (1/ε) W_PV X̄ + (1/L) W_PV Σ_t X_t (X_t − X̄)ᵀ W_KQ x̃, with X̄ the context mean.
    """
    task = LinearTask(n=16, d=8, sigma2_0=2.0, sigma2_z=1.0)
    rng = np.random.default_rng(seed)
    p = task.sample(rng, batch, L)
    W_KQ, W_PV = init_weights(16, rng)  # U[-1/sqrt(n), 1/sqrt(n)], as at initialisation
    X, q = p.X, p.x_tilde  # (B, n, L), (B, n)
    Xbar = X.mean(axis=2)  # (B, n)
    v = np.einsum("bnl,bn->bl", X, q @ W_KQ.T)  # (B, L) X_tᵀ W_KQ x̃
    first = Xbar @ W_PV.T  # (B, n) W_PV X̄
    second = np.einsum("bnl,bl->bn", X, v - v.mean(axis=1, keepdims=True)) @ W_PV.T / L  # (B, n)
    err, err_linear = [], []
    for e in eps:
        F = attention(X, q, e * W_KQ, W_PV / e, "softmax")  # (B, n)
        err.append(float(np.mean(np.linalg.norm(F - (first / e + second), axis=1))))
    lin = attention(X, q, W_KQ, W_PV, "linear")  # (1/L) W_PV X Xᵀ W_KQ x̃: the second term without centring
    return {"eps": list(eps), "error": err, "L": L, "batch": batch,
            "second_term_vs_linear_attention": float(np.mean(np.linalg.norm(second - lin, axis=1)))}


# ------------------------------------------------------------------------------------------------- experiments
def _fig5_config(quick):
    return {"grid": 60 if quick else 100, "circle_batch": 4000 if quick else 20000,
            "batch_L499": 200 if quick else 600, "converge_steps": 200, "steps": [1, 2, 5, 50]}


def _fig5_plan(cfg, seed):
    plan = {"landscape": ("unit_circle_landscape", dict(seed=derive_seed(seed, "fig5", "landscape"), grid=cfg["grid"]),
                          1.0)}
    for case in RETRIEVAL_TASKS:
        batch = cfg["circle_batch"] if case == "circle" else cfg["batch_L499"]
        plan[case] = ("unit_retrieval", dict(case=case, seed=derive_seed(seed, "fig5", case), batch=batch,
                                             converge_steps=cfg["converge_steps"], steps=cfg["steps"]),
                      2.0 if case == "circle" else batch * cfg["converge_steps"] / 2e4)
    return plan


def _fig5_combine(cfg, units):
    out = {"landscape": units["landscape"], "tables": {}, "circle_paper_total_sq_error": CIRCLE_PAPER}
    rows = []
    for case in RETRIEVAL_TASKS:
        r = units[case]
        out["tables"][case] = r
        for name, st in r["estimators"].items():
            rows.append([case, name, st["total_sq_error"], st["total_sq_error_se"], st["mse"], st["mse_se"]])
    out["table"] = {"columns": ["task", "estimator", "total_sq_error", "total_sq_error_se", "mse", "mse_se"],
                    "rows": rows}
    return out


def _thm31_config(quick):
    return {"L": [10, 30, 100, 300, 1000, 3000] if quick else [10, 30, 100, 300, 1000, 3000, 10000],
            "batch": 200 if quick else 400, "fit_L_min": 100}


def _thm31_plan(cfg, seed):
    return {f"L{L}": ("unit_thm31", dict(L=L, seed=derive_seed(seed, "thm31", L), batch=cfg["batch"]), L / 500)
            for L in cfg["L"]}


def _thm31_combine(cfg, units):
    pts = [units[f"L{L}"] for L in cfg["L"]]
    out = {key: [p[key] for p in pts] for key in ("L", "deviation", "deviation_se", "mse_attention", "mse_oracle")}
    big = [i for i, L in enumerate(out["L"]) if L >= cfg["fit_L_min"]]  # the 1/L regime (small L saturates)
    out["fit"] = dict(_fit_slope([out["L"][i] for i in big], [out["deviation"][i] for i in big]),
                      L_min=cfg["fit_L_min"])
    out["table"] = {"columns": ["L", "mean_sq_deviation_from_oracle", "se", "mse_attention", "mse_oracle"],
                    "rows": [[p["L"], p["deviation"], p["deviation_se"], p["mse_attention"], p["mse_oracle"]]
                             for p in pts]}
    return out


def _prop32_config(quick):
    return {"eps": [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001], "L": 499, "batch": 100 if quick else 500}


def _prop32_plan(cfg, seed):
    return {"sweep": ("unit_prop32", dict(seed=derive_seed(seed, "prop32"), L=cfg["L"], batch=cfg["batch"],
                                          eps=cfg["eps"]), 1.0)}


def _prop32_combine(cfg, units):
    u = dict(units["sweep"])
    small = [i for i, e in enumerate(u["eps"]) if e <= 0.1]  # the asymptotic regime of Eq. (15)
    u["fit"] = _fit_slope([u["eps"][i] for i in small], [u["error"][i] for i in small])
    u["table"] = {"columns": ["eps", "mean_norm_error"], "rows": [[e, r] for e, r in zip(u["eps"], u["error"])]}
    return u


ENERGY_EXPERIMENTS = {
    "fig5": ("Fig. 5 / §4: energy landscape, one step vs retrieval vs iterating", _fig5_config, _fig5_plan,
             _fig5_combine),
    "thm31": ("Theorem 3.1: softmax attention (1, 1/sigma_Z^2) -> oracle as L grows", _thm31_config, _thm31_plan,
              _thm31_combine),
    "prop32": ("Prop. 3.2: small-epsilon expansion of softmax attention, error O(eps)", _prop32_config,
               _prop32_plan, _prop32_combine),
}
