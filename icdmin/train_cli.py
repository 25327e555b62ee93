"""``python -m icdmin train``: one paper case trained with the paper's protocol, printed epoch by epoch; ``--save DIR``
keeps the weights and the history, ``--load DIR`` evaluates saved weights without training.

Each line shows the exact train and test MSE (:func:`icdmin.training.train`) beside the oracle's (the Bayes-optimal
posterior mean of Props. 2-4 on the same prompts); the subspace case with linear attention also prints the Bayes
risk (paper Eq. 4) and the finite-L optimum of linear attention (derived in docs/maths.md §3).

Saved files: ``DIR/weights.npz`` (arrays ``W_KQ``, ``W_PV``, each (n, n)) and ``DIR/history.json`` (the paper case,
the resolved training settings, the history and the final MSEs; NaN is written as null).
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from .bayes import bayes_risk_linear, linear_risk, optimal_linear_gamma
from .tasks import GMMTask, LinearTask, SphereTask
from .training import TrainConfig, evaluate, fresh_prompts, mean_abs_offdiagonal, paper_epochs, split_prompts, train
from .train_setup import N_PROMPTS_PAPER, n_test_of

__all__ = ["PAPER_TASKS", "check_dirs", "evaluate_saved", "load_run", "main", "save_run"]

WEIGHTS, HISTORY = "weights.npz", "history.json"

PAPER_TASKS = {  # the paper's three cases at its settings (arXiv 2502.05164 §2, App. G): n = 16, d = 8, K = 8
    "subspace": lambda: LinearTask(16, 8),  # sigma2_0 = 2, sigma2_z = 1
    "sphere": lambda: SphereTask(16, 8),  # R = 1, sigma2_z = 0.1
    "gmm": lambda: GMMTask(16, 8),  # sigma2_0 = 0.02, sigma2_z = 0.1, R = 1
}


def check_dirs(save=None, load=None) -> str | None:
    """The command-line error for ``--save`` / ``--load`` (None when both are usable), checked before any compute.

    ``save``: a folder, created if needed, in which a test file can be written (and is removed again).
    ``load``: a folder holding ``weights.npz`` and ``history.json``.
    """
    if save is not None:
        if not save or (os.path.exists(save) and not os.path.isdir(save)):
            return f"argument --save: expected a folder, got {save!r}"
        try:
            os.makedirs(save, exist_ok=True)
            probe = os.path.join(save, f".write-test-{os.getpid()}")
            with open(probe, "xb"):
                pass
            os.unlink(probe)
        except OSError as err:
            return f"argument --save: cannot write in {save!r} ({err.strerror or err})"
    if load is not None:
        missing = [name for name in (WEIGHTS, HISTORY) if not os.path.isfile(os.path.join(load, name))]
        if missing:
            return f"argument --load: {load!r} has no {' or '.join(missing)} (written by train --save)"
    return None


def _json_safe(value):
    """NaN / inf -> None, tuples -> lists, NumPy scalars -> Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


def _write_atomic(path: str, write) -> None:
    """Write through a temporary file in the same folder, then rename (no half-written file on Ctrl-C)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_run(folder: str, case: str, res) -> None:
    """Write ``folder/weights.npz`` (W_KQ, W_PV) and ``folder/history.json`` for a ``train`` result of ``case``."""
    os.makedirs(folder, exist_ok=True)
    record = {"case": case, "config": res.config, "history": res.history, "alpha": res.alpha, "beta": res.beta,
              "bayes_mse": res.bayes_mse, "bayes_train_mse": res.bayes_train_mse, "fresh_mse": res.fresh_mse,
              "fresh_bayes_mse": res.fresh_bayes_mse, "seconds": res.seconds}
    text = json.dumps(_json_safe(record), indent=1, allow_nan=False).encode()
    _write_atomic(os.path.join(folder, WEIGHTS), lambda fh: np.savez(fh, W_KQ=res.W_KQ, W_PV=res.W_PV))
    _write_atomic(os.path.join(folder, HISTORY), lambda fh: fh.write(text))


def load_run(folder: str):
    """(W_KQ, W_PV, record) saved by :func:`save_run`. Raises ValueError naming the file if it is not one."""
    with np.load(os.path.join(folder, WEIGHTS)) as data:
        if not {"W_KQ", "W_PV"} <= set(data.files):
            raise ValueError(f"{os.path.join(folder, WEIGHTS)} must hold arrays W_KQ and W_PV, has {data.files}")
        W_KQ, W_PV = data["W_KQ"], data["W_PV"]
    with open(os.path.join(folder, HISTORY)) as fh:
        record = json.load(fh)
    keys = ("kind", "L", "data_seed", "n_prompts", "test_fraction", "epochs")
    if (not isinstance(record, dict) or record.get("case") not in PAPER_TASKS
            or not isinstance(record.get("config"), dict) or not all(k in record["config"] for k in keys)):
        raise ValueError(f"{os.path.join(folder, HISTORY)} is not a train --save history (case, config {keys})")
    return W_KQ, W_PV, record


def evaluate_saved(folder: str, run, *, n_fresh: int = 0, file=None) -> int:
    """``train --load DIR``: saved weights ``run = load_run(folder)`` on the run's own test prompts (rebuilt from
    its case and data seed by :func:`split_prompts`) and on ``n_fresh`` fresh prompts."""
    out = file if file is not None else sys.stdout
    W_KQ, W_PV, record = run
    c = record["config"]
    task = PAPER_TASKS[record["case"]]()
    _, test = split_prompts(task, L=c["L"], data_seed=c["data_seed"], n_prompts=c["n_prompts"],
                            test_fraction=c["test_fraction"])
    got = evaluate(W_KQ, W_PV, test, kind=c["kind"])
    print(f"icdmin train --load {folder}: {task!r}, kind={c['kind']}, L={c['L']}, data_seed={c['data_seed']}, "
          f"trained {c['epochs']} epochs", file=out)
    saved = record["history"]["test_mse"][-1]
    print(f"test prompts ({got['n_prompts']}): MSE {got['mse']:.6f} (saved run: {saved:.6f}), "
          f"oracle {got['oracle_mse']:.6f}", file=out)
    if n_fresh:
        sq = sq_bayes = 0.0
        for chunk in fresh_prompts(task, L=c["L"], data_seed=c["data_seed"], n_fresh=n_fresh):
            part = evaluate(W_KQ, W_PV, chunk, kind=c["kind"])
            sq, sq_bayes = sq + part["mse"] * len(chunk), sq_bayes + part["oracle_mse"] * len(chunk)
        print(f"fresh prompts ({n_fresh}): MSE {sq / n_fresh:.6f}, oracle {sq_bayes / n_fresh:.6f}", file=out)
    return 0


def main(task="subspace", kind=None, *, seed=0, epochs=None, L=499, online=False, model="full", n_fresh=0,
         data_seed=None, eval_every=1, save=None, file=None) -> int:
    """``python -m icdmin train``: train on one paper case and print the exact train / test MSE per evaluation.

    The oracle (Bayes-optimal posterior mean, Props. 2-4) MSE on the same prompts is printed next to each line;
    for the subspace task with linear attention the Bayes risk (Eq. 4) and the finite-L optimum as well.
    ``kind`` defaults to linear attention for the subspace task and softmax otherwise (the paper's Fig. 3).
    ``save``: a folder for :func:`save_run`.
    """
    if task not in PAPER_TASKS:
        raise ValueError(f"task must be one of {tuple(PAPER_TASKS)}, got {task!r}")
    kind = kind or ("linear" if task == "subspace" else "softmax")
    out = file if file is not None else sys.stdout
    the_task = PAPER_TASKS[task]()
    cfg = TrainConfig(kind=kind, L=L, seed=seed, epochs=epochs, online=online, model=model, n_fresh=n_fresh,
                      data_seed=data_seed, eval_every=eval_every)
    _print_header(the_task, cfg, out)
    res = train(the_task, cfg)
    _print_run(the_task, task, res, out)
    if save is not None:
        save_run(save, task, res)
        print(f"saved {os.path.join(save, WEIGHTS)} and {os.path.join(save, HISTORY)}", file=out)
    return 0


def _print_header(the_task, cfg: TrainConfig, out) -> None:
    """What is about to run (printed before the training starts)."""
    n_prompts = cfg.n_prompts or N_PROMPTS_PAPER
    n_test = n_test_of(cfg.test_fraction, n_prompts)
    print(f"icdmin train: {the_task!r}, kind={cfg.kind}, model={cfg.model}, L={cfg.L}, seed={cfg.seed}, "
          f"data_seed={cfg.seed if cfg.data_seed is None else cfg.data_seed}, "
          f"epochs={cfg.epochs or paper_epochs(the_task)}{', online' if cfg.online else ''}; "
          f"{n_prompts - n_test} train / {n_test} test prompts, batch {cfg.batch_size}, Adam lr {cfg.lr:g} "
          f"x{cfg.schedule_factor:g} at {', '.join(f'{f:.0%}' for f in cfg.schedule)}", file=out, flush=True)


def _print_run(the_task, task: str, res, out) -> None:
    """One line per evaluation, the final weights, the theory line and the timings."""
    c, h = res.config, res.history
    print(f"{'epoch':>5} {'lr':>9} {'train MSE':>11} {'oracle':>9} {'test MSE':>11} {'oracle':>9} "
          f"{'alpha':>8} {'beta':>8}", file=out)
    for i, epoch in enumerate(h["epoch"]):
        print(f"{epoch:5d} {h['lr'][i]:9.2g} {h['train_mse'][i]:11.6f} {res.bayes_train_mse:9.6f} "
              f"{h['test_mse'][i]:11.6f} {res.bayes_mse:9.6f} {h['alpha'][i]:8.4f} {h['beta'][i]:8.4f}", file=out)
    print(f"final weights: alpha = mean diag W_PV = {res.alpha:.4f}, beta = mean diag W_KQ = {res.beta:.4f}, "
          f"alpha*beta = {res.alpha * res.beta:.4f}; mean |off-diagonal| W_KQ {mean_abs_offdiagonal(res.W_KQ):.4f}, "
          f"W_PV {mean_abs_offdiagonal(res.W_PV):.4f}", file=out)
    if task == "subspace" and c["kind"] == "linear":
        t, L = the_task, c["L"]
        g = optimal_linear_gamma(t.d, L, t.sigma2_0, t.sigma2_z)
        print(f"theory: Bayes risk (paper Eq. 4) {bayes_risk_linear(t.n, t.d, t.sigma2_0, t.sigma2_z):.6f}; "
              f"finite-L optimum (docs/maths.md §3) alpha*beta = {g:.4f} with MSE "
              f"{linear_risk(t.n, t.d, L, t.sigma2_0, t.sigma2_z, g):.6f}", file=out)
    if res.fresh_mse is not None:
        print(f"fresh prompts ({c['n_fresh']}): MSE {res.fresh_mse:.6f}, oracle {res.fresh_bayes_mse:.6f}", file=out)
    print(f"time: {res.seconds:.2f} s in all, training loop (with the evaluations) {res.train_seconds:.2f} s", file=out)
