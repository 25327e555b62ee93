"""Setting up a training run: its data, argument checks, the paper's initialisation and epochs, weight summaries.

Helpers of :mod:`icdmin.train` (PAPER.md §3.2, §5.1), kept apart so that each module stays one readable page.

Legend: ``B`` batch, ``n`` ambient dimension, ``L`` context length (clean tokens).
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import as_float_array, check_bool, check_int, check_positive, check_real, check_rng
from .tasks import LinearTask

__all__ = [
    "IDENTITY_INIT",
    "KINDS",
    "fresh_prompts",
    "init_weights",
    "mean_abs_offdiagonal",
    "mean_diagonal",
    "paper_epochs",
    "split_prompts",
]

KINDS = ("linear", "softmax")
_DATA, _INIT, _FRESH, _STREAM = 1, 2, 3, 4  # stream ids of the random generators (see icdmin.train's docstring)
_EVAL_CHUNK = 1000  # fresh prompts are sampled and evaluated in chunks of this many prompts
IDENTITY_INIT = 0.1  # alpha = beta = 0.1 for model="identity", as the authors' "ForceDiag" models (PAPER.md §3.2)


def paper_epochs(task) -> int:
    """Epochs of the paper's protocol: 100 for the linear task, 200 for the sphere and the mixture (PAPER.md §5.1)."""
    return 100 if isinstance(task, LinearTask) else 200


def split_prompts(task, *, L: int, data_seed: int, n_prompts: int = 1000, test_fraction: float = 0.2):
    """The dataset of ``train(task, L=L, data_seed=data_seed, ...)``: one draw of ``n_prompts`` prompts, each with
    its own task, split at random into (train, test) (PAPER.md §5.1). Both keep the drawing order.

    Shapes: -> two ``Prompts`` with n_prompts - n_test and n_test = round(test_fraction * n_prompts) prompts.
    """
    n_test = int(round(test_fraction * n_prompts))
    rng = np.random.default_rng([data_seed, _DATA])
    prompts = task.sample(rng, n_prompts, L)
    order = rng.permutation(n_prompts)
    return prompts.subset(np.sort(order[n_test:])), prompts.subset(np.sort(order[:n_test]))


def fresh_prompts(task, *, L: int, data_seed: int, n_fresh: int):
    """Yield the fresh evaluation prompts of ``train(..., data_seed=data_seed, n_fresh=n_fresh)``, drawn from their
    own stream (never the training data) in chunks of at most 1000 prompts.
    """
    rng = np.random.default_rng([data_seed, _FRESH])
    for start in range(0, n_fresh, _EVAL_CHUNK):
        yield task.sample(rng, min(_EVAL_CHUNK, n_fresh - start), L)


def init_weights(n: int, rng: np.random.Generator, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Draw (W_KQ, W_PV) with iid entries U[-1/sqrt(n), 1/sqrt(n)] (paper Fig. 3 caption, PAPER.md §3.2).

    W_KQ is drawn first, then W_PV, from the same generator.

    Shapes: -> W_KQ (n, n), W_PV (n, n).
    """
    n = check_int("n", n, minimum=1)
    check_rng(rng)
    bound = 1.0 / math.sqrt(n)
    W_KQ = rng.uniform(-bound, bound, size=(n, n)).astype(dtype)  # (n, n)
    W_PV = rng.uniform(-bound, bound, size=(n, n)).astype(dtype)  # (n, n)
    return W_KQ, W_PV


def mean_diagonal(W) -> float:
    """Mean of the diagonal of a square matrix (the scale of the identity part; PAPER.md §5, γ = product)."""
    W = as_float_array("W", W, ndim=2)
    return float(np.mean(np.diag(W)))


def mean_abs_offdiagonal(W) -> float:
    """Mean absolute value of the off-diagonal entries of a square matrix (0 for a 1x1 matrix)."""
    W = as_float_array("W", W, ndim=2)
    n = W.shape[0]
    if W.shape != (n, n):
        raise ValueError(f"W must be square, got shape {W.shape}")
    if n == 1:
        return 0.0
    return float((np.abs(W).sum() - np.abs(np.diag(W)).sum()) / (n * n - n))


def _check_task(task):
    if not (callable(getattr(task, "sample", None)) and callable(getattr(task, "posterior_mean", None))):
        raise TypeError(f"task must be an icdmin task (with sample and posterior_mean), got {type(task).__name__}")


def _check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_fractions(name: str, fractions) -> tuple:
    try:
        fractions = tuple(fractions)
    except TypeError as exc:
        raise TypeError(f"{name} must be a sequence of fractions in [0, 1], got {fractions!r}") from exc
    for i, frac in enumerate(fractions):
        if not 0.0 <= check_real(f"{name}[{i}]", frac) <= 1.0:
            raise ValueError(f"{name}[{i}] must be in [0, 1], got {frac}")
    return tuple(float(f) for f in fractions)


def _check_init(init_W, n: int, model: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Validate init_W: (W_KQ, W_PV) of shape (n, n) for the full model, (beta, alpha) scalars for the identity."""
    if len(init_W) != 2:
        raise ValueError("init_W must be a pair (W_KQ, W_PV), or (beta, alpha) for model='identity'")
    shape = () if model == "identity" else (n, n)
    out = []
    for name, w in zip(("init_W[0]", "init_W[1]"), init_W):
        w = as_float_array(name, w)
        if w.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for model={model!r}, got {w.shape}")
        out.append(np.array(w, dtype=dtype))
    return out[0], out[1]


def _compress_linear(X: np.ndarray) -> np.ndarray:
    """An n-token context with the same linear attention as X: X' = sqrt(n/L) Rᵀ where Xᵀ = Q R (reduced QR).

    Linear attention (Eq. 11) and its gradients (PAPER.md §9) depend on the context only through
    S = X Xᵀ / L, and X' X'ᵀ / n = Rᵀ R / L = X Xᵀ / L. Training on X' is therefore the same computation on
    L / n times less data (31x at n = 16, L = 499); only rounding differs (tested against the full context).

    Shapes: X (B, n, L) with L > n -> X' (B, n, n).
    """
    n, L = X.shape[1], X.shape[2]
    R = np.linalg.qr(np.swapaxes(X, 1, 2), mode="r")  # (B, n, n)   Xᵀ = Q R
    return np.ascontiguousarray(np.swapaxes(R, 1, 2) * np.sqrt(n / L), dtype=X.dtype)  # (B, n, n)


def _validate(task, kind, L, seed, epochs, n_prompts, test_fraction, batch_size, lr, schedule, schedule_factor,
              optimizer, model, online, eval_every, n_fresh, data_seed, snapshot_every, dtype, momentum):
    _check_task(task)
    cfg = {
        "task": repr(task),
        "kind": _check_choice("kind", kind, KINDS),
        "L": check_int("L", L, minimum=1),
        "seed": check_int("seed", seed, minimum=0),
        "n_prompts": check_int("n_prompts", n_prompts, minimum=2),
        "test_fraction": check_real("test_fraction", test_fraction),
        "batch_size": check_int("batch_size", batch_size, minimum=1),
        "lr": check_positive("lr", lr),
        "schedule": _check_fractions("schedule", schedule),
        "schedule_factor": check_positive("schedule_factor", schedule_factor),
        "optimizer": _check_choice("optimizer", optimizer, ("adam", "sgd")),
        "model": _check_choice("model", model, ("full", "identity")),
        "eval_every": check_int("eval_every", eval_every, minimum=1),
        "n_fresh": check_int("n_fresh", n_fresh, minimum=0),
        "momentum": check_real("momentum", momentum),
    }
    if epochs is None:
        epochs = paper_epochs(task)
    cfg["epochs"] = check_int("epochs", epochs, minimum=1)
    cfg["online"] = check_bool("online", online)
    cfg["data_seed"] = cfg["seed"] if data_seed is None else check_int("data_seed", data_seed, minimum=0)
    cfg["snapshot_every"] = None if snapshot_every is None else check_int("snapshot_every", snapshot_every, minimum=1)
    n_test = int(round(cfg["test_fraction"] * cfg["n_prompts"]))
    if not 0.0 < cfg["test_fraction"] < 1.0 or not 1 <= n_test <= cfg["n_prompts"] - 1:
        raise ValueError(
            f"test_fraction must leave at least one train and one test prompt, got {test_fraction} of {n_prompts}"
        )
    cfg["n_test"] = n_test
    if not 0.0 <= cfg["momentum"] < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    cfg["dtype"] = np.dtype(dtype).name
    return cfg
