"""Input validation and small array helpers shared by every module.

Every public function of icdmin validates its arguments here, so that bad input fails early with a
``ValueError`` / ``TypeError`` that names the argument, instead of a NumPy traceback from deep inside,
a silent NaN or a wrong shape.

A package-internal module: its public names are for the other modules of icdmin (never a ``_name`` across
modules); the package's own namespace re-exports only :func:`mse` (and :mod:`icdmin.dam` ``lse``, ``softmax``).

Legend: ``B`` batch, ``n`` ambient dimension, ``L`` context length (clean tokens only).
"""

from __future__ import annotations

import functools
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
    "check_callable",
    "finite_output",
    "mse",
    "lse",
    "softmax",
    "lse_unchecked",
    "softmax_unchecked",
    "softmax_inplace",
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


def as_float_array(name: str, a, *, ndim=None, finite: bool = True, complex_ok: bool = False) -> np.ndarray:
    """Convert ``a`` to a float array, keeping float32 if the caller passed float32, else float64.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    a : array_like
        Real numeric input (not bool, not None, not strings or objects).
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    finite : bool
        If True, NaN or inf anywhere raises ``ValueError``.
    complex_ok : bool
        Keep complex input as complex128 (the NumPy specification of the energy and of attention, which the
        complex-step gradient checks evaluate at complex points); otherwise complex input raises ``TypeError``.
    """
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError, OverflowError) as exc:  # ragged lists, ints beyond int64 and the like
            raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from exc
    kind = arr.dtype.kind
    if kind not in "iufc":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype} ({type(a).__name__})")
    if kind == "c" and not complex_ok:
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
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


def check_context(X, x_tilde, *, X_name: str = "X", q_name: str = "x_tilde", finite: bool = True,
                  complex_ok: bool = False):
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
    X = as_float_array(X_name, X, ndim=(2, 3), finite=finite, complex_ok=complex_ok)
    q = as_float_array(q_name, x_tilde, ndim=(1, 2), finite=finite, complex_ok=complex_ok)
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


def check_callable(name: str, f):
    """Require a callable, or raise ``TypeError`` naming ``name``."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    return f


def _all_finite(result) -> bool:
    """Whether every array / number in ``result`` (nested tuples, lists and dict values) is finite."""
    if isinstance(result, dict):
        return all(_all_finite(v) for v in result.values())
    if isinstance(result, (tuple, list)):
        return all(_all_finite(v) for v in result)
    if isinstance(result, (np.ndarray, numbers.Number, np.generic)) and not isinstance(result, (bool, np.bool_)):
        arr = np.asarray(result)
        return arr.dtype.kind not in "fc" or bool(np.all(np.isfinite(arr)))
    return True


def finite_output(*names: str):
    """Decorator: run the function with NumPy's floating-point warnings off and raise ``ValueError`` if its result
    holds NaN or inf. The inputs are validated as finite, so such a result is an overflow; the message names the
    arguments ``names`` whose scale caused it (no silent NaN, no stray ``RuntimeWarning``)."""

    def wrap(fn):
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            with np.errstate(all="ignore"):
                result = fn(*args, **kwargs)
            if not _all_finite(result):
                raise ValueError(f"{fn.__name__}: non-finite result from finite inputs (overflow: reduce the scale "
                                 f"of {', '.join(names)})")
            return result

        return checked

    return wrap


@finite_output("pred", "target")
def mse(pred, target) -> float:
    """Mean squared error over prompts *and* coordinates (the paper's figures' "MSE/n").

    Real input only (complex input raises ``TypeError``: |z|² and z² differ there).

    Shapes: pred, target (n,) or (B, n) -> float.
    """
    pred = as_float_array("pred", pred, ndim=(1, 2))
    target = as_float_array("target", target, ndim=(1, 2))
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} and target shape {target.shape} differ")
    if pred.size == 0:
        raise ValueError(f"pred and target must not be empty, got shape {pred.shape}")
    diff = pred - target
    return float(np.mean(diff * diff))


# ----------------------------------------------------------------------------------------------------------------
# the stable log-sum-exp and softmax used everywhere (lse, softmax re-exported by icdmin.dam); the *_unchecked and
# in-place variants skip validation, for package modules that pass arrays they have already checked


def _check_logits(z, axis):
    """Validate the input of :func:`lse` / :func:`softmax`: a non-empty real (or complex) array without NaN or +inf
    (-inf entries, zero weights, are allowed unless a whole slice is -inf) and an axis in range."""
    z = as_float_array("z", z, finite=False, complex_ok=True)
    if z.ndim == 0:
        raise ValueError("z must have at least one dimension, got a scalar")
    axis = check_int("axis", axis)
    if not -z.ndim <= axis < z.ndim:
        raise ValueError(f"axis {axis} is out of range for z of shape {z.shape}")
    if z.shape[axis] == 0:
        raise ValueError(f"z must be non-empty along axis {axis}, got shape {z.shape}")
    if np.any(np.isnan(z)) or np.any(z.real == np.inf) or np.any(np.isinf(z.imag)):
        raise ValueError("z contains NaN or +inf (only -inf, a zero weight, is allowed)")
    if np.any(np.all(z.real == -np.inf, axis=axis)):
        raise ValueError(f"z: every entry of a slice along axis {axis} is -inf (no weight left)")
    return z, axis


@finite_output("z")
def lse(z, axis: int = -1):
    """Log-sum-exp along ``axis`` with a max shift: log Σ_i exp(z_i).

    The shift uses ``max(z.real)`` and is held constant, so complex-step derivatives pass through
    exactly. Shapes: z (..., L) -> (...) for the given axis.
    """
    return lse_unchecked(*_check_logits(z, axis))


def lse_unchecked(z, axis: int = -1):
    """:func:`lse` without validation (internal callers pass finite float arrays). Shapes: (..., L) -> (...)."""
    m = np.max(z.real, axis=axis, keepdims=True)  # (..., 1)
    e = _shifted(z, m)  # (..., L)  z − max, a fresh float array
    out = m + np.log(np.sum(np.exp(e, out=e), axis=axis, keepdims=True))  # (..., 1)
    return np.squeeze(out, axis=axis)


@finite_output("z")
def softmax(z, axis: int = -1):
    """Softmax along ``axis`` with a max shift: exp(z_i) / Σ_j exp(z_j).

    Shapes: z (..., L) -> (..., L), a fresh array. Complex input is supported for complex-step checks.
    """
    z, axis = _check_logits(z, axis)
    return softmax_inplace(z.copy(), axis)


def softmax_inplace(e, axis: int = -1):
    """Overwrite the float (or complex) array ``e`` with its softmax along ``axis`` (the max-shifted formula of
    :func:`softmax`, without large temporaries or validation). Shapes: (..., L) -> (..., L)."""
    e -= np.max(e.real, axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def softmax_unchecked(z, axis: int = -1):
    """:func:`softmax` without validation, on a fresh array (internal callers pass finite or -inf logits).
    Shapes: (..., L) -> (..., L)."""
    e = z.astype(np.float64) if z.dtype.kind not in "fc" else z.copy()  # (..., L)
    return softmax_inplace(e, axis)


def _shifted(z, m):
    """z − m as a fresh float (or complex) array that the caller may overwrite."""
    e = z - m
    return e if e.dtype.kind in "fc" else e.astype(np.float64)
