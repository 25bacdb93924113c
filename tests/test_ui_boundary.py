"""Only app/ui may use Qt: the core, the CLI and the sync run headless (servers, CI, the scheduler)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
QT_PACKAGES = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "PySide2", "qtpy")
IMPORT_CALLS = {"import_module", "__import__", "find_spec"}


def _is_qt(name: str) -> bool:
    return name.split(".")[0] in QT_PACKAGES


def qt_imports(path: Path) -> list[str]:
    """Every Qt import in a module, at any depth (lazy imports inside functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if _is_qt(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_qt(node.module):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IMPORT_CALLS and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and _is_qt(node.args[0].value):
                found.append(f"line {node.lineno}: {name}({node.args[0].value!r})")
    return found


def core_modules() -> list[Path]:
    return sorted(p for p in APP.rglob("*.py") if (APP / "ui") not in p.parents)


def test_the_walk_sees_the_core() -> None:
    names = {p.relative_to(APP).as_posix() for p in core_modules()}
    assert {"cli/__init__.py", "sync/engine.py", "ops/sync_run.py", "store/db.py"} <= names
    assert not any(n.startswith("ui/") for n in names)


def test_the_checker_catches_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from PySide6.QtCore import QObject\n"
                      "def g():\n    import importlib\n    importlib.import_module('PySide6.QtWidgets')\n")
    assert len(qt_imports(sample)) == 2


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.relative_to(APP).as_posix())
def test_core_module_imports_no_qt(path: Path) -> None:
    assert qt_imports(path) == [], f"{path.relative_to(ROOT)} imports Qt; only app/ui may"


def test_importing_the_core_loads_no_qt() -> None:
    probe = "\n".join([
        "import importlib, json, pkgutil, sys",
        "import app.cli, app.sync.engine, app.ops",
        "names = ['app.cli', 'app.sync.engine']",
        "for info in pkgutil.iter_modules(app.ops.__path__, 'app.ops.'):",
        "    importlib.import_module(info.name)",
        "    names.append(info.name)",
        f"qt = sorted(m for m in sys.modules if m.split('.')[0] in {QT_PACKAGES!r})",
        "print(json.dumps({'imported': names, 'qt': qt}))",
    ])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "app.ops.sync_run" in result["imported"] and "app.ops.status" in result["imported"]
    assert result["qt"] == [], f"importing the core loaded {result['qt']}"
