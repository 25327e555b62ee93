"""The peers of ``python -m icdmin bench --peers``: the softmax attention model of paper Eq. (12) with the MSE loss,
forward + backward at B = 80, n = 16, L = 499, written plainly in PyTorch (autograd) and in JAX
(``jax.jit(jax.value_and_grad)``), and in the authors' layout (mattsmart/in-context-denoising at commit c8aaeb3,
src/nn_model_base.py, ``TransformerModelV2noresOmitLast``: the noisy query is the prompt's last column, sliced off
the keys and values). Run by ``icdmin.bench`` in a child process per peer:

    python scripts/bench_peers.py "torch float64" THREADS REPEAT [CPU,CPU,...]

prints one JSON line {"times": the peer's seconds per call, "icdmin": icdmin's, "loss": the peer's loss on
icdmin.bench.problem()}. Needs the framework
(``pip install -e ".[peers]"``); icdmin itself never imports it.
"""

from __future__ import annotations

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


def main(name: str, threads: int, repeat: int) -> int:
    """Print {"times": [...], "icdmin": [...], "loss": ...}: the peer's and icdmin's per-call seconds at ``threads``,
    timed in alternating blocks in this process (pinned by the caller), so that a load change hits both."""
    framework, dtype, layout = PEERS[name]
    step, loss = _torch_step(dtype, layout, threads) if framework == "torch" else _jax_step(dtype, threads)
    times, ours = [], []
    for _ in range(10):
        times += timings(step, max(1, repeat // 10)).tolist()
        ours += icdmin_times("softmax", threads, max(1, repeat // 10), getattr(np, dtype)).tolist()
    print(json.dumps({"times": times, "icdmin": ours, "loss": loss}))
    return 0


if __name__ == "__main__":
    name, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 4 and sys.argv[4]:
        os.sched_setaffinity(0, [int(c) for c in sys.argv[4].split(",")])  # before the framework starts threads
    sys.exit(main(name, threads, repeat))
