"""Experiments without training: Fig. 5 (energy, one step vs retrieval), Theorem 3.1 and Proposition 3.2.

See :mod:`icdmin.experiments` for the experiment protocol (``config`` / ``plan`` / ``combine``). Units return plain
data only. MSEs are per coordinate; "total squared error" sums over coordinates (the circle of paper §4, Fig. 5).
The experiment ``oracle`` checks the Bayes oracles against an independent Monte-Carlo posterior mean.

Legend: ``B`` prompts, ``n`` ambient dimension, ``L`` context tokens, ``eps`` the scale ε of Prop. 3.2.
"""

from __future__ import annotations

import numpy as np

from .layer import attention
from .baselines import softmax_attention_estimator
from .paper import CIRCLE, CIRCLE_TOTAL_SQ_ERROR, L_PAPER, TASK_PARAMS, make_task
from .retrieval import circle_trajectories, retrieval_comparison
from .runner import derive_seed
from .tasks import GMMTask, LinearTask, SphereTask
from .training import init_weights

__all__ = ["ENERGY_EXPERIMENTS", "unit_circle_landscape", "unit_low_noise", "unit_oracle_check", "unit_prop32",
           "unit_retrieval", "unit_thm31"]

RETRIEVAL_TASKS = {  # Fig. 5's circle and the Fig. 3 tasks (icdmin.paper)
    "circle": ("SphereTask", {k: CIRCLE[k] for k in ("n", "d", "R", "sigma2_z")}, CIRCLE["L"]),
    "sphere": ("SphereTask", TASK_PARAMS["sphere"], L_PAPER),
    "gmm": ("GMMTask", TASK_PARAMS["gmm"], L_PAPER),
}
_TASK_CLASSES = {"SphereTask": SphereTask, "GMMTask": GMMTask, "LinearTask": LinearTask}
CIRCLE_PAPER = CIRCLE_TOTAL_SQ_ERROR  # old name


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
    """One step vs k steps vs convergence vs retrieval vs oracle at α = 1, β = 1/σZ² (paper §4)."""
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
    task = SphereTask(**TASK_PARAMS["sphere"])
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


def unit_low_noise(seed, batch, L, sigma2_z) -> dict:
    """Theorem 3.1 at low noise on the circle: Eq. (13) (β = 1/σZ², logits ⟨X_t, x̃⟩/σZ² up to ~1/σZ²) vs Eq. (6).

    At σZ² = 1e-3 the logits reach ~1100, beyond exp's float64 range (709): only a max-shifted softmax stays finite.
    Returns per-coordinate MSEs of both and their paired difference (mean, s.e.), and the largest logit.
    """
    task = SphereTask(n=CIRCLE["n"], d=CIRCLE["d"], R=CIRCLE["R"], sigma2_z=sigma2_z)
    p = task.sample(np.random.default_rng(seed), batch, L)
    e_att = np.mean((softmax_attention_estimator(p.X, p.x_tilde, sigma2_z) - p.x) ** 2, axis=1)  # (B,)
    e_opt = np.mean((task.posterior_mean(p) - p.x) ** 2, axis=1)  # (B,)
    logits = np.einsum("bnl,bn->bl", p.X, p.x_tilde) / sigma2_z  # (B, L)
    return {"L": L, "sigma2_z": sigma2_z, "batch": batch, "max_logit": float(np.abs(logits).max()),
            "mse_attention": _mean_se(e_att), "mse_oracle": _mean_se(e_opt), "excess": _mean_se(e_att - e_opt)}


def unit_prop32(seed, L, batch, eps) -> dict:
    """Prop. 3.2: |F(E, (W_PV/ε, ε W_KQ)) − RHS(15)| for random weights on Case 1 prompts, for each ε.

    RHS(15) = (1/ε) W_PV X̄ + (1/L) W_PV Σ_t X_t (X_t − X̄)ᵀ W_KQ x̃, with X̄ the context mean.
    """
    task = LinearTask(**TASK_PARAMS["linear"])
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


def _mean_se(v) -> dict:
    return {"mse": float(np.mean(v)), "se": float(np.std(v, ddof=1) / np.sqrt(len(v)))}


def _prior_draws(task, p, rng, m):
    """m draws per prompt from its own prior and the log-likelihoods of its query, in the coordinates that matter.

    Linear / sphere: coordinates y in the prompt's subspace (basis V, x = V y), so ||x̃ − x||² = ||x̃_⊥||² +
    ||c − y||² with c = Vᵀx̃; mixture: y = x in R^n. Returns y (b, m, k), log w (b, m) up to a per-prompt constant,
    and the map from coordinates back to R^n. The prior's own sampler is used, never the posterior's closed form.
    """
    b = p.x_tilde.shape[0]
    if isinstance(task, GMMTask):
        w = np.cumsum(p.weights, axis=1)  # (b, K)
        a = np.minimum(np.sum(rng.random((b, m, 1)) > w[:, None, :], axis=2), task.K - 1)  # (b, m) labels
        s2 = np.full(task.K, task.sigma2_0) if task.sigma2_components is None else np.array(task.sigma2_components)
        y = np.take_along_axis(p.centers.transpose(0, 2, 1), a[..., None], axis=1)  # (b, m, n) centres
        y = y + np.sqrt(s2[a])[..., None] * rng.standard_normal(y.shape)
        return y, -np.sum((p.x_tilde[:, None, :] - y) ** 2, axis=2) / (2 * task.sigma2_z), lambda f: f
    V = p.basis  # (b, n, k)
    c = np.einsum("bnk,bn->bk", V, p.x_tilde)  # (b, k)
    g = rng.standard_normal((b, m, V.shape[2]))
    if isinstance(task, SphereTask):
        y = task.R * g / np.linalg.norm(g, axis=2, keepdims=True)  # uniform on the sphere of radius R
    else:
        y = np.sqrt(task.sigma2_0) * g  # N(0, sigma2_0 I_d) in the subspace
    log_w = -np.sum((c[:, None, :] - y) ** 2, axis=2) / (2 * task.sigma2_z)
    return y, log_w, lambda f: np.einsum("bnk,bk->bn", V, f)


def unit_oracle_check(case, seed, batch, n_prior, chunk=8) -> dict:
    """The oracle (Eqs. 3, 6, 7) against an independent Monte-Carlo posterior mean, paired on the same prompts.

    Posterior p(x | x̃) ∝ p(x) exp(−||x̃ − x||²/(2σZ²)) (paper §2.3) by self-normalised importance sampling from
    the prior: all ``n_prior`` draws give f, two independent halves f_1, f_2 (mean f_avg), and the jackknife
    f_s = 2f − f_avg removes the O(1/n_prior) bias of the ratio; no Bessel function, no responsibilities.
    Per prompt, with squared errors per coordinate e_o (oracle f_o) and e_s (f_avg):

    - ``noise`` = ||f_1 − f_2||²/(4n) estimates the Monte-Carlo error ||f_avg − E[x|x̃]||²/n (exactly in mean, up
      to the squared O(1/n_prior) bias);
    - ``excess`` = e_o − (e_s − noise) has mean 0 when f_o is the posterior mean (the cross term vanishes because
      E[x − E[x|x̃] | x̃] = 0);
    - ``radial`` = ⟨f_s − f_o, f_o/||f_o||⟩ has mean 0 unless the oracle shrinks too much or too little.

    Returns their means and standard errors, the oracle's and the corrected Monte-Carlo risk and the median
    effective sample size of a half. Shapes inside: (b, n_prior, k) draws per chunk of b prompts.
    """
    task = make_task(case)
    rng = np.random.default_rng(seed)
    half = n_prior // 2
    e_o, e_s, noise, radial, ess = [], [], [], [], []
    for start in range(0, batch, chunk):
        p = task.sample(rng, min(chunk, batch - start), 1)  # the oracle ignores the context
        y, log_w, lift = _prior_draws(task, p, rng, 2 * half)
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))  # (b, 2 half), one shift per prompt
        f = [lift(np.einsum("bm,bmk->bk", w[:, sl], y[:, sl]) / w[:, sl].sum(axis=1, keepdims=True))
             for sl in (slice(0, half), slice(half, 2 * half), slice(0, 2 * half))]  # halves, all: (b, n) each
        ess.append(w[:, :half].sum(axis=1) ** 2 / np.sum(w[:, :half] ** 2, axis=1))
        f_avg = (f[0] + f[1]) / 2  # E||f_avg - f*||^2 = E||f_1 - f_2||^2 / 4 + O(1/m^2) (independent halves)
        f_s = 2 * f[2] - f_avg  # jackknife: the O(1/m) bias of a ratio estimator cancels
        f_o = task.posterior_mean(p)  # (b, n)
        e_o.append(np.mean((f_o - p.x) ** 2, axis=1))
        e_s.append(np.mean((f_avg - p.x) ** 2, axis=1))
        noise.append(np.mean((f[0] - f[1]) ** 2, axis=1) / 4)
        radial.append(np.sum((f_s - f_o) * f_o, axis=1) / np.maximum(np.linalg.norm(f_o, axis=1), 1e-300))
    e_o, e_s, noise, radial = (np.concatenate(v) for v in (e_o, e_s, noise, radial))
    return {"case": case, "batch": batch, "n_prior": 2 * half, "mse_oracle": _mean_se(e_o),
            "mse_mc": _mean_se(e_s - noise), "mc_noise": float(noise.mean()), "excess": _mean_se(e_o - e_s + noise),
            "radial": _mean_se(radial), "ess_median": float(np.median(np.concatenate(ess)))}


# ------------------------------------------------------------------------------------------------- experiments
def _fig5_config(quick):
    return {"grid": 60 if quick else 100, "circle_batch": 4000 if quick else 20000,
            "batch_L499": 200 if quick else 600, "converge_steps": 200, "steps": [1, 2, 5, 50]}


def _fig5_plan(cfg, seed):
    plan = {"landscape": (unit_circle_landscape, dict(seed=derive_seed(seed, "fig5", "landscape"), grid=cfg["grid"]),
                          1.0)}
    for case in RETRIEVAL_TASKS:
        batch = cfg["circle_batch"] if case == "circle" else cfg["batch_L499"]
        plan[case] = (unit_retrieval, dict(case=case, seed=derive_seed(seed, "fig5", case), batch=batch,
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
            "batch": 200 if quick else 400, "fit_L_min": 100,
            "low_noise": {"L": 2000, "sigma2_z": 1e-3, "batch": 400 if quick else 1000}}


def _thm31_plan(cfg, seed):
    plan = {f"L{L}": (unit_thm31, dict(L=L, seed=derive_seed(seed, "thm31", L), batch=cfg["batch"]), L / 500)
            for L in cfg["L"]}
    if "low_noise" in cfg:
        plan["low_noise"] = (unit_low_noise, dict(seed=derive_seed(seed, "thm31", "low_noise"), **cfg["low_noise"]),
                             1.0)
    return plan


def _thm31_combine(cfg, units):
    pts = [units[f"L{L}"] for L in cfg["L"]]
    out = {key: [p[key] for p in pts] for key in ("L", "deviation", "deviation_se", "mse_attention", "mse_oracle")}
    big = [i for i, L in enumerate(out["L"]) if L >= cfg["fit_L_min"]]  # the 1/L regime (small L saturates)
    out["fit"] = dict(_fit_slope([out["L"][i] for i in big], [out["deviation"][i] for i in big]),
                      L_min=cfg["fit_L_min"])
    if "low_noise" in units:
        out["low_noise"] = units["low_noise"]
    out["table"] = {"columns": ["L", "mean_sq_deviation_from_oracle", "se", "mse_attention", "mse_oracle"],
                    "rows": [[p["L"], p["deviation"], p["deviation_se"], p["mse_attention"], p["mse_oracle"]]
                             for p in pts]}
    return out


def _prop32_config(quick):
    return {"eps": [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001], "L": 499, "batch": 100 if quick else 500}


def _prop32_plan(cfg, seed):
    return {"sweep": (unit_prop32, dict(seed=derive_seed(seed, "prop32"), L=cfg["L"], batch=cfg["batch"],
                                        eps=cfg["eps"]), 1.0)}


def _prop32_combine(cfg, units):
    u = dict(units["sweep"])
    small = [i for i, e in enumerate(u["eps"]) if e <= 0.1]  # the asymptotic regime of Eq. (15)
    u["fit"] = _fit_slope([u["eps"][i] for i in small], [u["error"][i] for i in small])
    u["table"] = {"columns": ["eps", "mean_norm_error"], "rows": [[e, r] for e, r in zip(u["eps"], u["error"])]}
    return u


def _oracle_config(quick):
    return {"cases": ["linear", "sphere", "gmm"], "batch": 100 if quick else 500,
            "n_prior": 16384 if quick else 32768}


def _oracle_plan(cfg, seed):
    return {case: (unit_oracle_check, dict(case=case, seed=derive_seed(seed, "oracle", case), batch=cfg["batch"],
                                           n_prior=cfg["n_prior"]), cfg["batch"] / 200) for case in cfg["cases"]}


def _oracle_combine(cfg, units):
    out = {case: units[case] for case in cfg["cases"]}
    out["table"] = {"columns": ["case", "mse_oracle", "mse_mc", "excess", "excess_se", "radial", "radial_se",
                                "ess_median"],
                    "rows": [[c, u["mse_oracle"]["mse"], u["mse_mc"]["mse"], u["excess"]["mse"], u["excess"]["se"],
                              u["radial"]["mse"], u["radial"]["se"], u["ess_median"]] for c, u in out.items()]}
    return out


ENERGY_EXPERIMENTS = {
    "fig5": ("Fig. 5 / §4: energy landscape, one step vs retrieval vs iterating", _fig5_config, _fig5_plan,
             _fig5_combine),
    "thm31": ("Theorem 3.1: softmax attention (1, 1/sigma_Z^2) -> oracle as L grows", _thm31_config, _thm31_plan,
              _thm31_combine),
    "prop32": ("Prop. 3.2: small-epsilon expansion of softmax attention, error O(eps)", _prop32_config,
               _prop32_plan, _prop32_combine),
    "oracle": ("Eqs. (3), (6), (7): the oracles against an independent Monte-Carlo posterior mean", _oracle_config,
               _oracle_plan, _oracle_combine),
}
