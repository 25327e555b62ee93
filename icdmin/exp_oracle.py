"""Eqs. (3), (6), (7) (arXiv 2502.05164): the Bayes oracles against an independent Monte-Carlo posterior mean.

No figure of the paper: a check that the oracles every other experiment compares with are the posterior means of
paper §2.3, by importance sampling from each prompt's own prior (no Bessel function, no responsibilities).
"""

from __future__ import annotations

import numpy as np

from .exp_common import LABEL, Z, claim, derive_seed, fmt, mean_se, per_prompt_sq
from .paper import make_task
from .tasks import GMMTask, SphereTask

__all__ = ["FIGURES", "TITLE", "combine", "config", "plan", "unit_oracle_check", "verdicts"]

TITLE = "Eqs. (3), (6), (7): the oracles against an independent Monte-Carlo posterior mean"
ORACLE_EQ = {"linear": "Eq. (3)", "sphere": "Eq. (6)", "gmm": "Eq. (7)"}


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
        e_o.append(per_prompt_sq(f_o, p.x))
        e_s.append(per_prompt_sq(f_avg, p.x))
        noise.append(per_prompt_sq(f[0], f[1]) / 4)
        radial.append(np.sum((f_s - f_o) * f_o, axis=1) / np.maximum(np.linalg.norm(f_o, axis=1), 1e-300))
    e_o, e_s, noise, radial = (np.concatenate(v) for v in (e_o, e_s, noise, radial))
    return {"case": case, "batch": batch, "n_prior": 2 * half, "mse_oracle": mean_se(e_o),
            "mse_mc": mean_se(e_s - noise), "mc_noise": float(noise.mean()), "excess": mean_se(e_o - e_s + noise),
            "radial": mean_se(radial), "ess_median": float(np.median(np.concatenate(ess)))}


def config(quick):
    return {"cases": ["linear", "sphere", "gmm"], "batch": 100 if quick else 500,
            "n_prior": 16384 if quick else 32768}


def plan(cfg, seed):
    return {case: (unit_oracle_check, dict(case=case, seed=derive_seed(seed, "oracle", case), batch=cfg["batch"],
                                           n_prior=cfg["n_prior"]), cfg["batch"] / 200) for case in cfg["cases"]}


def combine(cfg, units):
    out = {case: units[case] for case in cfg["cases"]}
    out["table"] = {"columns": ["case", "mse_oracle", "mse_mc", "excess", "excess_se", "radial", "radial_se",
                                "ess_median"],
                    "rows": [[c, u["mse_oracle"]["mse"], u["mse_mc"]["mse"], u["excess"]["mse"], u["excess"]["se"],
                              u["radial"]["mse"], u["radial"]["se"], u["ess_median"]] for c, u in out.items()]}
    return out


def verdicts(r, rows, quick=False) -> None:
    """The oracle rows of the verdict table."""
    for case, u in [(c, r[c]) for c in LABEL if c in r]:
        ex, ra = u["excess"], u["radial"]
        ok = abs(ex["mse"]) < Z * ex["se"] + u["mc_noise"] and abs(ra["mse"]) < Z * ra["se"]
        claim(rows, f"Oracle {ORACLE_EQ[case]} = independent MC posterior mean ({LABEL[case]})",
              "Bayes-optimal denoiser", f"oracle MSE {fmt(u['mse_oracle']['mse'])} vs MC {fmt(u['mse_mc']['mse'])} "
              f"(paired excess {fmt(ex['mse'], 2)} +- {fmt(ex['se'], 2)}); radial offset {fmt(ra['mse'], 2)} +- "
              f"{fmt(ra['se'], 2)} ({u['batch']} prompts, ESS {fmt(u['ess_median'], 3)})", "",
              f"|excess| < {Z:g} s.e. + the MC correction's size; |radial| < {Z:g} s.e. (two-sided)", ok,
              "a wrong oracle: Bessel order (off by 1/2, the authors' order), a scaled posterior, wrong weights")


FIGURES: dict = {}  # no figure
