"""``python -m icdmin train``: one paper case trained with the paper's protocol, printed epoch by epoch.

Each line shows the exact train and test MSE (:func:`icdmin.train.train`) beside the oracle's (the Bayes-optimal
posterior mean of Props. 2-4 on the same prompts); the subspace case with linear attention also prints the
finite-L optimum of PAPER.md §3.6.
"""

from __future__ import annotations

import sys

from .bayes import bayes_risk_linear, linear_risk, optimal_linear_gamma
from .tasks import GMMTask, LinearTask, SphereTask
from .train import mean_abs_offdiagonal, train

__all__ = ["PAPER_TASKS", "main"]


PAPER_TASKS = {  # the paper's three cases at its settings (PAPER.md §2, §5.1): n = 16, d = 8, K = 8
    "subspace": lambda: LinearTask(16, 8),  # sigma2_0 = 2, sigma2_z = 1
    "sphere": lambda: SphereTask(16, 8),  # R = 1, sigma2_z = 0.1
    "gmm": lambda: GMMTask(16, 8),  # sigma2_0 = 0.02, sigma2_z = 0.1, R = 1
}


def main(task="subspace", kind=None, *, seed=0, epochs=None, L=499, online=False, model="full", n_fresh=0,
         data_seed=None, eval_every=1, file=None) -> int:
    """``python -m icdmin train``: train on one paper case and print the exact train / test MSE per evaluation.

    The oracle (Bayes-optimal posterior mean, Props. 2-4) MSE on the same prompts is printed next to each line;
    for the subspace task with linear attention the finite-L optimum of PAPER.md §3.6 is printed as well.
    ``kind`` defaults to linear attention for the subspace task and softmax otherwise (the paper's Fig. 3).
    """
    if task not in PAPER_TASKS:
        raise ValueError(f"task must be one of {tuple(PAPER_TASKS)}, got {task!r}")
    kind = kind or ("linear" if task == "subspace" else "softmax")
    out = file if file is not None else sys.stdout
    the_task = PAPER_TASKS[task]()
    res = train(the_task, kind=kind, L=L, seed=seed, epochs=epochs, online=online, model=model, n_fresh=n_fresh,
                data_seed=data_seed, eval_every=eval_every)
    c, h = res.config, res.history
    print(f"icdmin train: {the_task!r}, kind={kind}, model={model}, L={L}, seed={seed}, "
          f"data_seed={c['data_seed']}, epochs={c['epochs']}{', online' if online else ''}; "
          f"{c['n_prompts'] - c['n_test']} train / {c['n_test']} test prompts, batch {c['batch_size']}, "
          f"Adam lr {c['lr']:g} x{c['schedule_factor']:g} at {', '.join(f'{f:.0%}' for f in c['schedule'])}",
          file=out)
    print(f"{'epoch':>5} {'lr':>9} {'train MSE':>11} {'oracle':>9} {'test MSE':>11} {'oracle':>9} "
          f"{'alpha':>8} {'beta':>8}", file=out)
    for i, epoch in enumerate(h["epoch"]):
        print(f"{epoch:5d} {h['lr'][i]:9.2g} {h['train_mse'][i]:11.6f} {res.bayes_train_mse:9.6f} "
              f"{h['test_mse'][i]:11.6f} {res.bayes_mse:9.6f} {h['alpha'][i]:8.4f} {h['beta'][i]:8.4f}", file=out)
    print(f"final weights: alpha = mean diag W_PV = {res.alpha:.4f}, beta = mean diag W_KQ = {res.beta:.4f}, "
          f"alpha*beta = {res.alpha * res.beta:.4f}; mean |off-diagonal| W_KQ {mean_abs_offdiagonal(res.W_KQ):.4f}, "
          f"W_PV {mean_abs_offdiagonal(res.W_PV):.4f}", file=out)
    if task == "subspace" and kind == "linear":
        t = the_task
        g = optimal_linear_gamma(t.d, L, t.sigma2_0, t.sigma2_z)
        print(f"theory (PAPER.md §3.6): Bayes risk {bayes_risk_linear(t.n, t.d, t.sigma2_0, t.sigma2_z):.6f}; "
              f"finite-L optimum alpha*beta = {g:.4f} with MSE {linear_risk(t.n, t.d, L, t.sigma2_0, t.sigma2_z, g):.6f}",
              file=out)
    if res.fresh_mse is not None:
        print(f"fresh prompts ({n_fresh}): MSE {res.fresh_mse:.6f}, oracle {res.fresh_bayes_mse:.6f}", file=out)
    print(f"time: {res.seconds:.2f} s in all, training loop (with the evaluations) {res.train_seconds:.2f} s", file=out)
    return 0
