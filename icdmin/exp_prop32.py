"""Proposition 3.2 (arXiv 2502.05164): softmax attention at small ε is linear attention plus (1/ε) W_PV X̄ (Eq. 15).

The error of the expansion for random weights (W_PV/ε, ε W_KQ) on Case 1 prompts falls like O(ε).
Legend: ``B`` prompts, ``n`` = 16 ambient dimension, ``L`` context tokens, ``eps`` the scale ε.
"""

from __future__ import annotations

import numpy as np

from .exp_common import claim, derive_seed, fit_slope, fmt, loglog
from .layer import attention
from .paper import TASK_PARAMS
from .tasks import LinearTask
from .training import init_weights

__all__ = ["FIGURES", "TITLE", "combine", "config", "plan", "unit_prop32", "verdicts"]

TITLE = "Prop. 3.2: small-epsilon expansion of softmax attention, error O(eps)"


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


def config(quick):
    return {"eps": [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001], "L": 499, "batch": 100 if quick else 500}


def plan(cfg, seed):
    return {"sweep": (unit_prop32, dict(seed=derive_seed(seed, "prop32"), L=cfg["L"], batch=cfg["batch"],
                                        eps=cfg["eps"]), 1.0)}


def combine(cfg, units):
    u = dict(units["sweep"])
    small = [i for i, e in enumerate(u["eps"]) if e <= 0.1]  # the asymptotic regime of Eq. (15)
    u["fit"] = fit_slope([u["eps"][i] for i in small], [u["error"][i] for i in small])
    u["table"] = {"columns": ["eps", "mean_norm_error"], "rows": [[e, r] for e, r in zip(u["eps"], u["error"])]}
    return u


def verdicts(r, rows, quick=False) -> None:
    """The Prop. 3.2 row of the verdict table."""
    fit = r["fit"]
    claim(rows, "Prop3.2 small-eps expansion error O(eps)", "O(eps)",
          f"error ~ eps^{fmt(fit['slope'], 3)} (eps <= 0.1); {fmt(r['error'][-1], 3)} at eps={r['eps'][-1]}", "",
          "slope in [0.9, 1.1]", 0.9 <= fit["slope"] <= 1.1, "a softmax whose first-order term is not Eq. (15)")


def plot(plt, r, cfg):
    return loglog(plt, r["eps"], r["error"], None, r["fit"], "ε", "mean |F(E, (W_PV/ε, εW_KQ)) − RHS(15)|",
                  "Prop. 3.2: softmax attention ≈ linear attention + (1/ε) W_PV X̄,\nerror O(ε) (random weights, "
                  "Case 1 prompts, L=499)", 1.0, "expansion error")


FIGURES = {"prop32": plot}
