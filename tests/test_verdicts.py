"""The verdicts can fail: doctored results fail each row, and injected library bugs fail at least one row.

(a) :func:`good` builds results that satisfy every row (values near the paper's); for each row there is at least one
doctored copy (both sides for two-sided rows) that must make exactly that claim fail. A new row without a doctor
fails ``test_every_row_has_a_doctor``. (b) Seven bugs are injected with pytest's monkeypatch into the module attributes
the experiments use, and the experiments that should notice are run in-process at small sizes; (c) the same runs on
the unmodified code hold, so (b) is not vacuous.
"""

import copy
import importlib
import sys

import numpy as np
import pytest

from icdmin import experiments
from icdmin.runner import plain

# the modules themselves, by import_module
bayes, tasks, train_module, train_eval = (importlib.import_module(f"icdmin.{m}")
                                          for m in ("bayes", "tasks", "training", "train_eval"))


# ------------------------------------------------------------------------------------- (a) doctored results
def _run(fresh, bayes_mse, **extra):
    return dict(fresh_mse=[fresh] * 2, fresh_bayes_mse=bayes_mse, **extra)


def good() -> dict:
    """Results that satisfy every verdict row (each field is one a row reads)."""
    def case(bayes_mse, se, lin, soft, online_identity):
        runs = {"linear": _run(lin[0], bayes_mse, **lin[1]), "softmax": _run(soft[0], bayes_mse, **soft[1])}
        return {"runs": runs, "baselines": {"oracle": {"mse": bayes_mse, "se": se}},
                "online": {"fresh_mse": online_identity, "fresh_bayes_mse": bayes_mse},
                "identity": {"fresh_mse": online_identity, "fresh_bayes_mse": bayes_mse}}

    w = dict(offdiag_KQ=[0.02] * 2, offdiag_PV=[0.02] * 2)
    fig3 = {"cases": {
        "linear": case(0.335, 0.004, (0.367, dict(gamma=[0.327, 0.3272], alpha=[0.57] * 2, beta=[0.57] * 2, **w)),
                       (0.37, dict(gamma=[0.31] * 2, alpha=[1.6] * 2, beta=[0.19] * 2, **w)), 0.347),
        "sphere": case(0.0288, 0.0003, (0.0310, dict(gamma=[4.6] * 2, alpha=[2.1] * 2, beta=[2.2] * 2, **w)),
                       (0.0315, dict(gamma=[5.7] * 2, alpha=[1.6, -1.6], beta=[3.6, -3.6], **w)), 0.0300),
        "gmm": case(0.0231, 0.0004, (0.042, dict(gamma=[3.0] * 2, alpha=[1.75] * 2, beta=[1.75] * 2, **w)),
                    (0.0285, dict(gamma=[5.1] * 2, alpha=[1.0] * 2, beta=[5.1] * 2, **w)), 0.0250)}}
    fig3["cases"]["sphere"]["baselines"].update(authors_bayes_line={"mse": 0.0301},
                                                authors_minus_oracle={"mse": 0.0013, "se": 0.00005})
    fig4a = {"L": [19, 499], "gamma": [0.22, 0.327], "gamma_star": [0.21, 0.3274], "fresh_mse": [0.6, 0.36],
             "fresh_bayes_mse": [0.335, 0.335], "n_fresh": 2000}
    curve = lambda m, t: {"d_inv_mse": m, "d_inv_mse_se": [0.02] * 3, "theory_learned_gamma": t}  # noqa: E731
    fig4b = {"curves": {"29": curve([0.8, 1.0, 1.2], [0.78, 1.0, 1.25]), "49": curve([0.75, 0.85, 0.9],
                                                                                   [0.74, 0.85, 0.92]),
                        "499": curve([0.68, 0.7, 0.72], [0.67, 0.69, 0.71])}}
    est = {k: {"total_sq_error": v, "total_sq_error_se": 0.002} for k, v in
           {"query": 0.198, "1 step": 0.132, "2 steps": 0.170, "5 steps": 0.260, "50 steps": 0.451,
            "retrieval": 0.149, "oracle": 0.107}.items()}
    dam = {k: {"mse": v} for k, v in {"1 step": 0.03, "retrieval": 0.05, "converged": 0.07, "oracle": 0.029}.items()}
    fig5 = {"tables": {"circle": {"estimators": est, "setting": {"batch": 20000},
                                  "converged": {"near_token_fraction": 0.0, "median_nearest_distance": 0.05}},
                       "sphere": {"estimators": dam}, "gmm": {"estimators": copy.deepcopy(dam)}}}
    valley = lambda b, loss: {"valley_min": {"alpha": 1.0, "beta": b, "loss": loss},  # noqa: E731
                              "trained": {"loss": loss * 1.001},
                              "theory": {"alpha": 1.0, "beta": 10.0, "loss": loss * 1.05},
                              "theory_minus_min": {"mse": loss * 0.05, "se": loss * 0.002}}
    fig6 = {"sphere": valley(4.1, 0.0306), "gmm": valley(5.6, 0.0249)}
    fit = lambda s, r: {"scale": s, "rel_residual": r}  # noqa: E731
    fig8 = {}
    for kind, (a, b) in (("linear", (0.575, 0.58)), ("softmax", (1.75, 0.183))):
        for target in ("clean", "transformed"):
            fig8[f"{kind}/{target}"] = {"scale_product": a * b, "fits": {
                "PV_vs_theory": fit(a, 0.1), "PV_vs_identity": fit(a, 1.0), "PV_vs_A_inv": fit(a, 1.0),
                "KQ_vs_theory": fit(b, 0.2), "KQ_vs_identity": fit(b, 0.65)}}
    thm31 = {"fit": {"slope": -0.9, "slope_se": 0.02, "L_min": 100}, "deviation": [0.03, 0.0002], "L": [10, 10000],
             "low_noise": {"L": 2000, "max_logit": 1080.0, "excess": {"mse": 4e-6, "se": 6e-6},
                           "mse_attention": {"mse": 4.6e-4}, "mse_oracle": {"mse": 4.5e-4}}}
    prop32 = {"fit": {"slope": 1.0}, "error": [0.5, 0.001], "eps": [1.0, 0.001]}
    oracle = {c: {"excess": {"mse": 1e-6, "se": 3e-5}, "radial": {"mse": 1e-4, "se": 3e-4}, "mc_noise": 5e-5,
                  "mse_oracle": {"mse": m}, "mse_mc": {"mse": m}, "batch": 500, "ess_median": 200.0}
              for c, m in (("linear", 0.33), ("sphere", 0.029), ("gmm", 0.023))}
    return {"fig3": fig3, "fig4a": fig4a, "fig4b": fig4b, "fig5": fig5, "fig6": fig6, "fig8": fig8,
            "thm31": thm31, "prop32": prop32, "oracle": oracle}


def _set(path, value):
    """A doctor that sets results[path...] = value (value may be a function of the old value)."""
    def doctor(res):
        *head, last = path
        node = res
        for key in head:
            node = node[key]
        node[last] = value(node[last]) if callable(value) else value
    return doctor


C = ("fig3", "cases")
CIRC = ("fig5", "tables", "circle")
DOCTORS = [  # (claim prefix, what the doctor does, doctor)
    ("Fig3 C1 linear attn", "gamma off", _set(C + ("linear", "runs", "linear", "gamma"), [0.327, 0.2])),
    ("Fig3 C3 softmax: (alpha", "beta low", _set(C + ("gmm", "runs", "softmax", "beta"), [1.7] * 2)),
    ("Fig3 C2 softmax: (alpha", "product high", _set(C + ("sphere", "runs", "softmax", "gamma"), [7.0] * 2)),
    ("Fig3 weights are near", "untrained off-diagonals", _set(C + ("gmm", "runs", "softmax", "offdiag_KQ"), [1.0] * 2)),
    *[(f"Fig3 {lab} held-out", side, _set(C + (case, "runs", kind, "fresh_mse"), [v] * 2))
      for lab, case, kind, lo, hi in (("C1", "linear", "linear", 0.30, 0.45), ("C2", "sphere", "softmax", 0.027, 0.04),
                                      ("C3", "gmm", "softmax", 0.021, 0.031))
      for side, v in (("beats Bayes", lo), ("over-fits", hi))],
    *[(f"Fig3 {lab} {prot} training", side, _set(C + (case, prot, "fresh_mse"), v))
      for prot in ("online", "identity")
      for lab, case, lo, hi in (("C1", "linear", 0.30, 0.40), ("C2", "sphere", 0.027, 0.032),
                                ("C3", "gmm", 0.021, 0.027))
      for side, v in (("beats Bayes", lo), ("not converged", hi))],
    ("C2 authors' 'Bayes' line", "no gap", _set(C + ("sphere", "baselines", "authors_minus_oracle", "mse"), 1e-5)),
    ("Fig7 linear vs softmax", "C3 linear as good", _set(C + ("gmm", "runs", "linear", "fresh_mse"), [0.0285] * 2)),
    ("Fig3 C1 softmax: small beta", "linear-like scales", _set(C + ("linear", "runs", "softmax", "beta"), [0.57] * 2)),
    ("Fig4a learned gamma", "gamma off", _set(("fig4a", "gamma"), [0.1, 0.1])),
    ("Fig4a MSE -> Bayes", "beats Bayes", _set(("fig4a", "fresh_mse"), [0.6, 0.30])),
    ("Fig4a MSE -> Bayes", "not converged", _set(("fig4a", "fresh_mse"), [0.6, 0.40])),
    ("Fig4b d-shift", "beats Bayes", _set(("fig4b", "curves", "499", "d_inv_mse"), [0.5, 0.7, 0.72])),
    ("Fig4b d-shift", "not kept", _set(("fig4b", "curves", "499", "d_inv_mse"), [0.68, 0.7, 0.9])),
    ("Fig4b vs scaled-identity", "off theory", _set(("fig4b", "curves", "29", "d_inv_mse"), [1.0, 1.3, 1.5])),
    ("Fig5 circle: 1 step <", "order", _set(CIRC + ("estimators", "1 step", "total_sq_error"), 0.2)),
    ("Fig5 circle table", "too low", _set(CIRC + ("estimators", "oracle", "total_sq_error"), 0.09)),
    ("Fig5 circle table", "too high", _set(CIRC + ("estimators", "50 steps", "total_sq_error"), 0.5)),
    ("Fig5 sphere L=499", "order", _set(("fig5", "tables", "sphere", "estimators", "1 step", "mse"), 0.06)),
    ("Fig5 gmm L=499", "order", _set(("fig5", "tables", "gmm", "estimators", "converged", "mse"), 0.02)),
    ("Fig5 iterating ends", "tokens", _set(CIRC + ("converged", "near_token_fraction"), 0.5)),
    ("Fig6 C2 trained", "off valley", _set(("fig6", "sphere", "trained", "loss"), 0.04)),
    ("Fig6 C3 trained", "off valley", _set(("fig6", "gmm", "trained", "loss"), 0.03)),
    ("Fig6 C2 theory point", "no gap", _set(("fig6", "sphere", "theory_minus_min", "mse"), 1e-6)),
    ("Fig6 C3 theory point", "minimum at beta 10", _set(("fig6", "gmm", "valley_min", "beta"), 10.0)),
    *[(f"Fig8 {kind}, target {t}", "structure lost", _set(("fig8", f"{kind}/{tg}", "fits", "KQ_vs_theory"),
                                                          {"scale": 0.3, "rel_residual": 0.7}))
      for kind in ("linear", "softmax") for t, tg in (("x (A.12)", "clean"), ("Ax (A.13)", "transformed"))],
    ("Fig8 linear, target x", "product off", _set(("fig8", "linear/clean", "scale_product"), 0.25)),
    ("Fig8 softmax, target x", "linear-like scales", _set(("fig8", "softmax/clean", "fits", "PV_vs_theory", "scale"),
                                                          0.6)),
    ("Fig8 softmax, target Ax", "linear-like scales", _set(("fig8", "softmax/transformed", "fits", "KQ_vs_theory",
                                                            "scale"), 0.55)),
    ("Thm3.1", "no decay", _set(("thm31", "fit", "slope"), -0.2)),
    ("Thm3.1", "too fast", _set(("thm31", "fit", "slope"), -2.0)),
    ("Thm3.1 at low noise", "NaN (None in JSON)", _set(("thm31", "low_noise", "excess", "mse"), None)),
    ("Thm3.1 at low noise", "beats the oracle", _set(("thm31", "low_noise", "excess", "mse"), -1e-4)),
    ("Thm3.1 at low noise", "far from the oracle", _set(("thm31", "low_noise", "mse_attention", "mse"), 6e-4)),
    ("Prop3.2", "not O(eps)", _set(("prop32", "fit", "slope"), 0.5)),
    *[(f"Oracle {eq} = independent MC posterior mean ({lab})", side, _set(("oracle", case, stat, "mse"), v))
      for case, lab, eq in (("linear", "C1", "Eq. (3)"), ("sphere", "C2", "Eq. (6)"), ("gmm", "C3", "Eq. (7)"))
      for side, stat, v in (("worse than MC", "excess", 5e-4), ("better than MC", "excess", -5e-4),
                            ("over-shrunk", "radial", 0.01), ("under-shrunk", "radial", -0.01))],
]


def _rows(results, quick=False):
    return {r["claim"]: r for r in experiments.verdicts(results, quick=quick)}


def test_good_results_hold_and_every_row_has_fields():
    rows = experiments.verdicts(good())
    assert len(rows) == 39
    for r in rows:
        assert r["holds"], r
        assert set(r) == {"claim", "paper", "measured", "authors", "tolerance", "holds", "guards"}
        assert r["guards"] and r["tolerance"]


def test_every_row_has_a_doctor():
    for claim in _rows(good()):
        assert any(claim.startswith(prefix) for prefix, _, _ in DOCTORS), claim


@pytest.mark.parametrize("prefix, what, doctor", DOCTORS, ids=[f"{p} / {w}" for p, w, _ in DOCTORS])
def test_each_doctored_result_fails_its_row(prefix, what, doctor):
    res = good()
    doctor(res)
    rows = _rows(res)
    hit = [r for claim, r in rows.items() if claim.startswith(prefix)]
    assert hit, prefix
    assert not all(r["holds"] for r in hit), (what, hit)
    others = [c for c, r in rows.items() if not r["holds"] and not c.startswith(prefix)]
    assert len(others) <= 1, others  # a doctor touches one quantity (Fig. 7 also reads the Fig. 3 MSEs)


def test_unreadable_results_fail_their_experiment_instead_of_raising():
    res = good()
    res["fig4a"]["fresh_mse"] = [None, None]  # a NaN MSE, as JSON stores it
    rows = _rows(res)
    assert not rows["fig4a: results readable"]["holds"]
    assert not [c for c in rows if c.startswith("Fig4a")]
    assert all(r["holds"] for c, r in rows.items() if not c.startswith("fig4a"))


def test_quick_widens_only_the_short_runs_upper_bound():
    res = good()
    res["fig3"]["cases"]["gmm"]["online"]["fresh_mse"] = 0.0231 * 1.15  # 1.15 x Bayes: > 1.03, < 1.10 x 1.083
    assert not _rows(res)["Fig3 C3 online training: fresh MSE / Bayes"]["holds"]
    assert _rows(res, quick=True)["Fig3 C3 online training: fresh MSE / Bayes"]["holds"]


# --------------------------------------------------------------------------- (b), (c) injected library bugs
def run_inline(name, **config):
    """One experiment in this process (so that monkeypatches apply), quick sizes updated by ``config``."""
    exp = experiments.EXPERIMENTS[name]
    cfg = dict(exp.config(True), **config)
    units = {label: plain(fn(**kwargs)) for label, (fn, kwargs, _) in exp.plan(cfg, 0).items()}
    return plain(exp.combine(cfg, units))


def _kind_to_linear(fn):
    def wrapped(*args, **kwargs):
        args = tuple("linear" if isinstance(a, str) and a == "softmax" else a for a in args)
        if kwargs.get("kind") == "softmax":
            kwargs["kind"] = "linear"
        return fn(*args, **kwargs)
    return wrapped


def _inject(mp, bug):
    if bug == "gradient sign flip":
        orig = train_module._loss_and_grads
        mp.setattr(train_module, "_loss_and_grads", lambda *a, **k: (lambda r: (r[0], tuple(-g for g in r[1])))(
            orig(*a, **k)))
    elif bug == "lr = 0":
        mp.setattr(train_module, "step_schedule", lambda *a, **k: 0.0)
    elif bug == "softmax -> linear":
        for module, name in ((train_module, "loss_and_grads_numpy_unchecked"),
                             (train_module, "loss_and_grads_unchecked"),
                             (train_eval, "attention"), (train_eval, "attention_forward")):
            mp.setattr(module, name, _kind_to_linear(getattr(module, name)))
    elif bug in ("Bessel order + 1/2", "authors' Bessel order"):
        orig = bayes.ive_ratio  # called with nu = (d + 1)/2; the authors' code uses d - 1/2 = 2 nu - 3/2
        shift = (lambda nu: nu + 0.5) if bug == "Bessel order + 1/2" else (lambda nu: 2 * nu - 1.5)
        mp.setattr(bayes, "ive_ratio", lambda nu, kappa: orig(shift(nu), kappa))
    elif bug == "softmax without max-shift":
        orig = importlib.import_module("icdmin.dam").softmax
        def naive(z, axis=-1):  # exp overflows to inf beyond 709, inf / inf = NaN
            with np.errstate(over="ignore", invalid="ignore"):
                return np.exp(z) / np.sum(np.exp(z), axis=axis, keepdims=True)
        for mod in [m for name, m in sys.modules.items() if name.startswith("icdmin")]:
            if getattr(mod, "softmax", None) is orig:
                mp.setattr(mod, "softmax", naive)
    elif bug == "mixture posterior x 1.1":
        orig = tasks.posterior_mean_gmm
        mp.setattr(tasks, "posterior_mean_gmm", lambda *a, **k: 1.1 * orig(*a, **k))


FIG4B = dict(d=[1, 8, 15], n_eval=300)
LOW_NOISE = dict(L=[100, 300, 1000], batch=50, low_noise=dict(L=2000, sigma2_z=1e-3, batch=200))
BUGS = {  # bug -> (experiment, its config, the claims that must notice)
    "gradient sign flip": ("fig4b", FIG4B, ["Fig4b d-shift"]),
    "lr = 0": ("fig4b", FIG4B, ["Fig4b d-shift"]),
    "softmax -> linear": ("fig8", dict(epochs=100), ["Fig8 softmax, target x", "Fig8 softmax, target Ax"]),
    "Bessel order + 1/2": ("oracle", dict(cases=["sphere"], batch=60), ["Oracle Eq. (6)"]),
    "authors' Bessel order": ("oracle", dict(cases=["sphere"], batch=60), ["Oracle Eq. (6)"]),
    "mixture posterior x 1.1": ("oracle", dict(cases=["gmm"], batch=60), ["Oracle Eq. (7)"]),
    "softmax without max-shift": ("thm31", LOW_NOISE, ["Thm3.1 at low noise"]),
}
CLEAN = [("fig4b", FIG4B, ["Fig4b d-shift"]), BUGS["softmax -> linear"],
         ("oracle", dict(cases=["sphere", "gmm"], batch=60), ["Oracle Eq. (6)", "Oracle Eq. (7)"]),
         BUGS["softmax without max-shift"]]


def _watched(name, config, prefixes, quick=True):
    rows = _rows({name: run_inline(name, **config)}, quick=quick)
    hit = {c: r["holds"] for c, r in rows.items() if any(c.startswith(p) for p in prefixes)}
    assert len(hit) >= len(prefixes), rows.keys()
    return hit


@pytest.mark.parametrize("bug", list(BUGS))
def test_an_injected_bug_fails_a_verdict(bug, monkeypatch):
    name, config, prefixes = BUGS[bug]
    _inject(monkeypatch, bug)
    hit = _watched(name, config, prefixes)
    assert not all(hit.values()), (bug, hit)


@pytest.mark.parametrize("name, config, prefixes", CLEAN, ids=[c[0] for c in CLEAN])
def test_the_same_verdicts_hold_on_the_unmodified_code(name, config, prefixes):
    hit = _watched(name, config, prefixes)
    assert all(hit.values()), hit
