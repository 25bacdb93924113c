"""The wizard flows without widgets: steps, validation, next step, effects, and real sign-ins on sandboxes."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.connectors import errors as cerr
from app.connectors import oauth, registry
from app.connectors.tokens import MemoryTokenStore
from app.domain.models import CrmRecord
from app.ops import sandboxes, workspaces
from app.ops.sync_run import run_sync
from app.sandbox.registry import sandbox_class
from app.sandbox.server import serve
from app.store.db import Store
from app.store.models import ConnectionRow
from app.wizard.connect_flow import ConnectFlow, WrongAccount, endpoints, explain, my_domain_url, setup_for
from app.wizard.flow import Flow, Step
from app.wizard.mapping_flow import (
    Draft,
    MappingFlow,
    Samples,
    fetch_samples,
    preview,
    set_field,
    validate_draft,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    s.dispose()
    sandboxes.stop_all()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def _walk_side(cf: ConnectFlow, side: str, values: dict | None = None) -> None:
    assert cf.flow.current.id == f"{side}.account"
    assert cf.flow.submit(values or {"source": "sandbox"}) == {}
    assert cf.flow.current.id == f"{side}.signin"
    cf.record_sign_in(cf.sign_in(side))
    assert cf.flow.submit({}) == {}


def _finish(cf: ConnectFlow) -> workspaces.WorkspaceInfo:
    assert cf.flow.current.id == "finish"
    cf.record_checks(cf.check_companies())
    return cf.commit()


# -- the step machine ------------------------------------------------------------------------------

def test_flow_checks_values_moves_on_and_goes_back():
    steps = {
        "a": Step("a", "A", next=lambda d: "b" if d.get("x") else "c",
                  validate=lambda _d, v: {} if v.get("x") is not None else {"x": "Say yes or no."}),
        "b": Step("b", "B"),
        "c": Step("c", "C"),
    }
    flow = Flow(steps, "a")
    assert flow.submit({}) == {"x": "Say yes or no."}
    assert flow.current.id == "a" and "x" not in flow.data
    assert flow.path() == ["a", "c"]
    assert flow.submit({"x": True}) == {}
    assert flow.current.id == "b" and flow.data["x"] is True
    flow.back()
    assert flow.current.id == "a"
    assert flow.submit({"x": False}) == {} and flow.current.id == "c"


# -- connect: validation ---------------------------------------------------------------------------

def test_client_step_validates_name_and_systems(store, home):
    workspaces.add_workspace(store, "Maple Bakery", "hubspot", "xero")
    cf = ConnectFlow(store, MemoryTokenStore(), home)
    assert cf.flow.current.id == "client"
    problems = cf.flow.submit({"name": "  ", "crm": "nope", "accounting": "xero", "sides": []})
    assert set(problems) == {"name", "crm", "sides"}
    assert "already a workspace" in cf.flow.submit({"name": "Maple Bakery", "crm": "hubspot",
                                                    "accounting": "xero", "sides": "both"})["name"]
    assert cf.flow.submit({"name": "Birch & Co", "crm": "pipedrive", "accounting": "quickbooks",
                           "sides": "accounting"}) == {}
    assert cf.flow.current.id == "accounting.account"  # either side alone


def test_account_step_asks_what_each_provider_needs(store, home):
    cf = ConnectFlow(store, MemoryTokenStore(), home)
    cf.flow.submit({"name": "Acme", "crm": "salesforce", "accounting": "quickbooks", "sides": "both"})
    problems = cf.flow.submit({"source": "account", "client_id": "", "environment": "mydomain",
                               "my_domain": "", "port": 80})
    assert set(problems) == {"client_id", "my_domain", "port"}  # Salesforce: no secret needed (PKCE)
    assert cf.flow.submit({"source": "account", "client_id": "3MVG9abc", "environment": "mydomain",
                           "my_domain": "acme", "port": 47615}) == {}
    assert cf.flow.data["crm.environment"] == "mydomain"
    # QuickBooks needs a secret and an environment
    qbo = setup_for("quickbooks")
    assert qbo.needs_secret and {c.value for c in qbo.environments} == {"production", "sandbox"}
    assert "developer.intuit.com" in qbo.help and "127.0.0.1:47615/callback" in qbo.help
    zoho = setup_for("zohocrm")
    assert "eu" in {c.value for c in zoho.environments} and "data centre" in zoho.environment_label
    assert not setup_for("xero").needs_secret


def test_endpoints_follow_data_centre_and_environment():
    assert endpoints("zohocrm", "eu").auth_url == "https://accounts.zoho.eu"
    assert endpoints("zohobooks", "ca").base_url == "https://www.zohoapis.ca"
    assert endpoints("salesforce", "sandbox").auth_url == "https://test.salesforce.com"
    assert endpoints("salesforce", "mydomain", "acme").auth_url == "https://acme.my.salesforce.com"
    assert my_domain_url("https://acme.lightning.force.com/") == "https://acme.my.salesforce.com"
    assert endpoints("quickbooks", "sandbox").base_url == "https://sandbox-quickbooks.api.intuit.com"
    assert endpoints("quickbooks", "production").base_url == "https://quickbooks.api.intuit.com"


def test_every_failure_has_its_own_message_and_way_forward():
    failures = [
        explain(cerr.KeyringUnavailable("x"), "xero"),
        explain(oauth.ConsentDenied("x"), "xero"),
        explain(oauth.StateMismatch("x"), "xero"),
        explain(oauth.CallbackTimeout("x"), "xero"),
        explain(oauth.PortInUse("x"), "xero"),
        explain(oauth.OAuthError("x"), "xero"),
        explain(oauth.SignInCancelled("x"), "xero"),
        explain(WrongAccount("Linked to A, signed in to B."), "xero"),
        explain(httpx.ConnectError("boom"), "xero"),
    ]
    assert len({f.title for f in failures}) == len(failures)
    assert "gnome-keyring" in failures[0].detail and failures[0].action == "keyring"
    assert "never stores them anywhere else" in failures[0].detail
    assert failures[4].action == "back" and failures[5].action == "back"
    assert all("Traceback" not in f.detail and "boom" not in f.detail for f in failures)


# -- connect: real sign-ins on the built-in sandboxes -------------------------------------------------

def test_new_client_with_both_sandboxes_is_saved_only_on_finish(store, home):
    tokens = MemoryTokenStore()
    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": "Maple Bakery", "crm": "hubspot", "accounting": "quickbooks", "sides": "both"})
    _walk_side(cf, "crm")
    _walk_side(cf, "accounting")
    assert workspaces.list_workspaces(store) == []  # nothing committed before Finish
    ws = _finish(cf)
    assert [r[0] for r in cf.summary()] == ["HubSpot", "QuickBooks Online"]
    assert ws.name == "Maple Bakery"
    crm = workspaces.load_connection(store, ws, "crm")
    acct = workspaces.load_connection(store, ws, "accounting")
    assert tokens.load(crm.id) is not None and tokens.load(acct.id) is not None
    assert tokens.load(acct.id).client_secret  # the secret lives with the tokens, in the keyring
    assert acct.tenant_id and acct.label
    result = run_sync(store, tokens, "Maple Bakery")
    assert result.status in ("ok", "partial") and result.counts["created"] > 0


def test_leaving_the_wizard_deletes_its_sign_ins(store, home):
    tokens = MemoryTokenStore()
    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": "Walkaway Ltd", "crm": "pipedrive", "accounting": "xero", "sides": "crm"})
    _walk_side(cf, "crm")
    conn = cf.flow.data["crm.connection"]
    assert tokens.load(conn.id) is not None
    cf.abandon()
    assert tokens.load(conn.id) is None
    assert workspaces.list_workspaces(store) == []


def test_connecting_one_side_of_an_existing_workspace(store, home):
    tokens = MemoryTokenStore()
    workspaces.add_workspace(store, "Oak", "hubspot", "quickbooks")
    cf = ConnectFlow(store, tokens, home, workspace="Oak")
    assert cf.flow.current.id == "sides"
    assert cf.flow.submit({"sides": ["accounting"], "accounting": "zohobooks"}) == {}
    _walk_side(cf, "accounting")
    ws = _finish(cf)
    assert ws.accounting == "zohobooks"
    assert workspaces.connection_status(store, ws) == {"accounting": "connected"}


def test_dead_sign_in_is_marked_and_reconnect_replaces_it(store, home):
    tokens = MemoryTokenStore()
    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": "Reconnect Co", "crm": "hubspot", "accounting": "xero", "sides": "both"})
    _walk_side(cf, "crm")
    _walk_side(cf, "accounting")
    ws = _finish(cf)
    old = workspaces.load_connection(store, ws, "accounting")
    tokens.delete(old.id)  # the refresh token died (revoked in Xero)
    result = run_sync(store, tokens, ws.name)
    assert result.status == "failed"
    assert workspaces.connection_status(store, ws)["accounting"] == "reconnect"

    again = ConnectFlow(store, tokens, home, workspace=ws.name, reconnect="accounting")
    assert again.flow.current.id == "accounting.account"
    assert again.flow.data["accounting.source"] == "sandbox"
    _walk_side(again, "accounting")
    _finish(again)
    new = workspaces.load_connection(store, ws, "accounting")
    assert new.id != old.id and new.tenant_id == old.tenant_id
    assert workspaces.connection_status(store, ws)["accounting"] == "connected"
    assert run_sync(store, tokens, ws.name).status in ("ok", "partial")


# -- connect: real accounts (a served sandbox standing in) and their failures ---------------------------

@contextlib.contextmanager
def served(provider: str, seed: str = "demo") -> Iterator[object]:
    app = sandbox_class(provider)()
    app.seed(seed)
    server = serve(app, timeout_delay=0.5)
    try:
        yield server
    finally:
        server.stop()


def browser(rewrite: Callable[[dict[str, str]], dict[str, str]] | None = None) -> Callable[[str], None]:
    """Stands in for the person at the browser: follows the authorize redirect, maybe changing the answer."""
    def open_url(url: str) -> None:
        with httpx.Client(follow_redirects=False, timeout=10) as http:
            resp = http.get(url)
            location = resp.headers["location"]
            if rewrite is not None:
                base, _, query = location.partition("?")
                params = rewrite(dict(urllib.parse.parse_qsl(query)))
                location = base + "?" + urllib.parse.urlencode(params)
            http.get(location)
    return open_url


def _account_flow(store, home, tokens, server_url: str, opener, *, provider="hubspot", port=0,
                  timeout=10.0) -> ConnectFlow:
    cf = ConnectFlow(store, tokens, home, open_browser=opener, timeout=timeout)
    crm, acct = (provider, "quickbooks") if provider in registry.CRM_PROVIDERS else ("hubspot", provider)
    side = "crm" if provider in registry.CRM_PROVIDERS else "accounting"
    cf.flow.submit({"name": "Real Account Ltd", "crm": crm, "accounting": acct, "sides": side})
    assert cf.flow.submit({"source": "account", "client_id": "my-app-id", "client_secret": "my-app-secret-123",
                           "server": server_url, "port": port}) == {}
    return cf


def test_real_account_path_keeps_the_secret_out_of_the_data(store, home):
    tokens = MemoryTokenStore()
    with served("hubspot") as server:
        cf = _account_flow(store, home, tokens, server.url, browser())
        cf.record_sign_in(cf.sign_in("crm"))
        assert "crm.client_secret" not in cf.flow.data
        cf.flow.submit({})
        ws = _finish(cf)
        conn = workspaces.load_connection(store, ws, "crm")
        assert conn.client_id == "my-app-id"
        assert tokens.load(conn.id).client_secret == "my-app-secret-123"


@pytest.mark.parametrize(("rewrite", "error"), [
    (lambda p: {"error": "access_denied", "state": p["state"]}, oauth.ConsentDenied),
    (lambda p: {"error": "server_error", "error_description": "temporarily unavailable", "state": p["state"]},
     oauth.OAuthError),
])
def test_sign_in_failures_are_typed_and_leave_nothing_behind(store, home, rewrite, error):
    tokens = MemoryTokenStore()
    with served("hubspot") as server:
        cf = _account_flow(store, home, tokens, server.url, browser(rewrite))
        with pytest.raises(error):
            cf.sign_in("crm")
        cf.abandon()
        assert tokens._data == {}


def test_an_answer_for_another_request_is_turned_away_and_the_sign_in_keeps_waiting(store, home):
    tokens = MemoryTokenStore()
    with served("hubspot") as server:
        cf = _account_flow(store, home, tokens, server.url, browser(lambda p: {**p, "state": "forged"}), timeout=1.0)
        with pytest.raises(oauth.CallbackTimeout):  # never a StateMismatch: a forged link cannot end a sign-in
            cf.sign_in("crm")
        cf.abandon()
        assert tokens._data == {}


def test_timeout_and_cancel(store, home):
    tokens = MemoryTokenStore()
    with served("hubspot") as server:
        cf = _account_flow(store, home, tokens, server.url, lambda _url: None, timeout=0.5)
        with pytest.raises(oauth.CallbackTimeout):
            cf.sign_in("crm")
        cancel = threading.Event()
        cf.timeout = 30
        threading.Timer(0.3, cancel.set).start()
        with pytest.raises(oauth.SignInCancelled):
            cf.sign_in("crm", cancel=cancel)


def test_port_in_use(store, home):
    tokens = MemoryTokenStore()
    with socket.socket() as busy, served("hubspot") as server:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cf = _account_flow(store, home, tokens, server.url, browser(), port=busy.getsockname()[1])
        with pytest.raises(oauth.PortInUse):
            cf.sign_in("crm")
        assert explain(oauth.PortInUse("x"), "hubspot").action == "back"


def test_provider_error_on_token_exchange(store, home):
    from app.sandbox.base import Fault

    tokens = MemoryTokenStore()
    with served("hubspot") as server:
        server.app.faults.append(Fault("500", match=r"POST /oauth/v3/token"))
        cf = _account_flow(store, home, tokens, server.url, browser())
        with pytest.raises(oauth.OAuthError):
            cf.sign_in("crm")


def test_xero_with_two_organisations_asks_which_one(store, home):
    tokens = MemoryTokenStore()
    with served("xero") as server:
        server.app.add_tenant("Other Client Ltd")
        cf = _account_flow(store, home, tokens, server.url, browser(), provider="xero")
        cf.record_sign_in(cf.sign_in("accounting"))
        assert cf.flow.submit({}) == {}
        assert cf.flow.current.id == "accounting.tenant"
        names = {t.name for t in cf.flow.data["accounting.tenants"]}
        assert names == {"Crossledger Demo Ltd", "Other Client Ltd"}
        assert cf.flow.submit({"tenant": "nope"})
        other = next(t for t in cf.flow.data["accounting.tenants"] if t.name == "Other Client Ltd")
        assert cf.flow.submit({"tenant": other.id}) == {}
        cf.record_checks(cf.check_companies())
        assert cf.flow.data["accounting.company"] == "Other Client Ltd"  # the test call names it
        ws = cf.commit()
        assert workspaces.load_connection(store, ws, "accounting").tenant_id == other.id


def test_no_keyring_stops_before_the_browser(store, home):
    class NoKeyring(MemoryTokenStore):
        @staticmethod
        def check() -> str:
            raise cerr.KeyringUnavailable("none")

    opened: list[str] = []
    cf = ConnectFlow(store, NoKeyring(), home, follow=opened.append)
    cf.flow.submit({"name": "No Keyring", "crm": "hubspot", "accounting": "xero", "sides": "crm"})
    cf.flow.submit({"source": "sandbox"})
    with pytest.raises(cerr.KeyringUnavailable):
        cf.sign_in("crm")
    assert opened == []


# -- mapping -----------------------------------------------------------------------------------------

MAPPING = {"company": {"name": "name", "email": "billing_email", "country": "country", "phone": "phone"},
           "person": {"first_name": "firstname", "last_name": "lastname", "email": "email"}}


def _samples() -> Samples:
    from app.connectors.base import FieldInfo

    recs = [
        CrmRecord("company", "1", {"name": "maple bakery", "billing_email": "a@maple.co.uk",
                                   "country": "United Kingdom", "phone": "020 7946 0123", "vat_no": "GB824504000"}),
        CrmRecord("person", "2", {"firstname": "Zoë", "lastname": "O'Brien", "email": "zoe@example.ie",
                                  "full": "O'Brien, Zoë"}),
        CrmRecord("person", "3", {"firstname": "Al", "lastname": "Staff", "email": "al@maple.co.uk"},
                  company_id="1"),
    ]
    fields = {"company": [FieldInfo(n, n.title()) for n in ("name", "billing_email", "country", "phone")]
              + [FieldInfo("vat_no", "VAT number", custom=True)],
              "person": [FieldInfo(n, n.title()) for n in ("firstname", "lastname", "email", "full")]}
    return Samples(recs, fields)


def test_preview_says_why_a_same_named_customer_is_not_linked():
    from dataclasses import replace

    from app.domain.models import AccountingCustomer, Party

    samples = replace(_samples(), ledger=[AccountingCustomer(
        "L1", Party("company", "Maple Bakery Ltd", email="info@maplebakery.com"), raw_name="Maple Bakery Ltd")])
    rows = preview(Draft(mapping={k: dict(v) for k, v in MAPPING.items()}), samples)
    assert rows[0].outcome == ("Held back: same name as 'Maple Bakery Ltd', but its email is at maple.co.uk and "
                               "the customer's at maplebakery.com")


def test_preview_follows_the_draft():
    samples = _samples()
    draft = Draft(mapping={k: dict(v) for k, v in MAPPING.items()})
    rows = preview(draft, samples)
    assert [(r.object_type, r.record_id) for r in rows] == [("company", "1"), ("person", "2")]
    assert rows[0].values["country"] == "GB" and rows[0].values["phone"] == "+442079460123"
    set_field(draft, "company", "name", transform="title")
    set_field(draft, "company", "tax_id", source="vat_no")
    set_field(draft, "company", "phone", transform="phone")
    rows = preview(draft, samples)
    assert rows[0].values["name"] == "Maple Bakery"
    assert rows[0].values["tax_id"] == "GB824504000"
    assert rows[0].outcome == "Creates a new customer"
    draft.customers_from = "people"
    assert [r.record_id for r in preview(draft, samples)] == ["2", "3"]
    set_field(draft, "person", "first_name", source="")
    set_field(draft, "person", "last_name", source="")
    set_field(draft, "person", "name", source="full", transform="last_first")
    assert preview(draft, samples)[0].values["name"] == "Zoë O'Brien"


def test_validation_names_what_is_wrong():
    samples = _samples()
    draft = Draft(mapping={"company": {"email": "billing_email", "phone": "gone_field"}, "person": {}},
                  field_direction={"name": "off"}, rules={"email": "whoever"})
    problems = validate_draft(draft, samples.fields)
    assert set(problems) == {"company.name", "company.phone", "person.name", "rule.email", "direction.name"}
    draft.customers_from = "companies"
    assert "person.name" not in validate_draft(draft, samples.fields)


def test_mapping_flow_saves_versions_and_the_next_sync_uses_them(store, home):
    tokens = MemoryTokenStore()
    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": "Mapped Ltd", "crm": "hubspot", "accounting": "quickbooks", "sides": "both"})
    _walk_side(cf, "crm")
    _walk_side(cf, "accounting")
    ws = _finish(cf)
    crm, acct = workspaces.open_connectors(store, tokens, ws)
    try:
        mf = MappingFlow(store, ws.name, crm.default_mapping())
        mf.set_samples(fetch_samples(crm, acct))
    finally:
        crm.close()
        acct.close()
    assert any(f.custom for f in mf.field_choices("company")) or mf.field_choices("company")
    assert mf.flow.submit({"customers_from": "companies"}) == {}
    assert mf.flow.current.id == "fields"
    set_field(mf.draft, "company", "name", transform="upper")
    set_field(mf.draft, "company", "phone", direction="crm_to_acct")
    assert mf.flow.submit({}) == {}
    rows = mf.preview()
    assert rows and all(r.object_type == "company" for r in rows)
    assert all(r.values["name"] == r.values["name"].upper() for r in rows if r.values["name"])
    assert mf.flow.submit({}) == {}
    assert mf.flow.current.id == "save"
    assert "Customers come from: Companies only" in mf.changes()
    assert mf.save() == 1
    assert [v.number for v in mf.versions()] == [1]

    result = run_sync(store, tokens, ws.name)
    assert result.status in ("ok", "partial")
    with store.session() as s:
        from app.store.models import Link

        kinds = {lk.crm_type for lk in s.query(Link).filter(Link.workspace_id == ws.id,
                                                              Link.object_type == "customer")}
    assert kinds == {"company"}  # contacts did not become customers

    again = MappingFlow(store, ws.name, {})
    assert again.draft.customers_from == "companies"
    assert again.draft.source("company", "name")[1] == "upper"
    again.draft.customers_from = "both"
    again.flow.history[:] = ["save"]
    assert again.save() == 2
    assert [v.number for v in again.versions()] == [2, 1]
    again.start_from_version(1)
    assert again.draft.customers_from == "companies"


def test_no_secret_reaches_the_database(store, home):
    tokens = MemoryTokenStore()
    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": "Secretive", "crm": "hubspot", "accounting": "xero", "sides": "both"})
    _walk_side(cf, "crm")
    _walk_side(cf, "accounting")
    _finish(cf)
    secrets = [t.access_token for t in map(tokens.load, tokens._data)] + \
              [t.refresh_token for t in map(tokens.load, tokens._data)]
    with store.session() as s:
        rows = repr([(c.base_url, c.auth_url, c.client_id, c.extra) for c in s.query(ConnectionRow)])
    assert all(sec and sec not in rows for sec in secrets)
    assert "crossledger-sandbox-secret" not in rows


def test_object_directions_are_saved_and_an_older_version_can_be_restored(store, home):
    workspaces.add_workspace(store, "Directions Ltd", "hubspot", "xero")
    workspaces.update_settings(store, "Directions Ltd", direction={"invoice": "off", "customer": "both"})
    mf = MappingFlow(store, "Directions Ltd", {k: dict(v) for k, v in MAPPING.items()})
    assert mf.draft.invoices == "off"
    assert mf.flow.submit({"customers_from": "both", "customers": "sideways"}) == {
        "customers": "Choose which way customers are synced."}
    assert mf.flow.submit({"customers_from": "both", "customers": "crm_to_acct", "invoices": "both"}) == {}
    assert mf.changes() == ["Customers: CRM → accounting", "Create invoices for won deals"]
    mf.flow.history[:] = ["save"]
    assert mf.save() == 1
    settings = workspaces.get_workspace(store, "Directions Ltd").settings
    assert settings["direction"] == {"customer": "crm_to_acct", "invoice": "both"}
    assert settings["mapping"] == MAPPING


def test_connect_on_a_fully_connected_workspace_ticks_nothing(store, home):
    tokens = MemoryTokenStore()
    cf = ConnectFlow(store, tokens, home)
    cf.flow.submit({"name": "Full", "crm": "hubspot", "accounting": "xero", "sides": "both"})
    _walk_side(cf, "crm")
    _walk_side(cf, "accounting")
    _finish(cf)
    again = ConnectFlow(store, tokens, home, workspace="Full")
    assert again.flow.data["sides"] == []
    assert again.flow.submit({"sides": []}) == {"sides": "Choose at least one system to connect."}
    assert "already connected" in again.flow.submit({"sides": ["crm"], "crm": "pipedrive"})["crm"]


def test_rename_keeps_everything_and_refuses_clashes(store, home, tmp_path, capsys, monkeypatch):
    workspaces.add_workspace(store, "Elm", "hubspot", "xero")
    workspaces.add_workspace(store, "Ash", "hubspot", "xero")
    workspaces.update_settings(store, "Elm", mapping=MAPPING)
    with pytest.raises(workspaces.UserError, match="already a workspace called 'Ash'"):
        workspaces.rename_workspace(store, "Elm", "Ash")
    with pytest.raises(workspaces.UserError, match="letters, digits"):
        workspaces.rename_workspace(store, "Elm", "Elm/../x")
    ws = workspaces.rename_workspace(store, "Elm", "Elm Street Pharmacy")
    assert ws.settings["mapping"] == MAPPING

    from app.cli import main

    cli_home = tmp_path / "cli-home"
    monkeypatch.setenv("CROSSLEDGER_HOME", str(cli_home))  # main() sets it; restored after the test
    assert main(["--home", str(cli_home), "workspace", "add", "Old Name", "--crm", "hubspot",
                 "--accounting", "xero"]) == 0
    assert main(["--home", str(cli_home), "workspace", "rename", "Old Name", "New Name"]) == 0
    assert "is now called 'New Name'" in capsys.readouterr().out
    assert main(["--home", str(cli_home), "workspace", "list", "--json"]) == 0
    assert '"New Name"' in capsys.readouterr().out


# -- the mapping preview on a big CRM: a page of records, not the whole change feed -------------------

REMOVE_COMPANY: dict[str, Callable] = {
    "hubspot": lambda sb, rid: sb.archive("companies", rid),
    "pipedrive": lambda sb, rid: sb.delete("organizations", rid),
    "salesforce": lambda sb, rid: sb.delete("Account", rid),
    "zohocrm": lambda sb, rid: sb.delete("Accounts", rid),
}


@pytest.mark.parametrize("provider", sorted(REMOVE_COMPANY))
def test_the_mapping_preview_reads_one_page_of_a_large_crm(provider):
    from app.sandbox.demo_data import sized
    from app.sync.mapping import map_record
    from tests.support import in_process

    with sized("large"):  # 1,012 companies, 100 contacts
        c = in_process(provider, "demo")
    crm = c.connector
    try:
        gone = crm.sample_records("company", 1)[0].id
        REMOVE_COMPANY[provider](c.sandbox, gone)  # archived / deleted in the CRM: never a sample
        c.sandbox.request_log.clear()
        samples = fetch_samples(crm, None, limit=25)
        asked = list(c.sandbox.request_log)
        mapping = crm.default_mapping()
        full = {otype: {r.id: r for r in crm.read_records(otype, None).records} for otype in ("company", "person")}
    finally:
        crm.close()
    # Each kind's fields and one list request each, however many records the CRM holds.
    assert len(asked) <= 4, asked
    assert all(status == 200 for _m, _p, status in asked)
    for otype in ("company", "person"):
        recs = [r for r in samples.records if r.object_type == otype]
        assert len(recs) == 25
        assert len({r.id for r in recs}) == 25
        for rec in recs:
            assert not rec.archived and (otype, rec.id) != ("company", gone)
            party = map_record(rec, mapping)
            assert party.name and party.email, (provider, rec)
            same = full[otype][rec.id]  # the change feed's copy: same fields, same company link
            assert rec.properties == same.properties and rec.company_id == same.company_id
    assert any(r.company_id for r in samples.records if r.object_type == "person")


def test_the_mapping_preview_leaves_matching_to_the_sync_and_says_so():
    from app.sandbox.demo_data import sized
    from app.wizard.mapping_flow import MATCHED_AT_SYNC
    from tests.support import in_process

    with sized("large"):
        crm, acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")
    try:
        acct.sandbox.request_log.clear()
        samples = fetch_samples(crm.connector, acct.connector)
        draft = Draft(mapping=crm.connector.default_mapping())
    finally:
        crm.connector.close()
        acct.connector.close()
    assert acct.sandbox.request_log == []  # the ledger is not read for a preview
    rows = preview(draft, samples)
    assert len(rows) == 25
    assert {r.outcome for r in rows} <= {MATCHED_AT_SYNC, "Held back"}
    assert any(r.outcome == MATCHED_AT_SYNC for r in rows)
    assert all(r.problems for r in rows if r.outcome == "Held back")


def test_after_a_sync_the_preview_matches_against_the_stored_ledger_without_asking_it(tmp_path):
    from app.ops.workspaces import add_workspace
    from app.store.db import Store
    from app.sync.engine import SyncEngine
    from app.wizard.mapping_flow import stored_ledger
    from tests.support import in_process

    store = Store(f"sqlite:///{tmp_path}/w.db")
    ws = add_workspace(store, "Acme", "hubspot", "quickbooks")
    assert stored_ledger(store, "Acme") is None  # before the first sync there is no copy
    crm, acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")
    try:
        SyncEngine(store, ws.id, crm.connector, acct.connector).run()
        acct.sandbox.request_log.clear()
        samples = fetch_samples(crm.connector, acct.connector, ledger=stored_ledger(store, "Acme"))
        draft = Draft(mapping=crm.connector.default_mapping())
    finally:
        crm.connector.close()
        acct.connector.close()
    assert acct.sandbox.request_log == []  # the stored copy costs no request
    rows = preview(draft, samples)
    assert any(r.outcome.startswith("Links to '") for r in rows)  # synced records link to their customer
    assert all(r.outcome.startswith(("Links to", "Held back", "Creates")) for r in rows)
