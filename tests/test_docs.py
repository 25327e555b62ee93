"""docs/maths.md: every function and test it names exists, its index table is complete, and the three statements
it makes that no module test checks (Theorem 3.1's rate, Prop. 3.2's remainder, App. H's weights) hold.

References are backticked spans: ``icdmin.module.name`` (resolved with importlib + getattr, so a function that
shadows its module, like ``icdmin.dam.energy``, still resolves) and ``tests/test_x.py::test_name`` or
``tests/test_x.py::TestClass::test_name`` (found in the AST of the test file, never imported).

Tolerances: the Monte-Carlo slope of Theorem 3.1 is -1 (squared deviation ~ 1/L); its spread over seeds is about
0.02, so [-1.2, -0.8] is ten spreads wide, while a wrong oracle flattens it (the authors' Bessel order gives -0.55;
d = 3 because that order is right at d = 2). Prop. 3.2's remainder divided by ε equals the second-order coefficient
up to O(ε) (third-order terms, about 10·ε here) plus rounding of the 1/ε term (1e-16/ε²). App. H's identities are
exact algebra: 1e-10 relative.
"""

import ast
import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from icdmin.layer import attention
from icdmin.baselines import linear_attention_estimator, softmax_attention_estimator
from icdmin.bayes import posterior_mean_sphere
from icdmin.tasks import LinearTask, SphereTask

ROOT = Path(__file__).resolve().parents[1]
MATHS = ROOT / "docs" / "maths.md"
FUNCTION_REF = re.compile(r"`(icdmin(?:\.\w+)+)`")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+(?:::\w+)?)`")
INDEX_HEADER = "| equation | function(s) | test(s) |"
# every equation the notes cover must keep its row in the index (a label matches whole, so "Eq. 1" is not "Eq. 10")
INDEX_LABELS = ["Eq. 1", "Eq. 2", "Eq. 3", "Eq. 4", "Eqs. 5-6", "Eqs. 7-8", "App. C.3", "finite-L", "Eq. 9",
                "Eq. 10", "Eq. 11", "Eq. 12", "Eq. 13", "Tweedie", "Eq. 14", "Thm. 3.1", "Prop. 3.2", "Eq. 16",
                "Eq. 17", "App. I.1", "A.18", "A.19", "A.12", "A.13"]
# development notes that are not part of the repository (spelled in pieces so that this file does not cite them)
OUTSIDE_FILES = [f"{name}.md" for name in ("PAPER", "REFERENCE", "API", "STYLE")] + ["../" + "shared"]
CI_SETUP = {"set", "cd", "echo", "export"}  # .ci/run's commands that set the shell up rather than run anything


def _text():
    return MATHS.read_text(encoding="utf-8")


def resolve(dotted: str):
    """The object named by ``icdmin.module.attr[.attr...]``: the longest importable module prefix, then getattr."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not (name == err.name or name.startswith(f"{err.name}.")):  # a dependency of the module is
                raise  # missing: a real failure, not a name that is an attribute rather than a module
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def defined_tests(path: Path) -> set:
    """Top-level test functions and ``Class::method`` names of a test file, from its AST."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{m.name}" for m in node.body
                         if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names



def index_rows(text: str) -> list:
    """The rows of the equation -> function -> test table, as lists of three cells."""
    lines = text.splitlines()
    start = lines.index(INDEX_HEADER)
    rows = []
    for line in lines[start + 2:]:  # skip the header and its | --- | line
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"index row without three cells: {line!r}"
        rows.append(cells)
    return rows


def test_every_function_reference_resolves():
    refs = sorted(set(FUNCTION_REF.findall(_text())))
    assert len(refs) >= 40, "the notes name the functions of every equation"
    missing = []
    for ref in refs:
        try:
            obj = resolve(ref)
        except (ImportError, AttributeError) as err:
            missing.append(f"{ref}: {err}")
            continue
        if not (callable(obj) or inspect.ismodule(obj)):
            missing.append(f"{ref}: not a module, function or class")
    assert not missing, "docs/maths.md names functions that do not exist:\n" + "\n".join(missing)


def test_every_test_reference_exists():
    refs = sorted(set(TEST_REF.findall(_text())))
    assert len(refs) >= 40, "the notes name the test of every equation"
    cache, missing = {}, []
    for rel, name in refs:
        path = ROOT / rel
        if not path.is_file():
            missing.append(f"{rel}: no such file")
            continue
        if rel not in cache:
            cache[rel] = defined_tests(path)
        if name not in cache[rel]:
            missing.append(f"{rel}::{name}")
    assert not missing, "docs/maths.md names tests that do not exist:\n" + "\n".join(missing)


def test_index_covers_every_equation_with_a_function_and_a_test():
    rows = index_rows(_text())
    for label, functions, tests in rows:
        assert FUNCTION_REF.search(functions), f"index row {label!r} names no icdmin function"
        assert TEST_REF.search(tests), f"index row {label!r} names no test"
    for label in INDEX_LABELS:
        pattern = r"(?<![\w.])" + re.escape(label) + r"(?!\w)"
        assert any(re.search(pattern, row[0]) for row in rows), f"index has no row for {label}"


def test_resolver_and_parser_reject_what_does_not_exist(tmp_path):
    """The checks above must be able to fail: unknown names and tests are reported, shadowing names resolve."""
    with pytest.raises(AttributeError):
        resolve("icdmin.dam.no_such_function")
    with pytest.raises(ModuleNotFoundError):
        resolve("icdmin_no_such_package.f")
    assert callable(resolve("icdmin.dam.energy")) and callable(resolve("icdmin.layer.attention"))
    f = tmp_path / "test_x.py"
    f.write_text("def test_a():\n    pass\n\nclass TestB:\n    def test_c(self):\n        pass\n\n"
                 "def helper():\n    def test_nested():\n        pass\n")
    assert defined_tests(f) == {"test_a", "TestB::test_c", "helper"}
    text = f"x\n\n{INDEX_HEADER}\n| --- | --- | --- |\n| Eq. 3 | `icdmin.bayes.posterior_mean_linear` | none |\n\ny"
    assert index_rows(text) == [["Eq. 3", "`icdmin.bayes.posterior_mean_linear`", "none"]]


def test_notes_cite_no_file_outside_the_repository():
    text = _text()
    for name in OUTSIDE_FILES:
        assert name not in text, f"docs/maths.md cites {name}, which is not in the repository"
    assert "mattsmart/in-context-denoising" in text and "c8aaeb3" in text  # the authors' code, pinned


def repository_text_files() -> list:
    """Every text file a user gets: README, sources, tests, scripts, docs, packaging and CI files."""
    paths = [ROOT / name for name in ("README.md", "setup.cfg", "pyproject.toml", "LICENSE", ".ci/run")]
    for pattern in ("icdmin/*.py", "tests/*.py", "scripts/*.py", "docs/*.md"):
        paths += ROOT.glob(pattern)
    return [p for p in paths if p.is_file()]


def test_no_file_cites_a_file_outside_the_repository():
    files = repository_text_files()
    assert len(files) >= 50 and ROOT / "README.md" in files
    cites = [f"{p.relative_to(ROOT)}: {name}" for p in files for name in OUTSIDE_FILES
             if name in p.read_text(encoding="utf-8")]
    assert not cites, "files cite development notes that are not in the repository:\n" + "\n".join(cites)


def readme_test_command(readme: str) -> str:
    """The one command of the README's code block under "Run the tests"."""
    block = re.search(r"^Run the tests\b.*?^```bash\n(.*?)\n```", readme, flags=re.M | re.S)
    assert block, "README has no 'Run the tests' code block"
    return block.group(1).strip()


def first_ci_command(script: str) -> str:
    """The first line of .ci/run that runs something (not a comment, blank, or shell set-up such as cd/set/echo)."""
    for line in script.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line.split()[0] not in CI_SETUP:
            return line
    raise AssertionError(".ci/run runs nothing")


def test_readme_test_command_is_exactly_what_ci_runs_first():
    readme, ci = (ROOT / "README.md").read_text(encoding="utf-8"), (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = readme_test_command(readme)
    assert command == first_ci_command(ci)
    assert command.startswith("pip install -e") and command.endswith("pytest")
    before = ci[: ci.index(command)]
    assert not [ln for ln in before.splitlines() if ln.split()[:1] == ["export"]], "CI sets env before the command"
    # the parsers can tell a different command or an environment variable apart
    assert first_ci_command("set -e\ncd x\n# c\necho hi\nHYPOTHESIS_PROFILE=ci pytest\n") != command
    assert readme_test_command("Run the tests:\n\n```bash\npytest -x\n```\n") == "pytest -x"


def test_citations_of_the_notes_name_existing_sections():
    """Files that cite "docs/maths.md §N" (the train CLI's theory line, tests) point at a section of the notes."""
    sections = set(re.findall(r"^## (\d+)\. ", _text(), flags=re.M))
    assert {"1", "3", "8"} <= sections
    cited = []
    for path in [ROOT / "README.md", *ROOT.glob("icdmin/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("scripts/*.py"),
                 *ROOT.glob("docs/*.md")]:
        if path.is_file():
            cited += [(path.name, n) for n in re.findall(r"docs/maths\.md §(\d+)", path.read_text(encoding="utf-8"))]
    bad = [f"{name}: §{n}" for name, n in cited if n not in sections]
    assert not bad, "citations of sections docs/maths.md does not have:\n" + "\n".join(bad)


# ------------------------------------------------------------- statements of the notes without a module test


@pytest.mark.parametrize("seed", [0, 1])
def test_thm31_squared_deviation_falls_as_one_over_L(seed):
    """Theorem 3.1 / App. E: Eq. (13) -> the sphere oracle Eq. (6), mean squared deviation ~ 1/L."""
    rng = np.random.default_rng(seed)
    task = SphereTask(6, 3, R=1.0, sigma2_z=0.5)
    Ls = np.array([20, 200, 2000])
    dev = []
    for L in Ls:
        p = task.sample(rng, 200, int(L))
        F = softmax_attention_estimator(p.X, p.x_tilde, task.sigma2_z)  # (B, n), context only
        f_opt = posterior_mean_sphere(p.x_tilde, p.basis, task.R, task.sigma2_z)  # (B, n), Bessel closed form
        dev.append(np.mean(np.sum((F - f_opt) ** 2, axis=1)))
    slope = np.polyfit(np.log(Ls), np.log(dev), 1)[0]
    assert -1.2 <= slope <= -0.8, (dev, slope)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prop32_remainder_is_the_second_order_term(seed):
    """Eq. (15): F(E, (W_PV/ε, ε W_KQ)) − RHS = ε (1/2L) W_PV Σ_t X_t (u_t² − mean u²) + O(ε²), u = v − v̄."""
    rng = np.random.default_rng(seed)
    B, n, L = 3, 5, 7
    X, q = rng.standard_normal((B, n, L)), rng.standard_normal((B, n))
    W_KQ, W_PV = rng.standard_normal((2, n, n)) / np.sqrt(n)
    Xbar = X.mean(axis=2)  # (B, n)
    v = np.einsum("bnl,bn->bl", X, q @ W_KQ.T)  # (B, L) X_tᵀ W_KQ x̃
    u = v - v.mean(axis=1, keepdims=True)  # (B, L)
    rhs_first = Xbar @ W_PV.T  # (B, n), to be divided by ε
    rhs_second = np.einsum("bnl,bl->bn", X, u) @ W_PV.T / L  # (B, n) = (1/L) W_PV Σ_t X_t (X_t − X̄)ᵀ W_KQ x̃
    c2 = np.einsum("bnl,bl->bn", X, u**2 - np.mean(u**2, axis=1, keepdims=True)) @ W_PV.T / (2 * L)  # (B, n)
    assert np.max(np.abs(c2)) > 1e-2  # the remainder is not trivially zero
    for eps in (1e-2, 1e-3):
        F = attention(X, q, eps * W_KQ, W_PV / eps, "softmax")  # (B, n)
        remainder = F - (rhs_first / eps + rhs_second)
        np.testing.assert_allclose(remainder / eps, c2, rtol=0, atol=50 * eps * (1 + np.max(np.abs(c2))))


def _well_conditioned(rng, n):
    Q1, Q2 = (np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in range(2))
    return Q1 @ np.diag(np.geomspace(0.5, 2.0, n)) @ Q2  # condition number 4


@pytest.mark.parametrize("kind", ["linear", "softmax"])
def test_app_h_weights_undo_the_transform(kind):
    """A.12: (W_KQ, W_PV) = (β (AAᵀ)⁻¹, α A⁻¹) on (A X, A x̃) is (βI, αI) on (X, x̃); A.13: W_PV = αI gives A times it.
    On LinearTask(transform=A) prompts, linear attention with the A.12 weights and αβ = 1/(σ0²+σZ²) is Eq. (10)
    on the same draws without A."""
    rng = np.random.default_rng(5)
    n, d, alpha, beta = 6, 2, 1.3, 0.7
    A = _well_conditioned(rng, n)
    A_inv, G = np.linalg.inv(A), np.linalg.inv(A @ A.T)
    X, q = rng.standard_normal((4, n, 9)), rng.standard_normal((4, n))
    AX, Aq = A @ X, q @ A.T
    plain = attention(X, q, beta * np.eye(n), alpha * np.eye(n), kind)  # (B, n)
    np.testing.assert_allclose(attention(AX, Aq, beta * G, alpha * A_inv, kind), plain, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(attention(AX, Aq, beta * G, alpha * np.eye(n), kind), plain @ A.T, rtol=1e-10,
                               atol=1e-10)
    if kind == "linear":
        clean = LinearTask(n, d).sample(np.random.default_rng(7), 5, 30)
        mapped = LinearTask(n, d, transform=A).sample(np.random.default_rng(7), 5, 30)
        gamma = 1 / (2.0 + 1.0)  # 1/(σ0² + σZ²), LinearTask's defaults
        got = attention(mapped.X, mapped.x_tilde, G, gamma * A_inv, "linear")
        want = linear_attention_estimator(clean.X, clean.x_tilde, 2.0, 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
