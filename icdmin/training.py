"""Training the one-layer attention denoiser: the paper's protocol, one's own data, online training, the
scaled-identity model; and :func:`evaluate` for weights on any prompts.

The paper's protocol (arXiv 2502.05164 §5.1 and App. G; the defaults of :class:`TrainConfig`): 1000 prompts, each
with its own task, split at random into 800 training and 200 test prompts; mini-batches of 80 reshuffled every
epoch (the last batch is smaller when 80 does not divide the training set, as torch's ``DataLoader``); Adam with
lr 1e-2 (torch defaults, :func:`icdmin.optim.adam_step`); the rate multiplied by 0.1 at 80 % and 90 % of the
epochs (:func:`icdmin.optim.step_schedule`); weights initialised iid U[-1/sqrt(n), 1/sqrt(n)]; 100 epochs for the
linear task and 200 otherwise. The loss is the MSE of Eq. (9) divided by the number of prompts and coordinates, as
in the authors' code (mattsmart/in-context-denoising at commit c8aaeb3).

Unlike the authors' printed loss (a mean of per-batch means), the recorded train and test MSEs are *exact*: the
MSE over the whole set with the weights at the end of the epoch (and at epoch 0, before any step).

Randomness: ``data_seed`` (default: ``seed``) fixes the dataset, its split and the fresh evaluation prompts; ``seed``
fixes the initialisation and the batch order. Each stream is its own ``np.random.Generator`` built from
``[seed, stream]``, so two runs with the same seeds give bit-identical weights. ``init`` and ``batch_order`` replace
the random initialisation and order, so that a run can be replayed step for step by another implementation.

Legend: ``B`` batch, ``n`` ambient dimension, ``L`` context length (clean tokens), ``E`` epochs.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from .layer import _loss_and_grads_numpy, _loss_and_grads_unchecked, attention, attention_forward
from ._arrays import mse
from .optim import _adam_update, _sgd_update, step_schedule
from .prompts import Prompts
from .train_setup import (IDENTITY_INIT, TRAIN_KINDS, TrainConfig, check_batch_order, check_choice, check_init,
                          compress_linear, fresh_prompts, init_weights, mean_abs_offdiagonal, mean_diagonal,
                          paper_epochs, prepare_data, reraise_interrupt, split_prompts, stream_rng)

__all__ = ["TrainConfig", "TrainResult", "evaluate", "fresh_prompts", "init_weights", "mean_abs_offdiagonal",
           "mean_diagonal", "paper_epochs", "split_prompts", "train"]


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Shapes: W_KQ, W_PV (n, n); history values are lists with one entry per evaluation; snapshots["W_KQ"] and
    snapshots["W_PV"] are (S, n, n) arrays.
    """

    W_KQ: np.ndarray  # final key-query weights (beta * I for the identity model)
    W_PV: np.ndarray  # final projection-value weights (alpha * I for the identity model)
    alpha: float  # mean diagonal of W_PV (the scalar itself for the identity model)
    beta: float  # mean diagonal of W_KQ (the scalar itself for the identity model)
    history: dict  # per evaluation: "epoch", "train_mse", "test_mse", "alpha", "beta", "lr" (rate of the epoch
    #                just finished, 0 at epoch 0); per step: "step_loss" (mini-batch MSE before the step)
    fresh_mse: float | None  # exact MSE on n_fresh new prompts (None if n_fresh == 0)
    bayes_mse: float | None  # oracle (posterior mean) MSE on the test set; None when no task is known
    seconds: float  # wall time of the whole call (data generation included)
    config: dict  # the resolved settings (TrainConfig fields, task, n_train, n_test, init, batch_order), JSON-friendly
    bayes_train_mse: float | None = float("nan")  # oracle MSE on the training set; None when no task is known
    fresh_bayes_mse: float | None = None  # oracle MSE on the fresh prompts
    train_seconds: float = float("nan")  # wall time of the training loop alone (per-epoch evaluations included)
    snapshots: dict | None = field(default=None)  # {"epoch": [...], "W_KQ": (S, n, n), "W_PV": (S, n, n)}


def _weights(params, model: str, n: int):
    """Full matrices (W_KQ, W_PV) from the parameters: identity model (beta, alpha) -> (beta I, alpha I)."""
    if model == "identity":
        eye = np.eye(n, dtype=params[0].dtype)
        return params[0] * eye, params[1] * eye
    return params


def _predict(X, x_tilde, params, model: str, kind: str, compressed: bool) -> np.ndarray:
    """Attention output with the current parameters (NumPy path for compressed linear contexts, see _loss_and_grads)."""
    W_KQ, W_PV = _weights(params, model, X.shape[1])
    if compressed:
        return attention_forward(X, x_tilde, W_KQ, W_PV, kind)[0]  # (B, n)
    return attention(X, x_tilde, W_KQ, W_PV, kind)  # (B, n)


def _loss_and_grads(X, x_tilde, x, params, model: str, kind: str, compressed: bool, index=None):
    """Mini-batch MSE and its gradients w.r.t. the parameters (:func:`icdmin.layer.loss_and_grads`).

    Full model: (dW_KQ, dW_PV). Identity model W_KQ = beta I, W_PV = alpha I: (dbeta, dalpha) = (tr dW_KQ,
    tr dW_PV) by the chain rule. The caller guarantees C-contiguous finite arrays of one dtype (no per-call checks).
    Compressed linear contexts (B, n, n) run the NumPy specification (cheaper than a parallel kernel launch).
    ``index`` selects the mini-batch X[index], ...; the kernel reads those prompts in place.
    """
    W_KQ, W_PV = _weights(params, model, n=X.shape[1])
    if compressed:
        if index is not None:
            X, x_tilde, x = X[index], x_tilde[index], x[index]  # (b, n, n), (b, n), (b, n)
        loss, dW_KQ, dW_PV = _loss_and_grads_numpy(X, x_tilde, x, W_KQ, W_PV, kind)
    else:
        loss, dW_KQ, dW_PV = _loss_and_grads_unchecked(X, x_tilde, x, W_KQ, W_PV, kind, index)
    if model == "identity":
        dt = params[0].dtype
        return loss, (np.array(np.trace(dW_KQ), dtype=dt), np.array(np.trace(dW_PV), dtype=dt))
    return loss, (dW_KQ, dW_PV)


def _as_arrays(prompts, dtype, kind: str = "softmax") -> tuple:
    """(X, x_tilde, x, compressed) of a Prompts batch as contiguous arrays of ``dtype``; linear attention's context
    is compressed to n tokens when L > n (:func:`icdmin.train_setup.compress_linear`).

    Shapes: -> X (B, n, L) or (B, n, n), x_tilde (B, n), x (B, n), bool.
    """
    X, q, x = (np.ascontiguousarray(getattr(prompts, name), dtype=dtype) for name in ("X", "x_tilde", "x"))
    compressed = kind == "linear" and X.shape[2] > X.shape[1]
    return (compress_linear(X) if compressed else X), q, x, compressed


def _oracle_mse(prompts) -> float | None:
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
    return {"mse": mse(pred, prompts.x), "oracle_mse": _oracle_mse(prompts), "n_prompts": len(prompts), "kind": kind}


class _Log:
    """The history and snapshots of a run (layout: see :class:`TrainResult`)."""

    def __init__(self, trainset, testset, cfg: TrainConfig, epochs: int):
        self.trainset, self.testset, self.cfg, self.epochs = trainset, testset, cfg, epochs
        self.history = {"epoch": [], "train_mse": [], "test_mse": [], "alpha": [], "beta": [], "lr": [],
                        "step_loss": []}
        self.snaps = {"epoch": [], "W_KQ": [], "W_PV": []} if cfg.snapshot_every else None

    def _mse(self, arrays, params) -> float:
        X, q, x, compressed = arrays
        return mse(_predict(X, q, params, self.cfg.model, self.cfg.kind, compressed), x)

    def epoch_done(self, epoch: int, rate: float, params) -> None:
        """Record epoch ``epoch`` (0: the initial weights) if it is an evaluation or snapshot epoch."""
        cfg, h, last = self.cfg, self.history, epoch in (0, self.epochs)
        W_KQ, W_PV = _weights(params, cfg.model, self.testset[0].shape[1])
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
        if self.snaps is None:
            return None
        return {"epoch": self.snaps["epoch"], "W_KQ": np.stack(self.snaps["W_KQ"]),
                "W_PV": np.stack(self.snaps["W_PV"])}


def _config(config, overrides: dict) -> TrainConfig:
    """``config`` (default: the paper's protocol) with ``overrides`` (TrainConfig fields) applied and validated."""
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise TypeError(f"train() got unexpected keyword argument(s) {unknown}: not TrainConfig fields")
    return dataclasses.replace(config, **overrides) if overrides else config


def _initial(init, init_W, n: int, cfg: TrainConfig, rng: np.random.Generator):
    """Initial parameters: (W_KQ, W_PV), or (beta, alpha) 0-d arrays for the identity model."""
    if init is not None and init_W is not None:
        raise ValueError("init and init_W are the same argument (init_W is the older name): pass one")
    given, name = (init, "init") if init is not None else (init_W, "init_W")
    if given is not None:
        return check_init(given, n, cfg.model, np.dtype(cfg.dtype), name)
    if cfg.model == "identity":
        return np.array(IDENTITY_INIT, dtype=cfg.dtype), np.array(IDENTITY_INIT, dtype=cfg.dtype)
    return init_weights(n, rng, np.dtype(cfg.dtype))


def train(data, config: TrainConfig | None = None, *, test: Prompts | None = None, init=None, batch_order=None,
          init_W=None, **overrides) -> TrainResult:
    """Train a one-layer attention denoiser (Eq. 11 linear or Eq. 12 softmax) by mini-batch descent on the MSE.

    Parameters
    ----------
    data : LinearTask, SphereTask, GMMTask or Prompts
        A task: ``n_prompts`` prompts are drawn (``task.sample``) and split as :func:`split_prompts`; the oracle is
        ``task.posterior_mean``. A ``Prompts`` batch (e.g. :meth:`Prompts.from_arrays`): split at random by
        ``data_seed`` into round(test_fraction * B) test prompts and the rest (or all of it trains when ``test`` is
        given); the oracle MSEs are None unless the prompts carry a task.
    config : TrainConfig, optional
        The settings (default: ``TrainConfig()``, the paper's protocol).
    test : Prompts, optional
        Held-out prompts for Prompts data (same n).
    init : pair, optional
        Initial (W_KQ, W_PV) of shape (n, n), or (beta, alpha) scalars for ``model="identity"``; replaces the
        random initialisation. ``init_W`` is its older name.
    batch_order : int array (epochs, n_train), optional
        Row e: the order in which epoch e visits the training prompts (a permutation of range(n_train), indices
        into the training set), cut into consecutive mini-batches of ``batch_size``; replaces the random order.
    **overrides
        Any :class:`TrainConfig` field, e.g. ``kind="linear", L=499, seed=0, epochs=100``.

    Returns
    -------
    TrainResult

    Shapes: weights (n, n); n is read from the prompts.
    """
    t_start = time.perf_counter()
    cfg = _config(config, overrides)
    train_set, test_set, task, settings = prepare_data(data, cfg, test)
    dtype, E = np.dtype(cfg.dtype), settings["epochs"]
    bayes_mse, bayes_train_mse = _oracle_mse(test_set), _oracle_mse(train_set)
    trainset, testset = _as_arrays(train_set, dtype, cfg.kind), _as_arrays(test_set, dtype, cfg.kind)
    del train_set, test_set
    n, n_train = trainset[0].shape[1], trainset[0].shape[0]
    init_rng = stream_rng(cfg.seed, "init")
    params = _initial(init, init_W, n, cfg, init_rng)
    if batch_order is not None:
        if cfg.online:
            raise ValueError("batch_order: online training draws a fresh batch every step (no order to give)")
        batch_order = check_batch_order(batch_order, E, n_train)
    settings.update(init="random" if init is None and init_W is None else "given",
                    batch_order="random" if batch_order is None else "given")
    log = _Log(trainset, testset, cfg, E)
    t_loop = time.perf_counter()
    log.epoch_done(0, 0.0, params)
    try:
        params = _descend(params, trainset, cfg, E, init_rng, batch_order, log, task, settings)
    except SystemError as err:  # Ctrl-C inside a kernel: a KeyboardInterrupt, not a SystemError
        reraise_interrupt(err)
    train_seconds = time.perf_counter() - t_loop
    fresh_mse, fresh_bayes = _fresh(task, params, cfg, settings) if cfg.n_fresh else (None, None)
    W_KQ, W_PV = (np.array(w) for w in _weights(params, cfg.model, n))
    identity = cfg.model == "identity"  # then params = (beta, alpha)
    alpha, beta = (float(params[1]), float(params[0])) if identity else (mean_diagonal(W_PV), mean_diagonal(W_KQ))
    return TrainResult(
        W_KQ=W_KQ, W_PV=W_PV, alpha=alpha, beta=beta, history=log.history, fresh_mse=fresh_mse, bayes_mse=bayes_mse,
        seconds=time.perf_counter() - t_start, config=settings, bayes_train_mse=bayes_train_mse,
        fresh_bayes_mse=fresh_bayes, train_seconds=train_seconds, snapshots=log.snapshots(),
    )


def _descend(params, trainset, cfg: TrainConfig, E: int, init_rng, batch_order, log: _Log, task, settings):
    """The training loop: E epochs of ceil(n_train / batch_size) optimiser steps; returns the final parameters."""
    X, q, x, compressed = trainset
    n_train, bs = X.shape[0], cfg.batch_size
    online_rng = stream_rng(settings["data_seed"], "online") if cfg.online else None
    state = None
    for epoch in range(E):
        rate = cfg.lr * step_schedule(epoch, E, cfg.schedule, cfg.schedule_factor)
        perm = None if cfg.online else init_rng.permutation(n_train) if batch_order is None else batch_order[epoch]
        for b in range(-(-n_train // bs)):  # ceil
            if cfg.online:
                batch = _as_arrays(task.sample(online_rng, bs, settings["L"]), np.dtype(cfg.dtype))[:3]
                loss, grads = _loss_and_grads(*batch, params, cfg.model, cfg.kind, False)
            else:
                idx = perm[b * bs: (b + 1) * bs]  # this mini-batch's prompts
                loss, grads = _loss_and_grads(X, q, x, params, cfg.model, cfg.kind, compressed, index=idx)
            log.history["step_loss"].append(float(loss))  # mini-batch MSE before the step
            if cfg.optimizer == "adam":
                params, state = _adam_update(params, grads, state, rate, 0.9, 0.999, 1e-8)
            else:
                params, state = _sgd_update(params, grads, state, rate, cfg.momentum)
        log.epoch_done(epoch + 1, rate, params)
    return params


def _fresh(task, params, cfg: TrainConfig, settings) -> tuple[float, float]:
    """Exact MSE of the final weights and of the oracle on ``n_fresh`` new prompts (:func:`fresh_prompts`)."""
    sq = sq_bayes = 0.0
    size = 0  # n_fresh * n
    for chunk in fresh_prompts(task, L=settings["L"], data_seed=settings["data_seed"], n_fresh=cfg.n_fresh):
        X, q, x, _ = _as_arrays(chunk, np.dtype(cfg.dtype))
        sq += mse(_predict(X, q, params, cfg.model, cfg.kind, False), x) * x.size
        sq_bayes += mse(task.posterior_mean(chunk), chunk.x) * x.size
        size += x.size
    return sq / size, sq_bayes / size
