"""Input validation and small array helpers shared by every module.

Every public function of icdmin validates its arguments here, so that bad input fails early with a
``ValueError`` / ``TypeError`` that names the argument, instead of a NumPy traceback from deep inside,
a silent NaN or a wrong shape.

Legend: ``B`` batch, ``n`` ambient dimension, ``L`` context length (clean tokens only).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_bool",
    "check_int",
    "check_positive",
    "check_real",
    "check_context",
    "check_rng",
    "mse",
]


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a Python bool, or raise ``TypeError`` naming ``name`` (0/1 and strings are not bools)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``.

    Booleans and non-integral floats are rejected (``TypeError``); out-of-range values raise ``ValueError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(name: str, value) -> float:
    """Return ``value`` as a finite Python float, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float that is > 0 (or >= 0 with ``allow_zero``), or raise naming ``name``."""
    value = check_real(name, value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_rng(rng) -> np.random.Generator:
    """Require a ``numpy.random.Generator`` (icdmin never touches global random state)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), got {type(rng).__name__}"
        )
    return rng


def as_float_array(name: str, a, *, ndim=None, finite: bool = True) -> np.ndarray:
    """Convert ``a`` to a float array, keeping float32 if the caller passed float32, else float64.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    a : array_like
        Real numeric input. Complex input is kept complex (complex-step gradient checks need it).
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    finite : bool
        If True, NaN or inf anywhere raises ``ValueError``.
    """
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError) as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from exc
    kind = arr.dtype.kind
    if kind not in "biufc" or kind == "b":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if kind == "c":
        arr = arr.astype(np.complex128, copy=False)
    elif arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(k) for k in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_context(X, x_tilde, *, X_name: str = "X", q_name: str = "x_tilde", finite: bool = True):
    """Validate a context / query pair and bring it to batched form.

    Shapes: X (n, L) with x_tilde (n,), or X (B, n, L) with x_tilde (B, n). ``finite=False`` skips the NaN/inf
    scan (callers that check a cheap result for finiteness instead).

    Returns
    -------
    X3 : ndarray (B, n, L)
    q2 : ndarray (B, n)
    single : bool
        True if the input was a single prompt; callers use it to drop the batch axis on output.
    """
    X = as_float_array(X_name, X, ndim=(2, 3), finite=finite)
    q = as_float_array(q_name, x_tilde, ndim=(1, 2), finite=finite)
    if X.ndim - q.ndim != 1:
        raise ValueError(
            f"{X_name} of shape {X.shape} and {q_name} of shape {q.shape} do not match: "
            f"expected (n, L) with (n,), or (B, n, L) with (B, n)"
        )
    single = X.ndim == 2
    X3 = X[None] if single else X  # (B, n, L)
    q2 = q[None] if single else q  # (B, n)
    if X3.shape[0] != q2.shape[0]:
        raise ValueError(f"batch sizes differ: {X_name} has {X3.shape[0]}, {q_name} has {q2.shape[0]}")
    if X3.shape[1] != q2.shape[1]:
        raise ValueError(f"token dimension differs: {X_name} has n={X3.shape[1]}, {q_name} has n={q2.shape[1]}")
    if X3.shape[2] < 1:
        raise ValueError(f"{X_name} must hold at least one context token (L >= 1), got shape {X.shape}")
    if X3.shape[0] < 1 or X3.shape[1] < 1:
        raise ValueError(f"{X_name} must have B >= 1 and n >= 1, got shape {X.shape}")
    return X3, q2, single


def mse(pred, target) -> float:
    """Mean squared error over prompts *and* coordinates (the paper's figures' "MSE/n").

    Shapes: pred, target (n,) or (B, n) -> float.
    """
    pred = as_float_array("pred", pred, ndim=(1, 2))
    target = as_float_array("target", target, ndim=(1, 2))
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} and target shape {target.shape} differ")
    diff = pred - target
    return float(np.mean(diff * diff))
