"""The light and the dark palette, and the time left shown for long work."""

from __future__ import annotations

import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QColor, QPalette

from app.ui.app import make_application
from app.ui.eta import Eta, time_left_words
from app.ui.theme import DARK, LIGHT, Palette, apply_theme, style_sheet


def test_the_dark_palette_is_dark_everywhere_and_text_stays_readable(qapp):
    app = make_application()
    try:
        apply_theme(app, dark=True)
        assert Palette.dark and QColor(Palette.WINDOW).lightness() < 60
        pal = app.palette()
        assert pal.color(QPalette.ColorRole.Base).lightness() < 60
        assert pal.color(QPalette.ColorRole.Text).lightness() > 180
        qss = style_sheet()
        colours = set(re.findall(r"#[0-9A-Fa-f]{6}", qss))
        assert colours <= set(DARK.values())  # every colour of the style sheet comes from the dark set
        assert "@" not in qss.replace("@NAME", "")  # every token filled
        for text, ground in (("TEXT", "SURFACE"), ("TEXT", "WINDOW"), ("TEXT_MUTED", "SURFACE"),
                             ("WARNING_TEXT", "SURFACE"), ("ERROR", "SURFACE"), ("ON_ACCENT", "ACCENT")):
            assert abs(QColor(DARK[text]).lightness() - QColor(DARK[ground]).lightness()) > 70, (text, ground)
    finally:
        apply_theme(app, dark=False)
    assert not Palette.dark and LIGHT["WINDOW"] == Palette.WINDOW
    assert set(re.findall(r"#[0-9A-Fa-f]{6}", style_sheet())) <= set(LIGHT.values())


def test_the_system_choice_is_followed(qapp, monkeypatch):
    from app.ui.theme import system_is_dark

    app = make_application()
    monkeypatch.setenv("CROSSLEDGER_THEME", "dark")
    assert system_is_dark(app)
    monkeypatch.setenv("CROSSLEDGER_THEME", "light")
    assert not system_is_dark(app)


def test_time_left_is_told_from_the_pace_since_counting_began():
    now = [0.0]
    eta = Eta(lambda: now[0])
    eta.update(0, 0)
    now[0] = 40.0  # reading both sides first: not counted against the pace
    assert eta.text() == ""
    eta.update(0, 100)
    assert eta.text() == "0 of 100"
    now[0] = 50.0
    eta.update(10, 100)
    assert eta.text() == "10 of 100 · about 2 min left"  # 90 seconds at one a second
    now[0] = 55.0
    eta.update(55, 100)
    assert eta.text() == "55 of 100 · about 10 seconds left"  # 45 more at 3.7 a second
    eta.update(100, 100)
    assert eta.text() == "100 of 100"
    assert time_left_words(5) == "a few seconds left" and time_left_words(3 * 3600 + 600) == "about 3 h 10 min left"
