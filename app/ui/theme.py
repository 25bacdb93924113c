"""The look: one restrained palette, the application font, and the style sheet built from both."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from app.ui.resources import resource_path


class Palette:
    """Colours used everywhere; the style sheet's @NAME tokens are filled from these."""

    WINDOW = "#F4F5F7"
    SURFACE = "#FFFFFF"
    SIDEBAR = "#ECEEF1"
    BORDER = "#D9DEE4"
    BORDER_SOFT = "#E8EBEF"
    ROW_ALT = "#FAFBFC"
    TEXT = "#1D2630"
    TEXT_MUTED = "#5C6878"
    TEXT_FAINT = "#8993A1"
    ACCENT = "#1F5FA8"
    ACCENT_HOVER = "#1A5394"
    ACCENT_PRESSED = "#164680"
    ACCENT_SOFT = "#E5EDF7"
    SELECTION = "#DCE7F5"
    SUCCESS = "#2E7D4F"
    SUCCESS_SOFT = "#EAF4EE"
    WARNING = "#C08419"
    WARNING_TEXT = "#855A0E"
    WARNING_SOFT = "#FCF4E4"
    ERROR = "#B93A32"
    ERROR_SOFT = "#FBECEB"
    INFO = "#6B7888"
    INFO_SOFT = "#EEF1F4"


LEVEL_COLORS = {
    "success": Palette.SUCCESS,
    "warning": Palette.WARNING,
    "error": Palette.ERROR,
    "info": Palette.INFO,
    "idle": Palette.TEXT_FAINT,
    "running": Palette.ACCENT,
}

BASE_POINT_SIZE = 10


def style_sheet() -> str:
    qss = resource_path("style.qss").read_text(encoding="utf-8")
    tokens = sorted(((k, v) for k, v in vars(Palette).items() if k.isupper()), key=lambda kv: -len(kv[0]))
    for name, value in tokens:
        qss = qss.replace(f"@{name}", value)
    return qss


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")  # the same widgets on every platform, so the style sheet looks as designed
    font = QFont(app.font())
    if font.pointSizeF() < BASE_POINT_SIZE:
        font.setPointSizeF(BASE_POINT_SIZE)
    app.setFont(font)
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: Palette.WINDOW,
        QPalette.ColorRole.Base: Palette.SURFACE,
        QPalette.ColorRole.AlternateBase: Palette.ROW_ALT,
        QPalette.ColorRole.Text: Palette.TEXT,
        QPalette.ColorRole.WindowText: Palette.TEXT,
        QPalette.ColorRole.ButtonText: Palette.TEXT,
        QPalette.ColorRole.Button: Palette.SURFACE,
        QPalette.ColorRole.Highlight: Palette.SELECTION,
        QPalette.ColorRole.HighlightedText: Palette.TEXT,
        QPalette.ColorRole.PlaceholderText: Palette.TEXT_FAINT,
        QPalette.ColorRole.ToolTipBase: Palette.SURFACE,
        QPalette.ColorRole.ToolTipText: Palette.TEXT,
        QPalette.ColorRole.Link: Palette.ACCENT,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(Palette.TEXT_FAINT))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(Palette.TEXT_FAINT))
    app.setPalette(pal)
    app.setStyleSheet(style_sheet())
