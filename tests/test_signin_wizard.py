"""The connect wizard with a distribution profile: one "Sign in to <Provider>" button per side, with real
clicks, real sandboxes standing in for the providers and a real Secret Service keyring."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QWizard

from app.connectors import registry
from app.connectors.oauth import follow_redirects_opener
from app.connectors.profile import FILE_NAME
from app.connectors.tokens import KeyringTokenStore
from app.ops import workspaces
from app.sandbox.registry import sandbox_class
from app.sandbox.server import RunningServer, serve
from app.store.db import Store
from app.ui.connect_pages import AccountPage
from app.ui.connect_wizard import ConnectWizard
from app.ui.theme import apply_theme
from tests import test_wizards_ui as _wizards_ui
from tests.shots import screenshot_dir
from tests.test_signin import RELAY_PAGE, run_relay_page, static_host

# the connect wizard's fixtures: a themed app (sandboxes stopped after), the store, a real keyring
qapp_themed, store, keyring_tokens = _wizards_ui.qapp_themed, _wizards_ui.store, _wizards_ui.keyring_tokens

NEXT, FINISH = QWizard.WizardButton.NextButton, QWizard.WizardButton.FinishButton
PROVIDERS = ("hubspot", "salesforce", "pipedrive", "zohocrm", "quickbooks", "xero", "zohobooks")
PUBLIC = ("xero", "salesforce")


@pytest.fixture
def relay_host() -> Iterator[str]:
    """packaging/relay/ on a plain static web server (the stand-in for any static https host)."""
    server, url = static_host(RELAY_PAGE.parent)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def providers() -> Iterator[dict[str, RunningServer]]:
    running = {}
    for name in PROVIDERS:
        app = sandbox_class(name)()
        app.seed("demo")
        running[name] = serve(app, timeout_delay=1.0)
    yield running
    for server in running.values():
        server.stop()


def write_profile(home: Path, providers: dict[str, RunningServer], relay_host: str) -> None:
    """A distribution profile whose apps live on the sandboxes; QuickBooks goes through the relay page."""
    lines = []
    for name, server in providers.items():
        lines += [f"[{name}]", f'client_id = "crossledger-{name}"', f'server = "{server.url}"']
        if name not in PUBLIC:
            lines.append(f'client_secret = "shipped-{name}-secret"')
        if name == "quickbooks":
            lines += ['redirect = "relay"', f'relay_url = "{relay_host}/quickbooks.html"']
        lines.append("port = 0")  # any free loopback port: tests run side by side
    (home / FILE_NAME).write_text("\n".join(lines), encoding="utf-8")


def browser(url: str) -> None:
    """The person's browser: the provider approves at once; the relay page (QuickBooks) runs its script."""
    with httpx.Client(timeout=10) as http:
        location = http.get(url).headers["location"]
        if location.split("?", 1)[0].endswith("/quickbooks.html"):
            location = run_relay_page(location) or ""
        http.get(location)


def click(qtbot, wizard: QWizard, which=NEXT) -> None:
    before = wizard.currentId()
    qtbot.mouseClick(wizard.button(which), Qt.MouseButton.LeftButton)
    if which == NEXT:
        assert wizard.currentId() != before, f"stayed on {wizard.page(before).title()}"


def sign_in_with_the_button(qtbot, wizard: ConnectWizard) -> None:
    page = wizard.currentPage()
    assert isinstance(page, AccountPage) and page.sign_in.isVisibleTo(page)
    assert page.sign_in.text() == f"Sign in to {registry.info(page.provider).label}"
    assert not page.details.isVisibleTo(page)  # Advanced stays folded
    qtbot.mouseClick(page.sign_in, Qt.MouseButton.LeftButton)
    signin = wizard.currentPage()
    assert signin.step_id.endswith(".signin")
    qtbot.waitUntil(lambda: signin.isComplete() or signin.failure.isVisible(), timeout=30000)
    assert not signin.failure.isVisible(), signin.failure_detail.text()
    if wizard.currentPage().nextId() != -1:
        click(qtbot, wizard)
    if wizard.currentPage().step_id.endswith(".tenant"):  # the organisation is preselected: one click on
        click(qtbot, wizard)


def test_a_profile_pointing_at_the_sandboxes_connects_every_provider_with_no_text_typed(
        qtbot, store, home, keyring_tokens, providers, relay_host):
    write_profile(home, providers, relay_host)
    pairs = [("hubspot", "quickbooks"), ("salesforce", "xero"), ("pipedrive", "zohobooks"), ("zohocrm", "xero")]
    for crm, accounting in pairs:
        workspaces.add_workspace(store, f"{crm} client", crm, accounting)
    for crm, accounting in pairs:
        name = f"{crm} client"
        wizard = ConnectWizard(store, keyring_tokens, home, workspace=name, open_browser=browser, timeout=20)
        qtbot.addWidget(wizard)
        wizard.show()
        assert wizard.currentPage().step_id == "sides"
        click(qtbot, wizard)
        sign_in_with_the_button(qtbot, wizard)
        sign_in_with_the_button(qtbot, wizard)
        assert wizard.currentPage().step_id == "finish"
        qtbot.waitUntil(lambda w=wizard: w.currentPage().isComplete(), timeout=30000)
        typed = [e.text() for e in wizard.findChildren(QLineEdit)
                 if not e.isReadOnly() and e.text() and not isinstance(e.parent(), QAbstractSpinBox)]
        assert typed == []  # nothing was typed anywhere (the port box shows its default)
        with qtbot.waitSignal(wizard.saved, timeout=60_000):
            click(qtbot, wizard, FINISH)
        ws = workspaces.get_workspace(store, name)
        for side, provider in (("crm", crm), ("accounting", accounting)):
            conn = workspaces.load_connection(store, ws, side)
            assert conn.extra["auth"] == "profile" and conn.client_id == f"crossledger-{provider}"
            assert conn.label and conn.base_url.startswith("http://127.0.0.1")
            saved = keyring_tokens.load(conn.id)
            assert saved is not None and saved.access_token
            assert saved.client_secret == (None if provider in PUBLIC else f"shipped-{provider}-secret")
    # every provider's token request went out as its documentation asks: no secret from the public clients
    for name in PUBLIC:
        assert providers[name].app.state["oauth"]["access"]  # signed in


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_use_an_access_token_checks_it_once_and_saves_only_a_good_one(qtbot, store, home, keyring_tokens, provider):
    app = sandbox_class(provider)()
    app.seed("demo")
    server = serve(app, timeout_delay=1.0)
    try:
        workspaces.add_workspace(store, "Token Ltd", provider, "xero")
        wizard = ConnectWizard(store, keyring_tokens, home, workspace="Token Ltd", open_browser=follow_redirects_opener)
        qtbot.addWidget(wizard)
        wizard.show()
        page: AccountPage = wizard.page_for("crm.account")  # type: ignore[assignment]
        wizard.currentPage().checks["accounting"].setChecked(False)
        click(qtbot, wizard)
        assert wizard.currentPage() is page and page.no_profile.isVisibleTo(page)  # no profile here
        assert page.advanced.isChecked() and page.account.isChecked()  # no profile: Advanced is open, own app
        qtbot.mouseClick(page.token, Qt.MouseButton.LeftButton)
        assert page.access_token.isVisibleTo(page) and not page.client_id.isVisibleTo(page)
        assert "pat-" in page.token_help.text() or "Personal preferences" in page.token_help.text()
        qtbot.mouseClick(wizard.button(NEXT), Qt.MouseButton.LeftButton)  # nothing pasted: stays, says so
        under = page._field_problems.labels["access_token"]
        assert under.isVisible() and under.text().startswith("Access token:")
        assert under.geometry().top() >= page.access_token.geometry().bottom()
        page.access_token.setText("revoked-or-mistyped")
        page.server.setText(server.url)
        click(qtbot, wizard)
        signin = wizard.currentPage()
        qtbot.waitUntil(lambda: signin.failure.isVisible(), timeout=60_000)
        assert "did not accept the access token" in signin.failure_title.text()
        assert signin.failure_detail.text().startswith("Access token:") and signin.back_button.isVisible()
        tried = list(wizard.cf._pending)  # the connection the refused token was tried for
        assert tried and all(keyring_tokens.load(i) is None for i in tried)
        qtbot.mouseClick(signin.back_button, Qt.MouseButton.LeftButton)
        token = app.private_app_token() if provider == "hubspot" else app.api_token()
        page.access_token.setText(token)
        click(qtbot, wizard)
        signin = wizard.currentPage()
        qtbot.waitUntil(signin.isComplete, timeout=60_000)
        click(qtbot, wizard)
        qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=60_000)
        with qtbot.waitSignal(wizard.saved, timeout=60_000):
            click(qtbot, wizard, FINISH)
        conn = workspaces.load_connection(store, workspaces.get_workspace(store, "Token Ltd"), "crm")
        assert conn.extra["auth"] == "access_token" and conn.client_id == ""
        assert keyring_tokens.load(conn.id).access_token == token
        assert keyring_tokens_entries(keyring_tokens, store) == [conn.id]
        assert all(keyring_tokens.load(i) is None for i in tried)  # the refused token left nothing behind
    finally:
        server.stop()


def keyring_tokens_entries(tokens: KeyringTokenStore, store: Store) -> list[str]:
    from app.store.models import ConnectionRow

    with store.session() as s:
        ids = [c.id for c in s.query(ConnectionRow)]
    return [i for i in ids if tokens.load(i) is not None]


def test_with_no_profile_your_own_app_is_the_path_and_its_problems_name_their_fields(qtbot, store, home):
    from app.connectors.tokens import MemoryTokenStore

    workspaces.add_workspace(store, "Own App Ltd", "hubspot", "quickbooks")
    wizard = ConnectWizard(store, MemoryTokenStore(), home, workspace="Own App Ltd")
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.currentPage().checks["crm"].setChecked(False)
    click(qtbot, wizard)
    page: AccountPage = wizard.currentPage()  # type: ignore[assignment]
    assert not page.sign_in.isVisibleTo(page) and page.details.isVisibleTo(page) and page.account.isChecked()
    assert "developer.intuit.com" in page.client_id_help.text()
    assert "127.0.0.1:47615/callback" in page.redirect_help.text()
    assert page.client_id_help.geometry().top() >= page.client_id.geometry().bottom()  # help under its field
    qtbot.mouseClick(wizard.button(NEXT), Qt.MouseButton.LeftButton)
    problems = page._field_problems.labels
    assert problems["client_id"].text().startswith("Client ID:")
    assert problems["client_secret"].text().startswith("Client secret:")
    assert problems["client_id"].geometry().top() >= page.client_id.geometry().bottom()
    assert "below" not in problems["client_id"].text() and "above" not in problems["client_id"].text()
    wizard.reject()


# -- screenshots of the new first step ------------------------------------------------------------------

def test_the_first_step_for_each_provider_can_be_shot_in_light_and_dark(qtbot, store, home):
    """docs/screenshots/signin-<provider>-<light|dark>.png at the wizard's default size."""
    from app.connectors.tokens import MemoryTokenStore

    lines = []
    for name in PROVIDERS:
        lines += [f"[{name}]", f'client_id = "shipped-{name}"']
        if name not in PUBLIC:
            lines.append('client_secret = "shipped"')
    (home / FILE_NAME).write_text("\n".join(lines), encoding="utf-8")
    out = screenshot_dir()
    app = QApplication.instance()
    shots = []
    try:
        for dark in (False, True):
            apply_theme(app, dark=dark)
            for name in PROVIDERS:
                kind = registry.info(name).kind
                wizard = ConnectWizard(store, MemoryTokenStore(), home)
                qtbot.addWidget(wizard)
                wizard.show()
                client = wizard.currentPage()
                client.name.setText("Maple Bakery Ltd")
                client.crm.setCurrentIndex(client.crm.findData(name if kind == "crm" else "hubspot"))
                client.accounting.setCurrentIndex(client.accounting.findData(name if kind != "crm" else "xero"))
                client.sides.setCurrentIndex(client.sides.findData("crm" if kind == "crm" else "accounting"))
                click(qtbot, wizard)
                page = wizard.currentPage()
                assert isinstance(page, AccountPage) and page.provider == name
                assert page.sign_in.isVisible() and page.sandbox.isVisible() and not page.details.isVisible()
                assert page.sign_in.geometry().bottom() < page.height() // 2  # the one button, up front
                QApplication.processEvents()
                path = out / f"signin-{name}-{'dark' if dark else 'light'}.png"
                assert wizard.grab().save(str(path))
                shots.append(path)
                wizard.reject()
    finally:
        apply_theme(app, dark=False)
    assert len(shots) == 14 and all(p.stat().st_size > 5000 for p in shots)

