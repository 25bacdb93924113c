"""Drive the real tray on an X server with a system tray (Xvfb + trayer): run by tests/test_tray.py.

    DISPLAY=:N QT_QPA_PLATFORM=xcb python tests/tray_probe.py --out result.json [--screenshot shot.png]

Two workspaces, a running scheduler with stand-in jobs (no network). It waits for the icon to be
embedded, opens the menu with a real right click (xdotool), records the menu's entries, saves a
screenshot, clicks "Pause all syncing" for real, opens the menu again and writes everything as JSON.
To refresh the picture in the docs: ``--screenshot docs/screenshots/tray-menu.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QPoint, QRect, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.ops.workspaces import add_workspace, update_settings  # noqa: E402
from app.sched import jobs  # noqa: E402
from app.sched.service import Scheduler  # noqa: E402
from app.store.db import Store  # noqa: E402
from app.store.models import ConnectionRow, Quarantine, Run, Workspace  # noqa: E402
from app.ui.theme import apply_theme  # noqa: E402
from app.ui.tray import TrayController, describe_menu  # noqa: E402
from app.ui.tray_state import review_message  # noqa: E402

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)  # naive UTC, as stored


def seed(store: Store) -> None:
    """Two client workspaces: one synced cleanly, one with records held back for review."""
    add_workspace(store, "Alder & Finch Architects", "hubspot", "xero")
    add_workspace(store, "Birchwood Furniture", "pipedrive", "quickbooks")
    update_settings(store, "Alder & Finch Architects", schedule={"realtime_minutes": 2})
    update_settings(store, "Birchwood Furniture", schedule={"realtime_minutes": 5})
    with store.session() as s:
        alder = s.scalars(select(Workspace).where(Workspace.name == "Alder & Finch Architects")).one()
        birch = s.scalars(select(Workspace).where(Workspace.name == "Birchwood Furniture")).one()
        for ws, crm, acct in ((alder, "hubspot", "xero"), (birch, "pipedrive", "quickbooks")):
            s.add(ConnectionRow(id=f"{ws.id}-{crm}", workspace_id=ws.id, side="crm", provider=crm,
                                base_url="https://api.example.test", auth_url=None, client_id="x", tenant_id=None,
                                label=ws.name, extra={}))
            s.add(ConnectionRow(id=f"{ws.id}-{acct}", workspace_id=ws.id, side="accounting", provider=acct,
                                base_url="https://api.example.test", auth_url=None, client_id="x", tenant_id=None,
                                label=ws.name, extra={}))
        s.add(Run(workspace_id=alder.id, trigger="schedule", status="ok",
                  counts={"read": 214, "created": 3, "updated": 2, "linked": 1, "writes": 6},
                  started_at=NOW - dt.timedelta(minutes=1), finished_at=NOW - dt.timedelta(seconds=40)))
        s.add(Run(workspace_id=birch.id, trigger="schedule", status="ok",
                  counts={"read": 96, "created": 1, "quarantined": 2, "writes": 1},
                  started_at=NOW - dt.timedelta(minutes=3), finished_at=NOW - dt.timedelta(minutes=2)))
        for rid, name, field, message in (
            ("p-101", "Hannah Byrne", "email", "The email address “hannah@@birchwood.co.uk” is not valid."),
            ("o-77", "Birchwood Outlet Ltd", "tax_id", "The VAT number GB 123 4567 is too short."),
        ):
            s.add(Quarantine(workspace_id=birch.id, side="crm", record_type="person", record_id=rid, name=name,
                             reasons={"items": [{"field": field, "message": message}]}))


WAIT = 60  # s: for what comes by itself (the panel, the menu); only a failure waits this long


def wait_until(app: QApplication, condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    app.processEvents()
    return condition()


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10)


def screenshot(path: Path, rect: QRect) -> str:
    """The real screen (the panel, the icon and the open menu), cropped around the menu."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("import"):
        geometry = f"{rect.width()}x{rect.height()}+{rect.x()}+{rect.y()}"
        subprocess.run(["import", "-window", "root", "-crop", geometry, "+repage", str(path)], check=True,
                       timeout=20)
        return "import"
    screen = QGuiApplication.primaryScreen()
    screen.grabWindow(0, rect.x(), rect.y(), rect.width(), rect.height()).save(str(path))
    return "grabWindow"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    result: dict[str, Any] = {}

    home_dir = tempfile.TemporaryDirectory(prefix="crossledger-tray-", ignore_cleanup_errors=True)
    home = Path(home_dir.name)
    os.environ["CROSSLEDGER_HOME"] = str(home)
    store = Store(f"sqlite:///{home / 'crossledger.db'}")
    seed(store)
    runners = {kind: (lambda ctx, ws: None) for kind in ("realtime", "batch", "reconcile")}
    scheduler = Scheduler(store, jobs.Context(store, None, runners=runners))
    scheduler.start()

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Crossledger")
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app)

    backdrop = None
    if args.screenshot:  # a plain desktop behind the panel, instead of Xvfb's black root window
        backdrop = QWidget(None, Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnBottomHint)
        backdrop.setStyleSheet("background: #4A5A6A;")
        backdrop.setGeometry(QGuiApplication.primaryScreen().geometry())
        backdrop.show()
        backdrop.lower()

    opened: list[str] = []
    result["tray_available_wait"] = wait_until(app, QSystemTrayIcon.isSystemTrayAvailable, WAIT)
    tray = TrayController(store, scheduler, lambda: opened.append("open"), app.quit)
    result["available"] = tray.available
    result["reason"] = tray.reason
    result["shown"] = tray.show()
    embedded = wait_until(app, lambda: tray.icon.geometry().x() > 0 or tray.icon.geometry().y() > 0, WAIT)
    g = tray.icon.geometry()
    result["geometry"] = [g.x(), g.y(), g.width(), g.height()]
    result["state_before"] = tray.state
    result["tooltip"] = tray.icon.toolTip()
    if not embedded:
        Path(args.out).write_text(json.dumps(result))
        return 3

    menu = tray.menu
    # Right click near the icon's lower edge, so the menu opens below the panel and the icon stays in view.
    xdotool("mousemove", str(g.center().x()), str(g.bottom() - 1), "click", "3")
    result["menu_opened"] = wait_until(app, menu.isVisible, WAIT)
    wait_until(app, lambda: False, 0.4)  # let it paint
    result["entries"] = describe_menu(menu)
    mg = menu.geometry()
    result["menu_geometry"] = [mg.x(), mg.y(), mg.width(), mg.height()]

    if args.screenshot and result["menu_opened"]:
        screen = QGuiApplication.primaryScreen().geometry()
        left = max(0, min(mg.x(), g.x()) - 160)
        crop = QRect(QPoint(left, 0), QPoint(screen.right(), min(screen.bottom(), mg.bottom() + 28)))
        result["screenshot_tool"] = screenshot(Path(args.screenshot), crop)

    pause_all = next((a for a in menu.actions() if a.objectName() == "pause-all"), None)
    if pause_all is not None and result["menu_opened"]:
        centre = menu.mapToGlobal(menu.actionGeometry(pause_all).center())
        xdotool("mousemove", str(centre.x()), str(centre.y()))
        wait_until(app, lambda: False, 0.15)  # the hover highlight, as a person's pointer would give
        xdotool("click", "1")
        result["paused_all"] = wait_until(app, tray.everything_paused, WAIT)
        wait_until(app, lambda: not menu.isVisible(), WAIT)
        result["state_after"] = tray.state

        xdotool("mousemove", str(g.center().x()), str(g.bottom() - 1), "click", "3")
        result["menu_reopened"] = wait_until(app, menu.isVisible, WAIT)
        result["entries_after"] = describe_menu(menu)
        xdotool("key", "Escape")
        wait_until(app, lambda: not menu.isVisible(), WAIT)

    # A notification through the real tray (Qt's own balloon when no notification daemon runs).
    result["supports_messages"] = QSystemTrayIcon.supportsMessages()
    result["notified"] = tray.notify("Birchwood Furniture", review_message("Birchwood Furniture", 2))
    wait_until(app, lambda: False, 0.2)
    result["opened_window"] = opened
    tray.shutdown()
    scheduler.shutdown(wait=False)
    if backdrop is not None:
        backdrop.close()
    store.dispose()
    home_dir.cleanup()
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
