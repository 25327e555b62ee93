"""Training and evaluating on one's own arrays: ``Prompts.from_arrays``, ``train(prompts, init=..., batch_order=...)``,
``evaluate``, and the ``TrainConfig`` that holds a run's settings.

The replay test is the contract for other implementations: given the prompts, the initial weights and the batch
order, ``train`` is exactly a hand-written loop over the public ``loss_and_grads``, ``adam_step`` and
``step_schedule``.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icdmin import (
    GMMTask,
    LinearTask,
    Prompts,
    TrainConfig,
    adam_step,
    attention,
    evaluate,
    init_weights,
    loss_and_grads,
    mse,
    sgd_step,
    step_schedule,
    train,
)
from test_training import ReplayTask


def _arrays(seed, B=24, n=4, L=10):
    """Prompts that no task produced: contexts, noisy queries and targets from a fixed linear map of the query."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, n, L))  # (B, n, L)
    x = X[:, :, 0] + 0.1 * rng.standard_normal((B, n))  # (B, n) targets near a context token
    return X, x + 0.3 * rng.standard_normal((B, n)), x


def _hand_loop(prompts, init, order, *, kind, lr, batch_size, optimizer="adam", momentum=0.0):
    """The training loop written out over public functions only (what another implementation would write)."""
    params, state, losses, E = tuple(np.array(w) for w in init), None, [], len(order)
    for epoch in range(E):
        rate = lr * step_schedule(epoch, E)  # x0.1 at 80 % and 90 % of the epochs
        for start in range(0, order.shape[1], batch_size):
            idx = order[epoch, start:start + batch_size]
            loss, dW_KQ, dW_PV = loss_and_grads(prompts.X[idx], prompts.x_tilde[idx], prompts.x[idx], *params, kind)
            losses.append(loss)
            if optimizer == "adam":
                params, state = adam_step(params, (dW_KQ, dW_PV), state, lr=rate)
            else:
                params, state = sgd_step(params, (dW_KQ, dW_PV), state, lr=rate, momentum=momentum)
    return params, losses


@pytest.mark.parametrize("kind, L, optimizer", [("softmax", 10, "adam"), ("linear", 10, "adam"),
                                                ("linear", 3, "sgd"), ("softmax", 6, "sgd")])
def test_replay_matches_a_hand_written_loop(kind, L, optimizer):
    """Own prompts, given init and batch order (uneven last batch): train == the loop above, to 1e-12."""
    X, q, x = _arrays(1, B=22, L=L)
    prompts = Prompts.from_arrays(X, q, x)
    held_out = Prompts.from_arrays(*_arrays(2, B=5, L=L))
    rng = np.random.default_rng(3)
    init = init_weights(4, rng)
    epochs, bs, lr = 6, 8, 0.05  # 3 steps per epoch (8, 8, 6)
    order = np.stack([rng.permutation(22) for _ in range(epochs)])  # (epochs, n_train)
    res = train(prompts, test=held_out, init=init, batch_order=order, kind=kind, epochs=epochs, batch_size=bs, lr=lr,
                optimizer=optimizer, momentum=0.9)
    (W_KQ, W_PV), losses = _hand_loop(prompts, init, order, kind=kind, lr=lr, batch_size=bs, optimizer=optimizer,
                                      momentum=0.9)
    assert not np.allclose(W_KQ, init[0], atol=1e-3)  # the weights did move
    np.testing.assert_allclose(res.history["step_loss"], losses, rtol=1e-12, atol=0)
    np.testing.assert_allclose(res.W_KQ, W_KQ, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.W_PV, W_PV, rtol=1e-12, atol=1e-14)
    test_mse = mse(attention(held_out.X, held_out.x_tilde, W_KQ, W_PV, kind), held_out.x)
    np.testing.assert_allclose(res.history["test_mse"][-1], test_mse, rtol=1e-12)
    assert res.bayes_mse is None and res.bayes_train_mse is None  # no task, no oracle
    assert res.config["init"] == res.config["batch_order"] == "given" and res.config["n_train"] == 22


def test_batch_order_is_used():
    """A different order gives different weights; the same order (as a list of rows) the same, bit for bit."""
    prompts = Prompts.from_arrays(*_arrays(4))
    init = init_weights(4, np.random.default_rng(0))
    rows = [np.arange(19), np.arange(19)[::-1]]  # 24 prompts -> 19 train / 5 test
    a = train(prompts, init=init, batch_order=rows, epochs=2, batch_size=5, lr=0.05)
    b = train(prompts, init=init, batch_order=np.array(rows), epochs=2, batch_size=5, lr=0.05)
    c = train(prompts, init=init, batch_order=rows[::-1], epochs=2, batch_size=5, lr=0.05)
    np.testing.assert_array_equal(a.W_KQ, b.W_KQ)
    assert not np.array_equal(a.W_KQ, c.W_KQ)


def test_own_prompts_split_like_a_task():
    """Prompts data are split by data_seed exactly as a task's draw: the same run as through a replaying task."""
    X, q, x = _arrays(5, B=25, L=7)
    kwargs = {"kind": "softmax", "seed": 2, "data_seed": 8, "epochs": 3, "batch_size": 6, "lr": 0.05}
    own = train(Prompts.from_arrays(X, q, x), **kwargs)
    replay = train(ReplayTask(X, q, x), L=7, n_prompts=25, **kwargs)
    np.testing.assert_array_equal(own.W_KQ, replay.W_KQ)
    np.testing.assert_array_equal(own.W_PV, replay.W_PV)
    assert own.history["test_mse"] == replay.history["test_mse"]
    assert own.bayes_mse is None and replay.bayes_mse is not None
    assert (own.config["n_train"], own.config["n_test"], own.config["L"]) == (20, 5, 7)


def test_sampled_prompts_keep_their_oracle():
    """Prompts drawn from a task carry it: train and evaluate report the oracle MSE of the same prompts."""
    task = GMMTask(4, 3)
    prompts = task.sample(np.random.default_rng(0), 30, 9)
    res = train(prompts, kind="softmax", epochs=2, batch_size=8, lr=0.05)
    assert res.config["epochs"] == 2 and res.bayes_mse is not None
    got = evaluate(res.W_KQ, res.W_PV, prompts, kind="softmax")
    assert got["oracle_mse"] == mse(task.posterior_mean(prompts), prompts.x)
    assert got["mse"] == mse(attention(prompts.X, prompts.x_tilde, res.W_KQ, res.W_PV, "softmax"), prompts.x)
    assert got["n_prompts"] == 30 and got["kind"] == "softmax"


def test_evaluate_on_own_prompts_by_hand():
    """evaluate = the MSE of Eq. (12) computed by hand on one prompt; no oracle without a task."""
    rng = np.random.default_rng(6)
    X, q, x = rng.standard_normal((3, 5)), rng.standard_normal(3), rng.standard_normal(3)
    W_KQ, W_PV = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    s = X.T @ W_KQ @ q  # (L,)
    a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    expected = np.mean((W_PV @ X @ a - x) ** 2)
    got = evaluate(W_KQ, W_PV, Prompts.from_arrays(X, q, x))
    assert got["mse"] == pytest.approx(expected, rel=1e-13) and got["oracle_mse"] is None
    lin = evaluate(W_KQ, W_PV, Prompts.from_arrays(X, q, x), kind="linear")
    assert lin["mse"] == pytest.approx(np.mean((W_PV @ X @ (X.T @ W_KQ @ q) / 5 - x) ** 2), rel=1e-13)


def test_from_arrays_single_prompt_batch_and_copy():
    X, q, x = _arrays(7, B=3)
    single = Prompts.from_arrays(X[0], q[0], x[0])
    assert (len(single), single.n, single.L) == (1, 4, 10) and single.task is None
    batch = Prompts.from_arrays(X, q, x)
    np.testing.assert_array_equal(batch.X[1], X[1])
    X[1] = 0.0  # the batch holds its own copy
    assert batch.X[1].any()
    assert Prompts.from_arrays(X.astype(np.float32), q.astype(np.float32), x.astype(np.float32)).X.dtype == np.float32


@pytest.mark.parametrize("args, name", [
    ((np.ones((2, 4, 5)), np.ones((2, 4)), np.ones((2, 3))), "x"),
    ((np.ones((2, 4, 5)), np.ones((3, 4)), np.ones((3, 4))), "batch"),
    ((np.ones((4, 5)), np.ones(4), [np.nan, 0, 0, 0]), "x"),
    ((np.ones(4), np.ones(4), np.ones(4)), "X"),
    ((np.ones((4, 5)), np.ones(4) * 1j, np.ones(4)), "x_tilde"),
])
def test_from_arrays_rejects_bad_arrays(args, name):
    with pytest.raises((ValueError, TypeError), match=name):
        Prompts.from_arrays(*args)


def test_config_object_and_overrides_give_the_same_run():
    task = LinearTask(4, 2)
    kwargs = {"kind": "linear", "L": 6, "seed": 1, "epochs": 2, "n_prompts": 20, "batch_size": 4}
    a = train(task, **kwargs)
    cfg = TrainConfig(**kwargs)
    b = train(task, cfg)
    c = train(task, dataclasses.replace(cfg, seed=9), seed=1)  # overrides win over the config
    for other in (b, c):
        np.testing.assert_array_equal(a.W_KQ, other.W_KQ)
        assert a.config == other.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    assert TrainConfig(dtype=np.float32).dtype == "float32" and TrainConfig().batch_size == 80


@pytest.mark.parametrize("kwargs, error, name", [
    ({"online": True}, ValueError, "online"),
    ({"n_fresh": 5}, ValueError, "n_fresh"),
    ({"L": 11}, ValueError, "L"),
    ({"n_prompts": 30}, ValueError, "n_prompts"),
    ({"test_fraction": 0.01}, ValueError, "test_fraction"),
    ({"test": "held out"}, TypeError, "test"),
    ({"test": Prompts.from_arrays(np.ones((1, 3, 2)), np.ones((1, 3)), np.ones((1, 3)))}, ValueError, "n"),
    ({"batch_order": np.zeros((3, 19), dtype=int)}, ValueError, "batch_order"),
    ({"batch_order": np.zeros((2, 19), dtype=int)}, ValueError, r"batch_order\[0\]"),
    ({"batch_order": np.zeros((2, 19))}, TypeError, "batch_order"),
    ({"init": np.eye(4)}, ValueError, "init"),
    ({"init": (np.eye(4), np.eye(3))}, ValueError, r"init\[1\]"),
    ({"init": (np.eye(4), np.eye(4)), "init_W": (np.eye(4), np.eye(4))}, ValueError, "init_W"),
    ({"learning_rate": 0.1}, TypeError, "learning_rate"),
    ({"config": {"lr": 0.1}}, TypeError, "config"),
])
def test_bad_own_data_arguments_name_themselves(kwargs, error, name):
    prompts = Prompts.from_arrays(*_arrays(8))
    with pytest.raises(error, match=name):
        train(prompts, **{"epochs": 2, "batch_size": 5, **kwargs})


def test_online_batch_order_conflict_and_task_with_test():
    task = GMMTask(4, 3)
    with pytest.raises(ValueError, match="batch_order"):
        train(task, L=5, n_prompts=10, epochs=1, online=True, batch_order=np.zeros((1, 8), dtype=int))
    with pytest.raises(ValueError, match="test"):
        train(task, L=5, n_prompts=10, epochs=1, test=task.sample(np.random.default_rng(0), 3, 5))


@pytest.mark.parametrize("field, value, error", [
    ("kind", "cubic", ValueError), ("L", 0, ValueError), ("seed", 1.5, TypeError), ("epochs", 0, ValueError),
    ("n_prompts", 1, ValueError), ("test_fraction", 1.0, ValueError), ("batch_size", 0, ValueError),
    ("lr", 0.0, ValueError), ("momentum", 1.0, ValueError), ("schedule", "0.8", TypeError),
    ("schedule_factor", -1.0, ValueError), ("model", "diag", ValueError), ("online", 1, TypeError),
    ("eval_every", 0, ValueError), ("eval_train", "no", TypeError), ("n_fresh", -1, ValueError),
    ("snapshot_every", 0, ValueError), ("data_seed", -1, ValueError), ("dtype", "int8", ValueError),
    ("dtype", "not a dtype", TypeError), ("optimizer", "lbfgs", ValueError),
])
def test_config_validated_once_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        TrainConfig(**{field: value})


def test_evaluate_rejects_bad_input():
    prompts = Prompts.from_arrays(*_arrays(9, B=3))
    W = np.eye(4)
    with pytest.raises(TypeError, match="prompts"):
        evaluate(W, W, (prompts.X, prompts.x_tilde, prompts.x))
    with pytest.raises(ValueError, match="kind"):
        evaluate(W, W, prompts, kind="cubic")
    with pytest.raises(ValueError, match="W_KQ"):
        evaluate(np.eye(3), W, prompts)


def test_cli_save_then_load(tmp_path, capsys):
    """train --save writes the weights and a strict-JSON history; --load re-evaluates them without training."""
    import json

    from icdmin.cli import main as cli_main

    folder = tmp_path / "run"
    assert cli_main(["train", "--task", "gmm", "--L", "12", "--epochs", "2", "--eval-every", "2",
                     "--save", str(folder)]) == 0
    res = train(GMMTask(16, 8), kind="softmax", L=12, seed=0, epochs=2, eval_every=2)
    with np.load(folder / "weights.npz") as saved:
        np.testing.assert_array_equal(saved["W_KQ"], res.W_KQ)
        np.testing.assert_array_equal(saved["W_PV"], res.W_PV)
    record = json.loads((folder / "history.json").read_text())  # strict JSON (NaN would be written as null)
    assert record["case"] == "gmm" and record["config"] == json.loads(json.dumps(res.config))
    assert record["history"]["test_mse"] == res.history["test_mse"] and record["bayes_mse"] == res.bayes_mse
    capsys.readouterr()
    assert cli_main(["train", "--load", str(folder), "--n-fresh", "30"]) == 0
    out = capsys.readouterr().out
    line = next(text for text in out.splitlines() if text.startswith("test prompts (200)"))
    assert f"MSE {res.history['test_mse'][-1]:.6f} (saved run: {res.history['test_mse'][-1]:.6f})" in line
    assert f"oracle {res.bayes_mse:.6f}" in line and "fresh prompts (30)" in out and "alpha" not in out


def test_cli_load_rejects_a_foreign_history(tmp_path, capsys):
    from icdmin.cli import main as cli_main

    np.savez(tmp_path / "weights.npz", W_KQ=np.eye(16), W_PV=np.eye(16))
    (tmp_path / "history.json").write_text('{"case": "torus", "config": {}}')
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--load", str(tmp_path)])
    assert exit_info.value.code == 2 and "argument --load" in capsys.readouterr().err


@settings(max_examples=60, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(0, 3), min_size=0, max_size=3), min_size=3, max_size=3),
       fill=st.sampled_from([0.5, np.nan, np.inf, 1e308]), dtype=st.sampled_from([np.float64, np.int64, np.bool_]))
def test_from_arrays_and_evaluate_fail_only_by_name(shapes, fill, dtype):
    """Adversarial shapes, values and dtypes: a result, or a ValueError / TypeError naming an argument; the
    caller's arrays are never changed and the result never holds NaN from finite input."""
    value = fill if dtype is np.float64 else 3  # ints, or bools (True), keep their dtype
    arrays = [np.full(shape, value, dtype=dtype) for shape in shapes]
    before = [a.copy() for a in arrays]
    try:
        prompts = Prompts.from_arrays(*arrays)
        got = evaluate(np.eye(prompts.n), np.eye(prompts.n), prompts, kind="linear")
        assert np.isfinite(got["mse"]) and got["oracle_mse"] is None
    except (ValueError, TypeError) as err:
        assert any(name in str(err) for name in ("X", "x_tilde", "x", "pred", "target", "W_KQ", "W_PV", "batch")), err
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
