"""The verdict table of ``python -m icdmin reproduce``: each claim, what icdmin measured, the authors' code.

:func:`verdicts` reads the combined results of :mod:`icdmin.experiments` (only the experiments that ran) and returns
one row per claim: ``claim``, ``paper`` (what the paper says), ``measured`` (icdmin), ``authors`` (the authors'
PyTorch code on the same protocol, ``../shared/REFERENCE.md``; empty where unknown), ``tolerance`` (the stated
criterion, with its origin) and ``holds`` (bool). Tolerances that compare Monte-Carlo numbers use z-scores of the
Monte-Carlo standard error, so they stay valid in ``--quick`` mode with fewer prompts.

MSEs are per coordinate (the paper's "MSE/n").
"""

from __future__ import annotations

import numpy as np

from .bayes import optimal_linear_gamma

__all__ = ["AUTHORS", "verdicts"]

# The authors' code, run unchanged on this machine type (REFERENCE.md, "Accuracy" table; seed 0, exact MSEs).
AUTHORS = {
    "linear": {"test": 0.3725, "fresh": 0.3669, "bayes": 0.3350, "alpha": 0.572, "beta": 0.557, "gamma": 0.319,
               "offdiag": (0.023, 0.010), "best_identity": 0.3472},
    "gmm": {"test": 0.02859, "fresh": 0.02843, "bayes": 0.02307, "alpha": 0.996, "beta": 5.154,
            "offdiag": (0.41, 0.021), "best_identity": 0.02498, "theory_weights": 0.02960,
            "best_identity_point": (0.959, 5.5)},  # (alpha, beta) of the best scaled identity on fresh prompts
    "sphere": {"test": 0.03150, "fresh": 0.03136, "bayes": 0.02887, "alpha": 1.681, "beta": 3.359,
               "offdiag": (0.16, 0.046), "best_identity": 0.03004, "theory_weights": 0.03128,
               "authors_bayes_line": 0.03016, "best_identity_point": (1.442, 4.25)},
}
Z = 4.0  # z-score for Monte-Carlo comparisons (two-sided p ~ 6e-5 per comparison)


def _f(x, digits=4):
    return f"{x:.{digits}g}"


def _row(rows, claim, paper, measured, authors, tolerance, holds):
    rows.append({"claim": claim, "paper": paper, "measured": measured, "authors": authors, "tolerance": tolerance,
                 "holds": bool(holds)})


def _fig3(r, rows):
    cases = r["cases"]
    # Case 1, linear attention: gamma = <w_KQ><w_PV> (sign flips between seeds leave the product unchanged)
    lin = cases["linear"]["runs"]["linear"]
    g = np.array(lin["gamma"])
    g_star = optimal_linear_gamma(8, 499, 2.0, 1.0)  # PAPER.md §3.6: 1 / (3 (1 + 9/499)) = 0.3274
    _row(rows, "Fig3 C1 linear attn: gamma = <w_KQ><w_PV>", "0.327 (~1/3)",
         f"{_f(g.mean())} [{_f(g.min())}, {_f(g.max())}] ({len(g)} seeds)", _f(AUTHORS["linear"]["gamma"]),
         f"every seed within 5% of gamma*(499)={_f(g_star)}", np.all(np.abs(g / g_star - 1) < 0.05))
    # Case 3 softmax scales
    sm = cases["gmm"]["runs"]["softmax"]  # no mirrored solution here (PAPER.md §5.4): signed means
    a, b = np.mean(sm["alpha"]), np.mean(sm["beta"])
    _row(rows, "Fig3 C3 softmax: (alpha, beta)", "(0.998, 5.127)", f"({_f(a, 3)}, {_f(b, 3)})",
         f"({AUTHORS['gmm']['alpha']}, {AUTHORS['gmm']['beta']})", "both within 10% of the paper",
         abs(a / 0.998 - 1) < 0.1 and abs(b / 5.127 - 1) < 0.1)
    # Case 2 softmax scales: only the product is pinned down (the valley of Fig. 6), alpha, beta drift along it
    sm = cases["sphere"]["runs"]["softmax"]  # the sphere is origin-symmetric: seeds may land on (-alpha, -beta)
    a, b, prod = np.mean(np.abs(sm["alpha"])), np.mean(np.abs(sm["beta"])), np.mean(sm["gamma"])
    mirrored = int(np.sum(np.array(sm["alpha"]) < 0))
    paper_prod = 3.596 * 1.603  # PAPER.md §5.4, figure text layer (W_KQ, W_PV)
    _row(rows, "Fig3 C2 softmax: (alpha, beta) on the valley", "(1.603, 3.596), alpha*beta 5.76",
         f"(|alpha|, |beta|) = ({_f(a, 3)}, {_f(b, 3)}), alpha*beta {_f(prod, 3)}; {mirrored} of {len(sm['alpha'])}"
         " seeds mirrored",
         f"({AUTHORS['sphere']['alpha']}, {AUTHORS['sphere']['beta']}), 5.65", "alpha*beta within 10% of the paper's",
         abs(prod / paper_prod - 1) < 0.1)
    # scaled identities
    ratios = []
    for case in ("linear", "sphere", "gmm"):
        run = cases[case]["runs"]["linear" if case == "linear" else "softmax"]
        ratios.append(max(np.mean(run["offdiag_KQ"]) / np.mean(np.abs(run["beta"])),  # |.|: sign-flipped seeds
                          np.mean(run["offdiag_PV"]) / np.mean(np.abs(run["alpha"]))))
    _row(rows, "Fig3 weights are near scaled identities", "near-diagonal",
         f"max mean|offdiag|/|mean diag| = {_f(max(ratios), 3)}", "0.08 (C3 W_KQ: 0.41/5.15)",
         "ratio < 0.15 in all cases", max(ratios) < 0.15)
    # held-out MSE vs Bayes, paper protocol (over-fitting expected: REFERENCE.md)
    for case, label in (("linear", "C1"), ("sphere", "C2"), ("gmm", "C3")):
        run = cases[case]["runs"]["linear" if case == "linear" else "softmax"]
        ratio = np.mean(run["fresh_mse"]) / run["fresh_bayes_mse"]
        auth = AUTHORS[case]["fresh"] / AUTHORS[case]["bayes"]
        _row(rows, f"Fig3 {label} held-out MSE / Bayes, 800 prompts", "near-optimal",
             f"{_f(ratio)} (fresh {_f(np.mean(run['fresh_mse']))})", _f(auth), "ratio < 1.30 (REFERENCE.md: "
             "authors 1.09-1.23, over-fitting)", ratio < 1.30)
    for protocol in ("online", "identity"):
        for case, label in (("linear", "C1"), ("sphere", "C2"), ("gmm", "C3")):
            run = cases[case].get(protocol)
            if run is None:
                continue
            ratio = run["fresh_mse"] / run["fresh_bayes_mse"]
            ref = AUTHORS[case]["best_identity"] / AUTHORS[case]["bayes"]  # the finite-L floor of this model class
            _row(rows, f"Fig3 {label} {protocol} training: fresh MSE / Bayes", "near-optimal",
                 f"{_f(ratio)} (fresh {_f(run['fresh_mse'])})", f"best scaled identity {_f(ref)}",
                 "ratio < 1.03 x the best scaled identity's (finite-L floor, REFERENCE.md)", ratio < 1.03 * ref)
    # Case 2: the authors' "Bayes" line (wrong Bessel order) vs the true oracle, paired on the same prompts
    bl = cases["sphere"]["baselines"]
    d = bl["authors_minus_oracle"]
    _row(rows, "C2 authors' 'Bayes' line (Bessel order bug)", "Bayes-optimal line",
         f"{_f(bl['authors_bayes_line']['mse'])} vs oracle {_f(bl['oracle']['mse'])} "
         f"(+{_f(100 * d['mse'] / bl['oracle']['mse'], 2)}%)", f"{AUTHORS['sphere']['authors_bayes_line']} vs "
         f"{AUTHORS['sphere']['bayes']}", f"line above the oracle by > {Z:g} s.e. (paired)",
         d["mse"] > Z * d["se"])
    # Fig. 7: linear ~ softmax on spheres, worse on the mixture
    f = {c: {k: np.mean(cases[c]["runs"][k]["fresh_mse"]) for k in ("linear", "softmax")} for c in ("sphere", "gmm")}
    rs, rg = f["sphere"]["linear"] / f["sphere"]["softmax"], f["gmm"]["linear"] / f["gmm"]["softmax"]
    _row(rows, "Fig7 linear vs softmax MSE ratio (C2, C3)", "C2 about equal, C3 linear worse",
         f"C2 {_f(rs, 3)}, C3 {_f(rg, 3)}", "", "C2 ratio in [0.95, 1.05]; C3 ratio > 1.05",
         0.95 <= rs <= 1.05 and rg > 1.05)
    # Case 1 softmax: small-epsilon regime of Prop. 3.2 (beta small, alpha large, same product as linear)
    s1 = cases["linear"]["runs"]["softmax"]
    sa, sb = np.mean(np.abs(s1["alpha"])), np.mean(np.abs(s1["beta"]))
    prod = np.mean(s1["gamma"])
    _row(rows, "Fig3 C1 softmax: small beta, large alpha", "beta 0.194, alpha 1.607 (product 0.31)",
         f"beta {_f(sb, 3)}, alpha {_f(sa, 3)}, product {_f(prod, 3)}", "",
         "beta < 0.3, alpha > 1, product within 10% of 0.32", sb < 0.3 and sa > 1 and abs(prod / 0.32 - 1) < 0.1)


def _fig4a(r, rows):
    g, gs = np.array(r["gamma"]), np.array(r["gamma_star"])
    dev = np.abs(g / gs - 1)
    close = dev < 0.10
    off = ", ".join(f"L={L}: gamma {_f(g[i], 3)}" for i, L in enumerate(r["L"]) if not close[i])
    _row(rows, "Fig4a learned gamma tracks gamma*(L)", "gamma -> 1/3 as L grows",
         f"{int(close.sum())}/{len(g)} runs within 10% of gamma*(L) (median dev. {_f(np.median(dev), 2)})"
         + (f"; off (stuck near the W = 0 saddle after 100 epochs): {off}" if off else ""), "",
         ">= 80% of the runs within 10%", close.mean() >= 0.8)
    ratio = r["fresh_mse"][-1] / r["fresh_bayes_mse"][-1]
    first = r["fresh_mse"][0] / r["fresh_bayes_mse"][0]
    _row(rows, "Fig4a MSE -> Bayes as L grows", "approaches Bayes", f"MSE/Bayes {_f(first, 3)} at L={r['L'][0]}, "
         f"{_f(ratio, 3)} at L={r['L'][-1]}", "", "ratio at largest L < 1.10 and below the ratio at smallest L",
         ratio < 1.10 and ratio < first)


def _fig4b(r, rows):
    c = r["curves"]
    big, small = c["499"], c["29"]
    worst = max(m / (2 / 3) - 1 for m in big["d_inv_mse"])
    rise = small["d_inv_mse"][-1] - small["d_inv_mse"][0]
    _row(rows, "Fig4b d-shift: kept at L=499, rising at L=29", "performance maintained away from d=8",
         f"L=499: max over d of d^-1 MSE is {_f(1 + worst, 3)} x Bayes (2/3); L=29: d=1->15 rise {_f(rise, 3)}",
         "", "within 25% of 2/3 for every d at L=499; rise > 0.2 at L=29 (theory 0.37)", worst < 0.25 and rise > 0.2)
    dev = {L: float(np.mean([abs(m / t - 1) for m, t in zip(u["d_inv_mse"], u["theory_learned_gamma"])]))
           for L, u in c.items()}
    _row(rows, "Fig4b vs scaled-identity theory (learned gamma)", "2/3 + (4/3)(d+1)/L at gamma=1/3 [derived]",
         "mean rel. dev. " + ", ".join(f"L={L}: {_f(v, 2)}" for L, v in dev.items()), "",
         "< 0.12 per L (off-diagonal weights of the 800-prompt fit add ~5-10%)", max(dev.values()) < 0.12)


def _fig5(r, rows):
    t = r["tables"]
    c = t["circle"]["estimators"]
    one, ret, fifty = c["1 step"], c["retrieval"], c["50 steps"]
    _row(rows, "Fig5 circle: 1 step < retrieval < 50 steps", "one step beats retrieval and iterating",
         f"{_f(one['total_sq_error'], 3)} < {_f(ret['total_sq_error'], 3)} < {_f(fifty['total_sq_error'], 3)}",
         "", "strict order", one["total_sq_error"] < ret["total_sq_error"] < fifty["total_sq_error"])
    paper = r["circle_paper_total_sq_error"]
    zmax = max(abs(c[k]["total_sq_error"] - v) / c[k]["total_sq_error_se"] for k, v in paper.items())
    worst = max(abs(c[k]["total_sq_error"] / v - 1) for k, v in paper.items())
    _row(rows, "Fig5 circle table (PAPER.md §4 [derived])", "1 step 0.132, retrieval 0.149, 50 steps 0.451",
         f"{_f(one['total_sq_error'], 3)}, {_f(ret['total_sq_error'], 3)}, {_f(fifty['total_sq_error'], 3)}"
         f" (max |z| {_f(zmax, 2)})", "", f"every entry within {Z:g} s.e. or 3%",
         all(abs(c[k]["total_sq_error"] - v) < max(Z * c[k]["total_sq_error_se"], 0.03 * v) for k, v in paper.items()))
    for case in ("sphere", "gmm"):
        e = t[case]["estimators"]
        _row(rows, f"Fig5 {case} L=499: 1 step beats retrieval, converged", "one step is best of the DAM uses",
             f"1 step {_f(e['1 step']['mse'], 3)}, retrieval {_f(e['retrieval']['mse'], 3)}, converged "
             f"{_f(e['converged']['mse'], 3)}, oracle {_f(e['oracle']['mse'], 3)}", "", "1 step < both",
             e["1 step"]["mse"] < min(e["retrieval"]["mse"], e["converged"]["mse"]))
    conv = t["circle"]["converged"]
    _row(rows, "Fig5 iterating ends in spurious minima", "minima are not context tokens",
         f"{_f(100 * conv['near_token_fraction'], 3)}% of endpoints within 1e-3 of a token; median distance "
         f"{_f(conv['median_nearest_distance'], 3)}", "", "< 5% near a token", conv["near_token_fraction"] < 0.05)


def _fig6(r, rows):
    for case, label in (("sphere", "C2"), ("gmm", "C3")):
        v = r[case]
        ok = v["trained"]["loss"] <= 1.02 * v["valley_min"]["loss"]
        _row(rows, f"Fig6 {label} trained weights lie in the valley", "trained point in the global valley",
             f"trained {_f(v['trained']['loss'])} vs min {_f(v['valley_min']['loss'])} at (alpha, beta) = "
             f"({_f(v['valley_min']['alpha'], 3)}, {_f(v['valley_min']['beta'], 3)})",
             "best scaled identity at ({}, {})".format(*AUTHORS[case]["best_identity_point"]),
             "trained loss within 2% of the landscape minimum", ok)
        _row(rows, f"Fig6 {label} theory point (1, 10) above the minimum", "finite-L shift along the valley",
             f"theory {_f(v['theory']['loss'])} vs min {_f(v['valley_min']['loss'])}",
             _f(AUTHORS[case]["theory_weights"]) + " vs " + _f(AUTHORS[case]["best_identity"]) + " (fresh)",
             "theory loss > minimum", v["theory"]["loss"] > v["valley_min"]["loss"])


def _fig8(r, rows):
    paper_product = {"linear": 0.333, "softmax": 0.311}  # PAPER.md §5.9, figure text layer
    for kind in ("linear", "softmax"):
        for target in ("clean", "transformed"):
            v = r.get(f"{kind}/{target}")
            if v is None:
                continue
            fits = v["fits"]
            pv_alt = fits["PV_vs_identity"] if target == "clean" else fits["PV_vs_A_inv"]
            pv, kq, kq_alt = fits["PV_vs_theory"], fits["KQ_vs_theory"], fits["KQ_vs_identity"]
            # the theory explains >= 84% of |W|_F^2 (residual < 0.4) and beats the alternative structure
            ok = all(fit["rel_residual"] < min(0.4, alt["rel_residual"]) for fit, alt in ((pv, pv_alt), (kq, kq_alt)))
            if target == "clean":  # the paper's Fig. 8 numbers are for the target x only
                ok = ok and abs(v["scale_product"] / paper_product[kind] - 1) < 0.1
            pv_t = "A^-1" if target == "clean" else "I"
            said = f"; alpha*beta {paper_product[kind]}" if target == "clean" else " (derived from A.13)"
            tol = "residuals < 0.4 and < the alternative's" + ("; product within 10%" if target == "clean" else "")
            _row(rows, f"Fig8 {kind}, target {'x (A.12)' if target == 'clean' else 'Ax (A.13)'}: W_PV~{pv_t}, "
                 "W_KQ~(AA^T)^-1", f"this structure{said}",
                 f"rel. resid. PV {_f(pv['rel_residual'], 2)} (alt. {_f(pv_alt['rel_residual'], 2)}), KQ "
                 f"{_f(kq['rel_residual'], 2)} (vs I {_f(kq_alt['rel_residual'], 2)}); alpha*beta "
                 f"{_f(v['scale_product'], 3)}", "", tol, ok)


def _thm31(r, rows):
    fit = r["fit"]
    _row(rows, "Thm3.1 softmax (1,1/sZ^2) -> oracle, sphere", "error -> 0 as L grows (~1/sqrt(L))",
         f"mean sq. deviation ~ L^{_f(fit['slope'], 3)} (+-{_f(fit['slope_se'], 2)}, L >= {fit['L_min']}); "
         f"{_f(r['deviation'][0], 3)} at L={r['L'][0]} -> {_f(r['deviation'][-1], 3)} at L={r['L'][-1]}", "",
         "slope in [-1.25, -0.75] (squared error ~ 1/L)", -1.25 <= fit["slope"] <= -0.75)


def _prop32(r, rows):
    fit = r["fit"]
    _row(rows, "Prop3.2 small-eps expansion error O(eps)", "O(eps)",
         f"error ~ eps^{_f(fit['slope'], 3)} (eps <= 0.1); {_f(r['error'][-1], 3)} at eps={r['eps'][-1]}", "",
         "slope in [0.9, 1.1]", 0.9 <= fit["slope"] <= 1.1)


_CHECKS = {"fig3": _fig3, "fig4a": _fig4a, "fig4b": _fig4b, "fig5": _fig5, "fig6": _fig6, "fig8": _fig8,
           "thm31": _thm31, "prop32": _prop32}


def verdicts(results: dict, *, quick: bool = False) -> list[dict]:
    """Rows of the verdict table for the experiments present in ``results`` (name -> combined result)."""
    rows: list[dict] = []
    for name, check in _CHECKS.items():
        if name in results:
            check(results[name], rows)
    return rows
