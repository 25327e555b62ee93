"""Optimisers written out by hand: SGD with momentum, Adam, and the step-down learning-rate schedule.

The authors train with ``torch.optim.Adam(lr=1e-2)`` (default betas and eps) and a ``MultiStepLR`` that multiplies
the rate by 0.1 at 80 % and 90 % of the epochs (paper §5; the authors' repository mattsmart/in-context-denoising
at commit c8aaeb3). The updates below are the same
arithmetic as ``torch.optim.SGD`` / ``torch.optim.Adam`` with their defaults (no weight decay, no dampening, no
Nesterov, no AMSGrad), written as pure functions on a tuple of arrays (llm.c ``gpt2_update`` style):

    new_params, new_state = adam_step(params, grads, state, lr=...)

Nothing is modified in place; ``state=None`` means "first step" (zero moments). Parameters can be any arrays of
matching shapes (the ``(n, n)`` matrices W_KQ, W_PV, or the 0-d scalars alpha, beta).

Shapes: params, grads: tuples of arrays with pairwise equal shapes; the state holds arrays of the same shapes.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ._arrays import as_float_array, check_int, check_positive, check_real

__all__ = ["AdamState", "SGDState", "adam_step", "adam_update", "sgd_step", "sgd_update", "step_schedule"]


class SGDState(NamedTuple):
    """State of SGD with momentum: the momentum buffers (torch's ``momentum_buffer``), one per parameter."""

    velocity: tuple  # tuple of arrays, shapes of the params


class AdamState(NamedTuple):
    """State of Adam: the step count and the first / second moment estimates (torch's ``exp_avg``, ``exp_avg_sq``)."""

    step: int  # number of updates already applied
    m: tuple  # first moments, shapes of the params
    v: tuple  # second (uncentred) moments, shapes of the params


def _check_pairs(params: Sequence, grads: Sequence) -> tuple[tuple, tuple]:
    """Validate params / grads as equally long sequences of finite float arrays with matching shapes."""
    for name, seq in (("params", params), ("grads", grads)):
        if not isinstance(seq, (tuple, list)):
            raise TypeError(f"{name} must be sequences (tuple/list) of arrays, got {type(seq).__name__}")
    params = tuple(as_float_array(f"params[{i}]", p) for i, p in enumerate(params))
    grads = tuple(as_float_array(f"grads[{i}]", g) for i, g in enumerate(grads))
    if len(params) == 0 or len(params) != len(grads):
        raise ValueError(f"params and grads must be non-empty and equally long, got {len(params)} and {len(grads)}")
    for i, (p, g) in enumerate(zip(params, grads)):
        if p.shape != g.shape:
            raise ValueError(f"grads[{i}] has shape {g.shape}, params[{i}] has shape {p.shape}")
    return params, grads


def _check_state_arrays(name: str, arrays, params: tuple) -> tuple:
    """Validate ``state.<name>``: a tuple/list of finite real arrays with the shapes of ``params``."""
    if not isinstance(arrays, (tuple, list)):
        raise TypeError(f"state.{name} must be a tuple of arrays, got {type(arrays).__name__}")
    if len(arrays) != len(params):
        raise ValueError(f"state.{name} holds {len(arrays)} arrays, params holds {len(params)}")
    arrays = tuple(as_float_array(f"state.{name}[{i}]", a) for i, a in enumerate(arrays))
    for i, (a, p) in enumerate(zip(arrays, params)):
        if a.shape != p.shape:
            raise ValueError(f"state.{name}[{i}] has shape {a.shape}, params[{i}] has shape {p.shape}")
    return arrays


def _check_state(state, cls):
    """``state`` must be None or an instance of ``cls`` (the state returned by the previous step)."""
    if state is not None and not isinstance(state, cls):
        raise TypeError(f"state must be None or the {cls.__name__} of the previous step, got {type(state).__name__}")


def _finite_step(where, new):
    """Raise ``ValueError`` if an update overflowed (finite inputs, non-finite new parameters or state)."""
    params, state = new
    arrays = params + tuple(a for field in state if isinstance(field, tuple) for a in field)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(f"{where}: non-finite update from finite inputs (overflow: reduce the scale of params, "
                         "grads or lr)")
    return new


def sgd_step(params, grads, state: SGDState | None, *, lr: float, momentum: float = 0.0):
    """One step of SGD with (heavy-ball) momentum, as ``torch.optim.SGD`` with ``dampening=0, nesterov=False``.

        b_t = momentum * b_{t-1} + g_t      (b_1 = g_1)
        p_t = p_{t-1} - lr * b_t

    With ``momentum=0`` this is plain gradient descent p <- p - lr g.

    Parameters
    ----------
    params, grads : sequence of ndarray
        Current parameters and their gradients (equal shapes, pairwise).
    state : SGDState or None
        Momentum buffers from the previous step; None before the first step.
    lr : float
        Learning rate (> 0).
    momentum : float
        Momentum coefficient in [0, 1).

    Returns
    -------
    new_params : tuple of ndarray
    new_state : SGDState

    Shapes: every array keeps its shape.
    """
    params, grads = _check_pairs(params, grads)
    lr = check_positive("lr", lr)
    momentum = check_real("momentum", momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    _check_state(state, SGDState)
    if state is not None:
        state = SGDState(_check_state_arrays("velocity", state.velocity, params))
    with np.errstate(all="ignore"):
        return _finite_step("sgd_step", sgd_update(params, grads, state, lr, momentum))


def sgd_update(params: tuple, grads: tuple, state: SGDState | None, lr, momentum):
    """The unchecked arithmetic of :func:`sgd_step`: no validation, no finiteness check (training loops validate
    once, then call this). ``params``, ``grads``: tuples of arrays of matching shapes; ``state`` None at the first
    step. Returns ``(new_params, SGDState)``."""
    if state is None:
        velocity = tuple(g.copy() for g in grads)  # torch: buf = clone(grad) at the first step
    else:
        velocity = tuple(momentum * b + g for b, g in zip(state.velocity, grads))
    new_params = tuple(p - lr * b for p, b in zip(params, velocity))
    return new_params, SGDState(velocity)


def adam_step(params, grads, state: AdamState | None, *, lr: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-8):
    """One Adam step, the same update as ``torch.optim.Adam`` with its defaults.

        t   = t + 1
        m_t = beta1 m_{t-1} + (1 - beta1) g
        v_t = beta2 v_{t-1} + (1 - beta2) g**2
        p_t = p_{t-1} - (lr / (1 - beta1**t)) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    i.e. bias-corrected moments with ``eps`` added to the bias-corrected square root (not inside it).

    Parameters
    ----------
    params, grads : sequence of ndarray
        Current parameters and their gradients (equal shapes, pairwise).
    state : AdamState or None
        Step count and moments from the previous step; None before the first step (t = 0, zero moments).
    lr : float
        Learning rate (> 0); the schedule multiplies it (see :func:`step_schedule`).
    betas : (float, float)
        Moment decay rates, each in [0, 1).
    eps : float
        Added to the bias-corrected sqrt(v) (>= 0).

    Returns
    -------
    new_params : tuple of ndarray
    new_state : AdamState

    Shapes: every array keeps its shape.
    """
    params, grads = _check_pairs(params, grads)
    lr = check_positive("lr", lr)
    eps = check_positive("eps", eps, allow_zero=True)
    if not isinstance(betas, (tuple, list)):
        raise TypeError(f"betas must be a pair (beta1, beta2), got {type(betas).__name__}")
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = check_real("betas[0]", betas[0]), check_real("betas[1]", betas[1])
    for name, b in (("betas[0]", beta1), ("betas[1]", beta2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {b}")
    _check_state(state, AdamState)
    if state is not None:
        state = AdamState(check_int("state.step", state.step, minimum=0), _check_state_arrays("m", state.m, params),
                          _check_state_arrays("v", state.v, params))
        if any(np.any(v < 0) for v in state.v):
            raise ValueError("state.v holds negative second moments")
    with np.errstate(all="ignore"):
        return _finite_step("adam_step", adam_update(params, grads, state, lr, beta1, beta2, eps))


def adam_update(params: tuple, grads: tuple, state: AdamState | None, lr, beta1, beta2, eps):
    """The unchecked arithmetic of :func:`adam_step` (training loops validate once, then call this): no validation,
    no finiteness check. ``params``, ``grads``: tuples of arrays of matching shapes; ``state`` None at the first
    step. Returns ``(new_params, AdamState)``."""
    if state is None:
        step, m_old, v_old = 0, tuple(np.zeros_like(p) for p in params), tuple(np.zeros_like(p) for p in params)
    else:
        step, m_old, v_old = state
    step += 1
    bias1 = 1.0 - beta1**step  # 1 - beta1^t
    bias2_sqrt = math.sqrt(1.0 - beta2**step)  # sqrt(1 - beta2^t)
    step_size = lr / bias1
    new_params, m_new, v_new = [], [], []
    for p, g, m, v in zip(params, grads, m_old, v_old):
        m = beta1 * m + (1.0 - beta1) * g  # first moment
        v = beta2 * v + (1.0 - beta2) * (g * g)  # second moment
        denom = np.sqrt(v) / bias2_sqrt + eps  # torch: (v.sqrt() / sqrt(bias2)).add_(eps)
        new_params.append(p - step_size * (m / denom))
        m_new.append(m)
        v_new.append(v)
    return tuple(new_params), AdamState(step, tuple(m_new), tuple(v_new))


def step_schedule(epoch: int, n_epochs: int, milestones=(0.8, 0.9), factor: float = 0.1) -> float:
    """Learning-rate multiplier of the step-down schedule at a given epoch (0-based).

    The same as ``torch.optim.lr_scheduler.MultiStepLR(milestones=[int(f * n_epochs) for f in milestones],
    gamma=factor)`` stepped once per epoch: during epoch ``e`` the rate is multiplied by ``factor ** k`` where ``k``
    counts the milestones ``int(f * n_epochs) <= e`` (with multiplicity, as MultiStepLR does). The paper's protocol
    (paper §5) is ``milestones=(0.8, 0.9), factor=0.1``.

    Parameters
    ----------
    epoch : int
        0-based epoch index, ``0 <= epoch``.
    n_epochs : int
        Total number of epochs (>= 1).
    milestones : sequence of float
        Fractions of ``n_epochs`` in [0, 1] at which the rate steps down.
    factor : float
        Multiplier applied at each milestone (> 0).

    Returns
    -------
    float
        The multiplier of the base learning rate.
    """
    epoch = check_int("epoch", epoch, minimum=0)
    n_epochs = check_int("n_epochs", n_epochs, minimum=1)
    factor = check_positive("factor", factor)
    if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
        raise TypeError(f"milestones must be a sequence of fractions, got {type(milestones).__name__}")
    count = 0
    for i, frac in enumerate(milestones):
        frac = check_real(f"milestones[{i}]", frac)
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"milestones[{i}] must be a fraction in [0, 1], got {frac}")
        count += int(frac * n_epochs) <= epoch
    with np.errstate(all="ignore"):
        out = float(np.float64(factor) ** count)
    if not np.isfinite(out) or (out == 0.0 and count):
        raise ValueError(f"factor ** {count} = {out} is out of range: reduce or raise factor")
    return out
