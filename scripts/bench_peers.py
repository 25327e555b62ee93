"""The peers of ``python -m icdmin bench --peers``: the softmax attention model of paper Eq. (12) with the MSE loss,
forward + backward at B = 80, n = 16, L = 499, written plainly in PyTorch (autograd) and in JAX
(``jax.jit(jax.value_and_grad)``), and in the authors' layout (mattsmart/in-context-denoising at commit c8aaeb3,
src/nn_model_base.py, ``TransformerModelV2noresOmitLast``: the noisy query is the prompt's last column, sliced off
the keys and values). Run by ``icdmin.bench`` in a child process per peer:

    python scripts/bench_peers.py "torch float64" THREADS REPEAT [CPU,CPU,...]

prints one JSON line {"times": the peer's seconds per call, "icdmin": icdmin's, "loss": the peer's loss on
icdmin.bench.problem()}, and at one thread in float64 also "floor": {variant: seconds per call} of ``floor_passes``,
the fused kernel's four passes over each context and its softmax exponential, with nothing else. Needs the framework
(``pip install -e ".[peers]"``); icdmin itself never imports it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

if importlib.util.find_spec("icdmin") is None:  # run from a checkout without an install (the bench sets PYTHONPATH)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from icdmin.bench import PEERS, icdmin_times, problem, timings  # noqa: E402


def _torch_step(dtype, layout, threads):
    """loss.backward() of the softmax model in PyTorch autograd; returns (step, loss)."""
    import torch

    torch.set_num_threads(threads)
    X, q, x, W_KQ, W_PV = (torch.tensor(a) for a in problem(getattr(np, dtype)))
    W_KQ.requires_grad_(True)
    W_PV.requires_grad_(True)
    E = torch.cat([X, q[:, :, None]], dim=2)  # (B, n, L+1): the query as the last column

    def loss_fn():
        if layout == "authors":  # keys/values = E without its last column, query = E's last column
            ctx = E[:, :, :-1]
            a = torch.softmax(ctx.transpose(1, 2) @ W_KQ @ E[:, :, [-1]], dim=1)  # (B, L, 1)
            out = (W_PV @ ctx @ a)[:, :, -1]
        else:
            a = torch.softmax((q @ W_KQ.T)[:, None, :] @ X, dim=2)  # (B, 1, L): batched matmuls, no copy of X
            out = (X @ a.transpose(1, 2))[:, :, 0] @ W_PV.T  # (B, n)
        return torch.mean((out - x) ** 2)

    def step():
        W_KQ.grad = W_PV.grad = None
        loss = loss_fn()
        loss.backward()
        return loss

    return step, float(step().detach())


def _jax_step(dtype, threads):
    """jax.jit(jax.value_and_grad) of the softmax model; returns (step, loss)."""
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp

    X, q, x, W_KQ, W_PV = (jnp.asarray(a) for a in problem(getattr(np, dtype)))

    def loss_fn(W_KQ, W_PV):
        a = jax.nn.softmax((q @ W_KQ.T)[:, None, :] @ X, axis=2)  # (B, 1, L)
        return jnp.mean(((X @ jnp.swapaxes(a, 1, 2))[:, :, 0] @ W_PV.T - x) ** 2)

    f = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))

    def step():
        return jax.block_until_ready(f(W_KQ, W_PV))

    return step, float(step()[0])


def floor_passes(n: int, unrolled: bool):
    """A Numba function f(X, c, w) -> (U, V) that makes, per prompt, only the passes over its context X (n, L) that
    icdmin's fused softmax forward + backward makes: s = Xᵀc, the softmax exponential of s (max-shifted, the kernel's
    vectorised exp), U = X s, d = Xᵀw, V = X d; no normalisation, loss, gradients, threads or validation.
    Shapes: X (B, n, L), c (n,), w (n,) -> U, V (B, n).

    ``unrolled=False`` uses icdmin's own pass loops (``_col_pass``/``_row_pass``, four rows per sweep);
    ``unrolled=True`` unrolls all n rows (one sweep per pass, n scalar accumulators, Xᵀc in four partial sums; the
    fastest pass loops found here, about 10 % faster, but the source must be generated per n). A peer whose time per
    call is less than twice this function's cannot be beaten 2x by a kernel made of these loops on this machine."""
    import numba

    from icdmin import _kernels

    jit = numba.njit(nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
    add4 = numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})(lambda a, b, c, d: (a + b) + (c + d))
    if unrolled:  # the pass loops as generated source: column pass -> out[t], row pass -> acc0..acc{n-1}
        parts = [" + ".join(f"Xb[{i}, t] * v[{i}]" for i in range(k, n, 4)) or "0.0" for k in range(4)]
        rows = ", ".join(f"acc{i}" for i in range(n))
        source = f"""def col(Xb, v, out):
    for t in range(Xb.shape[1]):
        out[t] = add4({", ".join(parts)})
def row(Xb, p, out):
    {rows} = {", ".join(["0.0"] * n)}
    for t in range(Xb.shape[1]):
        {"; ".join(f"acc{i} += Xb[{i}, t] * p[t]" for i in range(n))}
    {", ".join(f"out[{i}]" for i in range(n))} = {rows}
"""
        space = {"add4": add4}
        exec(source, space)  # noqa: S102 - fixed template, n an int
        col, row = jit(space["col"]), jit(space["row"])
    else:
        col, row = _kernels._col_pass, _kernels._row_pass
    exp_shifted = _kernels._exp_shifted

    @jit
    def passes(X, c, w):
        B, n, L = X.shape
        s, bits, U, V = np.empty(L), np.empty(L, np.int64), np.empty((B, n)), np.empty((B, n))
        for b in range(B):
            col(X[b], c, s)
            exp_shifted(s, np.max(s), bits)
            row(X[b], s, U[b])
            col(X[b], w, s)
            row(X[b], s, V[b])
        return U, V

    return passes


def _floor_steps():
    """{variant: step} of ``floor_passes`` on icdmin.bench.problem()'s contexts (float64)."""
    X, q = problem(np.float64)[:2]
    c, w = q[0], q[1]
    return {f"{name} loops": functools.partial(floor_passes(X.shape[1], unrolled), X, c, w)
            for name, unrolled in (("icdmin's", False), ("unrolled", True))}


def main(name: str, threads: int, repeat: int) -> int:
    """Print {"times": [...], "icdmin": [...], "loss": ..., "floor": {...}}: the peer's, icdmin's and (one thread,
    float64) the floor's per-call seconds at ``threads``, timed in alternating blocks in this process (pinned by the
    caller), so that a load change hits all of them."""
    framework, dtype, layout = PEERS[name]
    step, loss = _torch_step(dtype, layout, threads) if framework == "torch" else _jax_step(dtype, threads)
    floors = _floor_steps() if threads == 1 and dtype == "float64" else {}
    times, ours, floor = [], [], {variant: [] for variant in floors}
    for _ in range(10):
        times += timings(step, max(1, repeat // 10)).tolist()
        ours += icdmin_times("softmax", threads, max(1, repeat // 10), getattr(np, dtype)).tolist()
        for variant, f in floors.items():
            floor[variant] += timings(f, max(1, repeat // 10)).tolist()
    print(json.dumps({"times": times, "icdmin": ours, "loss": loss, "floor": floor}))
    return 0


if __name__ == "__main__":
    name, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 4 and sys.argv[4]:
        os.sched_setaffinity(0, [int(c) for c in sys.argv[4].split(",")])  # before the framework starts threads
    sys.exit(main(name, threads, repeat))
