"""The desktop window. The only package that imports PySide6 (tests/test_ui_boundary.py checks)."""

from app.ui import pyside_guard

pyside_guard.apply()  # before any other Qt call: see the module for the PySide6-on-3.11 leak it stops
