"""Every setting and reference number of the paper (and of the authors' code) that the reproduction uses, in one place.

The experiment modules (``icdmin.exp_*``, one per figure: plans, units, verdicts, figures) import these names;
nothing else in icdmin types them again. :data:`SOURCES` gives each name its origin:

- the paper: Smart, Bietti, Sengupta, "In-context denoising with one-layer transformers", ICML 2025, arXiv 2502.05164
  (figure, section or equation; numbers printed inside a figure are read from its text layer);
- the authors' code: the repository mattsmart/in-context-denoising at commit c8aaeb3 (file where known);
- the authors' code's *measured* numbers: obtained by running that code unchanged on a 2-core CPU (torch 2.13 CPU
  build, float32, seed 0 for data and weights), MSEs "exact" over the whole set, "fresh" on 5000 new prompts;
- numbers derived for icdmin (the paper does not print them), with the method.

Case names: "linear" (paper Case 1, linear subspaces), "sphere" (Case 2, d-spheres), "gmm" (Case 3, Gaussian
mixtures); the authors' code numbers them 0, 2, 1. MSEs are per coordinate (the paper's "MSE/n").
"""

from __future__ import annotations

import numpy as np

from .tasks import GMMTask, LinearTask, SphereTask, haar_basis

__all__ = [
    "AUTHORS", "CASES", "CASE_TITLES", "CIRCLE", "CIRCLE_TOTAL_SQ_ERROR", "EPOCHS", "FIG3_C1_GAMMA",
    "FIG3_C1_SOFTMAX", "FIG3_C2_SOFTMAX", "FIG3_C3_SOFTMAX", "FIG4A_L", "FIG4B_D", "FIG4B_L", "FIG8_EPOCHS",
    "FIG8_PRODUCT", "FIG8_SOFTMAX", "L_PAPER", "N", "PRIMARY_KIND", "SOURCES", "TASK_PARAMS", "THEORY_POINT",
    "A_SEED", "make_task", "transform_matrix",
]

ARXIV = "arXiv 2502.05164"
CODE = "mattsmart/in-context-denoising at commit c8aaeb3"
MEASURED = (f"measured by running the authors' code ({CODE}) unchanged on a 2-core CPU, torch 2.13 CPU build, "
            "seed 0 (1000 prompts split 800/200; 'fresh' = 5000 new prompts)")

# ------------------------------------------------------------------------------------------------ settings
N = 16  # ambient token dimension n
L_PAPER = 499  # clean context tokens; the paper's "L = 500" and the code's context_len = 500 count the query
CASES = ("linear", "sphere", "gmm")  # paper Cases 1, 2, 3
TASK_PARAMS = {
    "linear": dict(n=N, d=8, sigma2_0=2.0, sigma2_z=1.0),
    "sphere": dict(n=N, d=8, R=1.0, sigma2_z=0.1),
    "gmm": dict(n=N, K=8, sigma2_0=0.02, sigma2_z=0.1, R=1.0),
}
CASE_TITLES = {"linear": "Case 1: linear subspaces", "sphere": "Case 2: d-spheres", "gmm": "Case 3: Gaussian mixtures"}
PRIMARY_KIND = {"linear": "linear", "sphere": "softmax", "gmm": "softmax"}  # the attention Fig. 3 trains per case
EPOCHS = {"linear": 100, "sphere": 200, "gmm": 200}
FIG8_EPOCHS = 500
FIG4A_L = [19, 29, 39, 49, 59, 69, 79, 89] + list(range(99, 500, 40))  # context_len grid minus the query
FIG4B_L = [29, 49, 499]  # the curves drawn in Fig. 4b (context_len 30, 50, 500)
FIG4B_D = list(range(1, 16))  # inference-time subspace dimensions
CIRCLE = dict(n=2, d=1, R=1.0, sigma2_z=0.1, L=20, alpha=1.0, beta=10.0)  # Fig. 5
THEORY_POINT = {"alpha": 1.0, "beta": 10.0}  # Eq. (13) for sigma2_z = 0.1: alpha = 1, beta = 1/sigma2_z
A_SEED = 8  # seed of icdmin's fixed App. H transform (transform_matrix); fixed, not derived from the master seed


def make_task(case: str, *, d=None, transform_seed=None, target="clean"):
    """The paper's task for ``case`` (:data:`icdmin.paper.TASK_PARAMS`).

    ``d`` overrides the dimension; ``transform_seed`` adds App. H's transform A (:func:`transform_matrix`).
    """
    params = dict(TASK_PARAMS[case])
    if d is not None:
        params["d"] = d
    if case == "linear":
        extra = {} if transform_seed is None else {"transform": transform_matrix(params["n"], transform_seed)}
        return LinearTask(**params, **extra, target=target)
    return SphereTask(**params) if case == "sphere" else GMMTask(**params)


def transform_matrix(n: int, seed: int = A_SEED) -> np.ndarray:
    """The fixed App. H transform: A = U diag(s) Vᵀ, U, V Haar-orthogonal, s geometric from 0.5 to 2 (cond 4).

    The paper does not give its A (arXiv 2502.05164 App. H); this one is well conditioned and far from a
    multiple of the identity, so that "W ∝ A⁻¹" and "W ∝ I" are easy to tell apart. Shapes: -> (n, n).
    """
    rng = np.random.default_rng(seed)
    U, V = haar_basis(rng, 2, n, n)  # (n, n) each
    return U @ np.diag(np.geomspace(0.5, 2.0, n)) @ V.T


# ---------------------------------------------------------------------------------------- the paper's numbers
FIG3_C1_GAMMA = 0.327  # <w_KQ><w_PV>, linear attention, Case 1
FIG3_C1_SOFTMAX = {"alpha": 1.607, "beta": 0.194}  # softmax attention on Case 1 (small-beta regime)
FIG3_C2_SOFTMAX = {"alpha": 1.603, "beta": 3.596}
FIG3_C3_SOFTMAX = {"alpha": 0.998, "beta": 5.127}
FIG8_PRODUCT = {"linear": 0.333, "softmax": 0.311}  # alpha * beta, target x
FIG8_SOFTMAX = {"alpha": 1.61, "beta": 0.193}  # softmax attention, target x
CIRCLE_TOTAL_SQ_ERROR = {"query": 0.198, "1 step": 0.132, "2 steps": 0.170, "5 steps": 0.260, "50 steps": 0.451,
                         "retrieval": 0.149, "oracle": 0.107}  # summed over the 2 coordinates, 20000 prompts

# ------------------------------------------------------------------------------- the authors' code, measured
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

SOURCES = {
    "N": f"{ARXIV}, Fig. 3 set-up (n = 16); {CODE}, src/settings.py (dim_n)",
    "L_PAPER": f"{ARXIV}, Fig. 3 set-up (L = 500); {CODE}, src/settings.py (context_len = 500 includes the query)",
    "CASES": f"{ARXIV}, Fig. 1b (Cases 1-3); {CODE} numbers them datagen_case 0 (linear), 2 (sphere), 1 (GMM)",
    "TASK_PARAMS": f"{ARXIV}, Fig. 3 and Fig. 7 set-up; {CODE}, src/settings.py",
    "CASE_TITLES": f"{ARXIV}, Fig. 1b (the three task families)",
    "PRIMARY_KIND": f"{ARXIV}, Fig. 3 (linear attention for Case 1, softmax for Cases 2 and 3)",
    "EPOCHS": f"{CODE}, src/nn_train_ensemble.py (the paper does not state the epochs of Fig. 3)",
    "FIG8_EPOCHS": f"{ARXIV}, App. H (Fig. 8: 500 epochs)",
    "FIG4A_L": f"{CODE}, src/nn_train_ensemble.py multirun_ensemble and scripts/replot_multitraj_vary_contextlen.py",
    "FIG4B_L": f"{ARXIV}, Fig. 4b; {CODE}, analysis_case_linear_inference_dim_d.ipynb",
    "FIG4B_D": f"{ARXIV}, Fig. 4b (d = 1..15 at inference, trained at d = 8)",
    "CIRCLE": f"{ARXIV}, Fig. 5 (its caption's 'sigma_Z^2 = 10' is beta = 10); {CODE}, "
              "scripts/analysis_energy_landscape_traj.py (sigma2_noise = 0.1)",
    "THEORY_POINT": f"{ARXIV}, Eq. (13) and Fig. 6 (green point)",
    "FIG3_C1_GAMMA": f"{ARXIV}, Fig. 3 (<w_KQ><w_PV> = 0.327 ~ 1/3)",
    "FIG3_C1_SOFTMAX": f"{ARXIV}, Fig. 3 (softmax on Case 1, figure text layer)",
    "FIG3_C2_SOFTMAX": f"{ARXIV}, Fig. 3b / Fig. 7 (figure text layer; mapping of W_KQ, W_PV inferred)",
    "FIG3_C3_SOFTMAX": f"{ARXIV}, Fig. 3b (figure text layer)",
    "FIG8_PRODUCT": f"{ARXIV}, App. H, Fig. 8 (figure text layer; mapping inferred)",
    "FIG8_SOFTMAX": f"{ARXIV}, App. H, Fig. 8 (figure text layer; mapping inferred)",
    "CIRCLE_TOTAL_SQ_ERROR": "derived for icdmin, not printed in the paper: a 20000-prompt Monte Carlo of the "
                             f"Fig. 5 setting ({ARXIV}, §4)",
    "AUTHORS": MEASURED,
    "A_SEED": f"icdmin's choice: {ARXIV}, App. H does not give its transform A",
    "make_task": f"TASK_PARAMS as task objects; the transform A of {ARXIV}, App. H (icdmin's choice, A_SEED)",
    "transform_matrix": f"icdmin's choice of the App. H transform A ({ARXIV} does not give it)",
}
