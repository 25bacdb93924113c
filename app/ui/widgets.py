"""Small widgets shared by several areas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QColor, QIcon, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QFileDialog, QLabel, QWidget

from app.ui.text import Notice

_DOTS: dict[str, QIcon] = {}


def dot_icon(colour: str, diameter: int = 8, box: int = 16) -> QIcon:
    """A small status dot, centred in an icon-sized box (cached per colour)."""
    key = f"{colour}/{diameter}/{box}"
    if key not in _DOTS:
        pixmap = QPixmap(box * 2, box * 2)  # drawn at 2x so it stays round on high-DPI screens
        pixmap.setDevicePixelRatio(2)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(colour))
        offset = (box - diameter) / 2
        painter.drawEllipse(offset, offset, diameter, diameter)
        painter.end()
        _DOTS[key] = QIcon(pixmap)
    return _DOTS[key]


class ElidedLabel(QLabel):
    """One line that shrinks with '…' instead of clipping; the whole text is in the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(False)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        margins = self.contentsMargins()
        return QSize(min(hint.width(), self.fontMetrics().horizontalAdvance("Mmmmm…") + margins.left()
                         + margins.right()), hint.height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment()), text)


SaveDialog = Callable[[QWidget, str, str], str]  # (parent, suggested path, filter) -> chosen path or ""
OpenUrl = Callable[[QUrl], Any]


def save_dialog(title: str) -> SaveDialog:
    """The real Save dialog with ``title``; tests pass their own function instead."""
    def ask(parent: QWidget, suggested: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(parent, title, suggested, filters)
        return path
    return ask


def suggested_path(last_export: Path | None, name: str) -> str:
    """Where the Save dialog opens: beside the last export of this page, else the home folder."""
    return str((last_export.parent if last_export else Path.home()) / name)


def workbook_not_saved(path: Path, exc: Exception) -> Notice:
    """The banner for a workbook that could not be written, and what to do about it."""
    why = ("The folder is not writable, or the file is open in another program." if isinstance(exc, OSError)
           else "The workbook could not be written.")
    return Notice("error", "The workbook was not saved",
                  f"{why} Close it there, or choose another folder, then export again. ({path})")


def ask_xlsx_path(parent: QWidget, save_dialog: Callable[[QWidget, str, str], str], suggested: str) -> Path | None:
    """Where to write a workbook: the user's choice (``.xlsx`` added when left off), or None if cancelled."""
    chosen = save_dialog(parent, suggested, "Excel workbook (*.xlsx)")
    if not chosen:
        return None
    path = Path(chosen)
    return path if path.suffix.lower() == ".xlsx" else path.with_name(path.name + ".xlsx")
