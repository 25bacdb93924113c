"""The connect and mapping wizards with real clicks, real sandboxes and a real Secret Service keyring."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import contextlib
import html
import logging
import socket
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QMessageBox, QWizard

from app.connectors import registry
from app.connectors.tokens import KeyringTokenStore, MemoryTokenStore, TokenStore
from app.ops import sandboxes, workspaces
from app.ops.sync_run import run_sync
from app.sandbox.registry import sandbox_class
from app.sandbox.server import serve
from app.store.db import Store
from app.store.models import Link, Mirror
from app.ui.app import make_application
from app.ui.connect_wizard import ConnectWizard, SignInPage
from app.ui.main_window import MainWindow
from app.ui.mapping_wizard import MappingWizard
from tests.shots import DOCS_SHOTS as SHOTS

NEXT, FINISH = QWizard.WizardButton.NextButton, QWizard.WizardButton.FinishButton


@pytest.fixture(autouse=True)
def qapp_themed(qapp):
    make_application()
    yield qapp
    QThreadPool.globalInstance().waitForDone(60_000)
    sandboxes.stop_all()


@pytest.fixture
def store(home: Path) -> Iterator[Store]:  # ``home``: an empty folder (tests/conftest.py)
    s = Store(f"sqlite:///{home / 'crossledger.db'}")
    yield s
    s.dispose()


@pytest.fixture
def keyring_tokens(secret_service) -> KeyringTokenStore:
    return KeyringTokenStore(service=f"crossledger-test-{uuid.uuid4().hex[:8]}")


def click(qtbot, wizard: QWizard, which=NEXT) -> None:
    before = wizard.currentId()
    qtbot.mouseClick(wizard.button(which), Qt.MouseButton.LeftButton)
    if which == NEXT:
        page = wizard.page(before)
        assert wizard.currentId() != before, f"stayed on {page.title()}: {page.errors.text()}"


def wait_complete(qtbot, wizard: QWizard, timeout: int = 30000) -> None:
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=timeout)


def fill_client(wizard: ConnectWizard, name: str, crm: str, accounting: str, sides: str = "both") -> None:
    page = wizard.currentPage()
    assert page.step_id == "client"
    page.name.setText(name)
    page.crm.setCurrentIndex(page.crm.findData(crm))
    page.accounting.setCurrentIndex(page.accounting.findData(accounting))
    page.sides.setCurrentIndex(page.sides.findData(sides))


def connect_side_with_sandbox(qtbot, wizard: ConnectWizard) -> None:
    page = wizard.currentPage()
    assert page.step_id.endswith(".account")
    if page.sandbox.isVisibleTo(page):  # "Try with sample data" goes on at once
        qtbot.mouseClick(page.sandbox, Qt.MouseButton.LeftButton)
    else:  # a reconnect of a sandbox: Next signs in to it again
        click(qtbot, wizard)
    assert wizard.currentPage().step_id.endswith(".signin")
    wait_complete(qtbot, wizard)
    if wizard.currentPage().nextId() != -1:
        click(qtbot, wizard)


def finish(qtbot, wizard: ConnectWizard) -> None:
    assert wizard.currentPage().step_id == "finish"
    wait_complete(qtbot, wizard)
    with qtbot.waitSignal(wizard.saved, timeout=60_000):
        click(qtbot, wizard, FINISH)


def add_client_with_sandboxes(qtbot, wizard: ConnectWizard, name: str, crm: str, accounting: str) -> None:
    fill_client(wizard, name, crm, accounting)
    click(qtbot, wizard)
    connect_side_with_sandbox(qtbot, wizard)
    connect_side_with_sandbox(qtbot, wizard)
    finish(qtbot, wizard)


def keyring_entries(tokens: KeyringTokenStore, store: Store) -> dict[str, object]:
    with store.session() as s:
        from app.store.models import ConnectionRow

        ids = [c.id for c in s.query(ConnectionRow)]
    return {i: tokens.load(i) for i in ids}


# -- connect wizard: each sandbox ---------------------------------------------------------------------

@pytest.mark.parametrize(("crm", "accounting"), [
    ("hubspot", "quickbooks"), ("salesforce", "xero"), ("pipedrive", "zohobooks"), ("zohocrm", "quickbooks"),
])
def test_connect_wizard_end_to_end_on_each_sandbox(qtbot, store, home, keyring_tokens, crm, accounting):
    wizard = ConnectWizard(store, keyring_tokens, home)
    qtbot.addWidget(wizard)
    wizard.show()
    name = f"{registry.info(crm).label} client"
    add_client_with_sandboxes(qtbot, wizard, name, crm, accounting)
    ws = workspaces.get_workspace(store, name)
    assert (ws.crm, ws.accounting) == (crm, accounting)
    entries = keyring_entries(keyring_tokens, store)
    assert len(entries) == 2 and all(t is not None and t.access_token for t in entries.values())
    # the test call's answer is what the summary showed
    for side in ("crm", "accounting"):
        conn = workspaces.load_connection(store, ws, side)
        assert conn.label and conn.label in wizard.cf.flow.data[f"{side}.company"]
    if crm == "hubspot":  # the others' sandboxes keep their providers' real-time rate limits: slow to sync
        assert run_sync(store, keyring_tokens, name).status in ("ok", "partial")


# -- connect wizard: failures -------------------------------------------------------------------------

@contextlib.contextmanager
def served(provider: str = "hubspot") -> Iterator[object]:
    app = sandbox_class(provider)()
    app.seed("demo")
    server = serve(app, timeout_delay=0.5)
    try:
        yield server
    finally:
        server.stop()


class Browser:
    """The person at the browser: follows the authorize redirect; ``answer`` may change what comes back."""

    def __init__(self) -> None:
        self.answer: Callable[[dict[str, str]], dict[str, str] | None] | None = None

    def __call__(self, url: str) -> None:
        with httpx.Client(follow_redirects=False, timeout=10) as http:
            location = http.get(url).headers["location"]
            if self.answer is not None:
                base, _, query = location.partition("?")
                params = self.answer(dict(urllib.parse.parse_qsl(query)))
                if params is None:
                    return  # the person never finishes signing in
                location = base + "?" + urllib.parse.urlencode(params)
            http.get(location)


def to_signin_with_account(qtbot, wizard: ConnectWizard, server_url: str, *, port: int = 0,
                           secret: str = "app-secret-XYZ") -> SignInPage:
    fill_client(wizard, "Failing Ltd", "hubspot", "quickbooks", "crm")
    click(qtbot, wizard)
    page = wizard.currentPage()
    assert page.account.isChecked() and page.client_id.isVisibleTo(page)  # no profile: your own app
    assert "redirect URL" in page.redirect_help.text()
    page.client_id.setText("my-hubspot-app")
    page.client_secret.setText(secret)
    page.server.setText(server_url)
    page.port.setValue(port)
    click(qtbot, wizard)
    return wizard.currentPage()


def failure_shown(qtbot, page: SignInPage, title_part: str) -> None:
    qtbot.waitUntil(lambda: page.failure.isVisible(), timeout=120_000)  # only a failure takes this long
    assert title_part in page.failure_title.text(), page.failure_title.text()
    assert not page.isComplete()


def test_each_sign_in_failure_has_its_message_and_a_way_forward(qtbot, store, home):
    tokens = MemoryTokenStore()
    browser = Browser()
    with served() as server:
        wizard = ConnectWizard(store, tokens, home, open_browser=browser, timeout=300)
        qtbot.addWidget(wizard)
        wizard.show()
        browser.answer = lambda p: {"error": "access_denied", "state": p["state"]}
        page = to_signin_with_account(qtbot, wizard, server.url)
        failure_shown(qtbot, page, "access was not allowed")
        assert "Allow" in page.failure_detail.text() and page.retry_button.isVisible()

        browser.answer = lambda p: {"error": "server_error", "error_description": "down", "state": p["state"]}
        qtbot.mouseClick(page.retry_button, Qt.MouseButton.LeftButton)
        failure_shown(qtbot, page, "refused the sign-in")
        assert page.back_button.isVisible()  # the way forward: check the client ID and secret

        # An answer for another request (a stale or forged link) is turned away and the sign-in keeps
        # waiting, so it ends at the time limit: the only step that waits for it, so only here is it
        # short (the listener lives in app/connectors and reads the real clock)
        browser.answer = lambda p: {**p, "state": "not-ours"}
        wizard.cf.timeout = 1.5
        qtbot.mouseClick(page.retry_button, Qt.MouseButton.LeftButton)
        failure_shown(qtbot, page, "took too long")

        wizard.cf.timeout = 300
        qtbot.mouseClick(page.retry_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.cancel_button.isVisible())
        qtbot.waitUntil(lambda: page.link_row.isVisible(), timeout=60_000)  # the link, in case no browser opened
        assert page.link.text().startswith(server.url)
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
        failure_shown(qtbot, page, "cancelled")

        browser.answer = None
        qtbot.mouseClick(page.retry_button, Qt.MouseButton.LeftButton)
        wait_complete(qtbot, wizard)
        assert page.success.isVisible() and not page.failure.isVisible()
        assert tokens._data  # signed in; only in the token store
        wizard.reject()  # leaving the wizard deletes the sign-in it made
        QThreadPool.globalInstance().waitForDone(60_000)
        assert tokens._data == {}
        assert workspaces.list_workspaces(store) == []


def test_port_in_use_and_provider_error_on_exchange_send_you_back(qtbot, store, home):
    from app.sandbox.base import Fault

    tokens = MemoryTokenStore()
    with socket.socket() as busy, served() as server:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        wizard = ConnectWizard(store, tokens, home, open_browser=Browser())
        qtbot.addWidget(wizard)
        wizard.show()
        page = to_signin_with_account(qtbot, wizard, server.url, port=busy.getsockname()[1])
        failure_shown(qtbot, page, "using the sign-in port")
        qtbot.mouseClick(page.back_button, Qt.MouseButton.LeftButton)
        account = wizard.currentPage()
        assert account.step_id == "crm.account"
        account.port.setValue(0)
        account.client_secret.setText("app-secret-XYZ")
        server.app.faults.append(Fault("500", match=r"POST /oauth/v3/token"))
        click(qtbot, wizard)
        page = wizard.currentPage()
        failure_shown(qtbot, page, "refused the sign-in")
        qtbot.mouseClick(page.retry_button, Qt.MouseButton.LeftButton)
        wait_complete(qtbot, wizard)
        wizard.reject()


def test_no_keyring_says_what_to_install_and_stores_nothing(qtbot, store, home):
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        wizard = ConnectWizard(store, KeyringTokenStore(service="crossledger-nokeyring"), home)
        qtbot.addWidget(wizard)
        wizard.show()
        fill_client(wizard, "No Keyring Ltd", "hubspot", "xero", "crm")
        click(qtbot, wizard)
        qtbot.mouseClick(wizard.currentPage().sandbox, Qt.MouseButton.LeftButton)  # the built-in sandbox
        page = wizard.currentPage()
        failure_shown(qtbot, page, "keyring is not available")
        assert "gnome-keyring" in page.failure_detail.text()
        assert "never stores them anywhere else" in page.failure_detail.text()
        wizard.reject()
    finally:
        keyring.set_keyring(previous)
    found = [p for p in home.rglob("*") if p.is_file() and p.suffix not in (".db", ".json", ".db-wal", ".db-shm")]
    assert found == []  # no token file appeared instead


# -- the main window: empty app to synced workspace; reconnect; rename; remove ----------------------------

@pytest.fixture
def window(qtbot, store, home, keyring_tokens) -> Iterator[MainWindow]:
    win = MainWindow(store, keyring_tokens, home=home)
    qtbot.addWidget(win)
    win.resize(1200, 760)
    win.show()
    yield win
    win.shutdown()


def test_from_an_empty_app_to_a_synced_workspace_with_only_the_wizards(qtbot, window, store, home,
                                                                      keyring_tokens, tmp_path):
    log_file = home / "crossledger.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        assert window.stack.currentWidget() is window.empty
        qtbot.mouseClick(window.empty.add_button, Qt.MouseButton.LeftButton)
        wizard = window.workspace_actions.wizard
        assert isinstance(wizard, ConnectWizard) and wizard.isVisible()
        add_client_with_sandboxes(qtbot, wizard, "Maple Bakery", "hubspot", "quickbooks")
        assert window.stack.currentWidget() is window.page
        assert window.page.workspace.name == "Maple Bakery"
        assert "is connected" in window.workspace_actions.last_notice.title

        qtbot.mouseClick(window.page.connection_bar.mapping_button, Qt.MouseButton.LeftButton)
        mapping = window.workspace_actions.wizard
        assert isinstance(mapping, MappingWizard)
        wait_complete(qtbot, mapping)
        for _ in range(3):
            click(qtbot, mapping)
        with qtbot.waitSignal(mapping.saved, timeout=60_000):
            click(qtbot, mapping, FINISH)

        with qtbot.waitSignal(window.sync.finished, timeout=60000):
            qtbot.mouseClick(window.page.header.sync_button, Qt.MouseButton.LeftButton)
        # the workspace's line is read again on a worker thread after the run, and shown a moment later
        qtbot.waitUntil(lambda: window.page.workspace.last_run is not None, timeout=60000)
        ws = window.page.workspace
        assert ws.last_run is not None and ws.last_run.status in ("ok", "partial")
        assert ws.links > 0
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()

    # No token or client secret in the database, the logs or the settings files.
    secrets: set[str] = {"crossledger-sandbox-secret"}
    for tokens in keyring_entries(keyring_tokens, store).values():
        assert tokens is not None
        secrets |= {s for s in (tokens.access_token, tokens.refresh_token, tokens.client_secret) if s}
    assert len(secrets) >= 3
    store.engine.dispose()
    config = Path(os.environ["XDG_CONFIG_HOME"])
    files = [p for base in (home, config) if base.exists() for p in base.rglob("*") if p.is_file()
             and "sandboxes" not in p.parts]  # the sandboxes' own state plays the provider's side
    assert any(p.name == "crossledger.db" for p in files) and log_file in files
    for path in files:
        blob = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in blob, f"a secret was found in {path.name}"


def test_a_dead_sign_in_offers_reconnect_which_fixes_it(qtbot, window, store, home, keyring_tokens):
    window.workspace_actions.add_client()
    add_client_with_sandboxes(qtbot, window.workspace_actions.wizard, "Oak & Co", "pipedrive", "xero")
    ws = workspaces.get_workspace(store, "Oak & Co")
    old = workspaces.load_connection(store, ws, "accounting")
    keyring_tokens.delete(old.id)  # Xero revoked the sign-in
    with qtbot.waitSignal(window.sync.finished, timeout=60000):
        window.sync_selected()
    bar = window.page.connection_bar
    # the workspace's line (its connections' state) is read again on a worker thread after the run
    qtbot.waitUntil(bar.reconnect_button.isVisible, timeout=60000)
    assert bar.reconnect_button.text() == "Reconnect Xero…"
    qtbot.mouseClick(bar.reconnect_button, Qt.MouseButton.LeftButton)
    wizard = window.workspace_actions.wizard
    assert wizard.cf.mode == "reconnect" and wizard.currentPage().step_id == "accounting.account"
    assert not wizard.currentPage().sandbox.isVisibleTo(wizard.currentPage())  # same account as before
    connect_side_with_sandbox(qtbot, wizard)
    finish(qtbot, wizard)
    assert not bar.reconnect_button.isVisible()
    assert keyring_tokens.load(workspaces.load_connection(store, ws, "accounting").id) is not None
    with qtbot.waitSignal(window.sync.finished, timeout=60000):
        window.sync_selected()
    # the workspace's line is read again on a worker thread after the run, and shown a moment later
    qtbot.waitUntil(lambda: window.page.workspace.last_run.status in ("ok", "partial"), timeout=60000)


def test_rename_and_remove_from_the_main_window(qtbot, window, store, keyring_tokens):
    window.workspace_actions.add_client()
    add_client_with_sandboxes(qtbot, window.workspace_actions.wizard, "Birch Ltd", "hubspot", "zohobooks")
    ids = list(keyring_entries(keyring_tokens, store))
    assert all(keyring_tokens.load(i) for i in ids)

    dialog = window.workspace_actions.rename_selected()
    dialog.setTextValue("Birch Trading Ltd")
    dialog.accept()
    assert window.page.workspace.name == "Birch Trading Ltd"
    assert window.workspace_actions.last_notice.title == "Renamed to “Birch Trading Ltd”"

    box = window.workspace_actions.remove_selected()
    assert "system keyring" in box.informativeText()
    remove = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert workspaces.list_workspaces(store) == []
    assert all(keyring_tokens.load(i) is None for i in ids)
    notice = window.workspace_actions.last_notice
    assert notice.title == "Removed “Birch Trading Ltd”"
    assert "deleted from the system keyring" in notice.detail and "HubSpot and Zoho Books" in notice.detail
    assert window.stack.currentWidget() is window.empty
    assert "system keyring" in window.statusBar().currentMessage()


# -- the mapping wizard ------------------------------------------------------------------------------------

def _connected(store: Store, tokens: TokenStore, home: Path, name: str = "Mapped Ltd") -> None:
    from app.wizard.connect_flow import ConnectFlow

    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": name, "crm": "hubspot", "accounting": "quickbooks", "sides": "both"})
    for side in ("crm", "accounting"):
        cf.flow.submit({"source": "sandbox"})
        cf.record_sign_in(cf.sign_in(side))
        cf.flow.submit({})
    cf.record_checks(cf.check_companies())
    cf.commit()


def test_mapping_wizard_change_preview_save_and_the_next_sync_uses_it(qtbot, store, home):
    tokens = MemoryTokenStore()
    _connected(store, tokens, home)
    wizard = MappingWizard(store, tokens, "Mapped Ltd")
    qtbot.addWidget(wizard)
    wizard.show()
    wait_complete(qtbot, wizard)
    objects = wizard.currentPage()
    objects.choices["companies"].setChecked(True)
    click(qtbot, wizard)
    fields = wizard.currentPage()
    table = fields.tables["company"]
    choices = [table.combos[("name", 1)].itemText(i) for i in range(table.combos[("name", 1)].count())]
    assert any("custom" in c for c in choices) or len(choices) > 5  # the CRM's own fields, read through its API
    name_source = table.combos[("name", 1)]
    was = name_source.currentData()
    table.set_combo("name", 1, "")  # not synced: the row says why, under the field's name, and its drop-down is marked
    assert name_source.property("invalid") is True and table.combos[("name", 2)].property("invalid") is False
    assert table.item(0, 0).text().startswith("Customer name\nCompanies need a field for the customer name")
    assert not wizard.button(NEXT).isEnabled() or fields.errors.isVisible()
    table.set_combo("name", 1, was)
    assert name_source.property("invalid") is False and table.item(0, 0).text() == "Customer name"
    table.set_combo("name", 2, "upper")
    live_names = [html.unescape(line).lstrip("• ").split(",")[0] for line in fields.live.text().split("<br>")]
    assert live_names and all(n == n.upper() and any(c.isalpha() for c in n) for n in live_names)
    table.set_combo("email", 4, "crm_to_acct")
    click(qtbot, wizard)
    preview = wizard.currentPage()
    model = preview.model
    assert model.rowCount() > 0
    names = [model.index(r, 1).data() for r in range(model.rowCount())]
    assert all(n == n.upper() for n in names) and any(n for n in names)
    records = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert not any(r.startswith(("Company ", "Contact ")) and r.split()[-1].isdigit() for r in records)
    assert {model.rows[r].object_type for r in range(model.rowCount())} == {"company"}
    click(qtbot, wizard)
    save = wizard.currentPage()
    changes = [save.changes.item(i).text() for i in range(save.changes.count())]
    assert "Customers come from: Companies only" in changes
    with qtbot.waitSignal(wizard.saved, timeout=60_000) as saved:
        click(qtbot, wizard, FINISH)
    assert saved.args == ["Mapped Ltd", 1]

    result = run_sync(store, tokens, "Mapped Ltd")
    assert result.status in ("ok", "partial")
    ws = workspaces.get_workspace(store, "Mapped Ltd")
    with store.session() as s:
        kinds = {lk.crm_type for lk in s.query(Link).filter(Link.workspace_id == ws.id,
                                                             Link.object_type == "customer")}
        created = [m.data.get("name") for m in s.query(Mirror).filter(
            Mirror.workspace_id == ws.id, Mirror.side == "accounting")]
    assert kinds == {"company"}
    assert any(n and n == n.upper() and any(c.isalpha() for c in n) for n in created)

    again = MappingWizard(store, tokens, "Mapped Ltd")
    qtbot.addWidget(again)
    again.show()
    wait_complete(qtbot, again)
    assert again.currentPage().versions.count() == 1  # the saved version is listed
    again.reject()


# -- screenshots -------------------------------------------------------------------------------------------

def test_every_wizard_page_can_be_shot_for_the_docs(tmp_path):
    """docs/screenshots/make_wizard_screenshots.py walks every page on real sandboxes; keep it working."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_wizard_screenshots", SHOTS / "make_wizard_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.shoot(tmp_path)
    names = {p.name for p in paths}
    assert {"wizard-01-add-client.png", "wizard-08-signin-consent-denied.png", "wizard-10-choose-organisation.png",
            "wizard-21-mapping-fields.png", "wizard-22-mapping-preview.png"} <= names
    assert all(p.stat().st_size > 4000 for p in paths)
    assert names <= {p.name for p in SHOTS.glob("wizard-*.png")}  # the committed set is complete


def test_wizard_pages_say_their_step_mark_the_wrong_field_and_style_the_main_action(qtbot, store, home):
    """"Step 1 of 6: Add a client", the problem under the field it is about (marked), and Next /
    Finish drawn as the main action."""

    workspaces.add_workspace(store, "Taken Ltd", "hubspot", "quickbooks")
    wizard = ConnectWizard(store, MemoryTokenStore(), home)
    qtbot.addWidget(wizard)
    wizard.show()
    page = wizard.currentPage()
    assert page.title() == "Step 1 of 6: Add a client"  # client, each side's account and sign-in, finish
    for which in (NEXT, FINISH, QWizard.WizardButton.CommitButton):
        assert wizard.button(which).objectName() == "PrimaryButton"

    fill_client(wizard, "Taken Ltd", "hubspot", "quickbooks", sides="crm")
    qtbot.mouseClick(wizard.button(NEXT), Qt.MouseButton.LeftButton)
    assert wizard.currentId() == 0
    assert page.name.property("invalid") is True
    under = page._field_problems.labels["name"]
    assert under.isVisible() and "Taken Ltd" in under.text() and under.objectName() == "FieldError"
    assert under.geometry().top() >= page.name.geometry().bottom()  # right under the field,
    assert abs(under.geometry().left() - page.name.geometry().left()) <= 2  # aligned with it
    assert not page.errors.isVisible()  # not repeated at the bottom
    assert page.crm.property("invalid") is False

    page.name.setText("Fresh Ltd")
    click(qtbot, wizard)
    assert wizard.currentPage().title() == "Step 2 of 4: Connect HubSpot"  # only the CRM now: 2 steps fewer
    wizard.back()
    assert page.title() == "Step 1 of 4: Add a client"
    click(qtbot, wizard)  # accepted now: the mark and the message are gone
    assert page.name.property("invalid") is False and not under.isVisible()
    wizard.reject()


def test_mapping_preview_names_records_not_ids() -> None:
    from app.ui.mapping_wizard import PreviewModel
    from app.wizard.mapping_flow import PreviewRow

    model = PreviewModel(crm_label="HubSpot")
    model.set_rows([PreviewRow("company", "9800001", {"name": "Harbour Cafe"}, [], "Creates a new customer",
                               "Harbour Cafe"),
                    PreviewRow("person", "77", {}, ["The email address is not valid."], "Held back")])
    assert model.data(model.index(0, 0)) == "Harbour Cafe"
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole) == "Company 9800001 in HubSpot"
    assert model.data(model.index(1, 0)) == "(a contact with no name)"
    assert "9800001" not in model.data(model.index(0, 0)) and "77" not in model.data(model.index(1, 0))
