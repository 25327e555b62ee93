"""Training the one-layer attention denoiser: the paper's protocol, online training, the scaled-identity model.

The paper's protocol (PAPER.md §5.1, REFERENCE.md): ``n_prompts = 1000`` prompts, each with its own task, split at
random into 800 training and 200 test prompts; mini-batches of 80 reshuffled every epoch (the last batch is smaller
when 80 does not divide the training set, as torch's ``DataLoader``); Adam with lr 1e-2 (torch defaults,
:func:`icdmin.optim.adam_step`); the rate multiplied by 0.1 at 80 % and 90 % of the epochs
(:func:`icdmin.optim.step_schedule`); weights initialised iid U[-1/sqrt(n), 1/sqrt(n)] (PAPER.md §3.2); 100 epochs
for the linear task and 200 otherwise. The loss is the MSE of Eq. (9) divided by the number of prompts and
coordinates (PAPER.md §1, "Code normalisation").

Unlike the authors' printed loss (a mean of per-batch means), the recorded train and test MSEs are *exact*: the
MSE over the whole set with the weights at the end of the epoch (and at epoch 0, before any step).

Randomness: ``data_seed`` (default: ``seed``) fixes the dataset, its split and the fresh evaluation prompts; ``seed``
fixes the initialisation and the batch order. Each stream is its own ``np.random.Generator`` built from
``[seed, stream]``, so two runs with the same seeds give bit-identical weights.

Legend: ``B`` batch, ``n`` ambient dimension, ``L`` context length (clean tokens), ``E`` epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .attention import _loss_and_grads_numpy, _loss_and_grads_unchecked, attention, attention_forward
from ._arrays import check_bool, mse
from .optim import _adam_update, _sgd_update, step_schedule
from .train_setup import (
    _INIT,
    _STREAM,
    IDENTITY_INIT,
    _check_init,
    _compress_linear,
    _validate,
    fresh_prompts,
    init_weights,
    mean_abs_offdiagonal,
    mean_diagonal,
    paper_epochs,
    split_prompts,
)

__all__ = [
    "TrainResult",
    "fresh_prompts",
    "init_weights",
    "mean_abs_offdiagonal",
    "mean_diagonal",
    "paper_epochs",
    "split_prompts",
    "train",
]


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
    bayes_mse: float  # oracle (posterior mean) MSE on the test set
    seconds: float  # wall time of the whole call (data generation included)
    config: dict  # the arguments, JSON-friendly
    bayes_train_mse: float = float("nan")  # oracle MSE on the training set
    fresh_bayes_mse: float | None = None  # oracle MSE on the fresh prompts
    train_seconds: float = float("nan")  # wall time of the training loop alone (per-epoch evaluations included)
    snapshots: dict | None = field(default=None)  # {"epoch": [...], "W_KQ": (S, n, n), "W_PV": (S, n, n)}


def _weights(params, model: str, n: int):
    """Full matrices (W_KQ, W_PV) from the parameters: identity model (beta, alpha) -> (beta I, alpha I)."""
    if model == "identity":
        eye = np.eye(n, dtype=params[0].dtype)
        return params[0] * eye, params[1] * eye
    return params


def _predict(X, x_tilde, params, model: str, kind: str, n: int, compressed: bool) -> np.ndarray:
    """Attention output with the current parameters (NumPy path for compressed linear contexts, see _loss_and_grads)."""
    W_KQ, W_PV = _weights(params, model, n)
    if compressed:
        return attention_forward(X, x_tilde, W_KQ, W_PV, kind)[0]  # (B, n)
    return attention(X, x_tilde, W_KQ, W_PV, kind)  # (B, n)


def _loss_and_grads(X, x_tilde, x, params, model: str, kind: str, compressed: bool, index=None):
    """Mini-batch MSE and its gradients w.r.t. the parameters (PAPER.md §9).

    Full model: (dW_KQ, dW_PV). Identity model W_KQ = beta I, W_PV = alpha I: by the chain rule
    (dbeta, dalpha) = (tr dW_KQ, tr dW_PV) (as ``attention.loss_and_grads_identity``). The caller guarantees
    C-contiguous finite arrays of one dtype, so the per-call validation is skipped. Compressed linear contexts
    (B, n, n) are small enough that the NumPy specification beats a parallel kernel launch. ``index`` selects the
    mini-batch X[index], ...; the kernel then reads those prompts in place instead of copying them.
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


def _as_arrays(prompts, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, x_tilde, x) of a Prompts batch as contiguous arrays of ``dtype``.

    Shapes: -> X (B, n, L), x_tilde (B, n), x (B, n).
    """
    return tuple(np.ascontiguousarray(getattr(prompts, name), dtype=dtype) for name in ("X", "x_tilde", "x"))


def train(task, *, kind="softmax", L=499, seed=0, epochs=None, n_prompts=1000, test_fraction=0.2, batch_size=80,
          lr=1e-2, schedule=(0.8, 0.9), schedule_factor=0.1, optimizer="adam", model="full", online=False,
          eval_every=1, n_fresh=0, init_W=None, data_seed=None, snapshot_every=None, dtype=np.float64,
          momentum=0.0, eval_train=True) -> TrainResult:
    """Train a one-layer attention denoiser (Eq. 11 linear or Eq. 12 softmax) by mini-batch descent on the MSE.

    Parameters
    ----------
    task : LinearTask, SphereTask or GMMTask
        Where prompts come from (``task.sample(rng, B, L)``); the oracle is ``task.posterior_mean``.
    kind : {"linear", "softmax"}
        Attention kind (Eq. 11 or Eq. 12).
    L : int
        Clean context tokens per prompt (the authors' "context length 500" is L = 499).
    seed : int
        Fixes the initialisation and the batch order, and the data unless ``data_seed`` is given.
    epochs : int, optional
        Default 100 for ``LinearTask``, 200 otherwise (PAPER.md §5.1).
    n_prompts, test_fraction : int, float
        Dataset size and held-out fraction (``round(test_fraction * n_prompts)`` test prompts).
    batch_size : int
        Prompts per step; steps per epoch = ceil(n_train / batch_size), in ``online`` mode too.
    lr, schedule, schedule_factor : float, tuple of float, float
        Base rate, milestone fractions and step factor (:func:`icdmin.optim.step_schedule`).
    optimizer : {"adam", "sgd"}
        Adam (torch defaults) or SGD with ``momentum``.
    model : {"full", "identity"}
        Full (n, n) matrices, or the scaled identities W_KQ = beta I, W_PV = alpha I (two scalars, both
        initialised at ``IDENTITY_INIT = 0.1``).
    online : bool
        If True, every step uses a fresh batch from the task (no prompt is seen twice, so no over-fitting); the
        800/200 dataset is still drawn and both parts are then held-out sets. The stream of batches is its own
        generator of ``data_seed`` (runs that differ only in ``seed`` see the same stream).
    eval_every : int
        Record the exact train / test MSE at epoch 0, every ``eval_every`` epochs and at the last epoch.
    n_fresh : int
        Evaluate the final weights on this many new prompts (its own random stream of ``data_seed``).
    init_W : pair of arrays, optional
        Initial (W_KQ, W_PV), or (beta, alpha) scalars for ``model="identity"``; overrides the random init.
    data_seed : int, optional
        Seed of the dataset and the fresh prompts (the authors fix it at 0 and vary ``seed``).
    eval_train : bool
        If False, the exact train MSE is computed only at epoch 0 and at the end (NaN in between): an evaluation
        of the 800 training prompts costs about as much as the epoch's training steps.
    snapshot_every : int, optional
        Keep copies of the weights at epoch 0, every ``snapshot_every`` epochs and at the end.
    dtype : float64 or float32
        Floating type of the data and the weights.
    momentum : float
        SGD momentum (ignored by Adam).

    Returns
    -------
    TrainResult

    Shapes: weights (n, n); n is read from the sampled prompts.
    """
    t_start = time.perf_counter()
    cfg = _validate(task, kind, L, seed, epochs, n_prompts, test_fraction, batch_size, lr, schedule,
                    schedule_factor, optimizer, model, online, eval_every, n_fresh, data_seed, snapshot_every,
                    dtype, momentum)
    cfg["eval_train"] = check_bool("eval_train", eval_train)
    dtype = np.dtype(dtype)
    kind, model, E = cfg["kind"], cfg["model"], cfg["epochs"]
    init_rng = np.random.default_rng([cfg["seed"], _INIT])

    # data: one dataset, a random split (PAPER.md §5.1)
    train_prompts, test_prompts = split_prompts(task, L=cfg["L"], data_seed=cfg["data_seed"],
                                                n_prompts=cfg["n_prompts"], test_fraction=cfg["test_fraction"])
    bayes_mse = mse(task.posterior_mean(test_prompts), test_prompts.x)
    bayes_train_mse = mse(task.posterior_mean(train_prompts), train_prompts.x)
    test = _as_arrays(test_prompts, dtype)  # X (200, n, L), x_tilde (200, n), x (200, n)
    trainset = _as_arrays(train_prompts, dtype)  # X (800, n, L), x_tilde (800, n), x (800, n)
    del test_prompts, train_prompts
    n, n_train = trainset[0].shape[1], trainset[0].shape[0]
    compressed = kind == "linear" and cfg["L"] > n
    if compressed:  # linear attention sees X only through X Xᵀ / L
        test = (_compress_linear(test[0]),) + test[1:]  # X (200, n, n)
        trainset = (_compress_linear(trainset[0]),) + trainset[1:]  # X (800, n, n)

    # parameters: (W_KQ, W_PV) for the full model, (beta, alpha) 0-d arrays for the identity model
    if init_W is not None:
        params = _check_init(init_W, n, model, dtype)
    elif model == "identity":
        params = (np.array(IDENTITY_INIT, dtype=dtype), np.array(IDENTITY_INIT, dtype=dtype))
    else:
        params = init_weights(n, init_rng, dtype)

    history = {"epoch": [], "train_mse": [], "test_mse": [], "alpha": [], "beta": [], "lr": [], "step_loss": []}
    snaps = {"epoch": [], "W_KQ": [], "W_PV": []} if cfg["snapshot_every"] else None

    def record(epoch: int, rate: float) -> None:
        W_KQ, W_PV = _weights(params, model, n)
        history["epoch"].append(epoch)
        if eval_train or epoch in (0, E):
            history["train_mse"].append(mse(_predict(*trainset[:2], params, model, kind, n, compressed), trainset[2]))
        else:
            history["train_mse"].append(float("nan"))
        history["test_mse"].append(mse(_predict(*test[:2], params, model, kind, n, compressed), test[2]))
        history["alpha"].append(float(np.mean(np.diag(W_PV))))
        history["beta"].append(float(np.mean(np.diag(W_KQ))))
        history["lr"].append(rate)

    def snapshot(epoch: int) -> None:
        W_KQ, W_PV = _weights(params, model, n)
        snaps["epoch"].append(epoch)
        snaps["W_KQ"].append(np.array(W_KQ))
        snaps["W_PV"].append(np.array(W_PV))

    t_loop = time.perf_counter()
    record(0, 0.0)
    if snaps is not None:
        snapshot(0)
    steps = -(-n_train // cfg["batch_size"])  # ceil
    stream_rng = np.random.default_rng([cfg["data_seed"], _STREAM]) if cfg["online"] else None
    state = None
    for epoch in range(E):
        rate = cfg["lr"] * step_schedule(epoch, E, cfg["schedule"], cfg["schedule_factor"])
        perm = None if cfg["online"] else init_rng.permutation(n_train)
        for b in range(steps):
            if cfg["online"]:
                X, q, x = _as_arrays(task.sample(stream_rng, cfg["batch_size"], cfg["L"]), dtype)
                loss, grads = _loss_and_grads(X, q, x, params, model, kind, False)
            else:
                idx = perm[b * cfg["batch_size"]: (b + 1) * cfg["batch_size"]]  # this mini-batch's prompts
                loss, grads = _loss_and_grads(*trainset, params, model, kind, compressed, index=idx)
            history["step_loss"].append(float(loss))  # mini-batch MSE before the step
            if cfg["optimizer"] == "adam":
                params, state = _adam_update(params, grads, state, rate, 0.9, 0.999, 1e-8)
            else:
                params, state = _sgd_update(params, grads, state, rate, cfg["momentum"])
        done = epoch + 1
        if done % cfg["eval_every"] == 0 or done == E:
            record(done, rate)
        if snaps is not None and (done % cfg["snapshot_every"] == 0 or done == E):
            snapshot(done)
    train_seconds = time.perf_counter() - t_loop

    fresh_mse = fresh_bayes = None
    if cfg["n_fresh"]:
        sq = sq_bayes = 0.0
        for chunk in fresh_prompts(task, L=cfg["L"], data_seed=cfg["data_seed"], n_fresh=cfg["n_fresh"]):
            X, q, x = _as_arrays(chunk, dtype)
            sq += mse(_predict(X, q, params, model, kind, n, False), x) * x.size
            sq_bayes += mse(task.posterior_mean(chunk), chunk.x) * x.size
        fresh_mse, fresh_bayes = sq / (cfg["n_fresh"] * n), sq_bayes / (cfg["n_fresh"] * n)

    W_KQ, W_PV = (np.array(w) for w in _weights(params, model, n))
    if snaps is not None:
        snaps = {"epoch": snaps["epoch"], "W_KQ": np.stack(snaps["W_KQ"]), "W_PV": np.stack(snaps["W_PV"])}
    if model == "identity":
        alpha, beta = float(params[1]), float(params[0])
    else:
        alpha, beta = mean_diagonal(W_PV), mean_diagonal(W_KQ)
    return TrainResult(
        W_KQ=W_KQ, W_PV=W_PV, alpha=alpha, beta=beta, history=history, fresh_mse=fresh_mse, bayes_mse=bayes_mse,
        seconds=time.perf_counter() - t_start, config=cfg, bayes_train_mse=bayes_train_mse,
        fresh_bayes_mse=fresh_bayes, train_seconds=train_seconds, snapshots=snaps,
    )

