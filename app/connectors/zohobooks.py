"""Zoho Books (API v3) as an AccountingConnector.

What shapes this module (Zoho Books API v3 docs, www.zoho.com/books/api/v3/; our schema of
the part we use is tests/specs/zoho-books/zoho-books-v3.openapi.yaml):
- Data centres: the token response names ``api_domain`` (our ``conn.base_url``) and the callback names
  the ``accounts-server`` (our ``conn.auth_url``, where refreshes must go). Refresh tokens never rotate.
- Every call carries ``organization_id``; the header is ``Authorization: Zoho-oauthtoken``.
- No batch endpoint and no idempotency key: one request per record, and a write whose outcome is
  unknown is settled by looking the record up (contact name, invoice ``reference_number``).
- List endpoints return summaries: contacts lack addresses and tax numbers, invoices lack lines and
  payments lack their invoices, so changed records are fetched one by one (and cached by
  ``last_modified_time`` so our own writes do not cost a second read). Contacts the workspace has
  already read are kept in the store (``stored_customers``): a new process fetches only the contacts
  whose ``last_modified_time`` in the list differs from the stored one.
- Change feeds: contacts sorted by ``last_modified_time`` descending, invoices and payments filtered by
  ``last_modified_time``; the watermark is the server's ``Date`` at the start of a read. Deletions are
  invisible, so a daily id sweep of contacts finds them.
- Amounts are JSON numbers: parsed as Decimal, sent as JSON numbers (never float).
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, Protocol

import httpx

from app.connectors import hosts
from app.connectors.base import (
    Changes,
    Connection,
    CustomerWrite,
    ItemWrite,
    Limits,
    Tenant,
    WriteResult,
)
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    ConnectorError,
    DuplicateName,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationRejected,
)
from app.connectors.http import make_api_client, redact
from app.connectors.ledger_fates import ZohoBooksLifecycle
from app.connectors.oauth import FlowResult, OAuthConfig, OAuthError, refresh_tokens
from app.connectors.registry import ProviderInfo
from app.connectors.tokens import TokenStore
from app.connectors.zohobooks_invoices import ZohoBooksInvoices
from app.connectors.zohobooks_wire import (
    CACHE_MAX,
    _Cursor,
    _epoch,
    format_ts,
    one_by_one,
    parse_ts,
    unchanged_since,
)
from app.domain.models import AccountingCustomer, Item, Party
from app.domain.money import decimal_or_none as _dec
from app.domain.text import country_code, country_name, normalise_email
from app.domain.text import text_or_none as _text

PROVIDER = ProviderInfo(
    name="zohobooks",
    kind="accounting",
    label="Zoho Books",
    default_base_url="https://www.zohoapis.com",
    default_auth_url="https://accounts.zoho.com",
    needs_client_secret=True,
    web_url="https://books.zoho.com",
)

API = "/books/v3"
SCOPES = (
    "ZohoBooks.contacts.ALL",
    "ZohoBooks.invoices.ALL",
    "ZohoBooks.customerpayments.READ",
    "ZohoBooks.settings.READ",  # organisations, currencies, taxes, items
    "ZohoBooks.settings.CREATE",  # items live under settings
    "ZohoBooks.creditnotes.ALL",  # credit notes for deals lost or shrunk after invoicing
)
DAILY_CAPS = {"free": 1000, "standard": 2000, "professional": 5000, "premium": 10000, "elite": 10000,
              "ultimate": 10000}
PAGE = 200
OVERLAP = 5.0  # seconds subtracted from the watermark: clocks and second-precision timestamps
SWEEP_EVERY = 86400.0  # contacts: an id sweep a day finds hard deletes (no tombstones in Zoho)
KEEP_EVERY = 50  # contact details handed to the store's cache at a time (and at the end of each read)
LIST_FROM = 3  # up to this many ids are read with one GET each; more, from the list's pages first
TAX_FIELDS = ("vat_reg_no", "tax_reg_no", "gst_no", "tax_id_value")  # edition-specific; first non-empty wins
_FIELD_IN_MESSAGE = re.compile(r"(?:for|passed for)\s+([a-z_]+)\s*$")


# -- JSON with Decimal numbers ----------------------------------------------------------------
def json_dumps(obj: Any) -> str:
    """JSON text where Decimals are numbers (``150.00``), never floats or strings."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"not a JSON number: {obj}")
        return format(obj, "f")
    if isinstance(obj, int):
        return str(int(obj))
    if isinstance(obj, float):
        raise TypeError("floats are not used for money; pass a Decimal")
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, dict):
        items = (json.dumps(str(k), ensure_ascii=False) + ":" + json_dumps(v) for k, v in obj.items())
        return "{" + ",".join(items) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(json_dumps(v) for v in obj) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


# -- connecting -------------------------------------------------------------------------------
def oauth_config(conn: Connection, client_secret: str | None) -> OAuthConfig:
    """Authorize at accounts.zoho.com (Zoho routes the user to their DC); tokens at the DC's server."""
    root = (conn.auth_url or PROVIDER.default_auth_url).rstrip("/")
    return OAuthConfig(
        provider="Zoho Books",
        authorize_url=f"{root}/oauth/v2/auth",
        token_url=f"{root}/oauth/v2/token",
        client_id=conn.client_id,
        client_secret=client_secret,
        scopes=SCOPES,
        pkce=True,
        extra_authorize={"access_type": "offline", "prompt": "consent"},
        scope_separator=",",
    )


def finish_connect(conn: Connection, flow: FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """Take the DC's API domain and accounts server, then the organisation (the default if several)."""
    hosts.take_data_centre("zohobooks", conn, flow.token_body, flow.callback)
    if flow.callback.get("location"):
        conn.extra["location"] = flow.callback["location"]
    connector = Connector(conn, tokens, transport=transport)
    try:
        orgs = connector.organizations()
    finally:
        connector.close()
    if not orgs:
        raise ConnectorError("This Zoho account has no Zoho Books organization. Create one in Zoho Books, then "
                             "connect again.", provider="zohobooks")
    chosen = orgs[0] if len(orgs) == 1 else next((o for o in orgs if o.get("is_default_org")), orgs[0])
    conn.tenant_id = str(chosen["organization_id"])
    conn.label = chosen.get("name") or conn.label
    conn.extra["plan_name"] = chosen.get("plan_name")
    conn.extra["currency_code"] = chosen.get("currency_code")
    conn.extra["time_zone"] = chosen.get("time_zone")
    if len(orgs) > 1:  # the user may pick another one; the default is preselected so syncing works
        conn.extra["organizations"] = [{"id": str(o["organization_id"]), "name": o.get("name", "")} for o in orgs]
        conn.extra["choose_organization"] = True


def web_root(base_url: str) -> str:
    """https://www.zohoapis.eu -> https://books.zoho.eu (the web app of the same data centre)."""
    host = httpx.URL(base_url).host
    if host.startswith("www.zohoapis."):
        suffix = host[len("www.zohoapis."):]
        return "https://books.zohocloud.ca" if suffix == "ca" else f"https://books.zoho.{suffix}"
    return base_url.rstrip("/")  # a sandbox serves its own /app pages


class DetailStore(Protocol):
    """Where contact details outlive the process (app.store.detail_cache.StoreDetails)."""

    def load(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...  # id -> (version, JSON)

    def save(self, items: Iterable[tuple[str, str, str]]) -> None: ...  # (id, version, JSON)


def _classify_429(resp: httpx.Response) -> tuple[float | None, bool]:
    """Zoho answers both its minute and its day with 429 code 45; only the message says which."""
    try:
        message = str(json.loads(resp.content).get("message") or "")
    except (ValueError, AttributeError):
        return None, False
    return None, "per day" in message.lower()


# -- the connector --------------------------------------------------------------------------------
class Connector(ZohoBooksInvoices, ZohoBooksLifecycle):
    """One Zoho Books organisation, reached through its data centre's API domain."""

    provider = "zohobooks"
    details_kind = "contact"  # what its ``details`` keep (app.ops.detail_cache)

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.transport = transport
        plan = str(conn.extra.get("plan_name") or "").lower()
        # Zoho allows 100 requests a minute per organisation; an embedded sandbox may allow more
        # (conn.extra["requests_per_minute"], set together with the sandbox's scale_limits).
        per_minute = int(conn.extra.get("requests_per_minute") or 100)
        self.limits = Limits(requests=per_minute, window_seconds=60.0, batch_max=1, page_max=PAGE, concurrency=5,
                             daily_cap=DAILY_CAPS.get(plan, 1000))
        # A second of margin: our clock and Zoho's never start a minute at exactly the same instant.
        self.api = make_api_client(conn, tokens, provider="Zoho Books", limits=self.limits, refresh=self._refresh,
                                   margin=1.0, transport=transport, sleep=sleep, clock=clock,
                                   auth_scheme="Zoho-oauthtoken", classify_429=_classify_429)
        self._details: dict[str, tuple[str, dict[str, Any]]] = {}  # contact id -> (lmt, detail)
        # Contact details kept in the store for every process on this organisation (app.store.detail_cache):
        # a listed contact whose last_modified_time is the kept one is not fetched again, in a new process too.
        self.details: DetailStore | None = None
        self._unsaved: dict[str, tuple[str, dict[str, Any]]] = {}
        self._answered_at: float | None = None  # Zoho's clock (its Date header) at the last answer
        self._payment_details: dict[str, tuple[str, dict[str, Any]]] = {}
        self._currencies: dict[str, str] | None = None

    def _refresh(self, tokens: Any) -> Any:
        try:
            return refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self.transport)
        except OAuthError as exc:
            if exc.status is None:
                raise  # could not reach Zoho Accounts: not a dead sign-in
            if exc.status == 400:  # 400 "Access Denied": more than 10 refreshes in 10 minutes
                raise RateLimited("Zoho allows a sign-in to be renewed 10 times in 10 minutes; Crossledger "
                                  "tries again in a few minutes.", retry_after=600.0, provider=self.provider,
                                  status=400) from exc
            # Zoho answers a revoked or evicted refresh token with {"error": "invalid_code"} (HTTP 200).
            raise AuthExpired("The saved sign-in for Zoho Books is no longer valid. Reconnect to continue.",
                              provider=self.provider, status=exc.status) from exc

    # -- transport ------------------------------------------------------------------------------
    @property
    def org_id(self) -> str:
        if not self.conn.tenant_id:
            raise ConnectorError("Choose the Zoho Books organization for this connection first.",
                                 provider=self.provider)
        return self.conn.tenant_id

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              org: bool = True, resource: str = "") -> tuple[dict[str, Any], httpx.Response]:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if org:
            query["organization_id"] = self.org_id
        for attempt in range(3):
            if body is None:
                resp = self.api.request(method, API + path, params=query)
            else:  # amounts go out as JSON numbers, written from the Decimal (the stdlib encoder cannot)
                resp = self.api.request(method, API + path, params=query, content=json_dumps(body).encode(),
                                        headers={"Content-Type": "application/json"})
            try:
                data = self.api.body(resp) if resp.content else {}
                if isinstance(data, dict):
                    break
            except (ValueError, UnicodeDecodeError):
                pass
            if method != "GET" or attempt == 2:  # a write's outcome is unknown: the caller looks it up
                raise TransportError(f"Zoho Books sent an answer that could not be read (status "
                                     f"{resp.status_code}).", provider=self.provider, status=resp.status_code)
        self._answered_at = self._server_time(resp)
        code = data.get("code")
        if resp.status_code >= 400 or (code not in (0, None)):
            raise self._error(resp.status_code, data, resource)
        return data, resp

    def _error(self, status: int, data: dict[str, Any], resource: str) -> ConnectorError:
        code = data.get("code")
        message = str(data.get("message") or f"HTTP {status}")
        kw = {"provider": self.provider, "status": status, "code": str(code) if code is not None else None}
        text = f"Zoho Books: {message}"
        if code == 1001:
            return DuplicateName(text, **kw) if resource == "contact" else Conflict(text, **kw)
        if status == 404 or code in (1002, 5):
            return NotFound(text, **kw)
        if code == 6041:
            return NotFound(f"The Zoho Books organization {self.conn.tenant_id} is not available to this sign-in. "
                            "Reconnect and choose the organization.", **kw)
        if status == 401 or code == 57:
            return Unauthorized(text, **kw)
        if status == 429:
            return RateLimited(text, daily="day" in message.lower(), **kw)
        if status >= 500:
            return ServerError(text, **kw)
        match = _FIELD_IN_MESSAGE.search(message)
        return ValidationRejected(text, field=match.group(1) if match else None, **kw)

    def _pages(self, path: str, key: str, params: dict[str, Any],
               first: list[httpx.Response] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list (200 a page, the most Zoho allows); ``first`` gets the first response."""
        page = 1
        while True:
            data, resp = self._call("GET", path, params={**params, "page": page, "per_page": PAGE})
            if first is not None and not first:
                first.append(resp)
            yield data.get(key) or []
            if not (data.get("page_context") or {}).get("has_more_page"):
                return
            page += 1

    @staticmethod
    def _server_time(resp: httpx.Response | None) -> float | None:
        """The server's clock at a response: the watermark, so client clock skew cannot lose changes."""
        if resp is None or not resp.headers.get("Date"):
            return None
        try:
            return email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
        except (TypeError, ValueError):
            return None

    def _changed_rows(self, path: str, key: str, id_field: str, cursor: str | None,
                      params: dict[str, Any]) -> tuple[list[dict[str, Any]], _Cursor | None, float | None]:
        """Rows modified after the cursor's watermark (less the overlap), each once, via the filter."""
        state = _Cursor.load(cursor)
        query = dict(params)
        if state is not None:
            query["last_modified_time"] = format_ts(state.since - OVERLAP)
        first: list[httpx.Response] = []
        seen: dict[str, dict[str, Any]] = {}
        for rows in self._pages(path, key, query, first):
            for row in rows:
                seen.setdefault(str(row[id_field]), row)  # a record created while paging shifts the pages
        return list(seen.values()), state, self._server_time(first[0] if first else None)

    # -- organisations --------------------------------------------------------------------------
    def organizations(self) -> list[dict[str, Any]]:
        data, _ = self._call("GET", "/organizations", org=False)
        return list(data.get("organizations") or [])

    def list_tenants(self) -> list[Tenant]:
        return [Tenant(str(o["organization_id"]), o.get("name") or "") for o in self.organizations()]

    def company_name(self) -> str:
        data, _ = self._call("GET", f"/organizations/{self.org_id}", org=False)
        return (data.get("organization") or {}).get("name") or ""

    def customer_url(self, customer_id: str) -> str:
        return f"{web_root(self.conn.base_url)}/app/{self.org_id}#/contacts/{customer_id}"

    def invoice_url(self, invoice_id: str) -> str:
        return f"{web_root(self.conn.base_url)}/app/{self.org_id}#/invoices/{invoice_id}"

    def currency_ids(self) -> dict[str, str]:
        if self._currencies is None:
            data, _ = self._call("GET", "/settings/currencies")
            self._currencies = {c["currency_code"]: str(c["currency_id"]) for c in data.get("currencies") or []}
        return self._currencies

    # -- customers: reading ---------------------------------------------------------------------
    def to_customer(self, c: dict[str, Any]) -> AccountingCustomer:
        persons = c.get("contact_persons") or []
        primary = next((p for p in persons if p.get("is_primary_contact")), persons[0] if persons else {})
        address = c.get("billing_address") or {}
        sub_type = c.get("customer_sub_type")
        kind = "person" if sub_type == "individual" or (not sub_type and not c.get("company_name")) else "company"
        party = Party(
            kind=kind,
            name=c.get("contact_name") or "",
            email=_text(primary.get("email")) or _text(c.get("email")),
            phone=_text(primary.get("phone")) or _text(primary.get("mobile")) or _text(c.get("phone"))
            or _text(address.get("phone")),
            address_line1=_text(address.get("address")),
            address_line2=_text(address.get("street2")),
            city=_text(address.get("city")),
            region=_text(address.get("state")),
            postal_code=_text(address.get("zip")),
            country=country_code(_text(address.get("country"))),
            tax_id=next((_text(c.get(f)) for f in TAX_FIELDS if _text(c.get(f))), None),
            currency=_text(c.get("currency_code")),
        )
        return AccountingCustomer(
            id=str(c["contact_id"]), party=party, updated_at=parse_ts(c.get("last_modified_time")),
            active=(c.get("status") or "active") == "active", version=c.get("last_modified_time"),
            raw_name=c.get("contact_name"))

    def _contact_detail(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        """The full contact for a list row: from the cache when it has not changed since, else one GET."""
        cid, lmt = str(summary["contact_id"]), summary.get("last_modified_time") or ""
        cached = self._details.get(cid)
        if cached and cached[0] == lmt:
            return cached[1]
        try:
            data, _ = self._call("GET", f"/contacts/{cid}", resource="contact")
        except NotFound:
            return None  # deleted since it was listed
        return self._remember(data["contact"])

    def _recall(self, rows: dict[str, dict[str, Any]]) -> None:
        """Bring the store's kept details of listed contacts this process has not read at that version."""
        if self.details is None:
            return
        asked = [cid for cid, row in rows.items()
                 if (self._details.get(cid) or ("",))[0] != (row.get("last_modified_time") or "") or not
                 row.get("last_modified_time")]
        if len(self._details) + len(asked) >= CACHE_MAX:
            self._details.clear()
        for cid, (lmt, text) in (self.details.load(asked) if asked else {}).items():
            try:
                self._details[cid] = (lmt, json.loads(text, parse_float=Decimal))
            except ValueError:
                continue  # unreadable: fetched again

    def _remember(self, contact: dict[str, Any]) -> dict[str, Any]:
        if len(self._details) >= CACHE_MAX:
            self._details.clear()  # a cache, not a copy of the ledger: the next reads refill it
        cid = str(contact["contact_id"])
        self._details[cid] = (contact.get("last_modified_time") or "", contact)
        if self.details is not None and self._settled(contact.get("last_modified_time")):
            self._unsaved[cid] = self._details[cid]
            if len(self._unsaved) >= KEEP_EVERY:
                self._keep()
        return contact

    def _settled(self, lmt: str | None) -> bool:
        """Whether a contact read now can be kept for other runs under its ``last_modified_time``: Zoho gives
        that time to the second, so an edit later in the same second as this read would keep the same
        time and the kept copy would hide it for good. Kept only once Zoho's clock has left that second."""
        modified = parse_ts(lmt)
        return (modified is not None and self._answered_at is not None
                and self._answered_at >= modified.timestamp() + 1)

    def _keep(self) -> None:
        """Hand what was read or written since to the store's cache (one transaction)."""
        if self.details is not None and self._unsaved:
            unsaved, self._unsaved = self._unsaved, {}
            self.details.save((cid, lmt, json_dumps(detail)) for cid, (lmt, detail) in unsaved.items() if lmt)

    def read_customers(self, cursor: str | None) -> Changes[AccountingCustomer]:
        """Newest-modified first, stopping at the watermark; nothing changed costs one request.

        Once a day the whole list is paged (summaries only) and ids that vanished are confirmed
        with a GET: Zoho deletes leave no trace otherwise.
        """
        start = self.api.request_count
        state = _Cursor.load(cursor)
        full = state is None
        since = None if state is None else state.since - OVERLAP
        params = {"contact_type": "customer", "filter_by": "Status.All", "sort_column": "last_modified_time",
                  "sort_order": "D"}
        first: list[httpx.Response] = []
        changed: dict[str, dict[str, Any]] = {}
        listed: set[str] = set()
        sweeping = full
        for rows in self._pages("/contacts", "contacts", params, first):
            if state is not None and not sweeping:
                server_now = self._server_time(first[0])
                sweeping = server_now is not None and (state.sweep is None or server_now - state.sweep >= SWEEP_EVERY)
            older = False
            for row in rows:
                cid = str(row["contact_id"])
                listed.add(cid)
                lmt = _epoch(row.get("last_modified_time"))
                if since is None or lmt is None or lmt >= since:
                    changed.setdefault(cid, row)
                else:
                    older = True
            if older and not sweeping:
                break  # sorted newest first: everything further on is older than the watermark
        self._recall(changed)
        records = [self.to_customer(d) for d in map(self._contact_detail, changed.values()) if d is not None]
        self._keep()
        server_now = self._server_time(first[0] if first else None)
        deleted: list[str] = []
        if full:
            known = set(listed)
        elif sweeping:
            for cid in sorted(state.ids - listed):  # it may only have moved between pages: ask
                try:
                    self._call("GET", f"/contacts/{cid}", resource="contact")
                except NotFound:
                    deleted.append(cid)
            known = (listed | state.ids) - set(deleted)
        else:
            known = state.ids | listed
        known |= {r.id for r in records}
        watermark = server_now if server_now is not None else max(
            (r.updated_at.timestamp() for r in records if r.updated_at), default=state.since if state else 0.0)
        sweep = watermark if sweeping else (state.sweep if state else None)
        return Changes(records, _Cursor(watermark, known, sweep).dump(with_ids=True), deleted, full=full,
                       requests=self.api.request_count - start)

    def _listed(self, path: str, key: str, id_field: str, ids: Sequence[str],
                params: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """List rows of the asked ids, newest created first, while a page costs less than the GETs it saves.

        A few ids are left to their own GETs (cheaper than paging a large book); paging stops once
        every id is found, or once the pages spent match the ids still missing (one GET each then).
        """
        wanted = set(ids)
        found: dict[str, dict[str, Any]] = {}
        if len(wanted) <= LIST_FROM:
            return found
        pages = self._pages(path, key, {**params, "sort_column": "created_time", "sort_order": "D"})
        for spent, rows in enumerate(pages, start=1):
            for row in rows:
                rid = str(row[id_field])
                if rid in wanted:
                    found.setdefault(rid, row)
            missing = len(wanted) - len(found)
            if not missing or spent >= missing:
                break
        return found

    def get_customers(self, ids: Sequence[str]) -> list[AccountingCustomer]:
        """Many ids: the contact list's pages, then each detail from the cache (or its GET when it changed);
        ids the list did not return (deleted, or beyond the pages worth reading) are asked one by one."""
        rows = self._listed("/contacts", "contacts", "contact_id", ids,
                            {"contact_type": "customer", "filter_by": "Status.All"})
        self._recall(rows)
        out = []
        for cid in dict.fromkeys(str(i) for i in ids):
            if cid in rows:
                detail = self._contact_detail(rows[cid])
            else:
                try:
                    data, _ = self._call("GET", f"/contacts/{cid}", resource="contact")
                except NotFound:
                    continue
                detail = self._remember(data["contact"])
            if detail is not None:
                out.append(self.to_customer(detail))
        self._keep()
        return out

    def find_customers(self, *, name: str | None = None, email: str | None = None) -> list[AccountingCustomer]:
        """Exact (case-insensitive) lookups by display name and/or email; Zoho's idempotency stand-in."""
        found: dict[str, AccountingCustomer] = {}
        for field, value in (("contact_name", name), ("email", email)):
            if not value:
                continue
            params = {"contact_type": "customer", "filter_by": "Status.All", field: value}
            for rows in self._pages("/contacts", "contacts", params):
                for row in rows:
                    if str(row["contact_id"]) not in found:
                        detail = self._contact_detail(row)
                        if detail is not None:
                            found[str(row["contact_id"])] = self.to_customer(detail)
        return list(found.values())

    # -- customers: writing ---------------------------------------------------------------------
    def _contact_body(self, party: Party, display_name: str | None, current: dict[str, Any] | None) -> dict[str, Any]:
        company = party.kind == "company"
        body: dict[str, Any] = {
            "contact_name": display_name or party.name,
            "contact_type": "customer",
            "customer_sub_type": "business" if company else "individual",
            "billing_address": {
                "address": party.address_line1 or "", "street2": party.address_line2 or "",
                "city": party.city or "", "state": party.region or "", "zip": party.postal_code or "",
                "country": country_name(party.country) or "",
            },
            "vat_reg_no": party.tax_id or "",
        }
        if current is None or (company and not current.get("company_name")) or not company:
            body["company_name"] = party.name if company else ""  # an existing company name is the ledger's own
        if party.currency and (current is None or party.currency != current.get("currency_code")):
            currency_id = self.currency_ids().get(party.currency)
            if currency_id is None:
                raise ValidationRejected(f"Zoho Books has no {party.currency} currency. Add it under Settings → "
                                         "Currencies, then sync again.", field="currency", provider=self.provider)
            body["currency_id"] = currency_id
        persons = [dict(p) for p in (current or {}).get("contact_persons") or []]
        primary = next((p for p in persons if p.get("is_primary_contact")), None)
        if primary is None and (party.email or party.phone or not company):
            primary = {"is_primary_contact": True}
            persons.insert(0, primary)
        if primary is not None:
            primary["email"] = party.email or ""
            primary["phone"] = party.phone or ""
            if not company:
                first, _, last = (party.name or "").rpartition(" ")
                primary["first_name"], primary["last_name"] = (first, last) if first else (last, "")
        body["contact_persons"] = [
            {k: p[k] for k in ("contact_person_id", "salutation", "first_name", "last_name", "email", "phone",
                               "mobile", "designation", "department", "is_primary_contact") if k in p}
            for p in persons]
        return body

    def create_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]:
        """One POST per customer (Zoho has no batch); an unknown outcome is settled by name."""
        def create(w: CustomerWrite) -> WriteResult:
            name = w.display_name or w.party.name
            body = self._contact_body(w.party, name, None)
            contact = self._create("/contacts", "contact", body, functools.partial(self._settle_contact, name, w.party))
            cust = self.to_customer(self._remember(contact))
            return WriteResult(w.key, cust.id, cust.version, record=cust)
        return one_by_one(writes, create)

    def _create(self, path: str, resource: str, body: dict[str, Any],
                settle: Callable[[], dict[str, Any] | None], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST once; if the answer was lost, look the record up before sending it again (once)."""
        for attempt in (1, 2):
            try:
                data, _ = self._call("POST", path, body=body, params=params, resource=resource)
                return data[resource]
            except (TransportError, ServerError):
                found = settle()
                if found is not None:
                    return found
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _settle_contact(self, name: str, party: Party) -> dict[str, Any] | None:
        for hit in self.find_customers(name=name):
            if not party.email or normalise_email(hit.party.email) == normalise_email(party.email):
                return self._details[hit.id][1]
        return None

    def update_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]:
        """PUT per customer. Contact persons are a complete list, so the current ones are kept by id."""
        def update(w: CustomerWrite) -> WriteResult:
            if not w.id:
                raise ValidationRejected("An update needs the customer's id.", provider=self.provider)
            cached = self._details.get(w.id)
            if cached is not None and w.version and cached[0] == w.version:
                current = cached[1]
            else:
                data, _ = self._call("GET", f"/contacts/{w.id}", resource="contact")
                current = self._remember(data["contact"])
            body = self._contact_body(w.party, w.display_name, current)
            data, _ = self._call("PUT", f"/contacts/{w.id}", body=body, resource="contact")
            cust = self.to_customer(self._remember(data["contact"]))
            return WriteResult(w.key, cust.id, cust.version, record=cust)
        return one_by_one(writes, update)

    def set_customer_active(self, customer_id: str, active: bool) -> None:
        """Mark a customer active or inactive (Zoho's archive; a delete is refused once it has invoices)."""
        self._call("POST", f"/contacts/{customer_id}/{'active' if active else 'inactive'}", resource="contact")

    def deactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """``POST /contacts/{id}/inactive`` (Zoho refuses to delete a contact with transactions)."""
        key = f"inactive:{customer_id}"
        try:
            data, _ = self._call("GET", f"/contacts/{customer_id}", resource="contact")
            current = data["contact"]
            if (current.get("status") or "active") == "inactive":
                cust = self.to_customer(self._remember(current))
                return WriteResult(key, cust.id, cust.version, record=cust)
            unchanged_since(current, version, "customer")
            self._call("POST", f"/contacts/{customer_id}/inactive", resource="contact")
            data, _ = self._call("GET", f"/contacts/{customer_id}", resource="contact")
        except (AuthExpired, Unauthorized):
            raise
        except ConnectorError as exc:
            return WriteResult(key, customer_id, error=exc)
        cust = self.to_customer(self._remember(data["contact"]))
        return WriteResult(key, cust.id, cust.version, record=cust)

    # -- items ----------------------------------------------------------------------------------
    @staticmethod
    def to_item(i: dict[str, Any]) -> Item:
        return Item(id=str(i["item_id"]), name=i.get("name") or "", sku=_text(i.get("sku")),
                    unit_price=_dec(i.get("rate")), active=(i.get("status") or "active") == "active",
                    description=_text(i.get("description")))

    def read_items(self, cursor: str | None) -> Changes[Item]:
        """Items have no documented change filter; the list (200 a page, with rate and sku) is cheap."""
        start = self.api.request_count
        state = _Cursor.load(cursor)
        first: list[httpx.Response] = []
        rows = [r for page in self._pages("/items", "items", {"filter_by": "Status.All"}, first) for r in page]
        since = None if state is None else state.since - OVERLAP
        records = [self.to_item(r) for r in rows
                   if since is None or (_epoch(r.get("last_modified_time")) or since) >= since]
        ids = {str(r["item_id"]) for r in rows}
        deleted = sorted(state.ids - ids) if state else []
        watermark = self._server_time(first[0] if first else None) or (state.since if state else 0.0)
        return Changes(records, _Cursor(watermark, ids).dump(with_ids=True), deleted, full=state is None,
                       requests=self.api.request_count - start)

    def create_items(self, writes: Sequence[ItemWrite]) -> list[WriteResult]:
        def create(w: ItemWrite) -> WriteResult:
            item = w.item
            body: dict[str, Any] = {"name": item.name, "rate": item.unit_price if item.unit_price is not None
                                    else Decimal("0.00"), "product_type": "service", "item_type": "sales"}
            if item.sku:
                body["sku"] = item.sku
            if item.description:
                body["description"] = item.description
            made = self._create("/items", "item", body, functools.partial(self._settle_item, item.name, item.sku))
            return WriteResult(w.key, str(made["item_id"]), made.get("last_modified_time"), record=self.to_item(made))
        return one_by_one(writes, create)

    def _settle_item(self, name: str, sku: str | None = None) -> dict[str, Any] | None:
        """The item a lost answer made: same name and, for a product with a code, the same SKU."""
        data, _ = self._call("GET", "/items", params={"name": name, "filter_by": "Status.All"})
        return next((i for i in data.get("items") or [] if (i.get("name") or "").casefold() == name.casefold()
                     and (not sku or (i.get("sku") or "").casefold() == sku.casefold())), None)

    def close(self) -> None:
        self._keep()
        self.api.close()

    def __repr__(self) -> str:
        return redact(f"<Zoho Books connector {self.conn.id} org={self.conn.tenant_id} at {self.conn.base_url}>")
