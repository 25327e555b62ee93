"""The package's layering and size rules, read from the AST of every module in icdmin/ and checked in subprocesses.

Rules (issue 8):

1. Two layers. The CORE (the maths: tasks, Bayes, baselines, energy, attention, loss, training) never imports the
   PAPER layer (the reproduction: experiments and its exp_* modules, runner, CLI, bench), at any depth: deferred imports
   inside functions and ``importlib.import_module("icdmin.x")`` count. Every module is in exactly one layer.
2. No private name crosses a module boundary inside the package: no ``from .x import _name`` (or
   ``from icdmin.x import _name``), no ``module._name`` on an imported icdmin module. Leading-underscore *modules*
   (``_arrays``, ``_kernels``, ``_memory``) are package-internal: their public names are the package's internal API
   and importing them inside icdmin is allowed. Dunder names (``__version__``) are not private. Tests may use
   private names (they test internals); this rule is for icdmin/ only.
3. ``import icdmin`` in a fresh interpreter changes no environment variable, starts no thread and loads no PAPER
   module; the command quoted in the issue passes.
4. Sizes: every file in icdmin/ and tests/ <= 300 lines; every function in icdmin/ <= 50 lines (``def`` line to last
   line, docstring included, decorators not), except documented Numba kernels (decorated with a ``*jit*`` decorator
   and carrying a docstring: one fused loop is clearer than a kernel split across calls) and ``SIZE_EXCEPTIONS``.

Each checker is also run on a synthetic source that breaks its rule, so that a checker that silently passes
everything fails here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "icdmin"

CORE = frozenset({
    "__init__", "_arrays", "_kernels", "_memory", "baselines", "bayes", "bessel", "dam", "energy_appendix",
    "gaussian_attention", "gradcheck", "layer", "loss", "optim", "prompts", "retrieval", "tasks", "train_eval",
    "train_setup", "training",
})
PAPER = frozenset({
    "__main__", "bench", "cli", "exp_common", "exp_fig3", "exp_fig4a", "exp_fig4b", "exp_fig5", "exp_fig6", "exp_fig8",
    "exp_oracle", "exp_prop32", "exp_thm31", "experiments", "outputs", "paper", "runner", "train_cli", "workers",
})
MAX_FILE_LINES, MAX_FUNCTION_LINES = 300, 50
SIZE_EXCEPTIONS = {  # "module.function" or a path -> the reason
}
# the one allowed CORE -> PAPER import: icdmin.reproduce / icdmin.EXPERIMENTS resolve on first use, through the
# package's module __getattr__ (so that `import icdmin` loads the core only; checked in a subprocess below)
LAZY_GATEWAY = ("__init__", "__getattr__", {"runner", "experiments"})


def _modules() -> dict[str, str]:
    """{module name: source} of every module in icdmin/."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.glob("*.py"))}


# ----------------------------------------------------------------------------------------------------------------
# the checkers (pure functions of a source string, so that they can be tried on synthetic violations)


def _target(node: ast.ImportFrom, modules) -> str | None:
    """The icdmin module that ``from <module> import ...`` reads from ("" for the package itself), or None."""
    if node.level == 1:
        return node.module.split(".")[0] if node.module else ""
    if node.level == 0 and node.module and (node.module == "icdmin" or node.module.startswith("icdmin.")):
        return node.module.split(".")[1] if "." in node.module else ""
    return None


def imported_modules(source: str, modules, skip_function: str | None = None) -> set[str]:
    """The icdmin modules ``source`` imports anywhere (module level, function bodies, ``import_module`` calls),
    except inside the top-level function named ``skip_function``."""
    found = set()
    tree = ast.parse(source)
    tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == skip_function)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _target(node, modules)
            if target == "":  # from . import x: x may be a module
                found.update(a.name for a in node.names if a.name in modules)
            elif target is not None:
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("icdmin."))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0].value
            if name == "import_module" and isinstance(arg, str) and arg.startswith(("icdmin.", ".")):
                found.add(arg.split(".")[1] if arg.startswith("icdmin.") else arg.lstrip(".").split(".")[0])
    return found & set(modules)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_crossings(source: str, modules) -> list[str]:
    """Private names ``source`` takes from other icdmin modules: imported by name, or read as ``module._name``."""
    bad, aliases = [], {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (target := _target(node, modules)) is not None:
            for a in node.names:
                is_module = target == "" and a.name in modules
                if is_module:
                    aliases[a.asname or a.name] = a.name
                elif _private(a.name):
                    bad.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("icdmin.") and a.asname:
                    aliases[a.asname] = a.name.split(".")[1]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and _private(node.attr)):
            bad.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return bad


def _is_numba_kernel(fn: ast.FunctionDef) -> bool:
    """Decorated with a numba ``*jit*`` decorator (``@njit()``, ``@numba.njit``, ...)."""
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if "jit" in name:
            return True
    return False


def long_functions(source: str, module: str) -> list[str]:
    """Functions (methods and nested functions included) over ``MAX_FUNCTION_LINES``, except documented Numba
    kernels and ``SIZE_EXCEPTIONS``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = node.end_lineno - node.lineno + 1
            key = f"{module}.{node.name}"
            exempt = key in SIZE_EXCEPTIONS or (_is_numba_kernel(node) and ast.get_docstring(node))
            if size > MAX_FUNCTION_LINES and not exempt:
                bad.append(f"{key}: {size} lines")
    return bad


# ----------------------------------------------------------------------------------------------------------------
# the rules on the package


def test_every_module_is_in_exactly_one_layer():
    assert not CORE & PAPER
    assert set(_modules()) == CORE | PAPER, "classify every new module as CORE or PAPER here"


def test_core_never_imports_paper():
    modules = _modules()
    module, function, targets = LAZY_GATEWAY
    bad = {name: sorted(imported_modules(src, modules, function if name == module else None) & PAPER)
           for name, src in modules.items() if name in CORE}
    assert not {k: v for k, v in bad.items() if v}, bad
    assert imported_modules(modules[module], modules) & PAPER == targets  # the gateway, and nothing else


def test_no_private_name_crosses_a_module_boundary():
    modules = _modules()
    bad = {name: private_crossings(src, modules) for name, src in modules.items()}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_file_and_function_sizes():
    too_long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted([*PACKAGE.glob("*.py"), *(ROOT / "tests").glob("*.py")])
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
                and str(p.relative_to(ROOT)) not in SIZE_EXCEPTIONS]
    assert not too_long, too_long
    bad = [f for name, src in _modules().items() for f in long_functions(src, name)]
    assert not bad, bad


# ----------------------------------------------------------------------------------------------------------------
# each checker fails on a source that breaks its rule

FAKE = {"__init__": "", "layer": "", "_arrays": "", "_kernels": "", "runner": "", "figures": "", "tasks": ""}


@pytest.mark.parametrize("source", [
    "from .runner import run",
    "from . import runner",
    "from icdmin.figures import plot",
    "import icdmin.runner",
    "def f():\n    if True:\n        from .runner import run\n    return run",
    "def f():\n    import importlib\n    return importlib.import_module('icdmin.figures')",
    "class A:\n    def m(self):\n        from icdmin import figures\n",
])
def test_the_layer_checker_sees_every_kind_of_import(source):
    assert imported_modules(source, FAKE) & {"runner", "figures"}


def test_the_layer_checker_skips_only_the_named_function():
    source = "def __getattr__(name):\n    from . import runner\n\ndef f():\n    from . import figures\n"
    assert imported_modules(source, FAKE, "__getattr__") == {"figures"}


def test_the_layer_checker_ignores_other_packages_and_core_imports():
    source = "import numpy\nfrom . import _kernels\nfrom .tasks import LinearTask\nfrom os import path\n"
    assert imported_modules(source, FAKE) == {"_kernels", "tasks"}


@pytest.mark.parametrize("source", [
    "from .layer import _prepare",
    "from icdmin.layer import attention, _forward",
    "def f():\n    from ._arrays import _lse\n",
    "from . import _kernels\nx = _kernels._run",
    "import icdmin.layer as L\ny = L._weights",
])
def test_the_privacy_checker_catches_private_imports(source):
    assert private_crossings(source, FAKE)


def test_the_privacy_checker_allows_internal_modules_public_names_and_dunders():
    source = ("from . import _kernels, __version__\nfrom ._arrays import check_int\nfrom numpy import _core\n"
              "x = _kernels.JIT_ENABLED\n")
    assert private_crossings(source, FAKE) == []


def test_the_size_checker_catches_a_long_function_but_not_a_documented_kernel():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}", "m") == [f"m.f: {MAX_FUNCTION_LINES + 1} lines"]
    assert long_functions(f"class A:\n    def g(self):\n    {body.replace(chr(10), chr(10) + '    ')}", "m")
    kernel = f"@njit()\ndef k():\n    \"\"\"A fused loop.\"\"\"\n{body}"
    assert long_functions(kernel, "m") == []
    assert long_functions(kernel.replace('    """A fused loop."""\n', ""), "m")  # undocumented: not exempt
    assert long_functions("def f():\n    return 1\n", "m") == []


# ----------------------------------------------------------------------------------------------------------------
# import icdmin in a fresh interpreter


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(ROOT)})


PROBE = textwrap.dedent("""
    import os, sys, threading
    before = dict(os.environ)
    import icdmin
    assert dict(os.environ) == before, sorted(set(os.environ.items()) ^ set(before.items()))
    assert threading.active_count() == 1, threading.enumerate()
    print(",".join(sorted(m.split(".")[1] for m in sys.modules if m.startswith("icdmin."))))
""")


def _probe(extra: str = "") -> tuple[int, set, str]:
    """Run PROBE with ``extra`` code right after ``import icdmin``: (return code, icdmin modules loaded, stderr)."""
    result = _python(PROBE.replace("import icdmin\n", "import icdmin\n" + extra))
    return result.returncode, set(result.stdout.strip().split(",")), result.stderr


def test_import_icdmin_is_quiet_and_loads_the_core_only():
    """No environment change, no thread, no PAPER module; and the probe sees each kind of violation."""
    code, loaded, err = _probe()
    assert code == 0, err
    assert loaded <= CORE and "layer" in loaded, loaded
    assert not loaded & PAPER
    assert _probe("os.environ['ICDMIN_PROBE'] = '1'\n")[0] != 0
    assert _probe("threading.Thread(target=__import__('time').sleep, args=(2,)).start()\n")[0] != 0
    code, loaded, err = _probe("import icdmin.runner\n")
    assert code == 0 and "runner" in loaded & PAPER, err
    code, loaded, err = _probe("icdmin.EXPERIMENTS\n")  # the reproduction layer is still one attribute away
    assert code == 0 and "experiments" in loaded, err


def test_the_command_from_the_issue():
    command = ("import os,threading,icdmin,numpy as np; e=dict(os.environ); "
               "t=icdmin.LinearTask(16,8).sample(np.random.default_rng(0),100,499); "
               "assert dict(os.environ)==e and threading.active_count()==1")
    result = _python(command)
    assert result.returncode == 0, result.stderr


def test_layer_reexports_the_loss():
    """icdmin.layer re-exports icdmin.loss's functions (lazily, PEP 562): the same objects, in a fresh process."""
    result = _python("from icdmin.layer import loss_and_grads, mse_forward\n"
                     "from icdmin import loss\nassert loss.loss_and_grads is loss_and_grads\n"
                     "assert loss.mse_forward is mse_forward")
    assert result.returncode == 0, result.stderr
