"""The package's layout rules, checked on the source tree.

* Every module of the stages below the surfaces (``harness/core``, ``store``, ``analysis``,
  ``planning``) imports without torch, onnxruntime or streamlit ending up in ``sys.modules``,
  each in an interpreter where no other harness module was imported before it.
* Every package under ``harness/`` says what it is in its ``__init__.py`` docstring.
* ``harness.__all__`` is exactly the public API, and ``import harness`` imports nothing heavy.
* No module is over :data:`MAX_LINES` lines unless its docstring has a line starting with
  ``Size:`` that gives the reason.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import harness

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "harness"
MAX_LINES = 400
HEAVY = ("torch", "onnxruntime", "streamlit")
LIGHT_STAGES = ("core", "store", "analysis", "planning")
PUBLIC_API = {
    "compare",
    "list_runs",
    "load_results",
    "load_run",
    "load_suite",
    "project",
    "recommend",
    "run_cells",
    "run_suite",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules(*stages: str) -> list[str]:
    out = []
    for stage in stages:
        out += [_module_name(p) for p in sorted((PKG / stage).rglob("*.py"))]
    return out


# The third-party libraries every stage uses are imported once; each harness module is then
# imported in a child forked from that interpreter, so no harness module is imported before
# it (and a module that needs an import order to work fails). The child reports one JSON line.
_PROBE = r"""
import json, os, sys, traceback
import numpy, pandas, pydantic, scipy.stats, yaml  # noqa: F401  (shared, light, and slow to import)
heavy = sys.argv[1].split(",")
for name in sys.argv[2:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
            res = {"module": name, "ok": True, "heavy": [m for m in heavy if m in sys.modules]}
        except BaseException:
            res = {"module": name, "ok": False, "error": traceback.format_exc(limit=3)}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def light_imports() -> dict[str, dict[str, object]]:
    """Import result of every module of the light stages (see ``_PROBE``)."""
    if not hasattr(__import__("os"), "fork"):
        pytest.skip("needs os.fork")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), *_modules(*LIGHT_STAGES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {str(r["module"]): r for r in results}


@pytest.mark.parametrize("module", _modules(*LIGHT_STAGES))
def test_light_stage_module_imports_without_heavy_libraries(
    module: str, light_imports: dict[str, dict[str, object]]
) -> None:
    res = light_imports.get(module)
    assert res is not None, f"{module}: no result (the import crashed the interpreter?)"
    assert res["ok"], f"{module} does not import on its own:\n{res.get('error')}"
    assert res["heavy"] == [], f"importing {module} imports {res['heavy']}"


def test_importing_harness_imports_no_stage_and_no_heavy_library() -> None:
    code = (
        "import sys, json, harness; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('harness.') "
        f"or m.split('.')[0] in {HEAVY!r} or m.split('.')[0] == 'pandas')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) == []


def _packages() -> list[Path]:
    return sorted(p.parent for p in PKG.rglob("__init__.py"))


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_has_a_docstring(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc and doc.strip(), f"{package.relative_to(ROOT)}/__init__.py has no docstring saying what the package is"


def test_public_api_is_exactly_the_documented_names_and_each_resolves() -> None:
    assert set(harness.__all__) == PUBLIC_API
    assert len(harness.__all__) == len(PUBLIC_API), "a name is listed twice"
    for name in harness.__all__:
        obj = getattr(harness, name)
        assert callable(obj), name
        assert obj.__doc__, f"harness.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = harness.nope  # type: ignore[attr-defined]


def _all_modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in _all_modules()])
def test_no_module_is_over_the_size_limit_without_a_reason(path: Path) -> None:
    text = path.read_text()
    n = len(text.splitlines())
    if n <= MAX_LINES:
        return
    doc = ast.get_docstring(ast.parse(text)) or ""
    reasons = [line for line in doc.splitlines() if line.strip().startswith("Size:")]
    assert reasons and len(reasons[0].strip()) > len("Size:"), (
        f"{path.relative_to(ROOT)} has {n} lines (limit {MAX_LINES}): split it, or state why it is one "
        "module in a docstring line starting with 'Size:'"
    )
