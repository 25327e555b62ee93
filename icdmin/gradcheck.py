"""Gradient checks shipped with the package: manual gradients against numerical ones.

Two independent checks of ``loss_and_grads``-style functions ``f(params) -> (loss, grads)``:

1. :func:`directional_error` (HIPS/autograd's ``check_vjp``): for a random direction U, the central difference
   (f(P + εU) − f(P − εU)) / 2ε against ⟨dP, U⟩. One scalar per parameter, works for every path (NumPy, Numba
   kernels, float64 only). Its error is O(ε²) truncation plus O(eps_machine / ε) rounding, about 1e-10 at ε = 1e-5.
2. :func:`complex_step_error` (MyGrad): elementwise Im f(P + ihE_ij) / h with h = 1e-20, exact to rounding because
   nothing on the NumPy path is non-analytic (the softmax max shift uses the real part only). Tiny shapes only.

``python -m icdmin gradcheck`` runs :func:`main`: every kind and parameterisation, prints the worst relative error
per parameter and method, and ``overall okay: 1`` (exit 0) or ``overall okay: 0`` (exit 1).

Legend: ``B`` batch, ``n`` token dimension, ``L`` context length.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._arrays import as_float_array, check_callable, check_int, check_positive, check_rng, finite_output
from .layer import KINDS
from .loss import loss_and_grads, loss_and_grads_identity, loss_and_grads_numpy
from .gaussian_attention import loss_and_grads_gaussian

__all__ = ["directional_error", "complex_step_error", "check_all", "main", "TOLERANCES"]

# Worst relative errors accepted by main(): complex step is exact to rounding (1e-8 leaves room); the central
# difference at eps = 1e-5 has O(1e-10) truncation and rounding error, 1e-6 leaves room for curvature.
TOLERANCES = {"complex-step": 1e-8, "directional": 1e-6}


def _rel(num, ana, floor: float = 1e-300) -> float:
    """|num − ana| relative to the larger magnitude, or to ``floor`` if both are smaller."""
    scale = max(np.max(np.abs(num)), np.max(np.abs(ana)), floor)
    return float(np.max(np.abs(num - ana)) / scale)


def _loss_and_grads(f, args, params, step):
    """Call ``f(*args)`` and check that it returns (loss, *grads): a real finite scalar loss and one gradient with
    the shape of each parameter. Returns (loss as a Python float or complex, list of gradients)."""
    out = f(*args)
    if not isinstance(out, (tuple, list)) or len(out) != len(params) + 1:
        raise TypeError(f"f must return (loss, *grads) with {len(params)} gradient(s), got {type(out).__name__}")
    loss = np.asarray(out[0])
    if loss.ndim != 0 or loss.dtype.kind not in "iufc" or not np.isfinite(loss):
        raise ValueError(f"f must return a finite scalar loss at params (perturbed by the step {step}), got "
                         f"{out[0]!r}")
    grads = [np.asarray(g) for g in out[1:]]
    if any(g.shape != np.shape(p) or g.dtype.kind not in "iufc" for g, p in zip(grads, params)):
        raise ValueError("f's gradients must be numeric arrays with the shapes of params")
    return loss[()], grads


def _arg(p):
    """Scalars (alpha, beta) go back to the function as Python floats."""
    return float(p) if np.ndim(p) == 0 else p


@finite_output("f", "params", "eps")
def directional_error(f, params, rng, eps: float = 1e-5):
    """Relative error of ⟨grad, U⟩ against the central difference along a random unit direction U.

    Parameters
    ----------
    f : callable
        ``f(*params) -> (loss, *grads)``, one gradient per parameter.
    params : sequence of ndarray or float
    rng : numpy.random.Generator

    Returns
    -------
    list of float, one relative error per parameter. Directional derivatives smaller than 1e-4 |loss| are
    compared in absolute terms (relative to 1e-4 |loss|): the difference quotient's rounding noise is about
    1e-16 |loss| / eps = 1e-11 |loss|, so an exactly-zero gradient (e.g. softmax over one token) still passes.
    """
    rng = check_rng(rng)
    f, params = check_callable("f", f), _params(params, complex_ok=False)
    eps = check_positive("eps", eps)
    loss, grads = _loss_and_grads(f, list(map(_arg, params)), params, "eps")
    loss = float(np.real(loss))
    floor = 1e-4 * abs(float(loss))
    errors = []
    for k, (p, g) in enumerate(zip(params, grads)):
        U = rng.standard_normal(p.shape)
        U /= np.linalg.norm(U) or 1.0
        h = eps * max(1.0, float(np.max(np.abs(p))))
        plus = [_arg(q if j != k else p + h * U) for j, q in enumerate(params)]
        minus = [_arg(q if j != k else p - h * U) for j, q in enumerate(params)]
        numerical = (_loss_and_grads(f, plus, params, "eps")[0] - _loss_and_grads(f, minus, params, "eps")[0]) / (2 * h)
        analytic = float(np.sum(np.asarray(g) * U))
        errors.append(_rel(np.float64(numerical), np.float64(analytic), floor))
    return errors


@finite_output("f", "params", "h", "floor")
def complex_step_error(f, params, h: float = 1e-20, floor: float = 1e-300):
    """Worst relative error of each manual gradient against the elementwise complex step Im f(P + ihE) / h.

    ``f`` must be complex-analytic in its parameters (the NumPy path). Returns one error per parameter, relative to
    the largest entry of that gradient, or to ``floor`` if that is larger. A saturated softmax has gradients far
    below the loss while the manual backward still cancels terms of the loss's size (a ⊙ (g − aᵀg)), whose
    rounding is ~1e-16 × loss: pass e.g. ``floor=1e-6 * loss`` to compare such tiny gradients in absolute terms.
    """
    f, params = check_callable("f", f), _params(params, complex_ok=False)
    h, floor = check_positive("h", h), check_positive("floor", floor)
    grads = _loss_and_grads(f, params, params, "h")[1]
    errors = []
    for k, (p, g) in enumerate(zip(params, grads)):
        numerical = np.empty(p.shape)
        for idx in np.ndindex(p.shape):
            pc = p.astype(np.complex128)
            pc[idx] += 1j * h
            args = [q if j != k else pc for j, q in enumerate(params)]
            numerical[idx] = np.imag(_loss_and_grads(f, args, params, "h")[0]) / h
        errors.append(_rel(numerical, np.real(np.asarray(g)), floor))
    return errors


def _params(params, complex_ok):
    """The parameters as a list of float64 arrays (a tuple or list of arrays / numbers), validated."""
    if not isinstance(params, (tuple, list)) or not params:
        raise TypeError(f"params must be a non-empty tuple or list of arrays, got {type(params).__name__}")
    return [as_float_array(f"params[{i}]", p, complex_ok=complex_ok).astype(np.float64) for i, p in enumerate(params)]


def _problem(rng, B, n, L, scale=1.0):
    X = rng.standard_normal((B, n, L)) / np.sqrt(n)  # (B, n, L) unit-norm-ish tokens
    x = rng.standard_normal((B, n)) / np.sqrt(n)  # (B, n)
    x_tilde = x + 0.5 * rng.standard_normal((B, n)) / np.sqrt(n)  # (B, n)
    W_KQ = scale * rng.uniform(-1, 1, (n, n))  # (n, n)
    W_PV = rng.uniform(-1, 1, (n, n))  # (n, n)
    return X, x_tilde, x, W_KQ, W_PV


def check_all(seed: int = 0, repeats: int = 3):
    """Worst relative errors for every kind, parameterisation, parameter and method.

    Returns a dict ``{(model, parameter, method): worst error}``.
    """
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    repeats = check_int("repeats", repeats, minimum=1)
    worst: dict = {}

    def record(model, names, method, errors):
        for name, err in zip(names, errors):
            key = (model, name, method)
            worst[key] = max(worst.get(key, 0.0), err)

    for _ in range(repeats):
        for kind in KINDS:
            X, q, x, W_KQ, W_PV = _problem(rng, 2, 3, 5, scale=2.0)  # tiny: elementwise complex step
            f = lambda A, P, kind=kind, X=X, q=q, x=x: loss_and_grads_numpy(X, q, x, A, P, kind)  # noqa: E731
            record(kind, ("W_KQ", "W_PV"), "complex-step", complex_step_error(f, (W_KQ, W_PV)))
            X, q, x, W_KQ, W_PV = _problem(rng, 8, 6, 40, scale=2.0)  # the dispatched path (kernel if numba)
            g = lambda A, P, kind=kind, X=X, q=q, x=x: loss_and_grads(X, q, x, A, P, kind)  # noqa: E731
            record(kind, ("W_KQ", "W_PV"), "directional", directional_error(g, (W_KQ, W_PV), rng))
            X, q, x, _, _ = _problem(rng, 4, 5, 30)
            h = lambda a, b, kind=kind, X=X, q=q, x=x: loss_and_grads_identity(X, q, x, a, b, kind)  # noqa: E731
            alpha, beta = rng.uniform(0.5, 2.0, 2)
            record(kind + " identity", ("alpha", "beta"), "directional", directional_error(h, (alpha, beta), rng))
        X, q, x, _, W_PV = _problem(rng, 2, 3, 5)
        W_K, W_Q = rng.uniform(-1, 1, (2, 4, 3))  # (m, n) = (4, 3): rectangular on purpose
        f = lambda K, Q, P, X=X, q=q, x=x: loss_and_grads_gaussian(X, q, x, K, Q, P)  # noqa: E731
        names = ("W_K", "W_Q", "W_PV")
        record("gaussian W_K,W_Q", names, "complex-step", complex_step_error(f, (W_K, W_Q, W_PV)))
        record("gaussian W_K,W_Q", names, "directional", directional_error(f, (W_K, W_Q, W_PV), rng))
    return worst


def main(seed: int = 0) -> int:
    """Print the worst relative error per model, parameter and method; return 0 if all pass, 1 otherwise."""
    worst = check_all(seed)
    backend = "numba kernels" if _kernels.JIT_ENABLED else "numpy"
    print(f"gradient check, seed {seed} (directional checks run the dispatched path: {backend})")
    print(f"{'model':<20} {'parameter':<8} {'method':<13} {'worst rel. error':>16}  tolerance  ok")
    okay = True
    for (model, name, method), err in worst.items():
        ok = err <= TOLERANCES[method]
        okay &= ok
        print(f"{model:<20} {name:<8} {method:<13} {err:16.2e}  {TOLERANCES[method]:9.0e}  {int(ok)}")
    print(f"overall okay: {int(okay)}")
    return 0 if okay else 1
