"""Regenerate docs/screenshots/wizard-*.png: every page of the connect and mapping wizards, on real sandboxes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_wizard_screenshots.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from PySide6.QtCore import QThreadPool  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from app.connectors.tokens import MemoryTokenStore  # noqa: E402
from app.ops import sandboxes, workspaces  # noqa: E402
from app.sandbox.registry import sandbox_class  # noqa: E402
from app.sandbox.server import serve  # noqa: E402
from app.store.db import Store  # noqa: E402


def _pump(app: QApplication, until: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if until():
            app.processEvents()
            return
        time.sleep(0.02)
    raise TimeoutError("the wizard did not get there in time")


def _save(widget: QWidget, out: Path, name: str) -> None:
    QApplication.processEvents()
    widget.grab().save(str(out / f"wizard-{name}.png"))


def _slow_browser(url: str) -> None:
    """A person who has not finished signing in yet (the page shows the link meanwhile)."""
    time.sleep(0.8)


def _deny(url: str) -> None:
    with httpx.Client(timeout=10) as http:
        location = http.get(url).headers["location"]
        base, _, query = location.partition("?")
        state = dict(urllib.parse.parse_qsl(query)).get("state", "")
        http.get(base + "?" + urllib.parse.urlencode({"error": "access_denied", "state": state}))


def shoot(out: Path) -> list[Path]:
    from app.ui.app import make_application
    from app.ui.connect_wizard import ConnectWizard
    from app.ui.main_window import MainWindow
    from app.ui.mapping_wizard import MappingWizard

    app = make_application()
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="crossledger-shots-"))
    store = Store(f"sqlite:///{home / 'crossledger.db'}")
    tokens = MemoryTokenStore()
    size = (720, 600)

    # 1. Add a client: name and systems.
    w = ConnectWizard(store, tokens, home)
    w.resize(*size)
    w.show()
    page = w.currentPage()
    page.name.setText("Maple Bakery Ltd")
    page.crm.setCurrentIndex(page.crm.findData("zohocrm"))
    page.accounting.setCurrentIndex(page.accounting.findData("xero"))
    _save(w, out, "01-add-client")
    w.next()
    # 2. The account page: the built-in sandbox, then a real Zoho account with its data centre.
    _save(w, out, "02-account-sandbox")
    page = w.currentPage()
    page.advanced.setChecked(True)
    page.account.setChecked(True)
    page.client_id.setText("1000.8GZQ4W1Y2JKX7")
    page.client_secret.setText("not-a-real-secret")
    page.environment.setCurrentIndex(page.environment.findData("eu"))
    _save(w, out, "03-account-zoho-data-centre")
    page.client_secret.clear()
    page.client_id.clear()
    w.next()  # problems are shown on the page
    _save(w, out, "04-account-problems")
    w.reject()

    # Salesforce: production / sandbox / My Domain.
    w = ConnectWizard(store, tokens, home)
    w.resize(*size)
    w.show()
    w.currentPage().name.setText("Cedar Legal LLP")
    w.currentPage().crm.setCurrentIndex(w.currentPage().crm.findData("salesforce"))
    w.next()
    page = w.currentPage()
    page.advanced.setChecked(True)
    page.account.setChecked(True)
    page.environment.setCurrentIndex(page.environment.findData("mydomain"))
    page.my_domain.setText("cedarlegal.my.salesforce.com")
    page.client_id.setText("3MVG9fe4g9fhX0E5")
    _save(w, out, "05-account-salesforce-my-domain")
    w.reject()

    # QuickBooks: production / sandbox.
    w = ConnectWizard(store, tokens, home)
    w.resize(*size)
    w.show()
    w.currentPage().name.setText("Harbor Marine")
    w.currentPage().accounting.setCurrentIndex(w.currentPage().accounting.findData("quickbooks"))
    w.currentPage().sides.setCurrentIndex(w.currentPage().sides.findData("accounting"))
    w.next()
    page = w.currentPage()
    page.advanced.setChecked(True)
    page.account.setChecked(True)
    page.environment.setCurrentIndex(page.environment.findData("sandbox"))
    _save(w, out, "06-account-quickbooks-environment")
    w.reject()

    # 3. Sign-in: waiting with the link, a failure, success; the organisation choice; finish.
    xero = sandbox_class("xero")()
    xero.seed("demo")
    xero.add_tenant("Maple Bakery (Ireland) Ltd")
    server = serve(xero)
    try:
        w = ConnectWizard(store, tokens, home, open_browser=_slow_browser, timeout=1.0)
        w.resize(*size)
        w.show()
        page = w.currentPage()
        page.name.setText("Maple Bakery Ltd")
        page.accounting.setCurrentIndex(page.accounting.findData("xero"))
        page.sides.setCurrentIndex(page.sides.findData("accounting"))
        w.next()
        page = w.currentPage()
        page.advanced.setChecked(True)
        page.account.setChecked(True)
        page.client_id.setText("C0FFEE1234ABCD")
        page.server.setText(server.url)
        page.port.setValue(0)
        w.next()
        signin = w.currentPage()
        _pump(app, lambda: signin.link_row.isVisible())
        _save(w, out, "07-signin-waiting")
        _pump(app, lambda: signin.failure.isVisible())
        w.cf.open_browser = _deny
        signin.start()
        _pump(app, lambda: signin.failure.isVisible() and "allowed" in signin.failure_title.text())
        _save(w, out, "08-signin-consent-denied")
        from app.connectors.oauth import follow_redirects_opener

        w.cf.open_browser = follow_redirects_opener
        w.cf.timeout = 30
        signin.start()
        _pump(app, lambda: signin.isComplete())
        _save(w, out, "09-signin-done")
        w.next()
        _save(w, out, "10-choose-organisation")
        w.next()
        _pump(app, lambda: w.currentPage().isComplete())
        _save(w, out, "11-check-and-save")
        w.reject()
    finally:
        server.stop()

    # Keyring missing.
    w = ConnectWizard(store, _NoKeyring(), home)
    w.resize(*size)
    w.show()
    w.currentPage().name.setText("No Keyring Ltd")
    w.currentPage().sides.setCurrentIndex(w.currentPage().sides.findData("crm"))
    w.next()
    w.currentPage().sandbox.click()  # Try with sample data
    _pump(app, lambda: w.currentPage().failure.isVisible())
    _save(w, out, "12-signin-no-keyring")
    w.reject()

    # A whole client on the sandboxes, then Connect… on it and Reconnect.
    w = ConnectWizard(store, tokens, home)
    w.show()
    w.currentPage().name.setText("Maple Bakery Ltd")
    w.next()
    for _side in range(2):
        w.currentPage().sandbox.click()
        _pump(app, lambda: w.currentPage().isComplete())
        w.next()
    _pump(app, lambda: w.currentPage().isComplete())
    w.accept()
    ws = workspaces.get_workspace(store, "Maple Bakery Ltd")
    w = ConnectWizard(store, tokens, home, workspace=ws.name)
    w.resize(*size)
    w.show()
    _save(w, out, "13-connect-existing")
    w.reject()
    with store.session() as s:
        from app.store.models import ConnectionRow

        s.query(ConnectionRow).filter(ConnectionRow.side == "accounting").update({"status": "reconnect"})
    w = ConnectWizard(store, tokens, home, workspace=ws.name, reconnect="accounting")
    w.resize(*size)
    w.show()
    _save(w, out, "14-reconnect")
    w.reject()

    # The mapping wizard.
    m = MappingWizard(store, tokens, ws.name)
    m.resize(1000, 680)
    m.show()
    _pump(app, lambda: m.currentPage().isComplete())
    _save(m, out, "20-mapping-objects")
    m.next()
    fields = m.currentPage()
    fields.tables["company"].set_combo("name", 2, "title")
    fields.tables["company"].set_combo("phone", 2, "phone")
    fields.tables["company"].set_combo("email", 3, "ask")
    _save(m, out, "21-mapping-fields")
    m.next()
    _save(m, out, "22-mapping-preview")
    m.next()
    _save(m, out, "23-mapping-save")
    m.accept()
    m = MappingWizard(store, tokens, ws.name)
    m.resize(1000, 680)
    m.show()
    _pump(app, lambda: m.currentPage().isComplete())
    _save(m, out, "24-mapping-versions")
    m.reject()

    # The main window with the new buttons.
    win = MainWindow(store, tokens, home=home)
    win.resize(1200, 760)
    win.show()
    win.reload()
    _save(win, out, "30-main-window-actions")
    box = win.workspace_actions.remove_selected()
    _save(box, out, "31-remove-confirm")
    box.reject()
    win.shutdown()
    win.close()
    QThreadPool.globalInstance().waitForDone(20000)
    sandboxes.stop_all()
    store.dispose()
    return sorted(out.glob("wizard-*.png"))


class _NoKeyring(MemoryTokenStore):
    @staticmethod
    def check() -> str:
        from app.connectors.errors import KeyringUnavailable

        raise KeyringUnavailable("no keyring")


if __name__ == "__main__":
    for path in shoot(Path(__file__).resolve().parent):
        print(path)
