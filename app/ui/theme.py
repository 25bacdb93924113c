"""The look: one restrained palette, the application font, and the style sheet built from both."""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from app.ui.resources import resource_path

LIGHT = {
    "WINDOW": "#F4F5F7", "SURFACE": "#FFFFFF", "SIDEBAR": "#ECEEF1", "BORDER": "#D9DEE4",
    "BORDER_SOFT": "#E8EBEF", "BORDER_STRONG": "#C5CCD5", "ROW_ALT": "#FAFBFC", "TEXT": "#1D2630",
    "TEXT_MUTED": "#5C6878", "TEXT_FAINT": "#8993A1", "ACCENT": "#1F5FA8", "ACCENT_HOVER": "#1A5394",
    "ACCENT_PRESSED": "#164680", "ACCENT_SOFT": "#E5EDF7", "ACCENT_DISABLED": "#8FAFD3", "ON_ACCENT": "#FFFFFF",
    "SELECTION": "#DCE7F5", "SUCCESS": "#2E7D4F", "SUCCESS_SOFT": "#EAF4EE", "SUCCESS_EDGE": "#CFE5D7",
    "WARNING": "#C08419", "WARNING_TEXT": "#855A0E", "WARNING_SOFT": "#FCF4E4", "WARNING_EDGE": "#F0DDB5",
    "ERROR": "#B93A32", "ERROR_SOFT": "#FBECEB", "ERROR_EDGE": "#F0CFCC", "INFO": "#6B7888", "INFO_SOFT": "#EEF1F4",
    "SCROLL": "#C9D0D8", "SCROLL_HOVER": "#AEB7C2", "HIGHLIGHT": "#FFE08A", "IDLE_DOT": "#E3E7EC",
}
DARK = {
    "WINDOW": "#1B1F24", "SURFACE": "#242A31", "SIDEBAR": "#20252B", "BORDER": "#3A424C",
    "BORDER_SOFT": "#2F363E", "BORDER_STRONG": "#4E5864", "ROW_ALT": "#283038", "TEXT": "#E4E8ED",
    "TEXT_MUTED": "#A4AEBB", "TEXT_FAINT": "#7D8896", "ACCENT": "#4C8FDB", "ACCENT_HOVER": "#5C9BE2",
    "ACCENT_PRESSED": "#3D7CC4", "ACCENT_SOFT": "#22364D", "ACCENT_DISABLED": "#35516F", "ON_ACCENT": "#FFFFFF",
    "SELECTION": "#2D4A6B", "SUCCESS": "#5DBB84", "SUCCESS_SOFT": "#1F3328", "SUCCESS_EDGE": "#2F5A40",
    "WARNING": "#E0A640", "WARNING_TEXT": "#E8B860", "WARNING_SOFT": "#3A3020", "WARNING_EDGE": "#5E4B25",
    "ERROR": "#EF7A70", "ERROR_SOFT": "#3D2424", "ERROR_EDGE": "#6A3531", "INFO": "#9AA6B5", "INFO_SOFT": "#2A3139",
    "SCROLL": "#4A535E", "SCROLL_HOVER": "#5F6A77", "HIGHLIGHT": "#6B5A1E", "IDLE_DOT": "#3A424C",
}


class Palette:
    """Colours used everywhere; the style sheet's @NAME tokens are filled from these.

    They are the light set until ``apply_theme`` finds the system in dark mode (or is told to use it);
    code reads them when it draws, so both sets are always in step.
    """

    dark = False
    WINDOW = SURFACE = SIDEBAR = BORDER = BORDER_SOFT = BORDER_STRONG = ROW_ALT = ""
    TEXT = TEXT_MUTED = TEXT_FAINT = ""
    ACCENT = ACCENT_HOVER = ACCENT_PRESSED = ACCENT_SOFT = ACCENT_DISABLED = ON_ACCENT = SELECTION = ""
    SUCCESS = SUCCESS_SOFT = SUCCESS_EDGE = WARNING = WARNING_TEXT = WARNING_SOFT = WARNING_EDGE = ""
    ERROR = ERROR_SOFT = ERROR_EDGE = INFO = INFO_SOFT = SCROLL = SCROLL_HOVER = HIGHLIGHT = IDLE_DOT = ""

    @classmethod
    def use(cls, dark: bool) -> None:
        cls.dark = dark
        for name, value in (DARK if dark else LIGHT).items():
            setattr(cls, name, value)
        LEVEL_COLORS.update(level_colours())

    @classmethod
    def get(cls, name: str) -> str:
        return getattr(cls, name)


def level_colours() -> dict[str, str]:
    return {"success": Palette.SUCCESS, "warning": Palette.WARNING, "error": Palette.ERROR, "info": Palette.INFO,
            "idle": Palette.TEXT_FAINT, "running": Palette.ACCENT}


LEVEL_COLORS: dict[str, str] = {}
Palette.use(False)

BASE_POINT_SIZE = 10


def style_sheet() -> str:
    qss = resource_path("style.qss").read_text(encoding="utf-8")
    tokens = sorted(((k, getattr(Palette, k)) for k in LIGHT), key=lambda kv: -len(kv[0]))
    for name, value in tokens:
        qss = qss.replace(f"@{name}", value)
    return qss.replace("@ICONS", resource_path("icons").as_posix())


class ThemeNews(QObject):
    """Says when ``apply_theme`` has changed the colours (widgets with style sheets of their own, such
    as the wizards', make them again)."""

    changed = Signal()


_NEWS: list[ThemeNews] = []


def theme_news() -> ThemeNews:
    if not _NEWS:
        _NEWS.append(ThemeNews())
    return _NEWS[0]


def system_is_dark(app: QApplication) -> bool:
    """The desktop's choice: Qt's colour scheme where the platform reports one, else its window colour."""
    forced = os.environ.get("CROSSLEDGER_THEME", "").lower()
    if forced in ("dark", "light"):
        return forced == "dark"
    scheme = app.styleHints().colorScheme()
    if scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication, *, dark: bool | None = None) -> None:
    """Theme the app with the light or the dark palette: the system's choice unless ``dark`` is given,
    and again each time the system switches. Widgets that colour themselves from ``Palette`` when they
    draw follow at once; the wizards make their style sheets again (app.ui.wizard_kit.follow_palette)."""
    Palette.use(system_is_dark(app) if dark is None else dark)
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
    roles.update({QPalette.ColorRole.Light: Palette.BORDER_SOFT, QPalette.ColorRole.Midlight: Palette.BORDER_SOFT,
                  QPalette.ColorRole.Mid: Palette.BORDER, QPalette.ColorRole.Dark: Palette.BORDER_STRONG,
                  QPalette.ColorRole.BrightText: Palette.ON_ACCENT})
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(Palette.TEXT_FAINT))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(Palette.TEXT_FAINT))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(Palette.TEXT_FAINT))
    app.setPalette(pal)
    app.setStyleSheet(style_sheet())
    theme_news().changed.emit()
    if dark is None and not app.property("crossledgerFollowsScheme"):
        # Follow the desktop when it switches between light and dark while the window is open.
        app.setProperty("crossledgerFollowsScheme", True)
        app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_theme(app))
