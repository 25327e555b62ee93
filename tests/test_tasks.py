"""Samplers of icdmin.tasks: shapes, tokens on their manifold, determinism, moments, validation, subsets.

Tolerances: "on the manifold" is 1e-12 (float64 rounding of a QR and one matmul is ~1e-15 per entry); moments use
a z-score of 5 on the Monte-Carlo standard error (per entry; with <= 36 entries, 5 sigma keeps a false alarm
below 1e-5 per test even before derandomisation).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icdmin.tasks import GMMTask, LinearTask, Prompts, SphereTask, haar_basis
from strategies import dims, seeds

Z = 5.0  # z-score for Monte-Carlo moment checks


def _fields(p: Prompts):
    return {k: getattr(p, k) for k in ("X", "x_tilde", "x", "basis", "offset", "centers", "weights", "labels")}


@given(dims(max_n=7, max_L=6, max_B=3), seeds, st.floats(0.0, 3.0))
def test_linear_tokens_on_subspace(dm, seed, offset_scale):
    n = max(dm["n"], 2)
    d = min(dm["d"], n - 1)
    task = LinearTask(n, d, 1.5, 0.5, offset_scale=offset_scale)
    p = task.sample(np.random.default_rng(seed), dm["B"], dm["L"])
    B, L = dm["B"], dm["L"]
    assert p.X.shape == (B, n, L) and p.x.shape == p.x_tilde.shape == p.offset.shape == (B, n)
    assert p.basis.shape == (B, n, d) and len(p) == B and p.centers is None
    np.testing.assert_allclose(p.basis.transpose(0, 2, 1) @ p.basis, np.broadcast_to(np.eye(d), (B, d, d)),
                               atol=1e-12)
    P = p.basis @ p.basis.transpose(0, 2, 1)
    dev = p.X - p.offset[:, :, None]
    assert np.max(np.abs(dev - P @ dev)) < 1e-12 * max(1.0, np.max(np.abs(dev)))
    devq = p.x - p.offset
    assert np.max(np.abs(devq - np.einsum("bij,bj->bi", P, devq))) < 1e-12 * max(1.0, np.max(np.abs(devq)))
    assert np.all(np.abs(p.offset) <= offset_scale)


@given(dims(max_n=7, max_L=6, max_B=3), seeds, st.floats(0.1, 5.0))
def test_sphere_tokens_on_sphere(dm, seed, R):
    n = max(dm["n"], 2)
    d = min(dm["d"], n - 1)
    p = SphereTask(n, d, R, 0.2).sample(np.random.default_rng(seed), dm["B"], dm["L"])
    assert p.basis.shape == (dm["B"], n, d + 1)
    np.testing.assert_allclose(np.linalg.norm(p.X, axis=1), R, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(p.x, axis=1), R, rtol=1e-12)
    P = p.basis @ p.basis.transpose(0, 2, 1)
    assert np.max(np.abs(p.X - P @ p.X)) < 1e-12 * R


@given(dims(max_n=5, max_L=8, max_B=3, max_K=4), seeds)
def test_gmm_shapes_and_zero_variance_tokens_are_centres(dm, seed):
    n, K, B, L = dm["n"], dm["K"], dm["B"], dm["L"]
    p = GMMTask(n, K, sigma2_0=0.0, sigma2_z=0.3, R=2.0).sample(np.random.default_rng(seed), B, L)
    assert p.centers.shape == (B, n, K) and p.weights.shape == (B, K) and p.labels.shape == (B, L + 1)
    np.testing.assert_allclose(np.linalg.norm(p.centers, axis=1), 2.0, rtol=1e-12)
    assert p.labels.min() >= 0 and p.labels.max() < K
    for b in range(B):  # sigma2_0 = 0: every token is exactly its centre
        np.testing.assert_array_equal(p.X[b], p.centers[b][:, p.labels[b, :L]])
        np.testing.assert_array_equal(p.x[b], p.centers[b][:, p.labels[b, L]])


@given(seeds, st.sampled_from(["linear", "linear_ext", "sphere", "gmm", "gmm_ext"]))
@settings(max_examples=20)
def test_same_seed_same_batch_bit_for_bit(seed, kind):
    task = {
        "linear": LinearTask(6, 2),
        "linear_ext": LinearTask(6, 2, offset_scale=1.0, noise="orthogonal", transform=np.diag(np.arange(1.0, 7.0))),
        "sphere": SphereTask(6, 3),
        "gmm": GMMTask(6, 3),
        "gmm_ext": GMMTask(6, 3, weights=[0.2, 0.0, 0.8], sigma2_components=[0.1, 0.2, 0.0]),
    }[kind]
    a, b = (task.sample(np.random.default_rng(seed), 3, 5) for _ in range(2))
    for (k, u), v in zip(_fields(a).items(), _fields(b).values()):
        assert (u is None and v is None) or np.array_equal(u, v), k
    c = task.sample(np.random.default_rng(seed + 1), 3, 5)
    assert not np.array_equal(a.X, c.X)


def _zscores(samples, expected):
    """(mean - expected) / stderr per entry; samples (N, ...) independent draws."""
    m = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    return (m - expected) / np.where(se > 0, se, np.inf)


def test_linear_moments():
    """Per prompt E[X_t X_tᵀ] = σ0² P, so over Haar subspaces E[X Xᵀ/L] = σ0² (d/n) I; E||X_t||² = d σ0²;
    query noise N(0, σZ² I)."""
    n, d, s0, sz = 5, 2, 2.0, 0.7
    p = LinearTask(n, d, s0, sz).sample(np.random.default_rng(0), 4000, 3)
    S = np.einsum("bil,bjl->bij", p.X, p.X) / p.L  # (B, n, n), independent across prompts
    assert np.max(np.abs(_zscores(S, s0 * d / n * np.eye(n)))) < Z
    # within a prompt: the projection of X X^T onto the subspace has trace d σ0² in expectation
    sq = np.sum(p.X**2, axis=1).ravel()  # ||X_t||² ~ σ0² χ²_d
    assert abs(_zscores(sq[:, None], d * s0)[0]) < Z
    z = p.x_tilde - p.x
    assert np.max(np.abs(_zscores(z, 0.0))) < Z
    assert np.max(np.abs(_zscores(z**2, sz))) < Z


def test_linear_orthogonal_noise_and_offsets():
    n, d, sz = 6, 2, 0.5
    p = LinearTask(n, d, 1.0, sz, offset_scale=1.0, noise="orthogonal").sample(np.random.default_rng(1), 3000, 2)
    z = p.x_tilde - p.x
    assert np.max(np.abs(np.einsum("bnd,bn->bd", p.basis, z))) < 1e-12  # P z = 0
    assert abs(_zscores(np.sum(z**2, axis=1)[:, None], (n - d) * sz)[0]) < Z  # E||(I-P) g||² = (n-d) σZ²
    assert np.max(np.abs(_zscores(p.offset, 0.0))) < Z
    assert np.max(np.abs(_zscores(p.offset**2, 1.0 / 3.0))) < Z  # U[-1, 1] variance
    np.testing.assert_allclose(p.task.posterior_mean(p), p.x, atol=1e-12)  # exact recovery
    assert p.task.bayes_risk() == 0.0


def test_sphere_moments():
    """Uniform on the sphere: E[c] = 0, E[c cᵀ] = R²/(d+1) I in the sphere's own coordinates c = Vᵀ x."""
    n, d, R = 5, 2, 1.5
    p = SphereTask(n, d, R).sample(np.random.default_rng(2), 3000, 4)
    c = np.einsum("bnk,bnl->blk", p.basis, p.X).reshape(-1, d + 1)  # tokens independent given the basis
    assert np.max(np.abs(_zscores(c, 0.0))) < Z
    assert np.max(np.abs(_zscores(np.einsum("ti,tj->tij", c, c), R**2 / (d + 1) * np.eye(d + 1)))) < Z
    z = p.x_tilde - p.x
    assert np.max(np.abs(_zscores(z**2, 0.1))) < Z


def test_gmm_moments():
    w = np.array([0.5, 0.0, 0.2, 0.3])
    s2 = np.array([0.05, 0.3, 0.2, 0.1])
    task = GMMTask(3, 4, sigma2_z=0.2, R=1.0, weights=w, sigma2_components=s2)
    p = task.sample(np.random.default_rng(3), 2000, 10)
    onehot = (p.labels.ravel()[:, None] == np.arange(4)).astype(float)
    assert not onehot[:, 1].any()  # zero weight: never drawn
    assert np.max(np.abs(_zscores(onehot[:, [0, 2, 3]], w[[0, 2, 3]]))) < Z
    mu = np.take_along_axis(p.centers, p.labels[:, None, : p.L], axis=2)  # (B, n, L)
    e = (p.X - mu).transpose(0, 2, 1).reshape(-1, 3)  # token noise
    lab = p.labels[:, : p.L].ravel()
    for a in (0, 2, 3):
        assert np.max(np.abs(_zscores(e[lab == a] ** 2, s2[a]))) < Z
        assert np.max(np.abs(_zscores(e[lab == a], 0.0))) < Z
    np.testing.assert_array_equal(p.weights, np.broadcast_to(w, (2000, 4)))


def test_haar_basis_is_isotropic():
    """E[V Vᵀ] = (k/n) I and the sign fix makes E[V] = 0 (QR without it biases diag R > 0 columns)."""
    V = haar_basis(np.random.default_rng(4), 4000, 4, 2)
    assert np.max(np.abs(_zscores(V @ V.transpose(0, 2, 1), 0.5 * np.eye(4)))) < Z
    assert np.max(np.abs(_zscores(V, 0.0))) < Z


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: LinearTask(4, 4), "d"),
        (lambda: LinearTask(4, 0), "d"),
        (lambda: LinearTask(1, 1), "n"),
        (lambda: LinearTask(4, 2, sigma2_0=0.0), "sigma2_0"),
        (lambda: LinearTask(4, 2, sigma2_z=-1.0), "sigma2_z"),
        (lambda: LinearTask(4, 2, sigma2_z=float("nan")), "sigma2_z"),
        (lambda: LinearTask(4, 2, offset_scale=-1.0), "offset_scale"),
        (lambda: LinearTask(4, 2, noise="laplace"), "noise"),
        (lambda: LinearTask(4, 2, target="other"), "target"),
        (lambda: LinearTask(4, 2, transform=np.eye(3)), "transform"),
        (lambda: LinearTask(4, 2, transform=np.zeros((4, 4))), "transform"),
        (lambda: SphereTask(4, 4), "d"),
        (lambda: SphereTask(4, 3, R=0.0), "R"),
        (lambda: SphereTask(4, 2, sigma2_z=0.0), "sigma2_z"),
        (lambda: GMMTask(4, 0), "K"),
        (lambda: GMMTask(4, 2, sigma2_0=-0.1), "sigma2_0"),
        (lambda: GMMTask(4, 2, R=-1.0), "R"),
        (lambda: GMMTask(4, 2, weights=[0.5, 0.6]), "weights"),
        (lambda: GMMTask(4, 2, weights=[-0.5, 1.5]), "weights"),
        (lambda: GMMTask(4, 2, weights=[1.0]), "weights"),
        (lambda: GMMTask(4, 2, sigma2_components=[0.1, -0.1]), "sigma2_components"),
        (lambda: GMMTask(4, 2, sigma2_components=[0.1]), "sigma2_components"),
        (lambda: LinearTask(4, 2).sample(np.random.default_rng(0), 0, 3), "batch"),
        (lambda: SphereTask(4, 2).sample(np.random.default_rng(0), 2, 0), "L"),
        (lambda: GMMTask(4, 2).sample(np.random.default_rng(0), -1, 3), "batch"),
    ],
)
def test_bad_input_names_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_bad_types():
    with pytest.raises(TypeError, match="rng"):
        LinearTask(4, 2).sample(0, 2, 3)
    with pytest.raises(TypeError, match="batch"):
        LinearTask(4, 2).sample(np.random.default_rng(0), 2.5, 3)
    with pytest.raises(TypeError, match="prompts"):
        LinearTask(4, 2).posterior_mean(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="n="):
        LinearTask(4, 2).posterior_mean(LinearTask(5, 2).sample(np.random.default_rng(0), 2, 3))


def test_subset_and_len():
    for task in (LinearTask(6, 2, offset_scale=1.0), SphereTask(6, 2), GMMTask(6, 3)):
        p = task.sample(np.random.default_rng(5), 10, 4)
        perm = np.random.default_rng(6).permutation(10)
        tr, te = p.subset(perm[:8]), p.subset(perm[8:])
        assert (len(tr), len(te)) == (8, 2) and tr.task is task
        for (k, u), v in zip(_fields(te).items(), _fields(p).values()):
            assert (u is None and v is None) or np.array_equal(u, v[perm[8:]]), k
        np.testing.assert_array_equal(task.posterior_mean(tr), task.posterior_mean(p)[perm[:8]])
        mask = np.zeros(10, bool)
        mask[[1, 3]] = True
        np.testing.assert_array_equal(p.subset(mask).X, p.X[[1, 3]])
    for bad in ([], np.zeros(10, bool), [10], np.zeros(3, bool), [0.5]):
        with pytest.raises(ValueError, match="idx"):
            p.subset(bad)


@given(seeds)
@settings(max_examples=20)
def test_transform_maps_prompts_and_oracle(seed):
    """App. H: the same draws, mapped by A; the oracle undoes A for target 'clean' (A.12), keeps it for A.13."""
    rng = np.random.default_rng(seed)
    n, d = 5, 2
    A = rng.standard_normal((n, n)) + 3 * np.eye(n)
    plain = LinearTask(n, d).sample(np.random.default_rng(seed), 3, 4)
    for target in ("clean", "transformed"):
        task = LinearTask(n, d, transform=A, target=target)
        p = task.sample(np.random.default_rng(seed), 3, 4)
        np.testing.assert_allclose(p.X, A @ plain.X, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(p.x_tilde, plain.x_tilde @ A.T, rtol=1e-12, atol=1e-12)
        want_x = plain.x if target == "clean" else plain.x @ A.T
        np.testing.assert_allclose(p.x, want_x, rtol=1e-12, atol=1e-12)
        want_pm = plain.task.posterior_mean(plain)
        want_pm = want_pm if target == "clean" else want_pm @ A.T
        np.testing.assert_allclose(task.posterior_mean(p), want_pm, rtol=1e-9, atol=1e-10)
    assert task == LinearTask(n, d, transform=A, target="transformed") and task.A.shape == (n, n)


def test_transformed_bayes_risk_matches_monte_carlo():
    """LinearTask.bayes_risk with A.13 target (s (d/n)||A||_F²/n) against MC at z < 5."""
    from icdmin.bayes import mc_bayes_risk

    A = np.diag([0.5, 1.0, 2.0, 3.0, 1.0])
    task = LinearTask(5, 2, transform=A, target="transformed")
    m, se = mc_bayes_risk(task, rng=np.random.default_rng(7), batch=20000)
    assert abs(m - task.bayes_risk()) < Z * se


def test_golden_tasks():
    """Static golden numbers (tests/data/golden.json, area "tasks"), regenerated by scripts/make_golden.py."""
    from golden import assert_tree_close, golden

    stored, fresh = golden("tasks")
    assert_tree_close(stored, fresh)
