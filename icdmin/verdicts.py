"""The verdict table of ``python -m icdmin reproduce``: each claim, what icdmin measured, the authors' code.

:func:`verdicts` reads the combined results of :mod:`icdmin.experiments` (only the experiments that ran) and returns
one row per claim: ``claim``, ``paper`` (what the paper says), ``measured`` (icdmin), ``authors`` (the authors'
PyTorch code on the same protocol, :data:`icdmin.paper.AUTHORS`; empty where unknown), ``tolerance`` (the stated
criterion and where it comes from), ``holds`` (bool) and ``guards`` (the kind of bug the row would catch).

Tolerances: a Monte-Carlo or seed spread enters through its standard error with z = :data:`Z` (valid at --quick
sizes too); a ratio to a Bayes oracle is two-sided (beating the Bayes risk beyond noise is a bug too); the rest are
the paper's precision (figure numbers) or a stated modelling allowance. MSEs are per coordinate ("MSE/n").
"""

from __future__ import annotations

import numpy as np

from .bayes import optimal_linear_gamma
from .paper import (AUTHORS, CIRCLE_TOTAL_SQ_ERROR, FIG3_C1_GAMMA, FIG3_C1_SOFTMAX, FIG3_C2_SOFTMAX, FIG3_C3_SOFTMAX,
                    FIG8_PRODUCT, FIG8_SOFTMAX, L_PAPER, TASK_PARAMS)

__all__ = ["AUTHORS", "Z", "verdicts"]

Z = 4.0  # z-score for Monte-Carlo comparisons (two-sided p ~ 6e-5 per comparison)
LABEL = {"linear": "C1", "sphere": "C2", "gmm": "C3"}
ORACLE_EQ = {"linear": "Eq. (3)", "sphere": "Eq. (6)", "gmm": "Eq. (7)"}


def _f(x, digits=4):
    return f"{x:.{digits}g}"


def _row(rows, claim, paper, measured, authors, tolerance, holds, guards):
    rows.append({"claim": claim, "paper": paper, "measured": measured, "authors": authors, "tolerance": tolerance,
                 "holds": bool(holds), "guards": guards})


def _fig3_scales(cases, rows):
    lin = cases["linear"]["runs"]["linear"]  # sign flips between seeds leave gamma = <w_KQ><w_PV> unchanged
    g = np.array(lin["gamma"])
    p = TASK_PARAMS["linear"]
    g_star = optimal_linear_gamma(p["d"], L_PAPER, p["sigma2_0"], p["sigma2_z"])  # 1 / (3 (1 + 9/499))
    _row(rows, "Fig3 C1 linear attn: gamma = <w_KQ><w_PV>", f"{FIG3_C1_GAMMA} (~1/3)",
         f"{_f(g.mean())} [{_f(g.min())}, {_f(g.max())}] ({len(g)} seeds)", _f(AUTHORS["linear"]["gamma"]),
         f"every seed within 5% of gamma*(499)={_f(g_star)} (finite-L optimum)", np.all(np.abs(g / g_star - 1) < 0.05),
         "training that misses the optimum: gradient sign or scale, lr = 0, a wrong 1/L in the layer")
    sm = cases["gmm"]["runs"]["softmax"]  # no mirrored solution here: signed means
    a, b = np.mean(sm["alpha"]), np.mean(sm["beta"])
    pa, pb = FIG3_C3_SOFTMAX["alpha"], FIG3_C3_SOFTMAX["beta"]
    _row(rows, "Fig3 C3 softmax: (alpha, beta)", f"({pa}, {pb})", f"({_f(a, 3)}, {_f(b, 3)})",
         f"({AUTHORS['gmm']['alpha']}, {AUTHORS['gmm']['beta']})", "both within 10% of the paper (figure precision)",
         abs(a / pa - 1) < 0.1 and abs(b / pb - 1) < 0.1, "softmax replaced by another kernel; a wrong beta scale")
    sm = cases["sphere"]["runs"]["softmax"]  # origin-symmetric task: seeds may land on (-alpha, -beta)
    a, b, prod = np.mean(np.abs(sm["alpha"])), np.mean(np.abs(sm["beta"])), np.mean(sm["gamma"])
    mirrored = int(np.sum(np.array(sm["alpha"]) < 0))
    pa, pb = FIG3_C2_SOFTMAX["alpha"], FIG3_C2_SOFTMAX["beta"]
    _row(rows, "Fig3 C2 softmax: (alpha, beta) on the valley", f"({pa}, {pb}), alpha*beta {_f(pa * pb, 3)}",
         f"(|alpha|, |beta|) = ({_f(a, 3)}, {_f(b, 3)}), alpha*beta {_f(prod, 3)}; {mirrored} of {len(sm['alpha'])}"
         " seeds mirrored", f"({AUTHORS['sphere']['alpha']}, {AUTHORS['sphere']['beta']}), 5.65",
         "alpha*beta within 10% of the paper's (only the product is pinned by the valley)",
         abs(prod / (pa * pb) - 1) < 0.1, "softmax replaced by another kernel; training that stops early")
    ratios = []
    for case in ("linear", "sphere", "gmm"):
        run = cases[case]["runs"]["linear" if case == "linear" else "softmax"]
        ratios.append(max(np.mean(run["offdiag_KQ"]) / np.mean(np.abs(run["beta"])),  # |.|: sign-flipped seeds
                          np.mean(run["offdiag_PV"]) / np.mean(np.abs(run["alpha"]))))
    _row(rows, "Fig3 weights are near scaled identities", "near-diagonal",
         f"max mean|offdiag|/|mean diag| = {_f(max(ratios), 3)}", "0.08 (C3 W_KQ: 0.41/5.15)",
         "ratio < 0.15 in all cases (untrained U[-1/4, 1/4] weights give ~1 or more)", max(ratios) < 0.15,
         "weights that do not train (lr = 0, gradient sign) or a gradient error in the off-diagonal entries")


def _fig3_vs_bayes(cases, rows, quick):
    for case in ("linear", "sphere", "gmm"):
        label, run = LABEL[case], cases[case]["runs"]["linear" if case == "linear" else "softmax"]
        oracle = cases[case]["baselines"]["oracle"]  # same fresh prompts as the trained models' fresh MSE
        low = 1 - Z * oracle["se"] / oracle["mse"]  # the lowest ratio that the oracle's own noise explains
        ratio = np.mean(run["fresh_mse"]) / run["fresh_bayes_mse"]
        auth = AUTHORS[case]["fresh"] / AUTHORS[case]["bayes"]
        _row(rows, f"Fig3 {label} held-out MSE / Bayes, 800 prompts", "near-optimal",
             f"{_f(ratio)} (fresh {_f(np.mean(run['fresh_mse']))})", _f(auth),
             f"{_f(low, 3)} < ratio < 1.30 (low: Bayes - {Z:g} s.e.; high: authors 1.09-1.23, over-fitting)",
             low < ratio < 1.30, "a model that beats the Bayes oracle (query leak, wrong oracle) or does not learn")
    slack = 1.10 if quick else 1.03  # quick mode's online / identity runs are short (20 epochs)
    for protocol, case in [(p, c) for p in ("online", "identity") for c in LABEL if p in cases[c]]:
        run = cases[case][protocol]
        oracle = cases[case]["baselines"]["oracle"]
        low = 1 - Z * oracle["se"] / oracle["mse"]
        ratio = run["fresh_mse"] / run["fresh_bayes_mse"]
        ref = AUTHORS[case]["best_identity"] / AUTHORS[case]["bayes"]  # the finite-L floor of this model class
        _row(rows, f"Fig3 {LABEL[case]} {protocol} training: fresh MSE / Bayes", "near-optimal",
             f"{_f(ratio)} (fresh {_f(run['fresh_mse'])})", f"best scaled identity {_f(ref)}",
             f"{_f(low, 3)} < ratio < {slack:g} x the best scaled identity's (low: Bayes - {Z:g} s.e.; high: "
             "the finite-L floor, authors' code" + ("; 20-epoch quick run)" if quick else ")"),
             low < ratio < slack * ref, f"{protocol} training that does not converge or beats the Bayes oracle")


def _fig3(r, rows, quick=False):
    cases = r["cases"]
    _fig3_scales(cases, rows)
    _fig3_vs_bayes(cases, rows, quick)
    bl = cases["sphere"]["baselines"]  # the authors' "Bayes" line (wrong Bessel order), paired with the oracle
    d = bl["authors_minus_oracle"]
    _row(rows, "C2 authors' 'Bayes' line (Bessel order bug)", "Bayes-optimal line",
         f"{_f(bl['authors_bayes_line']['mse'])} vs oracle {_f(bl['oracle']['mse'])} "
         f"(+{_f(100 * d['mse'] / bl['oracle']['mse'], 2)}%)", f"{AUTHORS['sphere']['authors_bayes_line']} vs "
         f"{AUTHORS['sphere']['bayes']}", f"line above the oracle by > {Z:g} s.e. (paired)", d["mse"] > Z * d["se"],
         "the sphere projection ignoring its Bessel-order argument")
    f = {c: {k: np.mean(cases[c]["runs"][k]["fresh_mse"]) for k in ("linear", "softmax")} for c in ("sphere", "gmm")}
    rs, rg = f["sphere"]["linear"] / f["sphere"]["softmax"], f["gmm"]["linear"] / f["gmm"]["softmax"]
    _row(rows, "Fig7 linear vs softmax MSE ratio (C2, C3)", "C2 about equal, C3 linear worse",
         f"C2 {_f(rs, 3)}, C3 {_f(rg, 3)}", "", "C2 ratio in [0.95, 1.05]; C3 ratio > 1.05",
         0.95 <= rs <= 1.05 and rg > 1.05, "softmax replaced by linear attention (C3 ratio -> 1)")
    s1 = cases["linear"]["runs"]["softmax"]  # Case 1 softmax: the small-epsilon regime of Prop. 3.2
    sa, sb, prod = np.mean(np.abs(s1["alpha"])), np.mean(np.abs(s1["beta"])), np.mean(s1["gamma"])
    pa, pb = FIG3_C1_SOFTMAX["alpha"], FIG3_C1_SOFTMAX["beta"]
    _row(rows, "Fig3 C1 softmax: small beta, large alpha", f"beta {pb}, alpha {pa} (product {_f(pa * pb, 3)})",
         f"beta {_f(sb, 3)}, alpha {_f(sa, 3)}, product {_f(prod, 3)}", "", "beta < 0.3, alpha > 1, product within "
         "10% of the paper's (linear attention: beta ~ alpha ~ 0.57)", sb < 0.3 and sa > 1 and
         abs(prod / (pa * pb) - 1) < 0.1, "softmax replaced by linear attention")


def _fig4a(r, rows):
    g, gs = np.array(r["gamma"]), np.array(r["gamma_star"])
    dev = np.abs(g / gs - 1)
    close = dev < 0.10
    off = ", ".join(f"L={L}: gamma {_f(g[i], 3)}" for i, L in enumerate(r["L"]) if not close[i])
    _row(rows, "Fig4a learned gamma tracks gamma*(L)", "gamma -> 1/3 as L grows",
         f"{int(close.sum())}/{len(g)} runs within 10% of gamma*(L) (median dev. {_f(np.median(dev), 2)})"
         + (f"; off (stuck near the W = 0 saddle after 100 epochs): {off}" if off else ""), "",
         ">= 80% of the runs within 10%", close.mean() >= 0.8, "a wrong 1/L normalisation; training that stalls")
    ratio = r["fresh_mse"][-1] / r["fresh_bayes_mse"][-1]
    first = r["fresh_mse"][0] / r["fresh_bayes_mse"][0]
    d = TASK_PARAMS["linear"]["d"]  # the oracle's error per prompt is (2/3) chi2_d / n: relative s.d. sqrt(2/d)
    low = 1 - Z * np.sqrt(2 / d) / np.sqrt(r["n_fresh"])
    _row(rows, "Fig4a MSE -> Bayes as L grows", "approaches Bayes", f"MSE/Bayes {_f(first, 3)} at L={r['L'][0]}, "
         f"{_f(ratio, 3)} at L={r['L'][-1]}", "", f"{_f(low, 3)} < ratio at largest L < 1.10 (low: Bayes - {Z:g} "
         "s.e., chi2_d) and below the ratio at smallest L", low < ratio < 1.10 and ratio < first,
         "a model that beats the Bayes risk; no improvement with L")


def _fig4b(r, rows):
    c, p = r["curves"], TASK_PARAMS["linear"]
    big, small = c["499"], c["29"]
    bayes = p["sigma2_0"] * p["sigma2_z"] / (p["sigma2_0"] + p["sigma2_z"])  # d^-1 MSE of the oracle: 2/3, any d
    worst = max(m / bayes - 1 for m in big["d_inv_mse"])
    zmin = min((m - bayes) / s for m, s in zip(big["d_inv_mse"], big["d_inv_mse_se"]))
    rise = small["d_inv_mse"][-1] - small["d_inv_mse"][0]
    _row(rows, "Fig4b d-shift: kept at L=499, rising at L=29", "performance maintained away from d=8",
         f"L=499: max over d of d^-1 MSE is {_f(1 + worst, 3)} x Bayes (2/3), min z vs Bayes {_f(zmin, 2)}; L=29: "
         f"d=1->15 rise {_f(rise, 3)}", "", f"at L=499 within 25% of 2/3 for every d and no d below 2/3 by > {Z:g} "
         "s.e.; rise > 0.2 at L=29 (theory 0.37)", worst < 0.25 and zmin > -Z and rise > 0.2,
         "gradient sign flip or lr = 0 (weights stay at init or blow up); a model beating the Bayes risk")
    dev = {L: float(np.mean([abs(m / t - 1) for m, t in zip(u["d_inv_mse"], u["theory_learned_gamma"])]))
           for L, u in c.items()}
    _row(rows, "Fig4b vs scaled-identity theory (learned gamma)", "2/3 + (4/3)(d+1)/L at gamma=1/3 [derived]",
         "mean rel. dev. " + ", ".join(f"L={L}: {_f(v, 2)}" for L, v in dev.items()), "",
         "< 0.12 per L (off-diagonal weights of the 800-prompt fit add ~5-10%)", max(dev.values()) < 0.12,
         "a linear-attention forward that is not (1/L) W_PV X X^T W_KQ x~ (Eq. 11)")


def _fig5(r, rows):
    t = r["tables"]
    c = t["circle"]["estimators"]
    one, ret, fifty = c["1 step"], c["retrieval"], c["50 steps"]
    _row(rows, "Fig5 circle: 1 step < retrieval < 50 steps", "one step beats retrieval and iterating",
         f"{_f(one['total_sq_error'], 3)} < {_f(ret['total_sq_error'], 3)} < {_f(fifty['total_sq_error'], 3)}",
         "", "strict order", one["total_sq_error"] < ret["total_sq_error"] < fifty["total_sq_error"],
         "a wrong energy gradient or step (Eq. 17)")
    scale = np.sqrt(1 + t["circle"]["setting"]["batch"] / 20000)  # the reference table's own 20000-prompt noise
    z = {k: (c[k]["total_sq_error"] - v) / (c[k]["total_sq_error_se"] * scale)
         for k, v in CIRCLE_TOTAL_SQ_ERROR.items()}
    zmax = max(abs(v) for v in z.values())
    ref = ", ".join(f"{k} {CIRCLE_TOTAL_SQ_ERROR[k]}" for k in ("1 step", "retrieval", "50 steps"))
    _row(rows, "Fig5 circle table (paper §4 setting) [derived]", ref,
         f"{_f(one['total_sq_error'], 3)}, {_f(ret['total_sq_error'], 3)}, {_f(fifty['total_sq_error'], 3)}"
         f" (max |z| {_f(zmax, 2)})", "", f"every entry within {Z:g} s.e. (both tables' Monte-Carlo noise)",
         zmax < Z, "a wrong energy step or Bessel order (the circle oracle is I_1/I_0)")
    for case in ("sphere", "gmm"):
        e = t[case]["estimators"]
        _row(rows, f"Fig5 {case} L=499: 1 step beats retrieval, converged", "one step is best of the DAM uses",
             f"1 step {_f(e['1 step']['mse'], 3)}, retrieval {_f(e['retrieval']['mse'], 3)}, converged "
             f"{_f(e['converged']['mse'], 3)}, oracle {_f(e['oracle']['mse'], 3)}", "", "1 step < both",
             e["1 step"]["mse"] < min(e["retrieval"]["mse"], e["converged"]["mse"]), "a wrong energy step or descent")
    conv = t["circle"]["converged"]
    _row(rows, "Fig5 iterating ends in spurious minima", "minima are not context tokens",
         f"{_f(100 * conv['near_token_fraction'], 3)}% of endpoints within 1e-3 of a token; median distance "
         f"{_f(conv['median_nearest_distance'], 3)}", "", "< 5% near a token", conv["near_token_fraction"] < 0.05,
         "descent that snaps to the nearest token (retrieval mistaken for convergence)")


def _fig6(r, rows):
    for case in ("sphere", "gmm"):
        v, label = r[case], LABEL[case]
        ok = v["trained"]["loss"] <= 1.02 * v["valley_min"]["loss"]
        _row(rows, f"Fig6 {label} trained weights lie in the valley", "trained point in the global valley",
             f"trained {_f(v['trained']['loss'])} vs min {_f(v['valley_min']['loss'])} at (alpha, beta) = "
             f"({_f(v['valley_min']['alpha'], 3)}, {_f(v['valley_min']['beta'], 3)})",
             "best scaled identity at ({}, {})".format(*AUTHORS[case]["best_identity_point"]),
             "trained loss within 2% of the landscape minimum", ok,
             "the landscape and the training seeing different data or attention")
        d, th = v["theory_minus_min"], v["theory"]
        _row(rows, f"Fig6 {label} theory point ({_f(th['alpha'])}, {_f(th['beta'])}) above the minimum",
             "finite-L shift along the valley", f"theory {_f(th['loss'])} vs min {_f(v['valley_min']['loss'])} at "
             f"beta {_f(v['valley_min']['beta'], 3)}; paired excess {_f(d['mse'], 3)} +- {_f(d['se'], 2)}",
             _f(AUTHORS[case]["theory_weights"]) + " vs " + _f(AUTHORS[case]["best_identity"]) + " (fresh)",
             f"minimum at beta < {_f(th['beta'])} and theory loss above it by > {Z:g} s.e. (paired, same prompts)",
             v["valley_min"]["beta"] < th["beta"] and d["mse"] > Z * d["se"],
             "a landscape without the finite-L shift (e.g. linear attention: flat along alpha*beta)")


def _fig8(r, rows):
    for kind, target in [(k, t) for k in ("linear", "softmax") for t in ("clean", "transformed") if f"{k}/{t}" in r]:
        v = r[f"{kind}/{target}"]
        fits = v["fits"]
        pv_alt = fits["PV_vs_identity"] if target == "clean" else fits["PV_vs_A_inv"]
        pv, kq, kq_alt = fits["PV_vs_theory"], fits["KQ_vs_theory"], fits["KQ_vs_identity"]
        # the theory explains >= 84% of |W|_F^2 (residual < 0.4) and beats the alternative structure
        ok = all(fit["rel_residual"] < min(0.4, alt["rel_residual"]) for fit, alt in ((pv, pv_alt), (kq, kq_alt)))
        tol = "residuals < 0.4 and < the alternative's"
        if target == "clean":  # the paper's Fig. 8 numbers are for the target x only
            ok = ok and abs(v["scale_product"] / FIG8_PRODUCT[kind] - 1) < 0.1
            tol += "; product within 10%"
        if kind == "softmax":  # Prop. 3.2's regime: small beta, large alpha (linear attention: both ~0.58)
            ok = ok and pv["scale"] > 1 and kq["scale"] < 0.3
            tol += "; alpha > 1 and beta < 0.3"
        pv_t = "A^-1" if target == "clean" else "I"
        said = (f"; alpha*beta {FIG8_PRODUCT[kind]}" if target == "clean" else " (derived from A.13)") + (
            f"; alpha {FIG8_SOFTMAX['alpha']}, beta {FIG8_SOFTMAX['beta']}" if kind == "softmax" else "")
        _row(rows, f"Fig8 {kind}, target {'x (A.12)' if target == 'clean' else 'Ax (A.13)'}: W_PV~{pv_t}, "
             "W_KQ~(AA^T)^-1", f"this structure{said}",
             f"rel. resid. PV {_f(pv['rel_residual'], 2)} (alt. {_f(pv_alt['rel_residual'], 2)}), KQ "
             f"{_f(kq['rel_residual'], 2)} (vs I {_f(kq_alt['rel_residual'], 2)}); alpha {_f(pv['scale'], 3)}, "
             f"beta {_f(kq['scale'], 3)}, alpha*beta {_f(v['scale_product'], 3)}", "", tol, ok,
             "the transform applied to the wrong side or target" + ("; softmax replaced by linear attention"
                                                                    if kind == "softmax" else ""))


def _thm31(r, rows):
    fit = r["fit"]
    _row(rows, "Thm3.1 softmax (1,1/sZ^2) -> oracle, sphere", "error -> 0 as L grows (~1/sqrt(L))",
         f"mean sq. deviation ~ L^{_f(fit['slope'], 3)} (+-{_f(fit['slope_se'], 2)}, L >= {fit['L_min']}); "
         f"{_f(r['deviation'][0], 3)} at L={r['L'][0]} -> {_f(r['deviation'][-1], 3)} at L={r['L'][-1]}", "",
         "slope in [-1.25, -0.75] (squared error ~ 1/L; finite-L curvature allowed)", -1.25 <= fit["slope"] <= -0.75,
         "a constant gap between Eq. (13) and the oracle (e.g. a Bessel order), which stops the decay")
    if "low_noise" in r:
        _thm31_low_noise(r["low_noise"], rows)


def _thm31_low_noise(u, rows):
    ex, att, opt = u["excess"], u["mse_attention"], u["mse_oracle"]
    finite = None not in (ex["mse"], ex["se"], att["mse"], opt["mse"])  # NaN is stored as None
    ratio = att["mse"] / opt["mse"] if finite else float("nan")
    _row(rows, "Thm3.1 at low noise: circle, sZ^2 = 1e-3 (beta = 1000)", "Eq. (13) -> oracle for every sigma_Z^2",
         (f"MSE / oracle {_f(ratio, 4)} (paired excess {_f(ex['mse'], 2)} +- {_f(ex['se'], 2)})" if finite else
          "not finite") + f" at L={u['L']}; logits up to {_f(u['max_logit'], 4)}", "",
         f"finite, excess > -{Z:g} s.e. and ratio < 1.10 (finite-L excess)", finite and ex["mse"] > -Z * ex["se"]
         and ratio < 1.10, "a softmax without its max-shift (exp overflows beyond logits of 709)")


def _prop32(r, rows):
    fit = r["fit"]
    _row(rows, "Prop3.2 small-eps expansion error O(eps)", "O(eps)",
         f"error ~ eps^{_f(fit['slope'], 3)} (eps <= 0.1); {_f(r['error'][-1], 3)} at eps={r['eps'][-1]}", "",
         "slope in [0.9, 1.1]", 0.9 <= fit["slope"] <= 1.1, "a softmax whose first-order term is not Eq. (15)")


def _oracle(r, rows):
    for case, u in [(c, r[c]) for c in LABEL if c in r]:
        ex, ra = u["excess"], u["radial"]
        ok = abs(ex["mse"]) < Z * ex["se"] + u["mc_noise"] and abs(ra["mse"]) < Z * ra["se"]
        _row(rows, f"Oracle {ORACLE_EQ[case]} = independent MC posterior mean ({LABEL[case]})",
             "Bayes-optimal denoiser", f"oracle MSE {_f(u['mse_oracle']['mse'])} vs MC {_f(u['mse_mc']['mse'])} "
             f"(paired excess {_f(ex['mse'], 2)} +- {_f(ex['se'], 2)}); radial offset {_f(ra['mse'], 2)} +- "
             f"{_f(ra['se'], 2)} ({u['batch']} prompts, ESS {_f(u['ess_median'], 3)})", "",
             f"|excess| < {Z:g} s.e. + the MC correction's size; |radial| < {Z:g} s.e. (two-sided)", ok,
             "a wrong oracle: Bessel order (off by 1/2, the authors' order), a scaled posterior, wrong weights")


_CHECKS = {"fig3": _fig3, "fig4a": _fig4a, "fig4b": _fig4b, "fig5": _fig5, "fig6": _fig6, "fig8": _fig8,
           "thm31": _thm31, "prop32": _prop32, "oracle": _oracle}


def verdicts(results: dict, *, quick: bool = False) -> list[dict]:
    """Rows of the verdict table for the experiments present in ``results`` (name -> combined result).

    Monte-Carlo tolerances scale with each run's own sizes; ``quick`` only widens the upper bound of the short
    online / identity runs of Fig. 3 (stated in their rows).
    """
    rows: list[dict] = []
    for name, check in _CHECKS.items():
        if name not in results:
            continue
        done = len(rows)
        try:
            check(results[name], rows, quick) if name == "fig3" else check(results[name], rows)
        except (TypeError, KeyError, ZeroDivisionError) as err:  # e.g. a NaN result, stored as None in JSON
            del rows[done:]
            _row(rows, f"{name}: results readable", "-", f"{type(err).__name__}: {err}", "", "every value present "
                 "and finite", False, "non-finite or missing results (NaN, overflow, a unit that returned None)")
    return rows
