"""Structure of the learned weights: Fig. 6 (the (alpha, beta) landscape) and Fig. 8 / App. H (a global transform A).

See :mod:`icdmin.experiments` for the experiment protocol (``config`` / ``plan`` / ``combine``). Fig. 6 reuses the
seed-0 softmax runs of Fig. 3 (same unit, run once) and their training data; Fig. 8 trains on the linear task with
prompts (A X, A x̃) for a fixed A, with the target x (Eq. A.12) or A x (Eq. A.13, the authors' code convention).

Legend: ``B`` prompts, ``n`` = 16 ambient dimension, ``L`` context tokens.
"""

from __future__ import annotations

import numpy as np

from .layer import attention
from .dam import softmax
from .experiments_train import fig3_config, fig3_data_seed, fig3_run, unit_train
from .paper import A_SEED, FIG8_EPOCHS, L_PAPER, N, THEORY_POINT, make_task, transform_matrix
from .runner import derive_seed
from .training import split_prompts

__all__ = ["WEIGHT_EXPERIMENTS", "fit_scalar", "unit_landscape"]


def fit_scalar(W, T) -> dict:
    """Best c in W ≈ c T (least squares) and the relative residual ||W − cT||_F / ||W||_F."""
    W, T = np.asarray(W, dtype=float), np.asarray(T, dtype=float)
    c = float(np.sum(W * T) / np.sum(T * T))
    return {"scale": c, "rel_residual": float(np.linalg.norm(W - c * T) / np.linalg.norm(W))}


def unit_landscape(case, data_seed, betas, L=L_PAPER, n_prompts=1000, test_fraction=0.2, check=(1.3, 4.0),
                   theory=(THEORY_POINT["alpha"], THEORY_POINT["beta"])) -> dict:
    """Loss of W_KQ = βI, W_PV = αI on the Fig. 3 training set, for every β in ``betas`` and every α (Fig. 6).

    For fixed β the output is α u_b(β) with u_b = X_b softmax(β X_bᵀ x̃_b), so the MSE is the quadratic
    (α² a(β) − 2α b(β) + c) / n with a = mean_b |u_b|², b = mean_b ⟨u_b, x_b⟩, c = mean_b |x_b|²: one softmax per
    β
    gives the whole α axis exactly. The dataset is the one :func:`icdmin.training.train` draws for ``data_seed``.
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
            "theory_minus_min": {"mse": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(diff.size))}}


def _per_prompt_loss(X, q, x, scores, alpha, beta) -> np.ndarray:
    """Squared error per coordinate of W_KQ = βI, W_PV = αI on each prompt: (B,)."""
    u = np.einsum("bnl,bl->bn", X, softmax(beta * scores, axis=-1))  # (B, n)
    return np.mean((alpha * u - x) ** 2, axis=1)

# --------------------------------------------------------------------------------------------------- Fig. 6
def _fig6_config(quick):
    cfg = fig3_config(quick)
    return {"fig3": cfg, "betas": np.round(np.linspace(0.0, 12.0, 41 if quick else 121), 6).tolist(),
            "alphas": np.round(np.linspace(0.0, 3.0, 50), 6).tolist(), "theory_point": dict(THEORY_POINT)}


def _fig6_plan(cfg, seed):
    plan = {}
    for case in ("sphere", "gmm"):
        plan[f"{case}/landscape"] = (unit_landscape, dict(case=case, data_seed=fig3_data_seed(seed, case),
                                                          betas=cfg["betas"], L=cfg["fig3"]["L"]), 8.0)
        plan[f"{case}/trained"] = fig3_run(cfg["fig3"], seed, case, "softmax", 0)
    return plan


def _fig6_combine(cfg, units):
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

# --------------------------------------------------------------------------------------------------- Fig. 8
def _fig8_config(quick):
    return {"epochs": 150 if quick else FIG8_EPOCHS, "A_seed": A_SEED, "n": N, "n_fresh": 1000, "eval_every": 10}


def _fig8_plan(cfg, seed):
    plan = {}
    for kind in ("linear", "softmax"):
        for target in ("clean", "transformed"):
            plan[f"{kind}/{target}"] = (unit_train, dict(
                case="linear", kind=kind, seed=derive_seed(seed, "fig8", kind, target),
                data_seed=derive_seed(seed, "fig8", "data"), epochs=cfg["epochs"], n_fresh=cfg["n_fresh"],
                eval_every=cfg["eval_every"], weights=True, transform_seed=cfg["A_seed"], target=target,
                eval_train=False),
                cfg["epochs"] * (3.0 if kind == "softmax" else 1.0))
    return plan


def _fig8_combine(cfg, units):
    A = transform_matrix(cfg["n"], cfg["A_seed"])
    A_inv = np.linalg.inv(A)
    G_inv = np.linalg.inv(A @ A.T)
    eye = np.eye(cfg["n"])
    out, rows = {"A": A.tolist(), "A_inv": A_inv.tolist(), "AAT_inv": G_inv.tolist(),
                 "A_singular_values": np.linalg.svd(A, compute_uv=False).tolist()}, []
    for key, u in units.items():
        kind, target = key.split("/")
        theory_PV = A_inv if target == "clean" else eye  # A.12: alpha A^-1; A.13: alpha I
        fits = {"PV_vs_theory": fit_scalar(u["W_PV"], theory_PV), "PV_vs_identity": fit_scalar(u["W_PV"], eye),
                "PV_vs_A_inv": fit_scalar(u["W_PV"], A_inv),
                "KQ_vs_theory": fit_scalar(u["W_KQ"], G_inv), "KQ_vs_identity": fit_scalar(u["W_KQ"], eye)}
        product = fits["PV_vs_theory"]["scale"] * fits["KQ_vs_theory"]["scale"]
        out[key] = {"W_KQ": u["W_KQ"], "W_PV": u["W_PV"], "fits": fits, "scale_product": product,
                    "fresh_mse": u["fresh_mse"], "fresh_bayes_mse": u["fresh_bayes_mse"],
                    "final_test_mse": u["test_mse"][-1]}
        rows.append([kind, target, fits["PV_vs_theory"]["scale"], fits["PV_vs_theory"]["rel_residual"],
                     fits["PV_vs_identity"]["rel_residual"], fits["KQ_vs_theory"]["scale"],
                     fits["KQ_vs_theory"]["rel_residual"], fits["KQ_vs_identity"]["rel_residual"], product,
                     u["fresh_mse"], u["fresh_bayes_mse"]])
    out["table"] = {"columns": ["kind", "target", "alpha_fit", "PV_resid_theory", "PV_resid_identity", "beta_fit",
                                "KQ_resid_theory", "KQ_resid_identity", "alpha_beta", "fresh_mse",
                                "fresh_bayes_mse"], "rows": rows}
    return out

WEIGHT_EXPERIMENTS = {
    "fig6": ("Fig. 6: (alpha, beta) loss landscape over scaled identities", _fig6_config, _fig6_plan,
             _fig6_combine),
    "fig8": ("Fig. 8 / App. H: a global transform A", _fig8_config, _fig8_plan, _fig8_combine),
}
