"""Setting up a training run: its configuration, its data, the paper's initialisation and epochs, weight summaries.

Helpers of :mod:`icdmin.training` (arXiv 2502.05164 §3.2, §5.1, App. G); :class:`TrainConfig` holds every scalar
setting of a run, validated once. Legend: ``B`` batch, ``n`` ambient dim., ``L`` clean context tokens, ``E`` epochs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._arrays import as_float_array, check_bool, check_int, check_positive, check_real, check_rng
from .prompts import Prompts
from .tasks import LinearTask

__all__ = ["IDENTITY_INIT", "TRAIN_KINDS", "TrainConfig", "fresh_prompts", "init_weights", "mean_abs_offdiagonal",
           "mean_diagonal", "paper_epochs", "split_prompts", "stream_rng"]

TRAIN_KINDS = ("linear", "softmax")  # the kinds train() learns (Eqs. 11, 12); layer.KINDS adds Eq. (14)
STREAMS = {"data": 1, "init": 2, "fresh": 3, "online": 4}  # a run's random streams (icdmin.training.train's docstring)
_EVAL_CHUNK = 1000  # fresh prompts are sampled and evaluated in chunks of this many prompts
IDENTITY_INIT = 0.1  # alpha = beta = 0.1 for model="identity", as the authors' "ForceDiag" models
L_PAPER, N_PROMPTS_PAPER = 499, 1000  # the authors' context length 500 counts the query: L = 499 clean tokens


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every scalar setting of :func:`icdmin.training.train`; the defaults are the paper's protocol (arXiv 2502.05164
    §5.1 and App. G). Validated once, at construction: a bad value raises ``ValueError`` / ``TypeError`` naming
    the field. ``dataclasses.replace(config, lr=0.1)`` validates again.
    """

    kind: str = "softmax"  # attention: "linear" (Eq. 11) or "softmax" (Eq. 12)
    L: int | None = None  # clean tokens of sampled prompts; None: 499 for a task, the data's own L for Prompts
    seed: int = 0  # initialisation and batch order (and the data, unless data_seed is given)
    data_seed: int | None = None  # dataset, its train/test split and the fresh prompts; None: seed
    epochs: int | None = None  # None: 100 for LinearTask, 200 otherwise (and for Prompts without a task)
    n_prompts: int | None = None  # prompts drawn from a task; None: 1000 (must be None or len(data) for Prompts)
    test_fraction: float = 0.2  # held out: round(test_fraction * n_prompts) prompts, 800 / 200 by default
    batch_size: int = 80  # prompts per step, reshuffled every epoch; the last batch is smaller (torch DataLoader)
    optimizer: str = "adam"  # "adam" (torch defaults: betas 0.9, 0.999, eps 1e-8) or "sgd"
    lr: float = 1e-2  # base learning rate
    momentum: float = 0.0  # SGD momentum in [0, 1) (ignored by Adam)
    schedule: tuple = (0.8, 0.9)  # fractions of the epochs at which the rate is multiplied by schedule_factor
    schedule_factor: float = 0.1
    model: str = "full"  # "full": (n, n) matrices, init U[-1/sqrt(n), 1/sqrt(n)]; "identity": beta I, alpha I
    online: bool = False  # a fresh batch from the task every step (needs a task as data)
    eval_every: int = 1  # exact train / test MSE at epoch 0, every eval_every epochs and at the end
    eval_train: bool = True  # False: train MSE only at epoch 0 and at the end (NaN between)
    n_fresh: int = 0  # evaluate the final weights on this many new prompts (needs a task as data)
    snapshot_every: int | None = None  # keep the weights at epoch 0, every snapshot_every epochs and at the end
    dtype: str = "float64"  # "float64" or "float32" (a NumPy dtype is accepted and stored by name)

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("kind", check_choice("kind", self.kind, TRAIN_KINDS))
        put("optimizer", check_choice("optimizer", self.optimizer, ("adam", "sgd")))
        put("model", check_choice("model", self.model, ("full", "identity")))
        for name, low in (("seed", 0), ("batch_size", 1), ("eval_every", 1), ("n_fresh", 0)):
            put(name, check_int(name, getattr(self, name), minimum=low))
        for name, low in (("L", 1), ("data_seed", 0), ("epochs", 1), ("n_prompts", 2), ("snapshot_every", 1)):
            if getattr(self, name) is not None:
                put(name, check_int(name, getattr(self, name), minimum=low))
        for name in ("lr", "schedule_factor"):
            put(name, check_positive(name, getattr(self, name)))
        put("momentum", check_real("momentum", self.momentum))
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        put("test_fraction", check_real("test_fraction", self.test_fraction))
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.n_prompts is not None:
            n_test_of(self.test_fraction, self.n_prompts)
        put("schedule", _check_fractions("schedule", self.schedule))
        put("online", check_bool("online", self.online))
        put("eval_train", check_bool("eval_train", self.eval_train))
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as exc:
            raise TypeError(f"dtype must be float64 or float32, got {self.dtype!r}") from exc
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        put("dtype", dtype.name)


def n_test_of(test_fraction: float, n_prompts: int) -> int:
    """Held-out prompts of a split, round(test_fraction * n_prompts); raises unless both parts are non-empty."""
    n_test = int(round(test_fraction * n_prompts))
    if not 1 <= n_test <= n_prompts - 1:
        raise ValueError(f"test_fraction must leave at least one train and one test prompt, got {test_fraction} "
                         f"of {n_prompts} prompts")
    return n_test


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """The generator of one random stream of a run: ``default_rng([seed, STREAMS[stream]])``."""
    return np.random.default_rng([seed, STREAMS[stream]])


def reraise_interrupt(err: SystemError):
    """Ctrl-C inside a Numba kernel surfaces as a chain of SystemErrors ("returned a result with an exception set")
    rooted in a KeyboardInterrupt: raise it as that KeyboardInterrupt; re-raise any other SystemError unchanged."""
    cause = err
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        raise err
    raise KeyboardInterrupt from None


def paper_epochs(task) -> int:
    """Epochs of the paper's protocol: 100 for the linear task, 200 for the sphere and the mixture (§5.1, App. G)."""
    return 100 if isinstance(task, LinearTask) else 200


def check_task(task, name: str = "task"):
    """Require an icdmin task (or any object with ``sample(rng, B, L)`` and ``posterior_mean(prompts)``)."""
    if not (callable(getattr(task, "sample", None)) and callable(getattr(task, "posterior_mean", None))):
        raise TypeError(f"{name} must be an icdmin task (with sample and posterior_mean), got {type(task).__name__}")
    return task


def split_prompts(task, *, L: int, data_seed: int, n_prompts: int = 1000, test_fraction: float = 0.2):
    """The dataset of ``train(task, L=L, data_seed=data_seed, ...)``: one draw of ``n_prompts`` prompts, each with
    its own task, split at random into (train, test) (arXiv 2502.05164 §5.1). Both keep the drawing order.

    Shapes: -> two ``Prompts`` with n_prompts - n_test and n_test = round(test_fraction * n_prompts) prompts.
    """
    check_task(task)
    L, data_seed = check_int("L", L, minimum=1), check_int("data_seed", data_seed, minimum=0)
    n_prompts = check_int("n_prompts", n_prompts, minimum=2)
    n_test = n_test_of(check_real("test_fraction", test_fraction), n_prompts)
    rng = stream_rng(data_seed, "data")
    prompts = task.sample(rng, n_prompts, L)
    return split_by_rng(prompts, rng, n_test)


def split_by_rng(prompts: Prompts, rng: np.random.Generator, n_test: int):
    """(train, test) subsets of ``prompts`` from one permutation drawn from ``rng``; both keep the given order."""
    order = rng.permutation(len(prompts))
    return prompts.subset(np.sort(order[n_test:])), prompts.subset(np.sort(order[:n_test]))


def fresh_prompts(task, *, L: int, data_seed: int, n_fresh: int):
    """The fresh evaluation prompts of ``train(..., data_seed=data_seed, n_fresh=n_fresh)``, drawn from their own
    stream (never the training data): an iterator of ``Prompts`` chunks of at most 1000 prompts. The arguments
    are checked at the call, before the first chunk is drawn.
    """
    check_task(task)
    L = check_int("L", L, minimum=1)
    rng = stream_rng(check_int("data_seed", data_seed, minimum=0), "fresh")
    n_fresh = check_int("n_fresh", n_fresh, minimum=0)
    return (task.sample(rng, min(_EVAL_CHUNK, n_fresh - start), L) for start in range(0, n_fresh, _EVAL_CHUNK))


def init_weights(n: int, rng: np.random.Generator, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Draw (W_KQ, W_PV) with iid entries U[-1/sqrt(n), 1/sqrt(n)] (arXiv 2502.05164 Fig. 3 caption); W_KQ is
    drawn first, then W_PV, from the same generator. Shapes: -> W_KQ (n, n), W_PV (n, n).
    """
    n = check_int("n", n, minimum=1)
    check_rng(rng)
    bound = 1.0 / math.sqrt(n)
    W_KQ = rng.uniform(-bound, bound, size=(n, n)).astype(dtype)  # (n, n)
    W_PV = rng.uniform(-bound, bound, size=(n, n)).astype(dtype)  # (n, n)
    return W_KQ, W_PV


def mean_diagonal(W) -> float:
    """Mean of the diagonal of a square matrix (α or β of a scaled identity αI; for linear attention γ = αβ)."""
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


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_fractions(name: str, fractions) -> tuple:
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
        raise TypeError(f"{name} must be a sequence of fractions in [0, 1], got {fractions!r}")
    fractions = tuple(fractions)
    for i, frac in enumerate(fractions):
        if not 0.0 <= check_real(f"{name}[{i}]", frac) <= 1.0:
            raise ValueError(f"{name}[{i}] must be in [0, 1], got {frac}")
    return tuple(float(f) for f in fractions)


def check_init(init, n: int, model: str, dtype, name: str = "init") -> tuple[np.ndarray, np.ndarray]:
    """Validate initial weights: (W_KQ, W_PV) of shape (n, n) for the full model, (beta, alpha) scalars for the
    identity model. Returns copies of ``dtype``."""
    if isinstance(init, (str, bytes)) or not hasattr(init, "__len__") or len(init) != 2:
        raise ValueError(f"{name} must be a pair (W_KQ, W_PV), or (beta, alpha) for model='identity'")
    shape = () if model == "identity" else (n, n)
    out = []
    for label, w in zip((f"{name}[0]", f"{name}[1]"), init):
        w = as_float_array(label, w)
        if w.shape != shape:
            raise ValueError(f"{label} must have shape {shape} for model={model!r}, got {w.shape}")
        out.append(np.array(w, dtype=dtype))
    return out[0], out[1]


def check_batch_order(batch_order, epochs: int, n_train: int) -> np.ndarray:
    """Validate an explicit batch order: row e lists the training prompts (indices into the training set, in its
    order) in the order epoch e visits them, cut into consecutive mini-batches of ``batch_size`` (the last one
    smaller), exactly as the random order it replaces; a list of ``epochs`` index arrays is accepted as well.

    Shapes: batch_order (E, n_train) -> int64 array (E, n_train).
    """
    try:
        order = np.asarray(batch_order)
    except (TypeError, ValueError) as exc:
        raise TypeError("batch_order must be an integer array of shape (epochs, n_train)") from exc
    if order.dtype.kind not in "iu":
        raise TypeError(f"batch_order must hold integer indices, got dtype {order.dtype}")
    if order.shape != (epochs, n_train):
        raise ValueError(f"batch_order must have shape (epochs, n_train) = {(epochs, n_train)}, got {order.shape}")
    order = order.astype(np.int64)
    expected = np.arange(n_train)
    for e, row in enumerate(order):
        if not np.array_equal(np.sort(row), expected):
            raise ValueError(f"batch_order[{e}] must be a permutation of range({n_train}) (each training prompt "
                             f"once per epoch)")
    return order


def prepare_data(data, config: TrainConfig, test=None):
    """The run's (train, test) prompts, its task (None for Prompts data) and its resolved settings (a dict).

    ``data`` is a task (the dataset is drawn and split as :func:`split_prompts`) or a :class:`Prompts` batch
    (split at random by ``data_seed`` with the same rule, unless ``test`` gives the held-out prompts).
    """
    data_seed = config.seed if config.data_seed is None else config.data_seed
    if isinstance(data, Prompts):
        train_set, test_set = _split_own(data, config, test, data_seed)
        task, epochs = None, config.epochs or paper_epochs(data.task)
        L, n_prompts, label = data.L, len(train_set) + len(test_set), f"Prompts(B={len(data)}, n={data.n})"
    else:
        if not (callable(getattr(data, "sample", None)) and callable(getattr(data, "posterior_mean", None))):
            raise TypeError(f"data must be a task (with sample and posterior_mean) or a Prompts batch "
                            f"(e.g. Prompts.from_arrays(X, x_tilde, x)), got {type(data).__name__}")
        if test is not None:
            raise ValueError("test: only with Prompts as data (a task's test prompts are drawn from it)")
        L, n_prompts = config.L or L_PAPER, config.n_prompts or N_PROMPTS_PAPER
        train_set, test_set = split_prompts(data, L=L, data_seed=data_seed, n_prompts=n_prompts,
                                            test_fraction=config.test_fraction)
        task, epochs, label = data, config.epochs or paper_epochs(data), repr(data)
    settings = dataclasses.asdict(config)
    settings.update(task=label, L=L, n_prompts=n_prompts, epochs=epochs, data_seed=data_seed,
                    n_test=len(test_set), n_train=len(train_set), schedule=list(config.schedule))
    return train_set, test_set, task, settings


def _split_own(data: Prompts, config: TrainConfig, test, data_seed: int):
    """(train, test) of Prompts data: ``test`` as given, or a random split of ``data`` drawn from ``data_seed``."""
    if config.online or config.n_fresh:
        raise ValueError("online and n_fresh need a task as data (they sample new prompts), not Prompts")
    if config.L not in (None, data.L):
        raise ValueError(f"L must be None (read from the data) or the data's L = {data.L}, got {config.L}")
    if config.n_prompts not in (None, len(data)):
        raise ValueError(f"n_prompts must be None or len(data) = {len(data)}, got {config.n_prompts}")
    if test is None:
        n_test = n_test_of(config.test_fraction, len(data))
        return split_by_rng(data, stream_rng(data_seed, "data"), n_test)
    if not isinstance(test, Prompts):
        raise TypeError(f"test must be a Prompts batch (e.g. Prompts.from_arrays), got {type(test).__name__}")
    if test.n != data.n:
        raise ValueError(f"test prompts have n = {test.n}, the training prompts n = {data.n}")
    return data, test


def compress_linear(X: np.ndarray) -> np.ndarray:
    """An n-token context with the same linear attention as X: X' = sqrt(n/L) Rᵀ where Xᵀ = Q R (reduced QR).

    Linear attention (Eq. 11) and its gradients (``attention.attention_backward``) depend on the context only through
    S = X Xᵀ / L, and X' X'ᵀ / n = Rᵀ R / L = X Xᵀ / L. Training on X' is therefore the same computation on
    L / n times less data (31x at n = 16, L = 499); only rounding differs (tested against the full context).

    Shapes: X (B, n, L) with L > n -> X' (B, n, n).
    """
    n, L = X.shape[1], X.shape[2]
    R = np.linalg.qr(np.swapaxes(X, 1, 2), mode="r")  # (B, n, n)   Xᵀ = Q R
    return np.ascontiguousarray(np.swapaxes(R, 1, 2) * np.sqrt(n / L), dtype=X.dtype)  # (B, n, n)
