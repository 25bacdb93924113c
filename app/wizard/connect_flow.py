"""The connect wizard as a plain-Python flow: add a client, connect its CRM and ledger, reconnect.

Steps: ``client`` (a new workspace: name and systems) or ``sides`` (an existing one: what to
connect), then for each side ``<side>.account`` (the built-in sandbox or a real account with its
client ID, secret, data centre or environment), ``<side>.signin`` (the OAuth flow, run by the page
in the background), ``<side>.tenant`` (only when the sign-in opened several organisations), and
``finish`` (a test call that names each company; accepting it saves everything).

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
from app.connectors.tokens import TokenStore
from app.ops import sandboxes, workspaces
from app.ops.connect import connect
from app.store.db import Store
from app.wizard.flow import Data, Flow, Problems, Step

SIDES = ("crm", "accounting")
SIDE_LABEL = {"crm": "CRM", "accounting": "accounting system"}
DEFAULT_PORT = 47615  # the redirect URL registered in the provider's app: http://127.0.0.1:47615/callback
SANDBOX_SECRET = "crossledger-sandbox-secret"  # noqa: S105 - a local sandbox takes any secret


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    auth_url: str


ZOHO_DCS: dict[str, tuple[str, Endpoint]] = {
    "us": ("United States (zoho.com)", Endpoint("https://www.zohoapis.com", "https://accounts.zoho.com")),
    "eu": ("Europe (zoho.eu)", Endpoint("https://www.zohoapis.eu", "https://accounts.zoho.eu")),
    "uk": ("United Kingdom (zoho.uk)", Endpoint("https://www.zohoapis.uk", "https://accounts.zoho.uk")),
    "in": ("India (zoho.in)", Endpoint("https://www.zohoapis.in", "https://accounts.zoho.in")),
    "au": ("Australia (zoho.com.au)", Endpoint("https://www.zohoapis.com.au", "https://accounts.zoho.com.au")),
    "jp": ("Japan (zoho.jp)", Endpoint("https://www.zohoapis.jp", "https://accounts.zoho.jp")),
    "ca": ("Canada (zohocloud.ca)", Endpoint("https://www.zohoapis.ca", "https://accounts.zohocloud.ca")),
    "sa": ("Saudi Arabia (zoho.sa)", Endpoint("https://www.zohoapis.sa", "https://accounts.zoho.sa")),
    "cn": ("China (zoho.com.cn)", Endpoint("https://www.zohoapis.com.cn", "https://accounts.zoho.com.cn")),
}
SALESFORCE_ENVS = {"production": "Production (login.salesforce.com)",
                   "sandbox": "Sandbox org (test.salesforce.com)",
                   "mydomain": "My Domain (your company's own sign-in address)"}
QBO_ENVS = {"production": "Production (real companies)", "sandbox": "Sandbox company (Intuit developer sandbox)"}


@dataclass(frozen=True, slots=True)
class ProviderSetup:
    """What the account page asks for one provider, and where to find it."""

    provider: str
    label: str
    needs_secret: bool
    environment_label: str = ""
    environments: tuple[Choice, ...] = ()
    default_environment: str = ""
    help: str = ""


def _redirect(port: int) -> str:
    return f"http://127.0.0.1:{port}/callback"


def setup_for(provider: str, port: int = DEFAULT_PORT) -> ProviderSetup:
    info = registry.info(provider)
    cb = _redirect(port)
    if provider == "hubspot":
        return ProviderSetup(provider, info.label, True, help=(
            "In your HubSpot developer account open Apps, then your app's Auth tab. Copy the Client ID and the "
            f"Client secret, and add {cb} as a redirect URL."))
    if provider == "salesforce":
        envs = tuple(Choice(k, v) for k, v in SALESFORCE_ENVS.items())
        return ProviderSetup(provider, info.label, False, "Salesforce org", envs, "production", (
            "In Salesforce Setup open External Client App Manager, then your app's OAuth settings. Copy the "
            f"Consumer Key (the client ID) and add {cb} as a callback URL. A secret is only needed if your "
            "app requires one."))
    if provider == "pipedrive":
        return ProviderSetup(provider, info.label, True, help=(
            "In Pipedrive's Developer Hub open your app, then OAuth & access scopes. Copy the Client ID and the "
            f"Client secret, and set the callback URL to {cb}."))
    if provider in ("zohocrm", "zohobooks"):
        envs = tuple(Choice(k, v[0]) for k, v in ZOHO_DCS.items())
        return ProviderSetup(provider, info.label, True, "Zoho data centre", envs, "us", (
            "Sign in to the Zoho API console of your data centre (api-console.zoho.com, .eu, .in …) and add a "
            f"Server-based Application with {cb} as the authorized redirect URI. Copy its Client ID and "
            "Client Secret. Pick the data centre your Zoho account lives in (it is in your Zoho address)."))
    if provider == "quickbooks":
        envs = tuple(Choice(k, v) for k, v in QBO_ENVS.items())
        return ProviderSetup(provider, info.label, True, "QuickBooks environment", envs, "production", (
            "At developer.intuit.com open your app, then Keys and credentials: Production keys for real "
            "companies, Development keys for a sandbox company. Copy the Client ID and Client secret, and add "
            f"{cb} as a redirect URI."))
    if provider == "xero":
        return ProviderSetup(provider, info.label, False, help=(
            "At developer.xero.com open My Apps, then your app (type: Auth code with PKCE). Copy the Client id "
            f"and add {cb} as a redirect URI. A client secret is only needed for a Web app."))
    return ProviderSetup(provider, info.label, info.needs_client_secret)


def endpoints(provider: str, environment: str = "", my_domain: str = "") -> Endpoint:
    """Where a real account of ``provider`` lives, by data centre or environment."""
    info = registry.info(provider)
    if provider in ("zohocrm", "zohobooks"):
        return ZOHO_DCS.get(environment or "us", ZOHO_DCS["us"])[1]
    if provider == "salesforce":
        if environment == "sandbox":
            return Endpoint("https://test.salesforce.com", "https://test.salesforce.com")
        if environment == "mydomain":
            host = my_domain_url(my_domain)
            return Endpoint(host, host)
        return Endpoint(info.default_base_url, info.default_auth_url)
    if provider == "quickbooks" and environment == "sandbox":
        return Endpoint("https://sandbox-quickbooks.api.intuit.com", info.default_auth_url)
    return Endpoint(info.default_base_url, info.default_auth_url)


def my_domain_url(text: str) -> str:
    """'acme', 'acme.my.salesforce.com', 'https://acme.lightning.force.com/' -> the My Domain sign-in URL."""
    host = re.sub(r"^https?://", "", text.strip(), flags=re.I).split("/")[0].lower()
    host = re.sub(r"\.lightning\.force\.com$", ".my.salesforce.com", host)
    if "." not in host:
        host += ".my.salesforce.com"
    return "https://" + host


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
                       "The port Crossledger listens on for the sign-in to come back is taken. Close the program "
                       "using it, or click Back and choose another port (then add the matching redirect URL to "
                       f"your {label} app).", "back")
    if isinstance(exc, WrongAccount):
        return Failure("That is a different company", f"{exc.message} Click Try again and sign in to the right "
                       "company.")
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
    ) -> None:
        """``workspace`` connects an existing workspace; with ``reconnect`` (a side) it signs that side in again."""
        self.store, self.tokens, self.home = store, tokens, home
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
            data.setdefault(f"{side}.source", "sandbox")
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

    def _defaults_from(self, side: str, old: Connection) -> Data:
        """A reconnect starts from what the connection used before."""
        out: Data = {}
        if old.extra.get("sandbox_state"):
            out[f"{side}.source"] = "sandbox"
            return out
        out[f"{side}.source"] = "account"
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
        source = v.get("source", "sandbox")
        if source not in ("sandbox", "account"):
            problems["source"] = "Choose the built-in sandbox or a real account."
            return problems
        if source == "sandbox":
            return problems
        setup = setup_for(d[side])
        client_id = str(v.get("client_id") or "").strip()
        if not client_id:
            problems["client_id"] = f"Enter the client ID of your {setup.label} app (see “Where to find these” above)."
        elif re.search(r"\s", client_id):
            problems["client_id"] = "A client ID has no spaces. Copy it again from the app's page."
        secret = str(v.get("client_secret") or "")
        if setup.needs_secret and not secret.strip() and not self.stored_secret(side):
            problems["client_secret"] = f"Enter the client secret of your {setup.label} app."
        if setup.environments:
            env = v.get("environment") or setup.default_environment
            if env not in {c.value for c in setup.environments}:
                problems["environment"] = f"Choose the {setup.environment_label.lower()}."
            elif env == "mydomain" and not _valid_my_domain(str(v.get("my_domain") or "")):
                problems["my_domain"] = "Enter your My Domain, for example acme.my.salesforce.com."
        server = str(v.get("server") or "").strip()
        if server and not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", server):
            problems["server"] = "Enter a server address such as http://127.0.0.1:8701, or leave it empty."
        port = v.get("port", DEFAULT_PORT)
        try:
            port_number = int(port)
        except (TypeError, ValueError):
            port_number = -1
        if port_number != 0 and not 1024 <= port_number <= 65535:
            problems["port"] = "Choose a port between 1024 and 65535 (or 0 for any free port)."
        return problems

    def _accept_account(self, side: str, d: Data, v: Data) -> None:
        before = {k: d.get(f"{side}.{k}") for k in ("source", "client_id", "environment", "my_domain", "server",
                                                      "port")}
        source = v.get("source", "sandbox")
        d[f"{side}.source"] = source
        if source == "account":
            setup = setup_for(d[side])
            d[f"{side}.client_id"] = str(v.get("client_id") or "").strip()
            secret = str(v.get("client_secret") or "").strip()
            if secret:
                d[f"{side}.client_secret"] = secret  # in memory until sign-in puts it in the keyring
            d[f"{side}.environment"] = v.get("environment") or setup.default_environment
            d[f"{side}.my_domain"] = str(v.get("my_domain") or "").strip()
            d[f"{side}.server"] = str(v.get("server") or "").strip().rstrip("/")
            d[f"{side}.port"] = int(v.get("port", DEFAULT_PORT))
        else:
            d[f"{side}.port"] = 0
        after = {k: d.get(f"{side}.{k}") for k in before}
        if before != after:
            self._forget_sign_ins(d, {side})

    # -- sign-in (run off the UI thread by the page) ---------------------------------------------------
    def sign_in(self, side: str, *, cancel: threading.Event | None = None,
                on_url: Callable[[str], Any] | None = None) -> SignedIn:
        """The OAuth flow for one side; tokens (and the client secret) land in the token store only.

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
            if not secret:
                saved = self.tokens.load(old.id)
                secret = saved.client_secret if saved else None
        browser = self.follow if sandbox else self.open_browser

        def opener(url: str) -> Any:
            if on_url is not None:
                on_url(url)
            return browser(url)

        with self._lock:
            self._pending.add(conn.id)
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
        if d.get(f"{side}.source") == "sandbox":
            old = d.get("old") if self.mode == "reconnect" else None
            state = old.extra.get("sandbox_state") if old is not None else None
            if not state:
                folder = self.home / "sandboxes"
                folder.mkdir(parents=True, exist_ok=True)
                state = str(folder / f"{conn_id}.json")
            server = sandboxes.ensure(provider, state, seed="demo" if not Path(state).exists() else None)
            conn = Connection(id=conn_id, provider=provider, base_url=server.url, auth_url=server.url,
                              extra={"sandbox_state": state})
            return conn, SANDBOX_SECRET, True
        env = d.get(f"{side}.environment") or ""
        server = d.get(f"{side}.server") or ""
        where = Endpoint(server, server) if server else endpoints(provider, env, d.get(f"{side}.my_domain") or "")
        conn = Connection(id=conn_id, provider=provider, base_url=where.base_url, auth_url=where.auth_url,
                          client_id=d.get(f"{side}.client_id") or "")
        if env:
            conn.extra["environment"] = env
        if d.get(f"{side}.my_domain"):
            conn.extra["my_domain"] = d[f"{side}.my_domain"]
        if server:
            conn.extra["server"] = server
        conn.extra["redirect_port"] = int(d.get(f"{side}.port") or 0)
        return conn, d.get(f"{side}.client_secret"), False

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


def _valid_my_domain(text: str) -> bool:
    if not text.strip():
        return False
    return bool(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", my_domain_url(text)[len("https://"):]))


def _sides(value: Any) -> list[str]:
    if isinstance(value, str):
        value = list(SIDES) if value == "both" else [value]
    return [s for s in SIDES if s in (value or [])]


def _tenants_of(conn: Connection) -> list[Tenant]:
    """Organisations a sign-in opened when there is a choice (Xero connections, Zoho Books organisations)."""
    raw = conn.extra.get("tenants") or conn.extra.get("organizations") or []
    return [Tenant(str(t["id"]), str(t.get("name") or "")) for t in raw]
