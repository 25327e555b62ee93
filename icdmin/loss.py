"""The training objective of one-layer attention, the MSE of Eq. (9), and its exact gradients (paper §3).

loss = mean over prompts and coordinates of (W_PV X a − x)², the attention output of :mod:`icdmin.layer` (Eqs. 11,
12, 14) against the clean targets. Each validated function has an ``*_unchecked`` twin for callers that validate
once (the training loop, :mod:`icdmin.gaussian_attention`); ``loss_and_grads`` runs the fused Numba kernel of
``_kernels.py`` when :func:`~icdmin.layer.backend_for` says so. :mod:`icdmin.layer` re-exports every public name
here. Also the scaled-identity model W_KQ = βI, W_PV = αI (§3.3).

Legend: ``B`` batch, ``n`` token dimension, ``L`` context length (clean tokens only).
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._arrays import as_float_array, check_real, finite_output
from .layer import backend_for, backward_unchecked, check_attention_inputs, forward_unchecked, raise_non_finite

__all__ = [
    "mse_forward",
    "mse_backward",
    "mse_forward_unchecked",
    "mse_backward_unchecked",
    "loss_and_grads",
    "loss_and_grads_numpy",
    "loss_and_grads_numpy_unchecked",
    "loss_and_grads_unchecked",
    "loss_and_grads_identity",
]


@finite_output("out", "x")
def mse_forward(out, x):
    """MSE over prompts and coordinates: mean over B·n of (out − x)². Shapes: out, x (B, n) | (n,) -> loss, out − x."""
    out = as_float_array("out", out, ndim=(1, 2), complex_ok=True)
    x = as_float_array("x", x, ndim=(1, 2), complex_ok=True)
    if out.shape != x.shape or out.size == 0:
        raise ValueError(f"out and x must have one non-empty shape, got {out.shape} and {x.shape}")
    return mse_forward_unchecked(out, x)


def mse_forward_unchecked(out, x):
    """:func:`mse_forward` without validation: ``(mean(diff²), diff)`` with diff = out − x. Shapes: out, x (B, n)
    -> (scalar, (B, n))."""
    diff = out - x  # (B, n)
    return np.mean(diff * diff), diff


@finite_output("diff")
def mse_backward(diff):
    """dloss/dout of :func:`mse_forward`. Shapes: diff (B, n) | (n,) -> dout, same shape."""
    diff = as_float_array("diff", diff, ndim=(1, 2), complex_ok=True)
    if diff.size == 0:
        raise ValueError("diff must not be empty")
    return mse_backward_unchecked(diff)


def mse_backward_unchecked(diff):
    """:func:`mse_backward` without validation. Shapes: diff (B, n) -> dout (B, n)."""
    # loss = mean(diff * diff)
    return (2.0 / diff.size) * diff  # (B, n)


def loss_and_grads_numpy(X, x_tilde, x, W_KQ, W_PV, kind="softmax"):
    """:func:`loss_and_grads` through the NumPy specification (parity tests, benchmarks, complex-step checks: complex
    input stays complex). Shapes: as :func:`loss_and_grads`."""
    if x is None:
        raise TypeError("x must be the clean targets, an array like x_tilde, got None")
    X3, q2, x2, W_KQ, W_PV, kind, _ = check_attention_inputs(X, x_tilde, x, W_KQ, W_PV, kind)
    with np.errstate(all="ignore"):  # a non-finite result is diagnosed below, naming the argument
        loss, dW_KQ, dW_PV = loss_and_grads_numpy_unchecked(X3, q2, x2, W_KQ, W_PV, kind)
    if not (np.isfinite(loss) and np.all(np.isfinite(dW_KQ)) and np.all(np.isfinite(dW_PV))):
        raise_non_finite("loss_and_grads_numpy", X3)
    return loss, dW_KQ, dW_PV


def loss_and_grads_numpy_unchecked(X, x_tilde, x, W_KQ, W_PV, kind):
    """:func:`loss_and_grads_numpy` without validation: forward, MSE, manual backward on arrays that
    :func:`~icdmin.layer.check_attention_inputs` has prepared. Shapes: X (B, n, L), x_tilde and x (B, n), W (n, n)
    -> (loss, dW_KQ (n, n), dW_PV (n, n)), loss a NumPy scalar."""
    out, cache = forward_unchecked(X, x_tilde, W_KQ, W_PV, kind)  # (B, n)
    loss, diff = mse_forward_unchecked(out, x)
    dW_KQ, dW_PV = backward_unchecked(mse_backward_unchecked(diff), cache)
    return loss, dW_KQ, dW_PV


def loss_and_grads_unchecked(X, x_tilde, x, W_KQ, W_PV, kind, index=None):
    """Training-loop entry point: no validation, no conversion.

    The caller guarantees batched C-contiguous arrays of one real dtype (float64 or float32), X (N, n, L),
    x_tilde and x (N, n), W_KQ and W_PV (n, n), all finite, and ``kind`` in ``KINDS``. With ``index`` (an int64
    array of prompt numbers in [0, N)) the batch is X[index], x_tilde[index], x[index], and the kernel reads those
    prompts in place (a mini-batch loop then never copies contexts). Returns ``(loss, dW_KQ, dW_PV)`` with
    ``loss`` a Python float.
    """
    if _kernels.JIT_ENABLED:
        index = np.arange(X.shape[0]) if index is None else index
        loss, dW_KQ, dW_PV = _kernels.loss_and_grads(_kernels.KIND_CODES[kind], X, x_tilde, x, W_KQ, W_PV, index)
        return float(loss), dW_KQ, dW_PV
    if index is not None:
        X, x_tilde, x = X[index], x_tilde[index], x[index]  # (B, n, L), (B, n), (B, n)
    loss, dW_KQ, dW_PV = loss_and_grads_numpy_unchecked(X, x_tilde, x, W_KQ, W_PV, kind)
    return float(loss), dW_KQ, dW_PV


def loss_and_grads(X, x_tilde, x, W_KQ, W_PV, kind="softmax"):
    """MSE of the attention output against the clean targets, and its exact gradients (paper §3, Eqs. 11, 12, 14).

    loss = mean over prompts and coordinates of (W_PV X a − x)²; a per ``kind`` (module docstring). X: clean
    context tokens as columns; x_tilde: noisy queries; x: clean targets; W_KQ, W_PV: merged key-query and
    projection-value weights; kind in ``KINDS``. Returns (loss, dW_KQ, dW_PV) as (float, (n, n), (n, n)).

    Shapes: X (n, L) | (B, n, L), x_tilde and x (n,) | (B, n), W (n, n). Uses the fused Numba kernel when
    :func:`backend_for` says so, the NumPy specification otherwise.
    """
    if x is None:
        raise TypeError("x must be the clean targets, an array like x_tilde, got None")
    X3, q2, x2, W_KQ, W_PV, kind, _ = check_attention_inputs(X, x_tilde, x, W_KQ, W_PV, kind)
    with np.errstate(all="ignore"):  # a non-finite result is diagnosed below, naming the argument
        if backend_for(X3, kind) == "numba":
            loss, dW_KQ, dW_PV = loss_and_grads_unchecked(X3, q2, x2, W_KQ, W_PV, kind)
        else:
            loss, dW_KQ, dW_PV = loss_and_grads_numpy_unchecked(X3, q2, x2, W_KQ, W_PV, kind)
    if not (np.isfinite(loss) and np.all(np.isfinite(dW_KQ)) and np.all(np.isfinite(dW_PV))):
        raise_non_finite("loss_and_grads", X3)
    return loss, dW_KQ, dW_PV


def loss_and_grads_identity(X, x_tilde, x, alpha, beta, kind="softmax"):
    """MSE and its gradients in the scaled-identity parameterisation W_KQ = βI, W_PV = αI (paper §3.3).

    By the chain rule dloss/dα = tr(dW_PV) and dloss/dβ = tr(dW_KQ) at W_KQ = βI, W_PV = αI.

    Shapes: as :func:`loss_and_grads` -> (float, float, float).
    """
    alpha = check_real("alpha", alpha)
    beta = check_real("beta", beta)
    X3 = as_float_array("X", X, ndim=(2, 3), finite=False)  # real only (the traces below are real numbers)
    as_float_array("x_tilde", x_tilde, ndim=(1, 2), finite=False)
    as_float_array("x", x, ndim=(1, 2), finite=False)
    biggest = float(np.finfo(X3.dtype).max)  # beta * eye is cast to X's dtype: it must not overflow there
    for name, value in (("alpha", alpha), ("beta", beta)):
        if abs(value) > biggest:
            raise ValueError(f"{name}: expected |{name}| <= {biggest:.4g} (the largest {X3.dtype} of X), got {value!r}")
    eye = np.eye(X3.shape[-2], dtype=X3.dtype)
    try:
        loss, dW_KQ, dW_PV = loss_and_grads(X, x_tilde, x, beta * eye, alpha * eye, kind)
    except ValueError as exc:
        if "overflow" not in str(exc):
            raise
        raise ValueError("loss_and_grads_identity: non-finite result from finite inputs (overflow: reduce the scale "
                         "of X, x_tilde, x, alpha or beta)") from exc
    return loss, float(np.trace(dW_PV)), float(np.trace(dW_KQ))
