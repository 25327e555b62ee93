"""Fig. 6 and App. G (arXiv 2502.05164): the (α, β) loss landscape of softmax attention over scaled identities.

The training loss of W_KQ = βI, W_PV = αI on the Fig. 3 training set (Cases 2 and 3), exact in α for each β, with
the trained model of Fig. 3 (seed 0: the same unit, run once) and the theory point (1, 1/σ_Z²) of Eq. (13).
Legend: ``B`` prompts, ``n`` = 16 ambient dimension, ``L`` context tokens.
"""

from __future__ import annotations

import numpy as np

from .dam import softmax
from .exp_common import (LABEL, Z, case_title, claim, fig3_config, fig3_data_seed, fig3_run, fmt, mean_se,
                         per_prompt_sq)
from .layer import attention
from .paper import AUTHORS, L_PAPER, THEORY_POINT, make_task
from .training import split_prompts

__all__ = ["FIGURES", "TITLE", "combine", "config", "plan", "unit_landscape", "verdicts"]

TITLE = "Fig. 6: (alpha, beta) loss landscape over scaled identities"


def unit_landscape(case, data_seed, betas, L=L_PAPER, n_prompts=1000, test_fraction=0.2, check=(1.3, 4.0),
                   theory=(THEORY_POINT["alpha"], THEORY_POINT["beta"])) -> dict:
    """Loss of W_KQ = βI, W_PV = αI on the Fig. 3 training set, for every β in ``betas`` and every α (Fig. 6).

    For fixed β the output is α u_b(β) with u_b = X_b softmax(β X_bᵀ x̃_b), so the MSE is the quadratic
    (α² a(β) − 2α b(β) + c) / n with a = mean_b |u_b|², b = mean_b ⟨u_b, x_b⟩, c = mean_b |x_b|²: one softmax per
    β gives the whole α axis exactly. The dataset is the one :func:`icdmin.training.train` draws for ``data_seed``.
    ``check`` = (α, β) is evaluated once through :func:`icdmin.layer.attention` as a cross-check.
    ``theory_minus_min``: the per-prompt loss at ``theory`` (Eq. 13's (1, 1/σZ²)) minus the loss at the grid's
    valley minimum, mean and standard error over the prompts (paired: same prompts).
    """
    task = make_task(case)
    tr, _ = split_prompts(task, L=L, data_seed=data_seed, n_prompts=n_prompts, test_fraction=test_fraction)
    X, q, x = tr.X, tr.x_tilde, tr.x  # (B, n, L), (B, n), (B, n)
    n = X.shape[1]
    scores = np.einsum("bnl,bn->bl", X, q)  # (B, L)
    a, b = [], []
    for beta in betas:
        u = np.einsum("bnl,bl->bn", X, softmax(beta * scores, axis=-1))  # (B, n)
        a.append(float(np.mean(np.sum(u * u, axis=1))))
        b.append(float(np.mean(np.sum(u * x, axis=1))))
    c = float(np.mean(np.sum(x * x, axis=1)))
    alpha_c, beta_c = check
    direct = float(np.mean((attention(X, q, beta_c * np.eye(n), alpha_c * np.eye(n), "softmax") - x) ** 2))
    u = np.einsum("bnl,bl->bn", X, softmax(beta_c * scores, axis=-1))
    quad = float((alpha_c**2 * np.mean(np.sum(u * u, 1)) - 2 * alpha_c * np.mean(np.sum(u * x, 1)) + c) / n)
    bayes = float(np.mean((task.posterior_mean(tr) - x) ** 2))  # equals train(...).bayes_train_mse (same data)
    a_arr, b_arr = np.array(a), np.array(b)
    k = int(np.argmax(np.where(a_arr > 0, b_arr**2 / np.where(a_arr > 0, a_arr, 1), 0.0)))  # valley minimum
    alpha_k = b_arr[k] / a_arr[k] if a_arr[k] > 0 else 0.0
    diff = _per_prompt_loss(X, q, x, scores, *theory) - _per_prompt_loss(X, q, x, scores, alpha_k, betas[k])
    return {"betas": list(betas), "a": a, "b": b, "c": c, "n": n, "n_prompts": int(X.shape[0]),
            "check_rel_diff": abs(direct - quad) / direct, "bayes_train_mse": bayes,
            "theory_minus_min": mean_se(diff)}


def _per_prompt_loss(X, q, x, scores, alpha, beta) -> np.ndarray:
    """Squared error per coordinate of W_KQ = βI, W_PV = αI on each prompt: (B,)."""
    u = np.einsum("bnl,bl->bn", X, softmax(beta * scores, axis=-1))  # (B, n)
    return per_prompt_sq(alpha * u, x)


def config(quick):
    cfg = fig3_config(quick)
    return {"fig3": cfg, "betas": np.round(np.linspace(0.0, 12.0, 41 if quick else 121), 6).tolist(),
            "alphas": np.round(np.linspace(0.0, 3.0, 50), 6).tolist(), "theory_point": dict(THEORY_POINT)}


def plan(cfg, seed):
    out = {}
    for case in ("sphere", "gmm"):
        out[f"{case}/landscape"] = (unit_landscape, dict(case=case, data_seed=fig3_data_seed(seed, case),
                                                         betas=cfg["betas"], L=cfg["fig3"]["L"]), 8.0)
        out[f"{case}/trained"] = fig3_run(cfg["fig3"], seed, case, "softmax", 0)
    return out


def combine(cfg, units):
    out, rows = {}, []
    for case in ("sphere", "gmm"):
        ls, tr = units[f"{case}/landscape"], dict(units[f"{case}/trained"])
        # a mirrored solution (-alpha, -beta) of an origin-symmetric task is drawn at (|alpha|, |beta|)
        tr["alpha"], tr["beta"] = abs(tr["alpha"]), abs(tr["beta"])
        betas, a, b = np.array(ls["betas"]), np.array(ls["a"]), np.array(ls["b"])
        n, c = ls["n"], ls["c"]

        def loss(alpha, beta):  # interpolated in beta (grid step <= 0.3), exact in alpha
            aa, bb = np.interp(beta, betas, a), np.interp(beta, betas, b)
            return (alpha**2 * aa - 2 * alpha * bb + c) / n

        alphas = np.array(cfg["alphas"])
        grid = (alphas[:, None] ** 2 * a[None, :] - 2 * alphas[:, None] * b[None, :] + c) / n  # (alphas, betas)
        i, j = np.unravel_index(np.argmin(grid), grid.shape)
        valley_alpha = np.where(a > 0, b / np.where(a > 0, a, 1), 0.0)  # exact argmin over alpha per beta
        valley_loss = (c - np.where(a > 0, b**2 / np.where(a > 0, a, 1), 0.0)) / n
        k = int(np.argmin(valley_loss))
        th = cfg["theory_point"]
        out[case] = {
            "alphas": alphas.tolist(), "betas": betas.tolist(), "loss": grid.tolist(),
            "valley_alpha": valley_alpha.tolist(), "valley_loss": valley_loss.tolist(),
            "grid_min": {"alpha": float(alphas[i]), "beta": float(betas[j]), "loss": float(grid[i, j])},
            "valley_min": {"alpha": float(valley_alpha[k]), "beta": float(betas[k]), "loss": float(valley_loss[k])},
            "trained": {"alpha": tr["alpha"], "beta": tr["beta"], "loss": float(loss(tr["alpha"], tr["beta"]))},
            "theory": {"alpha": th["alpha"], "beta": th["beta"], "loss": float(loss(th["alpha"], th["beta"]))},
            "check_rel_diff": ls["check_rel_diff"], "n_prompts": ls["n_prompts"],
            "theory_minus_min": ls["theory_minus_min"],
        }
        for name in ("grid_min", "valley_min", "trained", "theory"):
            v = out[case][name]
            rows.append([case, name, v["alpha"], v["beta"], v["loss"]])
    out["table"] = {"columns": ["case", "point", "alpha", "beta", "train_mse"], "rows": rows}
    return out


def verdicts(r, rows, quick=False) -> None:
    """The Fig. 6 rows of the verdict table."""
    for case in ("sphere", "gmm"):
        v, label = r[case], LABEL[case]
        ok = v["trained"]["loss"] <= 1.02 * v["valley_min"]["loss"]
        claim(rows, f"Fig6 {label} trained weights lie in the valley", "trained point in the global valley",
              f"trained {fmt(v['trained']['loss'])} vs min {fmt(v['valley_min']['loss'])} at (alpha, beta) = "
              f"({fmt(v['valley_min']['alpha'], 3)}, {fmt(v['valley_min']['beta'], 3)})",
              "best scaled identity at ({}, {})".format(*AUTHORS[case]["best_identity_point"]),
              "trained loss within 2% of the landscape minimum", ok,
              "the landscape and the training seeing different data or attention")
        d, th = v["theory_minus_min"], v["theory"]
        claim(rows, f"Fig6 {label} theory point ({fmt(th['alpha'])}, {fmt(th['beta'])}) above the minimum",
              "finite-L shift along the valley", f"theory {fmt(th['loss'])} vs min {fmt(v['valley_min']['loss'])} at "
              f"beta {fmt(v['valley_min']['beta'], 3)}; paired excess {fmt(d['mse'], 3)} +- {fmt(d['se'], 2)}",
              fmt(AUTHORS[case]["theory_weights"]) + " vs " + fmt(AUTHORS[case]["best_identity"]) + " (fresh)",
              f"minimum at beta < {fmt(th['beta'])} and theory loss above it by > {Z:g} s.e. (paired, same prompts)",
              v["valley_min"]["beta"] < th["beta"] and d["mse"] > Z * d["se"],
              "a landscape without the finite-L shift (e.g. linear attention: flat along alpha*beta)")


def plot(plt, r, cfg):
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    for ax, case in zip(axes, ("sphere", "gmm")):
        v = r[case]
        B, A = np.meshgrid(v["betas"], v["alphas"])
        rel = np.array(v["loss"]) / v["valley_min"]["loss"]  # loss relative to the minimum over the landscape
        pm = ax.pcolormesh(B, A, rel, cmap="magma_r", shading="auto", vmin=1.0, vmax=2.0)
        fig.colorbar(pm, ax=ax, label="training MSE / its minimum (clipped at 2)")
        ax.contour(B, A, rel, levels=[1.02, 1.1, 1.3], colors="0.3", linewidths=0.7)
        valley = np.array(v["valley_alpha"], float)
        valley[(valley < v["alphas"][0]) | (valley > v["alphas"][-1])] = np.nan
        ax.plot(v["betas"], valley, "-", color="c", lw=1.2, label="valley: best α for each β "
                "(contours: 1.02, 1.1, 1.3 x min)")
        points = (("grid_min", "w", "landscape minimum"), ("trained", "C1", "trained (mean diagonals)"),
                  ("theory", "C2", "theory (α, β) = (1, 1/σ_Z²)"))
        for name, color, label in points:
            p = v[name]
            ax.plot(p["beta"], p["alpha"], "o", color=color, mec="k", ms=9, label=f"{label}: {p['loss']:.4f}")
        ax.set_ylim(v["alphas"][0], v["alphas"][-1])
        ax.set_xlabel("β  (W_KQ = βI)")
        ax.set_ylabel("α  (W_PV = αI)")
        ax.set_title(f"{case_title(case)}\nloss over scaled identities, {v['n_prompts']} training prompts", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Fig. 6: the (α, β) landscape of softmax attention has one broad hyperbolic valley")
    return fig


FIGURES = {"fig6": plot}
