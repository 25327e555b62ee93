"""One gradient step versus exact retrieval versus iterating to a minimum (paper §4, Fig. 5), as plain data.

The trained softmax layer is one descent step (Eq. 17, γ = α) on the context energy (Eq. 16). This module measures,
on fresh prompts of a task, how that one step compares with the noisy query, with k steps, with descent run to
convergence (the usual Hopfield use), with exact retrieval of the best-matching context token and with the oracle
Bayes estimator; and it computes the 2-D energy landscape and descent trajectories of Fig. 5 (paper §4, Fig. 5).
The energy maths itself lives in :mod:`icdmin.dam`.

Legend: ``B`` prompts, ``n`` token dimension, ``L`` context tokens (columns of ``X``).
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_float_array, check_int, check_positive, check_rng, finite_output, lse_unchecked
from ._memory import check_states, per_state, scores
from .dam import MAX_STEPS, descend, descent_step, energy, energy_grad

__all__ = ["retrieval_comparison", "format_retrieval_table", "energy_landscape", "circle_trajectories",
           "energy_along_step"]

_MAX_BATCH = 10**8  # retrieval_comparison's prompts (hours of compute); a larger request is surely a mistake
_MAX_SIZE, _MAX_GRID = 2**20, 2**12  # circle_trajectories' L, n_traj and grid: larger ones are surely mistakes
_CHUNK_ELEMENTS = 2**21  # prompts are processed in chunks of about this many X entries (16 MB), cache-friendly


def _stats(sq_err: np.ndarray, n: int) -> dict:
    """Mean total squared error and per-coordinate MSE, each with its Monte-Carlo standard error."""
    B = sq_err.shape[0]
    se = float(np.std(sq_err, ddof=1) / np.sqrt(B)) if B > 1 else float("nan")
    mean = float(np.mean(sq_err))
    return {"total_sq_error": mean, "total_sq_error_se": se, "mse": mean / n, "mse_se": se / n}


def _nearest_token_distance(s: np.ndarray, X: np.ndarray) -> np.ndarray:
    """min_t |s_b − X_{b,t}|. Shapes: s (B, n), X (B, n, L) -> (B,)."""
    d2 = np.sum(X * X, axis=1) - 2 * np.einsum("bnl,bn->bl", X, s) + np.sum(s * s, axis=1)[:, None]  # (B, L)
    return np.sqrt(np.maximum(np.min(d2, axis=1), 0.0))


def _check_task(task):
    """Require an icdmin-style task: ``n``, ``sample(rng, batch, L)`` and ``posterior_mean(prompts)``."""
    for attr in ("sample", "posterior_mean"):
        if not callable(getattr(task, attr, None)):
            raise TypeError(f"task must have a {attr}() method (an icdmin task), got {type(task).__name__}")
    check_int("task.n", getattr(task, "n", None), minimum=1)


def _sequence(name, values) -> list:
    """A non-empty list from a sequence of values (strings and single numbers are not sequences here)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, got {type(values).__name__}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    return values


@finite_output("alpha", "beta", "the task's scale")
def retrieval_comparison(task, L, alpha, beta, *, rng, batch=2000, steps=(1, 2, 5, 50), converge_steps=500,
                         tol=1e-8, near_tol=1e-3) -> dict:
    """Error of one descent step vs k steps, convergence, exact retrieval and the oracle on fresh prompts (§4).

    Estimators of the clean token x from a prompt (X, x̃), all on the same prompts:

    - ``"query"``: x̃ itself;
    - ``"k step(s)"`` for k in ``steps``: k iterations of Eq. (17) with γ = α from s(0) = x̃ (k = 1 is softmax
      attention with W_KQ = βI, W_PV = αI);
    - ``"converged"``: descent until every |∇E| < ``tol`` or ``converge_steps`` steps in total;
    - ``"retrieval"``: the context token X_t with the largest ⟨X_t, x̃⟩ (exact retrieval);
    - ``"oracle"``: ``task.posterior_mean(prompts)``, the Bayes estimator (Props. 2-4).

    Parameters
    ----------
    task : object with ``n``, ``sample(rng, batch, L) -> Prompts`` and ``posterior_mean(prompts)`` (icdmin.tasks).
    L : int >= 1, context length.  alpha, beta : float > 0, the energy's α and β (Eq. 16).
    rng : numpy.random.Generator.  batch : int in [2, 1e8], number of prompts.
    steps : sequence of int >= 1.  converge_steps : int >= 1.  tol, near_tol : float > 0.

    Returns
    -------
    dict of plain data: ``"setting"``; ``"estimators"``: name -> {``total_sq_error`` (sum over coordinates, mean
    over prompts), ``total_sq_error_se``, ``mse`` (per coordinate), ``mse_se``} (standard errors of the mean over
    prompts); ``"converged"``: {``n_steps`` (most steps any chunk ran), ``fraction_converged``,
    ``near_token_fraction`` (endpoints within ``near_tol`` of a context token), ``median_nearest_distance``}.

    Shapes: prompts X (B, n, L), x_tilde, x (B, n); all outputs are floats and lists.
    """
    rng = check_rng(rng)
    st = _comparison_setting(task, L, alpha, beta, batch, steps, converge_steps, tol, near_tol)
    names = ["query", *(f"{k} step" + ("s" if k > 1 else "") for k in st["steps"]), "converged", "retrieval", "oracle"]
    errs = {name: [] for name in names}
    near, conv, n_run, done = [], [], 0, 0
    chunk = max(1, _CHUNK_ELEMENTS // (st["n"] * st["L"]))  # prompts per chunk
    while done < st["batch"]:
        prompts = task.sample(rng, min(chunk, st["batch"] - done), st["L"])
        n_run = max(n_run, _compare_chunk(task, prompts, st, names, errs, conv, near))
        done += prompts.X.shape[0]
    near_d = np.concatenate(near)
    return {
        "setting": st,
        "estimators": {name: _stats(np.concatenate(errs[name]), st["n"]) for name in names},
        "converged": {
            "n_steps": int(n_run),
            "fraction_converged": float(np.mean(np.concatenate(conv))),
            "near_token_fraction": float(np.mean(near_d < st["near_tol"])),
            "median_nearest_distance": float(np.median(near_d)),
        },
    }


def _comparison_setting(task, L, alpha, beta, batch, steps, converge_steps, tol, near_tol) -> dict:
    """The validated arguments of :func:`retrieval_comparison` (after ``rng``), as its result's ``"setting"``;
    ``steps`` sorted without repeats, ``n`` read from the task."""
    _check_task(task)
    L = check_int("L", L, minimum=1)
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    batch = check_int("batch", batch, minimum=2, maximum=_MAX_BATCH)
    steps = sorted({check_int("steps", k, minimum=1, maximum=MAX_STEPS) for k in _sequence("steps", steps)})
    converge_steps = check_int("converge_steps", converge_steps, minimum=1, maximum=MAX_STEPS)
    tol, near_tol = check_positive("tol", tol), check_positive("near_tol", near_tol)
    n = check_int("task.n", task.n, minimum=1)
    if n * L > 2**31:
        raise ValueError(f"n * L = {n * L} entries per context (> 2**31): reduce L")
    return {"task": repr(task), "n": int(n), "L": L, "alpha": alpha, "beta": beta, "batch": batch,
            "steps": steps, "converge_steps": converge_steps, "tol": tol, "near_tol": near_tol}


def _compare_chunk(task, prompts, st: dict, names: list, errs: dict, conv: list, near: list) -> int:
    """One chunk of prompts for :func:`retrieval_comparison`: appends each estimator's squared errors (b,) to
    ``errs[name]``, the converged flags (b,) to ``conv`` and the nearest-token distances (b,) to ``near``; returns
    the steps the converged estimator ran in total. Shapes: prompts X (b, n, L), x_tilde, x (b, n)."""
    X, x_tilde, x = prompts.X, prompts.x_tilde, prompts.x  # (b, n, L), (b, n), (b, n)
    alpha, beta, steps, converge_steps = st["alpha"], st["beta"], st["steps"], st["converge_steps"]

    def sq(est):
        return np.sum((est - x) ** 2, axis=1)  # (b,)

    errs["query"].append(sq(x_tilde))
    s, taken = x_tilde, 0
    for k, name in zip(steps, names[1 : 1 + len(steps)]):
        s = descend(s, X, alpha, beta, steps=k - taken).s  # (b, n), Eq. (17) with γ = α
        taken = k
        errs[name].append(sq(s))
    start, budget = (s, converge_steps - taken) if converge_steps >= taken else (x_tilde, converge_steps)
    res = descend(start, X, alpha, beta, steps=budget, tol=st["tol"])
    errs["converged"].append(sq(res.s))
    conv.append(res.converged)
    near.append(_nearest_token_distance(res.s, X))
    best = np.argmax(np.einsum("bnl,bn->bl", X, x_tilde), axis=1)  # (b,) largest <X_t, x_tilde>
    errs["retrieval"].append(sq(X[np.arange(X.shape[0]), :, best]))
    errs["oracle"].append(sq(task.posterior_mean(prompts)))
    return res.n_steps + (converge_steps - budget)


def format_retrieval_table(result: dict) -> str:
    """Plain-text table of a :func:`retrieval_comparison` result (total squared error and MSE per coordinate)."""
    if not isinstance(result, dict) or not isinstance(result.get("estimators"), dict) or not isinstance(
            result.get("converged"), dict):
        raise TypeError(f"result must be the dict returned by retrieval_comparison, got {type(result).__name__}")
    lines = [f"{'estimator':<12} {'total sq. err':>14} {'± s.e.':>9} {'MSE/coord':>11} {'± s.e.':>9}"]
    for name, st in result["estimators"].items():
        lines.append(f"{name:<12} {st['total_sq_error']:>14.4f} {st['total_sq_error_se']:>9.4f} "
                     f"{st['mse']:>11.5f} {st['mse_se']:>9.5f}")
    c = result["converged"]
    lines.append(f"converged endpoints: {100 * c['fraction_converged']:.1f}% with |grad| < tol after "
                 f"<= {c['n_steps']} steps; {100 * c['near_token_fraction']:.1f}% within near_tol of a context "
                 f"token; median distance to the nearest token {c['median_nearest_distance']:.4f}")
    return "\n".join(lines)


@finite_output("X", "alpha", "beta", "xs", "ys")
def energy_landscape(X, alpha, beta, xs, ys):
    """The energy (16) of one 2-D context on the grid {(x, y) : x in xs, y in ys} (Fig. 5 contours).

    Rows of the grid are done in chunks, so peak memory stays a small multiple of the (ny, nx) output.

    Shapes: X (2, L); xs (nx,), ys (ny,) -> (ny, nx), entry [i, j] at the state (xs[j], ys[i]).
    """
    X = as_float_array("X", X, ndim=2)
    if X.shape[0] != 2 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (2, L) with L >= 1 for a 2-D landscape, got {X.shape}")
    xs, ys = as_float_array("xs", xs, ndim=1), as_float_array("ys", ys, ndim=1)
    if xs.size == 0 or ys.size == 0:
        raise ValueError(f"xs and ys must not be empty, got {xs.size} and {ys.size} points")
    out = np.empty((ys.size, xs.size))  # (ny, nx)
    rows = max(1, (1 << 16) // (xs.size * (X.shape[1] + 4)))  # grid rows per chunk: ~64k score entries
    for lo in range(0, ys.size, rows):
        y = ys[lo : lo + rows]  # (r,)
        S = np.empty((y.size, xs.size, 2))  # (r, nx, 2) the states of these rows
        S[..., 0], S[..., 1] = xs, y[:, None]
        out[lo : lo + rows] = energy.__wrapped__(S.reshape(-1, 2), X, alpha, beta).reshape(y.size, xs.size)  # Eq. 16
    return out


@finite_output("s", "X", "alpha", "beta", "ts", "gamma")
def energy_along_step(s, X, alpha, beta, ts, gamma=None):
    """The energy (16) along the one-step update: E(s − t γ ∇E(s)) for each t in ``ts`` (paper §4, Eq. 17).

    t = 0 is the state itself and t = 1 is :func:`~icdmin.dam.descent_step` (with γ = α, the default, the
    softmax attention output for W_KQ = βI, W_PV = αI): the curve shows how far along the descent direction the
    attention step lands.

    Shapes: s (n,), X (n, L), ts (T,) -> (T,); s (B, n) with X (B, n, L) or a shared X (n, L) -> (T, B).
    """
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    gamma = alpha if gamma is None else check_positive("gamma", gamma)
    ts = as_float_array("ts", ts, ndim=1)
    if ts.size == 0:
        raise ValueError("ts must hold at least one step fraction t")
    s2, X3, shared, single = check_states(s, X)
    g = energy_grad(s2, X3, alpha, beta)  # (B, n)
    out = np.empty((ts.size, s2.shape[0]), dtype=np.result_type(s2, X3))  # (T, B)
    for i, t in enumerate(ts):
        st = s2 - (t * gamma) * g  # (B, n)
        out[i] = per_state(lambda st, X3: np.sum(st * st, axis=-1) / (2 * alpha)
                            - lse_unchecked(beta * scores(st, X3, shared)) / beta, st, X3, shared,
                            temp_per_state=3 * X3.shape[-1])  # (B,)  Eq. (16)
    return out[:, 0] if single else out


@finite_output("R", "sigma2_z", "alpha", "beta", "lim")
def circle_trajectories(rng, *, L=20, R=1.0, sigma2_z=0.1, alpha=1.0, beta=10.0, n_traj=3, steps=(1, 50),
                        grid=100, lim=1.5) -> dict:
    """Data of Fig. 5 (paper §4, Fig. 5): a circle context, its energy landscape and descent trajectories.

    L context tokens at uniform random angles on the radius-R circle (n = 2, d = 1); ``n_traj`` clean points
    uniform on the circle, their queries x̃ = x + N(0, σZ² I₂); from each query, descent (Eq. 17, γ = α) for
    each k in ``steps``; the energy (16) on a ``grid`` × ``grid`` grid over [−lim, lim]².

    Returns
    -------
    dict of arrays: ``X`` (2, L), ``x`` (n_traj, 2), ``x_tilde`` (n_traj, 2), ``xs``, ``ys`` (grid,),
    ``energy`` (grid, grid) indexed [y, x], ``trajectories``: {k: (k+1, n_traj, 2)}, and ``one_step``
    (n_traj, 2), the attention output α X softmax(β Xᵀ x̃).
    """
    rng = check_rng(rng)
    L, n_traj = check_int("L", L, minimum=1, maximum=_MAX_SIZE), check_int("n_traj", n_traj, minimum=1,
                                                                          maximum=_MAX_SIZE)
    grid = check_int("grid", grid, minimum=2, maximum=_MAX_GRID)
    steps = [check_int("steps", k, minimum=0, maximum=MAX_STEPS) for k in _sequence("steps", steps)]
    alpha, beta = check_positive("alpha", alpha), check_positive("beta", beta)
    R, sigma2_z, lim = check_positive("R", R), check_positive("sigma2_z", sigma2_z), check_positive("lim", lim)
    theta = rng.uniform(0, 2 * np.pi, L)  # (L,)
    X = R * np.stack([np.cos(theta), np.sin(theta)])  # (2, L)
    phi = rng.uniform(0, 2 * np.pi, n_traj)
    x = R * np.stack([np.cos(phi), np.sin(phi)], axis=1)  # (n_traj, 2)
    x_tilde = x + np.sqrt(sigma2_z) * rng.standard_normal((n_traj, 2))
    with np.errstate(all="ignore"):
        xs = ys = np.linspace(-lim, lim, grid)
    if not np.all(np.isfinite(xs)):
        raise ValueError(f"lim = {lim} is too large: the grid [-lim, lim] overflows")
    # the undecorated functions: a non-finite result is reported once, by this function, naming its arguments
    trajectories = {k: descend.__wrapped__(x_tilde, X, alpha, beta, steps=k, return_trajectory=True).trajectory
                    for k in steps}
    return {"X": X, "x": x, "x_tilde": x_tilde, "xs": xs, "ys": ys,
            "energy": energy_landscape.__wrapped__(X, alpha, beta, xs, ys), "trajectories": trajectories,
            "one_step": descent_step.__wrapped__(x_tilde, X, alpha, beta)}
