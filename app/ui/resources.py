"""Where icons and the style sheet live, from a source checkout or a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon


def resource_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(name: str) -> Path:
    return resource_dir() / name


def icon(name: str) -> QIcon:
    """``resources/icons/<name>.svg``; an empty icon (never an error) if it is missing."""
    path = resource_path(f"icons/{name}.svg")
    return QIcon(str(path)) if path.exists() else QIcon()
