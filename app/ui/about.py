"""Help > About: what this copy of Crossledger is built from, in a form a bug report can paste."""

from __future__ import annotations

import html
import platform
import sys

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.ops.selftest import library_versions
from app.ui.resources import icon, resource_path


def version_rows() -> list[tuple[str, str]]:
    """(component, version) for the About box and the 'Copy details' text."""
    how = " (packaged build)" if getattr(sys, "frozen", False) else ""
    rows = [("Crossledger", f"{__version__}{how}"),
            ("Qt", qVersion()),
            ("PySide6", PySide6.__version__),
            ("Python", f"{platform.python_version()} ({platform.python_implementation()})")]
    rows += list(library_versions().items())
    rows.append(("System", f"{platform.system()} {platform.release()} ({platform.machine()})"))
    return rows


def details_text() -> str:
    return "\n".join(f"{name}: {version}" for name, version in version_rows())


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Crossledger")
        self.setObjectName("aboutDialog")

        logo = QLabel()
        png = resource_path("icons/app/crossledger-128.png")
        pixmap = QPixmap(str(png)) if png.exists() else icon("crossledger").pixmap(96, 96)
        if not pixmap.isNull():
            logo.setPixmap(pixmap.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation))
        logo.setAlignment(Qt.AlignmentFlag.AlignTop)

        title = QLabel(f"<h2>Crossledger {html.escape(__version__)}</h2>")
        title.setObjectName("aboutTitle")
        blurb = QLabel("Keeps a small business's CRM and accounting software in sync, and reconciles them "
                       "month by month.")
        blurb.setWordWrap(True)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.version_labels: dict[str, QLabel] = {}
        for name, version in version_rows():
            value = QLabel(version)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.version_labels[name] = value
            form.addRow(f"{name}:", value)

        text = QVBoxLayout()
        text.addWidget(title)
        text.addWidget(blurb)
        text.addSpacing(8)
        text.addLayout(form)

        top = QHBoxLayout()
        top.addWidget(logo)
        top.addSpacing(12)
        top.addLayout(text, 1)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton(icon("copy"), "Copy details")
        self.copy_button.setToolTip("Copy these versions, to paste into a message to support")
        self.copy_button.clicked.connect(self.copy_details)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(buttons)

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(details_text())
        self.copy_button.setText("Copied")


def show_about(parent: QWidget | None = None) -> None:
    """Open the About box, modal to ``parent``."""
    AboutDialog(parent).exec()
