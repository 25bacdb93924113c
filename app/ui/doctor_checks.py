"""The doctor's Qt checks (kept in app/ui: only this package may import Qt)."""

from __future__ import annotations

import os

from app.ops.doctor import Check


def tray_check() -> Check:
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # no screen at all: still answer, do not crash
    app = QApplication.instance() or QApplication([])
    available = QSystemTrayIcon.isSystemTrayAvailable()
    platform = app.platformName()
    del app
    if available:
        return Check("System tray", True, "Crossledger can keep syncing from the system tray.")
    return Check("System tray", False, f"There is no system tray on this desktop ({platform}), so Crossledger "
                 "keeps its window open to go on syncing.",
                 "On GNOME install the 'AppIndicator and KStatusNotifierItem Support' extension; other desktops "
                 "have a tray built in.")
