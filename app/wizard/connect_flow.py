"""The connect wizard as a plain-Python flow: add a client, connect its CRM and ledger, reconnect.

Steps: ``client`` (a new workspace: name and systems) or ``sides`` (an existing one: what to
connect), then for each side ``<side>.account`` (how to connect: the app of the distribution
profile, the default when there is one; "Try with sample data", the built-in sandbox; the client's own
app with its client ID and secret; or an access token for one business), ``<side>.signin`` (the OAuth
flow, or the access token's first read, run by the page in the background), ``<side>.tenant``
(only when the sign-in opened several organisations), and ``finish`` (a test call that names each
company; accepting it saves everything).

Tokens and client secrets go to the token store (the OS keyring) during sign-in and nowhere else;
the database gets the connection without secrets only when the wizard is finished. Leaving the
wizard early deletes the sign-ins it made (``abandon``).
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from app.connectors import errors as cerr
from app.connectors import oauth, registry
from app.connectors.base import Connection, Tenant
from app.connectors.profile import DEFAULT_PORT, AppRegistration, ProfileError
from app.connectors.profile import load as load_profile
from app.connectors.tokens import TokenStore
from app.ops import sandboxes, workspaces
from app.ops.connect import connect, connect_with_app, connect_with_token
from app.store.db import Store
from app.wizard.connect_setup import (  # noqa: F401 - re-exported: the wizard's pages and tests use them
    Choice,
    Endpoint,
    ProviderSetup,
    endpoints,
    my_domain_url,
    setup_for,
    valid_my_domain,
)
from app.wizard.flow import Data, Flow, Problems, Step

SIDES = ("crm", "accounting")
SIDE_LABEL = {"crm": "CRM", "accounting": "accounting system"}
SANDBOX_SECRET = "crossledger-sandbox-secret"  # noqa: S105 - a local sandbox takes any secret
SOURCES = ("profile", "sandbox", "account", "token")  # the profile's app, sample data, own app, access token


# -- failures ------------------------------------------------------------------------------------

class WrongAccount(cerr.ConnectorError):
    """A reconnect signed in to another company than the one this workspace is linked to."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed sign-in in a bookkeeper's words. ``action``: retry | back | keyring."""

    title: str
    detail: str
    action: str = "retry"


def explain(exc: BaseException, provider: str) -> Failure:
    """Each way a sign-in fails, with its own message and the way forward. Never an exception text."""
    label = registry.info(provider).label
    if isinstance(exc, cerr.KeyringUnavailable):
        return Failure("The system keyring is not available",
                       "Crossledger keeps sign-ins only in the system keyring and never stores them anywhere "
                       "else, so nothing was saved. On Linux install and start a Secret Service provider (the "
                       "gnome-keyring package, or KeePassXC with Secret Service turned on); on Windows and macOS "
                       "unlock your account's keychain. Then click Try again.", "keyring")
    if isinstance(exc, oauth.SignInCancelled):
        return Failure("Sign-in cancelled", f"Nothing was saved. Click Try again to sign in to {label}.")
    if isinstance(exc, oauth.ConsentDenied):
        return Failure(f"{label} access was not allowed",
                       f"On {label}'s page the request was declined, so Crossledger cannot read or write this "
                       "client's records. Click Try again and choose Allow (or Accept) this time.")
    if isinstance(exc, oauth.StateMismatch):
        return Failure("The sign-in answer did not match",
                       "The answer that came back was not for the sign-in Crossledger started (an old browser "
                       "tab, or another program), so it was ignored for safety. Close old sign-in tabs and click "
                       "Try again.")
    if isinstance(exc, oauth.CallbackTimeout):
        return Failure("The sign-in took too long",
                       f"Crossledger waited but {label} did not send the sign-in back. Click Try again and finish "
                       "signing in in the browser window that opens; if no window opens, copy the link shown "
                       "into your browser.")
    if isinstance(exc, oauth.PortInUse):
        return Failure("Another program is using the sign-in port",
                       "The port Crossledger listens on for the sign-in to come back is taken (perhaps by another "
                       "Crossledger window signing in). Close the program using it and click Try again; with your "
                       "own app you can also click Change the details and choose another port under Advanced (then "
                       f"add the matching redirect URL to your {label} app).", "back")
    if isinstance(exc, WrongAccount):
        return Failure("That is a different company", f"{exc.message} Click Try again and sign in to the right "
                       "company.")
    if isinstance(exc, oauth.AccessTokenRefused):
        return Failure(f"{label} did not accept the access token",
                       f"Access token: {label} refused it when Crossledger read the account, so it was not saved. "
                       "Click Change the details, copy the token again (it may have been revoked or lack the "
                       "needed scopes) and try again.", "back")
    if isinstance(exc, oauth.OAuthError):
        return Failure(f"{label} refused the sign-in",
                       f"{label} did not accept Crossledger's request. Check the client ID and secret (and the "
                       f"data centre or environment) on the previous page against your {label} app, then try "
                       "again.", "back")
    if isinstance(exc, cerr.ValidationRejected):
        return Failure(f"{label} needs more details", exc.message, "back")
    if isinstance(exc, cerr.TransportError | httpx.HTTPError | OSError):
        return Failure(f"Could not reach {label}",
                       "Check the internet connection (and the server address, if you entered one), then click "
                       "Try again.")
    if isinstance(exc, cerr.ServerError):
        return Failure(f"{label} is having trouble right now",
                       f"{label} answered with an error on its side. Nothing was saved; try again in a few minutes.")
    if isinstance(exc, cerr.ConnectorError):
        return Failure(f"{label} could not be connected", exc.message)
    return Failure(f"{label} could not be connected",
                   "Something unexpected went wrong and nothing was saved. Try again; if it keeps happening, "
                   "send the log file to support.")


# -- results of the background steps -------------------------------------------------------------

@dataclass(slots=True)
class SignedIn:
    side: str
    connection: Connection
    tenants: list[Tenant] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Checked:
    side: str
    company: str


# -- the flow ------------------------------------------------------------------------------------

class ConnectFlow:
    """One run of the connect wizard. ``data`` keys: name, crm, accounting, sides, and per side
    ``<side>.source`` (sandbox | account), ``.client_id``, ``.client_secret``, ``.environment``,
    ``.my_domain``, ``.server``, ``.port``, then ``.connection``, ``.tenants``, ``.company``."""

    def __init__(
        self,
        store: Store,
        tokens: TokenStore,
        home: Path,
        *,
        workspace: str | None = None,
        reconnect: str | None = None,
        open_browser: Callable[[str], Any] = webbrowser.open,
        follow: Callable[[str], Any] = oauth.follow_redirects_opener,
        timeout: float = 300.0,
        transport: httpx.BaseTransport | None = None,
        profile: dict[str, AppRegistration] | None = None,
    ) -> None:
        """``workspace`` connects an existing workspace; with ``reconnect`` (a side) it signs that side in again.
        ``profile``: the apps to sign in with (by default the distribution profile of the bundle and of ``home``)."""
        self.store, self.tokens, self.home = store, tokens, home
        self.profile_problem = ""
        if profile is None:
            try:
                profile = load_profile(home)
            except ProfileError as exc:  # a broken file: say so on the account step, and carry on without it
                profile, self.profile_problem = {}, exc.message
        self.profile = profile
        self.open_browser, self.follow = open_browser, follow
        self.timeout, self.transport = timeout, transport
        self._pending: set[str] = set()  # connection IDs whose sign-ins are in the keyring but not saved
        self._lock = threading.Lock()
        data: Data = {"sides": list(SIDES)}
        if workspace is None:
            self.mode = "new"
            start = "client"
            data.update(crm=registry.CRM_PROVIDERS[0], accounting=registry.ACCOUNTING_PROVIDERS[0])
        else:
            ws = workspaces.get_workspace(store, workspace)
            data.update(name=ws.name, crm=ws.crm, accounting=ws.accounting, workspace_id=ws.id)
            if reconnect:
                self.mode = "reconnect"
                old = workspaces.load_connection(store, ws, reconnect)
                data.update(sides=[reconnect], old=old)
                data.update(self._defaults_from(reconnect, old))
                start = f"{reconnect}.account"
            else:
                self.mode = "connect"
                start = "sides"
                status = workspaces.connection_status(store, ws)
                data["connected"] = sorted(status)
                data["sides"] = [s for s in SIDES if s not in status]  # nothing ticked when all are connected
        for side in SIDES:
            data.setdefault(f"{side}.port", 0)
        self.flow = Flow(self._steps(), start, data)

    # -- the map of steps ------------------------------------------------------------------------
    def _steps(self) -> dict[str, Step]:
        steps = [
            Step("client", "Add a client", "Each client company gets its own workspace: its CRM, its accounting "
                 "system, field mapping and schedule.", next=self._first_side, validate=self._check_client,
                 accept=self._accept_client),
            Step("sides", "What to connect", "Connect the CRM, the accounting system, or both.",
                 next=self._first_side, validate=self._check_sides, accept=self._accept_sides),
            Step("finish", "Check and save", "Crossledger asks each system for the company's name, so you can see "
                 "the right accounts are connected.", next=lambda _d: None, validate=self._check_finish),
        ]
        for side in SIDES:
            steps += [
                Step(f"{side}.account", f"Connect the {SIDE_LABEL[side]}", "", next=lambda _d, s=side: f"{s}.signin",
                     validate=lambda d, v, s=side: self._check_account(s, d, v),
                     accept=lambda d, v, s=side: self._accept_account(s, d, v)),
                Step(f"{side}.signin", "Sign in", "", next=lambda d, s=side: self._after_signin(s, d),
                     validate=lambda d, _v, s=side: self._check_signed_in(s, d)),
                Step(f"{side}.tenant", "Choose the organisation", "This sign-in opened more than one organisation. "
                     "Choose the one that belongs to this client.", next=lambda d, s=side: self._after_side(s, d),
                     validate=lambda d, v, s=side: self._check_tenant(s, d, v),
                     accept=lambda d, v, s=side: self._accept_tenant(s, d, v)),
            ]
        return {s.id: s for s in steps}

    @staticmethod
    def _first_side(d: Data) -> str:
        return f"{d['sides'][0]}.account"

    @staticmethod
    def _after_side(side: str, d: Data) -> str:
        sides = d["sides"]
        i = sides.index(side)
        return f"{sides[i + 1]}.account" if i + 1 < len(sides) else "finish"

    def _after_signin(self, side: str, d: Data) -> str:
        return f"{side}.tenant" if len(d.get(f"{side}.tenants") or []) > 1 else self._after_side(side, d)

    # -- client / sides ------------------------------------------------------------------------------
    def _check_client(self, _d: Data, v: Data) -> Problems:
        problems: Problems = {}
        why = workspaces.check_new_name(self.store, str(v.get("name", "")))
        if why:
            problems["name"] = why
        if v.get("crm") not in registry.CRM_PROVIDERS:
            problems["crm"] = "Choose the client's CRM."
        if v.get("accounting") not in registry.ACCOUNTING_PROVIDERS:
            problems["accounting"] = "Choose the client's accounting system."
        if not _sides(v.get("sides")):
            problems["sides"] = "Choose at least one system to connect now."
        return problems

    def _accept_client(self, d: Data, v: Data) -> None:
        self._forget_sign_ins(d, set(SIDES))
        d.update(name=str(v["name"]).strip(), crm=v["crm"], accounting=v["accounting"], sides=_sides(v["sides"]))

    def _check_sides(self, d: Data, v: Data) -> Problems:
        problems: Problems = {}
        sides = _sides(v.get("sides"))
        if not sides:
            problems["sides"] = "Choose at least one system to connect."
        for side, allowed in (("crm", registry.CRM_PROVIDERS), ("accounting", registry.ACCOUNTING_PROVIDERS)):
            chosen = v.get(side, d[side])
            if chosen not in allowed:
                problems[side] = f"Choose the client's {SIDE_LABEL[side]}."
            elif chosen != d[side] and side in d.get("connected", []):
                problems[side] = (f"This workspace's {SIDE_LABEL[side]} is already connected. To switch systems, "
                                  "remove the workspace and add it again, so no records stay linked to the old one.")
        return problems

    def _accept_sides(self, d: Data, v: Data) -> None:
        d["sides"] = _sides(v["sides"])
        for side in SIDES:
            if v.get(side) and v[side] != d[side]:
                self._forget_sign_ins(d, {side})
                d[side] = v[side]

    # -- account ---------------------------------------------------------------------------------------
    def setup(self, side: str) -> ProviderSetup:
        port = int(self.flow.data.get(f"{side}.port") or DEFAULT_PORT)
        return setup_for(self.flow.data[side], port)

    def registration(self, side: str) -> AppRegistration | None:
        """The distribution profile's app for this side's provider, if the profile has one."""
        return self.profile.get(self.flow.data[side])

    def source(self, side: str) -> str:
        """How this side connects: what was chosen, else the profile's app when there is one, else the own app."""
        chosen = self.flow.data.get(f"{side}.source")
        if chosen:
            return str(chosen)
        return "profile" if self.registration(side) is not None else "account"

    def _defaults_from(self, side: str, old: Connection) -> Data:
        """A reconnect starts from what the connection used before."""
        out: Data = {}
        if old.extra.get("sandbox_state"):
            out[f"{side}.source"] = "sandbox"
            return out
        auth = old.extra.get("auth")
        out[f"{side}.source"] = ("token" if auth == "access_token" else "profile" if auth == "profile"
                                 else "account")
        out[f"{side}.client_id"] = old.client_id
        out[f"{side}.environment"] = str(old.extra.get("environment") or "")
        out[f"{side}.my_domain"] = str(old.extra.get("my_domain") or "")
        out[f"{side}.server"] = str(old.extra.get("server") or "")
        out[f"{side}.port"] = int(old.extra.get("redirect_port") or DEFAULT_PORT)
        return out

    def stored_secret(self, side: str) -> bool:
        """A reconnect can reuse the client secret kept in the keyring with the dead sign-in."""
        old = self.flow.data.get("old")
        if self.mode != "reconnect" or old is None:
            return False
        try:
            saved = self.tokens.load(old.id)
        except cerr.KeyringUnavailable:
            return False
        return bool(saved and saved.client_secret)

    def _check_account(self, side: str, d: Data, v: Data) -> Problems:
        problems: Problems = {}
        source = v.get("source") or self.source(side)
        setup = setup_for(d[side])
        if source not in SOURCES:
            problems["source"] = "Choose how to connect: sign in, try it with sample data, or (under Advanced) " \
                                 "your own app or an access token."
            return problems
        if source == "sandbox":
            return problems
        if source == "profile" and self.registration(side) is None:
            problems["source"] = f"This copy of Crossledger has no {setup.label} app to sign in with. Open " \
                                 "Advanced and use your own app."
        if source == "token":
            token = str(v.get("access_token") or "").strip()
            if not setup.token_help:
                problems["source"] = f"{setup.label} has no access token for one business; sign in instead."
            elif not token:
                problems["access_token"] = f"Access token: paste the {setup.label} access token (where to find it " \
                                           "is written under the field)."
            elif any(c.isspace() for c in token):
                problems["access_token"] = "Access token: it has no spaces. Copy it again from " + setup.label + "."
        if source == "account":
            problems.update(self._check_own_app(side, setup, v))
        if setup.environments and source in ("profile", "account"):
            env = v.get("environment") or setup.default_environment
            if env not in {c.value for c in setup.environments}:
                problems["environment"] = f"{setup.environment_label}: choose one from the list."
            elif env == "mydomain" and not valid_my_domain(str(v.get("my_domain") or "")):
                problems["my_domain"] = "My Domain: enter your company's Salesforce address, for example " \
                                        "acme.my.salesforce.com."
        server = str(v.get("server") or "").strip()
        if server and not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", server):
            problems["server"] = "Test server: enter an address such as http://127.0.0.1:8701, or leave it empty."
        return problems

    def _check_own_app(self, side: str, setup: ProviderSetup, v: Data) -> Problems:
        problems: Problems = {}
        client_id = str(v.get("client_id") or "").strip()
        if not client_id:
            problems["client_id"] = f"Client ID: enter the client ID of your {setup.label} app (where to find " \
                                    "it is written under the field)."
        elif re.search(r"\s", client_id):
            problems["client_id"] = "Client ID: it has no spaces. Copy it again from the app's page."
        secret = str(v.get("client_secret") or "")
        if setup.needs_secret and not secret.strip() and not self.stored_secret(side):
            problems["client_secret"] = f"Client secret: enter the client secret of your {setup.label} app."
        port = v.get("port", DEFAULT_PORT)
        try:
            port_number = int(port)
        except (TypeError, ValueError):
            port_number = -1
        if port_number != 0 and not 1024 <= port_number <= 65535:
            problems["port"] = "Sign-in port: choose a port between 1024 and 65535 (or Any free port)."
        return problems

    def _accept_account(self, side: str, d: Data, v: Data) -> None:
        keys = ("source", "client_id", "environment", "my_domain", "server", "port", "access_token")
        before = {k: d.get(f"{side}.{k}") for k in keys}
        source = v.get("source") or self.source(side)
        d[f"{side}.source"] = source
        setup = setup_for(d[side])
        d.pop(f"{side}.access_token", None)
        if source == "sandbox":
            d[f"{side}.port"] = 0
        else:
            d[f"{side}.environment"] = (v.get("environment") or setup.default_environment
                                        if source in ("profile", "account") else "")
            d[f"{side}.my_domain"] = str(v.get("my_domain") or "").strip()
            d[f"{side}.server"] = str(v.get("server") or "").strip().rstrip("/")
        if source == "account":
            d[f"{side}.client_id"] = str(v.get("client_id") or "").strip()
            secret = str(v.get("client_secret") or "").strip()
            if secret:
                d[f"{side}.client_secret"] = secret  # in memory until sign-in puts it in the keyring
            d[f"{side}.port"] = int(v.get("port", DEFAULT_PORT))
        if source == "token":
            d[f"{side}.access_token"] = str(v.get("access_token") or "").strip()  # in memory until checked
        after = {k: d.get(f"{side}.{k}") for k in keys}
        if before != after:
            self._forget_sign_ins(d, {side})

    # -- sign-in (run off the UI thread by the page) ---------------------------------------------------
    def sign_in(self, side: str, *, cancel: threading.Event | None = None,
                on_url: Callable[[str], Any] | None = None) -> SignedIn:
        """The OAuth flow for one side (or an access token's first read); tokens (and the client secret)
        land in the token store only.

        Safe on a worker thread: it reads ``data`` but changes nothing in it; ``record_sign_in``
        applies the result on the UI thread.
        """
        d = self.flow.data
        provider = d[side]
        check = getattr(self.tokens, "check", None)
        if callable(check):
            check()  # no keyring: stop before the browser opens; never store the sign-in elsewhere
        conn, secret, sandbox = self._new_connection(side)
        old: Connection | None = d.get("old") if self.mode == "reconnect" else None
        if old is not None:
            conn.tenant_id = old.tenant_id  # Xero: the organisation of this workspace is preselected
            if not secret and self.source(side) == "account":
                saved = self.tokens.load(old.id)
                secret = saved.client_secret if saved else None
        browser = self.follow if sandbox else self.open_browser

        def opener(url: str) -> Any:
            if on_url is not None:
                on_url(url)
            return browser(url)

        with self._lock:
            self._pending.add(conn.id)
        if self.source(side) == "token":
            connect_with_token(conn, self.tokens, d.get(f"{side}.access_token") or "", transport=self.transport)
        else:
            reg = self.registration(side) if self.source(side) == "profile" else None
            if reg is not None:
                connect_with_app(conn, self.tokens, reg, open_url=opener, timeout=self.timeout,
                                 transport=self.transport, cancel=cancel)
            else:
                connect(conn, self.tokens, client_secret=secret, open_url=opener, timeout=self.timeout,
                        port=int(d.get(f"{side}.port") or 0), transport=self.transport, cancel=cancel)
        tenants = _tenants_of(conn)
        if old is not None and old.tenant_id and conn.tenant_id != old.tenant_id:
            if any(t.id == old.tenant_id for t in tenants):
                conn.tenant_id = old.tenant_id
            else:
                raise WrongAccount(
                    f"This workspace is linked to {old.label or 'another company'}, but the sign-in opened "
                    f"{conn.label or 'a different one'}.", provider=provider)
        return SignedIn(side, conn, tenants)

    def _new_connection(self, side: str) -> tuple[Connection, str | None, bool]:
        d = self.flow.data
        provider = d[side]
        conn_id = f"{provider}-{uuid.uuid4().hex[:12]}"
        source = self.source(side)
        if source == "sandbox":
            old = d.get("old") if self.mode == "reconnect" else None
            state = old.extra.get("sandbox_state") if old is not None else None
            if not state:
                folder = self.home / "sandboxes"
                folder.mkdir(parents=True, exist_ok=True)
                state = str(folder / f"{conn_id}.json")
            server = sandboxes.ensure(provider, state, seed="demo" if not Path(state).exists() else None)
            conn = Connection(id=conn_id, provider=provider, base_url=server.url, auth_url=server.url,
                              extra={"sandbox_state": state, **sandboxes.told_of_sample(provider)})
            return conn, SANDBOX_SECRET, True
        env = d.get(f"{side}.environment") or ""
        reg = self.registration(side) if source == "profile" else None
        server = d.get(f"{side}.server") or (reg.server if reg is not None else "")
        where = Endpoint(server, server) if server else endpoints(provider, env, d.get(f"{side}.my_domain") or "")
        client_id = reg.client_id if reg is not None else d.get(f"{side}.client_id") or ""
        conn = Connection(id=conn_id, provider=provider, base_url=where.base_url, auth_url=where.auth_url,
                          client_id="" if source == "token" else client_id)
        if env:
            conn.extra["environment"] = env
        if d.get(f"{side}.my_domain"):
            conn.extra["my_domain"] = d[f"{side}.my_domain"]
        if server:
            conn.extra["server"] = server
        if reg is not None:  # connect_with_app marks it as the profile's and sends the app's secret
            return conn, reg.client_secret, False
        if source == "account":
            conn.extra["redirect_port"] = int(d.get(f"{side}.port") or 0)
        return conn, d.get(f"{side}.client_secret") if source == "account" else None, False

    def record_sign_in(self, result: SignedIn) -> None:
        """On the UI thread: keep the signed-in connection; the secret now lives in the keyring only."""
        d = self.flow.data
        side = result.side
        previous: Connection | None = d.get(f"{side}.connection")
        if previous is not None and previous.id != result.connection.id:
            self._drop_tokens(previous.id)
        d[f"{side}.connection"] = result.connection
        d[f"{side}.tenants"] = result.tenants
        d[f"{side}.company"] = result.connection.label or ""
        d.pop(f"{side}.client_secret", None)
        d.pop(f"{side}.access_token", None)  # checked and in the keyring now

    def _check_signed_in(self, side: str, d: Data) -> Problems:
        if d.get(f"{side}.connection") is None:
            return {"signin": f"Sign in to {registry.info(d[side]).label} first."}
        return {}

    # -- tenant --------------------------------------------------------------------------------------------
    def _check_tenant(self, side: str, d: Data, v: Data) -> Problems:
        ids = {t.id for t in d.get(f"{side}.tenants") or []}
        if v.get("tenant") not in ids:
            return {"tenant": "Choose the organisation that belongs to this client."}
        return {}

    def _accept_tenant(self, side: str, d: Data, v: Data) -> None:
        conn: Connection = d[f"{side}.connection"]
        tenant = next(t for t in d[f"{side}.tenants"] if t.id == v["tenant"])
        if conn.tenant_id != tenant.id:
            conn.tenant_id = tenant.id
            conn.label = tenant.name or conn.label
            d[f"{side}.company"] = conn.label or ""
        conn.extra.pop("choose_organisation", None)
        conn.extra.pop("choose_organization", None)

    # -- finish: a test call, then save ------------------------------------------------------------------
    def check_companies(self) -> list[Checked]:
        """A test call on each connected side naming the company (off the UI thread)."""
        out = []
        for side in self.flow.data["sides"]:
            conn: Connection = self.flow.data[f"{side}.connection"]
            connector = registry.make_connector(replace(conn, extra=dict(conn.extra)), self.tokens,
                                                transport=self.transport)
            try:
                out.append(Checked(side, connector.company_name() or conn.label or ""))
            finally:
                connector.close()
        return out

    def record_checks(self, checks: list[Checked]) -> None:
        for check in checks:
            self.flow.data[f"{check.side}.company"] = check.company
            self.flow.data[f"{check.side}.checked"] = True
            conn: Connection = self.flow.data[f"{check.side}.connection"]
            conn.label = check.company or conn.label

    def _check_finish(self, d: Data, _v: Data) -> Problems:
        missing = [s for s in d["sides"] if not d.get(f"{s}.checked")]
        if missing:
            return {"finish": "Wait for the test call to name the company, or go back and sign in again."}
        return {}

    def summary(self) -> list[tuple[str, str]]:
        """(system, what is connected) lines for the last page."""
        d = self.flow.data
        rows = []
        for side in d["sides"]:
            label = registry.info(d[side]).label
            conn: Connection | None = d.get(f"{side}.connection")
            where = " — built-in sandbox" if d.get(f"{side}.source") == "sandbox" else ""
            rows.append((label, (d.get(f"{side}.company") or (conn.label if conn else "") or "connected") + where))
        return rows

    def commit(self) -> workspaces.WorkspaceInfo:
        """Accept the last step: save the workspace and its connections (tokens are already in the keyring)."""
        problems = self.flow.submit({})
        if problems:
            raise workspaces.UserError(next(iter(problems.values())))
        d = self.flow.data
        if self.mode == "new":
            ws = workspaces.add_workspace(self.store, d["name"], d["crm"], d["accounting"])
        else:
            ws = workspaces.get_workspace(self.store, d["name"])
            for side in d["sides"]:
                current = ws.crm if side == "crm" else ws.accounting
                if d[side] != current:
                    ws = workspaces.set_provider(self.store, ws.name, side, d[side])
        replaced = []
        for side in d["sides"]:
            conn: Connection = d[f"{side}.connection"]
            try:
                previous = workspaces.load_connection(self.store, ws, side)
            except workspaces.UserError:
                previous = None
            workspaces.save_connection(self.store, ws, conn)
            with self._lock:
                self._pending.discard(conn.id)
            if previous is not None and previous.id != conn.id:
                replaced.append(previous.id)
        for conn_id in replaced:  # the dead sign-in of a reconnected connection
            self._drop_tokens(conn_id)
        return ws

    def abandon(self) -> None:
        """The wizard was closed before Finish: delete the sign-ins it put in the keyring."""
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
        for conn_id in pending:
            self._drop_tokens(conn_id)

    def _forget_sign_ins(self, d: Data, sides: set[str]) -> None:
        for side in sides:
            conn = d.pop(f"{side}.connection", None)
            d.pop(f"{side}.tenants", None)
            d.pop(f"{side}.company", None)
            d.pop(f"{side}.checked", None)
            if conn is not None:
                self._drop_tokens(conn.id)

    def _drop_tokens(self, conn_id: str) -> None:
        with self._lock:
            self._pending.discard(conn_id)
        with contextlib.suppress(cerr.KeyringUnavailable):  # nothing was stored without a keyring
            self.tokens.delete(conn_id)


def _sides(value: Any) -> list[str]:
    if isinstance(value, str):
        value = list(SIDES) if value == "both" else [value]
    return [s for s in SIDES if s in (value or [])]


def _tenants_of(conn: Connection) -> list[Tenant]:
    """Organisations a sign-in opened when there is a choice (Xero connections, Zoho Books organisations)."""
    raw = conn.extra.get("tenants") or conn.extra.get("organizations") or []
    return [Tenant(str(t["id"]), str(t.get("name") or "")) for t in raw]
