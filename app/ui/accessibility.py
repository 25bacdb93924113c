"""Every control a keyboard reaches has a name a screen reader can say.

Controls named in their own module keep their name. For the others, ``name_controls`` gives the
name a sighted person reads next to them: the label whose buddy they are, the label just before
them in their row, a search box's placeholder, a button's text or tooltip, the tab a table is on.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QLabel,
    QLayout,
    QLineEdit,
    QTabWidget,
    QWidget,
)

_MNEMONIC = re.compile(r"&(?!&)")


def _clean(value: str) -> str:
    value = re.sub(r"<[^>]+>", "", _MNEMONIC.sub("", value)).strip()
    return value.rstrip(":").rstrip("…").strip()


def _label_before(widget: QWidget) -> str:
    parent = widget.parentWidget()
    layout = parent.layout() if parent is not None else None
    found = layout_position(layout, widget) if layout is not None else None
    if found is None:
        return ""
    holder, index = found
    for i in range(index - 1, -1, -1):
        entry = holder.itemAt(i)
        item = entry.widget() if entry is not None else None
        if item is None:
            continue
        if isinstance(item, QLabel) and item.text().strip():
            return _clean(item.text())
        break
    return ""


def layout_position(layout: QLayout, widget: QWidget) -> tuple[QLayout, int] | None:
    """The (sub)layout of ``layout`` that holds ``widget``, and its index there."""
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item is None:
            continue
        if item.widget() is widget:
            return layout, i
        inner = item.layout()
        if inner is not None and (found := layout_position(inner, widget)) is not None:
            return found
    return None


def _tab_title(widget: QWidget) -> str:
    chain = [widget]
    while (parent := chain[-1].parentWidget()) is not None:
        if isinstance(parent, QTabWidget):
            index = next((i for w in chain if (i := parent.indexOf(w)) >= 0), -1)
            if index >= 0:
                return re.sub(r"\s+[\d,]+$", "", _clean(parent.tabText(index)))
        chain.append(parent)
    return ""


def derived_name(widget: QWidget, buddies: dict[int, str]) -> str:
    """The name a person reads next to ``widget`` ("" when there is none to read)."""
    if id(widget) in buddies:
        return buddies[id(widget)]
    if isinstance(widget, QAbstractButton) and widget.text():
        return ""  # a button's own text is its name, and follows it when it changes ("Syncing…")
    if isinstance(widget, QLineEdit) and widget.placeholderText():
        return _clean(widget.placeholderText())
    if isinstance(widget, QAbstractItemView) and (tab := _tab_title(widget)):
        return f"{tab} list"
    if before := _label_before(widget):
        return before
    if widget.toolTip():
        return _clean(widget.toolTip().split("\n")[0].split(". ")[0])
    if isinstance(widget, QComboBox) and widget.count():
        return f"Show: {widget.itemText(0)[:1].lower()}{widget.itemText(0)[1:]}"
    return ""


def keyboard_controls(root: QWidget) -> list[QWidget]:
    """The controls Tab may stop on under ``root``."""
    return [w for w in root.findChildren(QWidget)
            if w.focusPolicy() & Qt.FocusPolicy.TabFocus and w.focusProxy() is None]  # a proxy takes it instead


def name_controls(root: QWidget) -> int:
    """Name the unnamed controls under ``root``; how many were named."""
    buddies = {id(label.buddy()): _clean(label.text()) for label in root.findChildren(QLabel)
               if label.buddy() is not None and label.text()}
    named = 0
    for widget in keyboard_controls(root):
        if widget.accessibleName():
            continue
        if name := derived_name(widget, buddies):
            widget.setAccessibleName(name)
            named += 1
    return named
