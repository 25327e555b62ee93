"""Measuring attention weights during and after training (:func:`icdmin.training.train`): exact MSEs on whole sets,
the oracle's MSE beside them, the per-epoch history and snapshots, and :func:`evaluate` for weights on any prompts.

The parameters are (W_KQ, W_PV), or (beta, alpha) for the scaled-identity model W_KQ = βI, W_PV = αI (paper §3.3);
the MSE is the mean over prompts and coordinates (Eq. 9 divided by B n). :mod:`icdmin.training` re-exports
:func:`evaluate`.

Legend: ``B`` batch, ``n`` ambient dimension, ``L`` context length (clean tokens), ``S`` snapshots.
"""

from __future__ import annotations

import numpy as np

from ._arrays import mse
from .layer import attention, attention_forward
from .prompts import Prompts
from .train_setup import TRAIN_KINDS, TrainConfig, check_choice, compress_linear, fresh_prompts

__all__ = ["TrainLog", "as_arrays", "evaluate", "fresh_mse", "full_weights", "oracle_mse", "predict"]


def full_weights(params, model: str, n: int):
    """Full matrices (W_KQ, W_PV) from the parameters: identity model (beta, alpha) -> (beta I, alpha I) (§3.3).

    Shapes: params (n, n) pair, or two 0-d arrays for ``model="identity"`` -> W_KQ, W_PV (n, n).
    """
    if model == "identity":
        eye = np.eye(n, dtype=params[0].dtype)
        return params[0] * eye, params[1] * eye
    return params


def predict(X, x_tilde, params, model: str, kind: str, compressed: bool) -> np.ndarray:
    """Attention output (Eqs. 11, 12) with the current parameters; the NumPy path for compressed linear contexts
    (as the training loop's gradients). Shapes: X (B, n, L) or (B, n, n), x_tilde (B, n) -> (B, n)."""
    W_KQ, W_PV = full_weights(params, model, X.shape[1])
    if compressed:
        return attention_forward(X, x_tilde, W_KQ, W_PV, kind)[0]  # (B, n)
    return attention(X, x_tilde, W_KQ, W_PV, kind)  # (B, n)


def as_arrays(prompts, dtype, kind: str = "softmax") -> tuple:
    """(X, x_tilde, x, compressed) of a Prompts batch as contiguous arrays of ``dtype``; linear attention's context
    is compressed to n tokens when L > n (:func:`icdmin.train_setup.compress_linear`).

    Shapes: -> X (B, n, L) or (B, n, n), x_tilde (B, n), x (B, n), bool.
    """
    X, q, x = (np.ascontiguousarray(getattr(prompts, name), dtype=dtype) for name in ("X", "x_tilde", "x"))
    compressed = kind == "linear" and X.shape[2] > X.shape[1]
    return (compress_linear(X) if compressed else X), q, x, compressed


def oracle_mse(prompts) -> float | None:
    """MSE of the Bayes-optimal posterior mean of the prompts' own task; None when the prompts carry no task."""
    task = prompts.task
    if task is None or not callable(getattr(task, "posterior_mean", None)):
        return None
    return mse(task.posterior_mean(prompts), prompts.x)


def evaluate(W_KQ, W_PV, prompts, *, kind="softmax") -> dict:
    """Exact MSE of attention weights on a batch of prompts, beside the oracle's when the prompts' task is known.

    ``prompts`` come from ``task.sample`` or :meth:`Prompts.from_arrays`; ``kind`` is "linear" (Eq. 11) or
    "softmax" (Eq. 12). Returns a dict: "mse" (mean over prompts and coordinates), "oracle_mse" (the posterior
    mean of the prompts' task, Eqs. 3, 6, 7; None for prompts without a task, never a stand-in), "n_prompts", "kind".

    Shapes: W_KQ, W_PV (n, n); prompts with n-dimensional tokens.
    """
    if not isinstance(prompts, Prompts):
        raise TypeError(f"prompts must be a Prompts batch (task.sample or Prompts.from_arrays), "
                        f"got {type(prompts).__name__}")
    kind = check_choice("kind", kind, TRAIN_KINDS)
    pred = attention(prompts.X, prompts.x_tilde, W_KQ, W_PV, kind)  # (B, n)
    return {"mse": mse(pred, prompts.x), "oracle_mse": oracle_mse(prompts), "n_prompts": len(prompts), "kind": kind}


class TrainLog:
    """The history and snapshots of a run (layout: see :class:`icdmin.training.TrainResult`); ``trainset`` and
    ``testset`` as :func:`as_arrays`."""

    def __init__(self, trainset, testset, cfg: TrainConfig, epochs: int):
        self.trainset, self.testset, self.cfg, self.epochs = trainset, testset, cfg, epochs
        self.history = {"epoch": [], "train_mse": [], "test_mse": [], "alpha": [], "beta": [], "lr": [],
                        "step_loss": []}
        self.snaps = {"epoch": [], "W_KQ": [], "W_PV": []} if cfg.snapshot_every else None

    def _mse(self, arrays, params) -> float:
        X, q, x, compressed = arrays
        return mse(predict(X, q, params, self.cfg.model, self.cfg.kind, compressed), x)

    def epoch_done(self, epoch: int, rate: float, params) -> None:
        """Record epoch ``epoch`` (0: the initial weights) if it is an evaluation or snapshot epoch."""
        cfg, h, last = self.cfg, self.history, epoch in (0, self.epochs)
        W_KQ, W_PV = full_weights(params, cfg.model, self.testset[0].shape[1])
        if last or epoch % cfg.eval_every == 0:
            h["epoch"].append(epoch)
            h["train_mse"].append(self._mse(self.trainset, params) if cfg.eval_train or last else float("nan"))
            h["test_mse"].append(self._mse(self.testset, params))
            h["alpha"].append(float(np.mean(np.diag(W_PV))))
            h["beta"].append(float(np.mean(np.diag(W_KQ))))
            h["lr"].append(rate)
        if self.snaps is not None and (last or epoch % cfg.snapshot_every == 0):
            self.snaps["epoch"].append(epoch)
            self.snaps["W_KQ"].append(np.array(W_KQ))
            self.snaps["W_PV"].append(np.array(W_PV))

    def snapshots(self) -> dict | None:
        """{"epoch": [...], "W_KQ": (S, n, n), "W_PV": (S, n, n)}, or None without ``snapshot_every``."""
        if self.snaps is None:
            return None
        return {"epoch": self.snaps["epoch"], "W_KQ": np.stack(self.snaps["W_KQ"]),
                "W_PV": np.stack(self.snaps["W_PV"])}


def fresh_mse(task, params, cfg: TrainConfig, settings) -> tuple[float, float]:
    """Exact MSE of the final weights and of the oracle on ``n_fresh`` new prompts
    (:func:`icdmin.train_setup.fresh_prompts`): (mse, oracle mse)."""
    sq = sq_bayes = 0.0
    size = 0  # n_fresh * n
    for chunk in fresh_prompts(task, L=settings["L"], data_seed=settings["data_seed"], n_fresh=cfg.n_fresh):
        X, q, x, _ = as_arrays(chunk, np.dtype(cfg.dtype))
        sq += mse(predict(X, q, params, cfg.model, cfg.kind, False), x) * x.size
        sq_bayes += mse(task.posterior_mean(chunk), chunk.x) * x.size
        size += x.size
    return sq / size, sq_bayes / size
