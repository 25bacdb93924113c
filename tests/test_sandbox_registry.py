"""The sandbox package knows which imitation serves which provider; the connectors know nothing of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.connectors import registry
from app.sandbox.base import SandboxApp
from app.sandbox.registry import SANDBOXES, has_sandbox, sandbox_class

ROOT = Path(__file__).resolve().parents[1]


def test_every_provider_has_its_imitation_and_an_unknown_one_is_refused_in_plain_words():
    assert set(SANDBOXES) == set(registry.PROVIDER_MODULES)
    for provider in SANDBOXES:
        cls = sandbox_class(provider)
        assert issubclass(cls, SandboxApp) and cls.provider == provider and has_sandbox(provider)
    with pytest.raises(ValueError, match="no built-in sandbox for 'freshbooks'"):
        sandbox_class("freshbooks")
    assert not has_sandbox("freshbooks")


def _imports(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        found.update(s.value.partition(":")[0] for s in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(s, ast.Constant) and isinstance(s.value, str) and s.value.startswith("app."))
    return found


def test_the_sandboxes_and_the_connectors_do_not_lean_on_each_other():
    """A sandbox that computed with the product's code would share its bugs; the connectors name no sandbox."""
    sandbox = _imports(ROOT / "app" / "sandbox")
    assert not {m for m in sandbox if m.startswith(("app.connectors", "app.sync", "app.domain.money"))}
    connectors = _imports(ROOT / "app" / "connectors")
    assert not {m for m in connectors if m.startswith("app.sandbox")}
