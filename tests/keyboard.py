"""Walking a window with the Tab key only, as the keyboard tests of the pages and the wizards do."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QApplication, QMenuBar, QTabBar, QWidget

from app.ui.accessibility import keyboard_controls


def tab_walk(start: QWidget, presses: int = 200) -> list[QWidget]:
    """Press Tab from ``start`` until focus comes back round; the controls it stopped on, in order."""
    start.setFocus(Qt.FocusReason.TabFocusReason)
    QApplication.processEvents()
    reached: list[QWidget] = []
    for _ in range(presses):
        focused = QApplication.focusWidget()
        assert focused is not None
        if focused is start and reached:  # round the window once (a date field takes a Tab per part)
            break
        reached.append(focused)
        QTest.keyClick(focused, Qt.Key.Key_Tab)
        QApplication.processEvents()
    return reached


def walk_problems(window: QWidget, start: QWidget, where: str) -> list[str]:
    """What a keyboard-only user would miss on ``window`` walking from ``start``: enabled controls Tab
    never reaches, reached controls with no name a screen reader says, read-only tables that keep Tab."""
    reached = tab_walk(start)
    wanted = [w for w in keyboard_controls(window) if w.isVisible() and w.isEnabled()
              and not isinstance(w, QMenuBar) and w.window() is window]
    problems = [f"{where}: Tab never reaches {type(w).__name__} "
                f"{w.accessibleName() or getattr(w, 'text', lambda: '')()!r}" for w in wanted if w not in reached]
    for w in reached:
        named = w.accessibleName() or (isinstance(w, QAbstractButton) and w.text()) or isinstance(w, QTabBar)
        if not named:
            problems.append(f"{where}: {type(w).__name__} has no name")
    for at, w in enumerate(reached):
        if isinstance(w, QAbstractItemView) and (w.tabKeyNavigation() or reached[(at + 1) % len(reached)] is w):
            problems.append(f"{where}: {w.accessibleName()} keeps Tab")
    return problems
