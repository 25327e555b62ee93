"""Optional matplotlib rendering of ``python -m icdmin reproduce`` results (imported lazily).

:func:`render` draws one PNG per experiment present in the results document (plain data from
:mod:`icdmin.experiments`), with the paper's symbols in titles, axis labels and legends. Without matplotlib it
returns None and the reproduction still runs. MSEs are per coordinate ("MSE/n" in the paper's figures).
"""

from __future__ import annotations

import os

import numpy as np

from .paper import CASE_TITLES as PAPER_TITLES
from .paper import TASK_PARAMS

__all__ = ["render"]

_SYMBOL = {"d": "d", "K": "K", "R": "R", "sigma2_0": "σ₀²", "sigma2_z": "σ_Z²"}
CASE_TITLES = {case: f"{title} ({', '.join(f'{_SYMBOL[k]}={v:g}' for k, v in TASK_PARAMS[case].items() if k != 'n')})"
               for case, title in PAPER_TITLES.items()}  # e.g. "Case 1: linear subspaces (d=8, σ₀²=2, σ_Z²=1)"
KIND_STYLE = {"softmax": dict(color="C0", marker="o"), "linear": dict(color="C1", marker="^")}


def _fig3(plt, r, cfg):
    cases = r["cases"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    ylims = {"linear": (0.2, 1.1), "sphere": (0.026, 0.0673), "gmm": (0.018, 0.09)}  # the authors' plot ranges
    for ax, case in zip(axes, ("linear", "sphere", "gmm")):
        c = cases[case]
        for kind, run in c["runs"].items():
            ep = np.array(run["epoch"])
            st = KIND_STYLE[kind]
            for split, ls in (("train", "--"), ("test", "-")):
                m = np.array(run[split]["mean"])
                ax.plot(ep, m, ls, color=st["color"], lw=1.4, label=f"{kind} attention, {split} (mean)")
                ax.fill_between(ep, run[split]["min"], run[split]["max"], color=st["color"], alpha=0.18, lw=0)
        bl = c["baselines"]
        ax.axhline(bl["zero"]["mse"], color="0.4", ls=":", label="predict 0")
        if "projection" in bl:
            ax.axhline(bl["projection"]["mse"], color="0.6", ls="-.", label="projection P x̃ (context)")
        if "eq8_oracle_centres" in bl:
            ax.axhline(bl["eq8_oracle_centres"]["mse"], color="0.6", ls="-.", label="Eq. (8), oracle centres")
        ax.axhline(bl["oracle"]["mse"], color="C6", lw=2, label="Bayes optimal (oracle)")
        if "authors_bayes_line" in bl:
            ax.axhline(bl["authors_bayes_line"]["mse"], color="C3", ls=":", lw=2,
                       label="authors' 'Bayes' line (wrong Bessel order)")
        for protocol, mk, xpos in (("online", "*", 0.9), ("identity", "D", 1.0)):
            if protocol in c:
                ax.plot([xpos * ep[-1]], [c[protocol]["fresh_mse"]], mk, color="k", ms=9, ls="none",
                        label=f"{'online training' if protocol == 'online' else 'scaled identity βI, αI'}"
                              " (fresh prompts)")
        ax.set_ylim(*ylims[case])
        ax.set_title(CASE_TITLES[case], fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE per coordinate (MSE/n)")
        ax.legend(fontsize=7, loc="upper right")
    n_seeds = len(cases["linear"]["runs"]["linear"]["fresh_mse"])
    fig.suptitle(f"Fig. 3 / Fig. 7: training on 800 prompts, L=499, exact train/test MSE, {n_seeds} seed(s) "
                 "(line: mean, band: min-max)")
    return fig


def _fig3_weights(plt, r, cfg):
    cases = r["cases"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5), constrained_layout=True)
    for j, case in enumerate(("linear", "sphere", "gmm")):
        kind = "linear" if case == "linear" else "softmax"
        run = cases[case]["runs"][kind]
        for i, name in enumerate(("W_KQ", "W_PV")):
            W = np.array(run[name])
            v = np.max(np.abs(W))
            im = axes[i, j].imshow(W, cmap="RdBu_r", vmin=-v, vmax=v)
            axes[i, j].set_title(f"{CASE_TITLES[case].split(' (')[0]}, {kind} attention: {name}\n"
                                 f"mean diagonal {np.mean(np.diag(W)):.3f}",
                                 fontsize=9)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
            fig.colorbar(im, ax=axes[i, j], shrink=0.8)
    fig.suptitle("Fig. 3(b): learned weights (seed 0) are near scaled identities W_KQ ≈ βI, W_PV ≈ αI")
    return fig


def _fig4a(plt, r, cfg):
    L = np.array(r["L"])
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 7.5), sharex=True, constrained_layout=True)
    a1.plot(L, r["gamma"], "^", color="C1", label="learned γ = ⟨w_KQ⟩⟨w_PV⟩")
    a1.plot(L, r["gamma_star"], "-", color="k", label="finite-L optimum γ*(L) = 1/((σ₀²+σ_Z²)(1+(d+1)/L))")
    a1.axhline(1 / 3, color="C6", ls="--", label="γ* = 1/(σ₀²+σ_Z²) = 1/3 (L → ∞)")
    a1.set_ylabel("γ = αβ")
    a1.legend(fontsize=8)
    a1.set_title("Fig. 4(a): linear attention on Case 1 vs context length L (800 training prompts)")
    a2.plot(L, r["fresh_mse"], "^-", color="C1", label="trained model, fresh prompts")
    a2.plot(L, r["min_test_mse"], "v", color="C1", alpha=0.5, label="trained model, min test MSE over training")
    a2.plot(L, r["theory_mse_at_gamma_star"], "k-", label="theory: finite-L optimum γ*(L) (linear_risk)")
    a2.axhline(r["bayes"], color="C6", lw=2, label="Bayes optimal = 1/3")
    a2.set_xlabel("context length L (clean tokens)")
    a2.set_ylabel("MSE per coordinate")
    a2.legend(fontsize=8)
    return fig


def _fig4b(plt, r, cfg):
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    for i, (L, u) in enumerate(r["curves"].items()):
        ax.errorbar(u["d"], u["d_inv_mse"], yerr=u["d_inv_mse_se"], fmt="o", color=f"C{i}", ms=4,
                    label=f"trained at d=8, L={L}: evaluated at d")
        ax.plot(u["d"], u["theory_ideal"], "--", color=f"C{i}", lw=1, label=f"2/3 + (4/3)(d+1)/L, L={L}")
        ax.plot(u["d"], u["theory_learned_gamma"], ":", color=f"C{i}", lw=1,
                label=f"theory at the learned γ = {u['gamma']:.3f}")
    ax.axhline(2 / 3, color="C6", lw=2, label="Bayes optimal σ₀²σ_Z²/(σ₀²+σ_Z²) = 2/3")
    ax.axhline(2.0, color="0.4", ls=":", label="predict 0 (σ₀² = 2)")
    ax.axvline(8, color="0.8", lw=0.8)
    ax.set_xlabel("subspace dimension d at inference")
    ax.set_ylabel("d⁻¹ MSE  (squared error summed over coordinates / d)")
    ax.set_ylim(0, 2.24)
    ax.set_title("Fig. 4(b): a linear-attention model trained at d = 8 denoises other d")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _fig5(plt, r, cfg):
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


def _fig5_bars(plt, r, cfg):
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


def _fig6(plt, r, cfg):
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
        ax.set_title(f"{CASE_TITLES[case]}\nloss over scaled identities, {v['n_prompts']} training prompts", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Fig. 6: the (α, β) landscape of softmax attention has one broad hyperbolic valley")
    return fig


def _fig8(plt, r, cfg):
    fig, axes = plt.subplots(3, 4, figsize=(14, 10), constrained_layout=True)

    def show(ax, W, title):
        W = np.array(W)
        v = np.max(np.abs(W))
        im = ax.imshow(W, cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.75)

    show(axes[0, 0], r["A"], "(a) the fixed transform A (cond. 4)")
    show(axes[0, 1], r["A_inv"], "theory (A.12): W_PV ∝ A⁻¹")
    show(axes[0, 2], r["AAT_inv"], "theory: W_KQ ∝ (AAᵀ)⁻¹")
    axes[0, 3].axis("off")
    axes[0, 3].text(0, 0.5, "Prompts (A X, A x̃).\nRow 2: target x (A.12).\nRow 3: target A x (A.13),\n"
                    "theory W_PV ∝ I.\nNumbers: relative residual\nof the best scalar fit.", fontsize=10)
    for i, target in enumerate(("clean", "transformed"), start=1):
        for j, kind in enumerate(("linear", "softmax")):
            v = r.get(f"{kind}/{target}")
            if v is None:
                continue
            f = v["fits"]
            show(axes[i, 2 * j], v["W_PV"], f"{kind}, target {'x' if target == 'clean' else 'Ax'}: W_PV\n"
                 f"resid. vs theory {f['PV_vs_theory']['rel_residual']:.2f}")
            show(axes[i, 2 * j + 1], v["W_KQ"], f"{kind}, target {'x' if target == 'clean' else 'Ax'}: W_KQ\n"
                 f"resid. vs (AAᵀ)⁻¹ {f['KQ_vs_theory']['rel_residual']:.2f}, αβ = {v['scale_product']:.3f}")
    fig.suptitle("Fig. 8 / App. H: under a global transform A, trained weights take the predicted structure")
    return fig


def _loglog(plt, x, y, yerr, fit, xlabel, ylabel, title, ref_slope, label):
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


def _thm31(plt, r, cfg):
    return _loglog(plt, r["L"], r["deviation"], r["deviation_se"], r["fit"], "context length L (clean tokens)",
                   "mean over prompts of |F − f_opt|² / n",
                   "Theorem 3.1: softmax attention with (α, β) = (1, 1/σ_Z²)\n"
                   "converges to the Bayes estimator, Case 2 (n=16, d=8, σ_Z²=0.1)", -1.0,
                   "Eq. (13) vs Eq. (6), ± s.e.")


def _prop32(plt, r, cfg):
    return _loglog(plt, r["eps"], r["error"], None, r["fit"], "ε", "mean |F(E, (W_PV/ε, εW_KQ)) − RHS(15)|",
                   "Prop. 3.2: softmax attention ≈ linear attention + (1/ε) W_PV X̄,\nerror O(ε) (random weights, "
                   "Case 1 prompts, L=499)", 1.0, "expansion error")


_FIGURES = {"fig3": [("fig3", _fig3), ("fig3_weights", _fig3_weights)], "fig4a": [("fig4a", _fig4a)],
            "fig4b": [("fig4b", _fig4b)], "fig5": [("fig5", _fig5), ("fig5_retrieval", _fig5_bars)],
            "fig6": [("fig6", _fig6)], "fig8": [("fig8", _fig8)], "thm31": [("thm31", _thm31)],
            "prop32": [("prop32", _prop32)]}


def render(doc: dict, out: str):
    """Draw every figure whose results are in ``doc["results"]`` into ``out``; return the PNG paths.

    Returns None (and draws nothing) when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    paths = []
    for name, result in doc["results"].items():
        for stem, draw in _FIGURES.get(name, []):
            fig = draw(plt, result, doc["meta"]["configs"].get(name, {}))
            path = os.path.join(out, f"{stem}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
    return paths
