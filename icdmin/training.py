"""Training the one-layer attention denoiser: the paper's protocol, one's own data, online training, the
scaled-identity model; and :func:`evaluate` for weights on any prompts (from :mod:`icdmin.train_eval`, with the
exact-MSE bookkeeping of a run).

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

from .loss import loss_and_grads_numpy_unchecked, loss_and_grads_unchecked
from .optim import adam_update, sgd_update, step_schedule
from .prompts import Prompts
from .train_eval import TrainLog, as_arrays, evaluate, fresh_mse, full_weights, oracle_mse
from .train_setup import (IDENTITY_INIT, TrainConfig, check_batch_order, check_init, fresh_prompts, init_weights,
                          mean_abs_offdiagonal, mean_diagonal, paper_epochs, prepare_data, reraise_interrupt,
                          split_prompts, stream_rng)

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


def _loss_and_grads(X, x_tilde, x, params, model: str, kind: str, compressed: bool, index=None):
    """Mini-batch MSE and its gradients w.r.t. the parameters (:func:`icdmin.layer.loss_and_grads`).

    Full model: (dW_KQ, dW_PV). Identity model W_KQ = beta I, W_PV = alpha I: (dbeta, dalpha) = (tr dW_KQ,
    tr dW_PV) by the chain rule. The caller guarantees C-contiguous finite arrays of one dtype (no per-call checks).
    Compressed linear contexts (B, n, n) run the NumPy specification (cheaper than a parallel kernel launch).
    ``index`` selects the mini-batch X[index], ...; the kernel reads those prompts in place.
    """
    W_KQ, W_PV = full_weights(params, model, n=X.shape[1])
    if compressed:
        if index is not None:
            X, x_tilde, x = X[index], x_tilde[index], x[index]  # (b, n, n), (b, n), (b, n)
        loss, dW_KQ, dW_PV = loss_and_grads_numpy_unchecked(X, x_tilde, x, W_KQ, W_PV, kind)
    else:
        loss, dW_KQ, dW_PV = loss_and_grads_unchecked(X, x_tilde, x, W_KQ, W_PV, kind, index)
    if model == "identity":
        dt = params[0].dtype
        return loss, (np.array(np.trace(dW_KQ), dtype=dt), np.array(np.trace(dW_PV), dtype=dt))
    return loss, (dW_KQ, dW_PV)


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
    trainset, testset, task, settings, bayes = _data(data, cfg, test)
    E, n, n_train = settings["epochs"], trainset[0].shape[1], trainset[0].shape[0]
    init_rng = stream_rng(cfg.seed, "init")
    params = _initial(init, init_W, n, cfg, init_rng)
    batch_order = _order(batch_order, cfg, E, n_train)
    settings.update(init="random" if init is None and init_W is None else "given",
                    batch_order="random" if batch_order is None else "given")
    log = TrainLog(trainset, testset, cfg, E)
    t_loop = time.perf_counter()
    log.epoch_done(0, 0.0, params)
    try:
        params = _descend(params, trainset, cfg, E, init_rng, batch_order, log, task, settings)
    except SystemError as err:  # Ctrl-C inside a kernel: a KeyboardInterrupt, not a SystemError
        reraise_interrupt(err)
    train_seconds = time.perf_counter() - t_loop
    fresh = fresh_mse(task, params, cfg, settings) if cfg.n_fresh else (None, None)
    return _result(params, n, cfg, log, settings, bayes, fresh, (t_start, train_seconds))


def _data(data, cfg: TrainConfig, test):
    """Draw or split the data (:func:`icdmin.train_setup.prepare_data`) and bring both sets to arrays.

    Returns (trainset, testset, task, settings, (bayes_mse, bayes_train_mse)); each set as :func:`as_arrays`:
    X (B, n, L) or (B, n, n), x_tilde (B, n), x (B, n), compressed. The Prompts objects are dropped on return.
    """
    train_set, test_set, task, settings = prepare_data(data, cfg, test)
    dtype = np.dtype(cfg.dtype)
    bayes = oracle_mse(test_set), oracle_mse(train_set)
    trainset, testset = as_arrays(train_set, dtype, cfg.kind), as_arrays(test_set, dtype, cfg.kind)
    return trainset, testset, task, settings, bayes


def _order(batch_order, cfg: TrainConfig, E: int, n_train: int):
    """The validated ``batch_order`` (int array (E, n_train)), or None for the random order."""
    if batch_order is None:
        return None
    if cfg.online:
        raise ValueError("batch_order: online training draws a fresh batch every step (no order to give)")
    return check_batch_order(batch_order, E, n_train)


def _result(params, n: int, cfg: TrainConfig, log: TrainLog, settings, bayes, fresh, times) -> TrainResult:
    """The :class:`TrainResult` of a finished run: full (n, n) weights from the parameters, (α, β) (the scalars
    themselves for the identity model, else the mean diagonals), the oracle and fresh MSEs, and the wall times
    (``times`` = (start of the call, seconds in the loop))."""
    W_KQ, W_PV = (np.array(w) for w in full_weights(params, cfg.model, n))
    identity = cfg.model == "identity"  # then params = (beta, alpha)
    alpha, beta = (float(params[1]), float(params[0])) if identity else (mean_diagonal(W_PV), mean_diagonal(W_KQ))
    return TrainResult(
        W_KQ=W_KQ, W_PV=W_PV, alpha=alpha, beta=beta, history=log.history, fresh_mse=fresh[0], bayes_mse=bayes[0],
        seconds=time.perf_counter() - times[0], config=settings, bayes_train_mse=bayes[1],
        fresh_bayes_mse=fresh[1], train_seconds=times[1], snapshots=log.snapshots(),
    )


def _descend(params, trainset, cfg: TrainConfig, E: int, init_rng, batch_order, log: TrainLog, task, settings):
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
                batch = as_arrays(task.sample(online_rng, bs, settings["L"]), np.dtype(cfg.dtype))[:3]
                loss, grads = _loss_and_grads(*batch, params, cfg.model, cfg.kind, False)
            else:
                idx = perm[b * bs: (b + 1) * bs]  # this mini-batch's prompts
                loss, grads = _loss_and_grads(X, q, x, params, cfg.model, cfg.kind, compressed, index=idx)
            log.history["step_loss"].append(float(loss))  # mini-batch MSE before the step
            if cfg.optimizer == "adam":
                params, state = adam_update(params, grads, state, rate, 0.9, 0.999, 1e-8)
            else:
                params, state = sgd_update(params, grads, state, rate, cfg.momentum)
        log.epoch_done(epoch + 1, rate, params)
    return params
