"""Xero (Accounting API 2.0, identity service) as an AccountingConnector.

What shapes this module (Xero's developer docs, developer.xero.com/documentation; its OpenAPI
documents are in tests/specs/xero/):
- OAuth with PKCE ("Auth code with PKCE" app: no client secret). Authorize at login.xero.com, tokens at
  identity.xero.com; refresh tokens rotate on every use (the previous one lives 30 more minutes), so
  the HTTP layer saves each new set before using it. One consent can grant several organisations:
  ``GET /connections`` lists them and every Accounting call names one in ``xero-tenant-id``.
- Bulk writes: up to 50 elements a request (Xero's advice; the hard cap is a 3.5 MB body), always with
  ``summarizeErrors=false`` so each element answers for itself, and an ``Idempotency-Key`` derived from
  the journal keys and the body, so a retry after a lost answer replays instead of writing twice.
  Creates use PUT: POST would silently update a contact that happens to have the same name.
- Change feeds: ``If-Modified-Since`` (second precision) with ``order=UpdatedDateUTC ASC``, paged by key
  (the next page starts at the newest timestamp seen), so records edited while we page are never
  skipped. The cursor is the newest ``UpdatedDateUTC`` seen; the next read starts a few seconds earlier
  and drops what it already returned (same id, same timestamp); only when more than a page of records
  share that edge (a bulk import in one second) does an idle read cost more than one request. Items are
  not paged: the whole list is one request, which also shows deletions.
- 60 calls a minute, 5,000 a day, 5 at once per organisation. Dates come as ``/Date(ms+0000)/``.
- Money: JSON numbers read as Decimal and written from Decimal (never float).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from app.connectors.base import (
    Changes,
    Connection,
    CustomerWrite,
    InvoiceState,
    InvoiceWrite,
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
    Forbidden,
    NotFound,
    RateLimited,
    StaleVersion,
    TransportError,
    Unauthorized,
    ValidationRejected,
)
from app.connectors.http import make_api_client, redact
from app.connectors.ledger_fates import XeroLifecycle
from app.connectors.oauth import FlowResult, OAuthConfig, refresh_tokens
from app.connectors.registry import ProviderInfo
from app.connectors.tokens import Tokens, TokenStore
from app.domain.models import AccountingCustomer, Invoice, InvoiceLine, Item, Party, Payment
from app.domain.money import decimal_or_none as _dec
from app.domain.text import country_code, country_name
from app.domain.text import text_or_none as _text

PROVIDER = ProviderInfo(
    name="xero",
    kind="accounting",
    label="Xero",
    default_base_url="https://api.xero.com",
    default_auth_url="https://login.xero.com",
    needs_client_secret=False,
    web_url="https://go.xero.com",
)

API = "/api.xro/2.0"
IDENTITY_HOST = "https://identity.xero.com"  # tokens are issued on another host than the consent page
# Granular scopes (apps created from March 2026 can use nothing else); conn.extra["scopes"] overrides.
SCOPES = ("offline_access", "openid", "profile", "email", "accounting.contacts", "accounting.settings",
          "accounting.invoices", "accounting.payments")
PAGE = 1000  # the largest pageSize Xero serves
BATCH = 50  # Xero's advice for timely bulk answers
OVERLAP_MS = 5_000  # the next read starts this much before the newest change seen
SALES_ACCOUNT = "200"  # "Sales" in Xero's default chart of accounts (AU, NZ, UK, US)
WEB = "https://go.xero.com"
INVOICE_STATUS_OUT = {"draft": "DRAFT", "awaiting_payment": "AUTHORISED"}
DUPLICATE_NAME = "is already assigned to another contact"
_MSDATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_FIELD_HINTS = (("email", "email"), ("contact name", "name"), ("name", "name"), ("tax", "tax_id"),
                ("currency", "currency"), ("phone", "phone"), ("country", "country"), ("address", "address_line1"),
                ("item code", "item"), ("account", "account"), ("invoice #", "number"))


# -- JSON with Decimal numbers ----------------------------------------------------------------
_MARK = f"\x00{secrets.token_hex(8)}:"  # unguessable, so no text can pose as a number
_MARKED = re.compile(re.escape(json.dumps(_MARK)[:-1]) + r'(-?[0-9.]+)\\u0000"')


def _decimal_mark(obj: Any) -> str:
    if isinstance(obj, Decimal) and obj.is_finite():
        return f"{_MARK}{format(obj, 'f')}\x00"
    raise TypeError(f"cannot encode {type(obj).__name__} {obj!r} as JSON")


def dumps(obj: Any) -> str:
    """JSON text where Decimals are numbers (``150.00``), as Xero reads and writes amounts.

    The C encoder writes each Decimal as a marked string that is then unquoted: fast enough for the
    sandbox's 1,000-record pages. (Floats are never built for money here; they would pass as floats.)
    """
    return _MARKED.sub(r"\1", json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_decimal_mark))


# -- dates --------------------------------------------------------------------------------------
def msdate(epoch_ms: int, *, offset: bool = True) -> str:
    """``/Date(1700000000000+0000)/``: the .NET form Xero uses for dates in JSON."""
    return f"/Date({epoch_ms}+0000)/" if offset else f"/Date({epoch_ms})/"


def msdate_ms(value: Any) -> int | None:
    """Milliseconds since the epoch (UTC) of a ``/Date(..)/`` value, or of an ISO string as a fallback."""
    if not value or not isinstance(value, str):
        return None
    m = _MSDATE.match(value.strip())
    if m:
        return int(m.group(1))
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def parse_msdate(value: Any) -> dt.datetime | None:
    ms = msdate_ms(value)
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if ms is not None else None


def msdate_day(value: Any) -> dt.date | None:
    """Date-only fields encode midnight UTC of the day; the offset is not applied (SDKs that do shift days)."""
    parsed = parse_msdate(value)
    return parsed.date() if parsed else None


def if_modified_since(epoch_s: int) -> str:
    """The header value: UTC, second precision, no zone (as Xero documents it)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


# -- small helpers ------------------------------------------------------------------------------
_ADDRESS_KEYS = ("AddressLine1", "City", "PostalCode", "Country")  # an address with any of these is one
_MORE_LINES = ("AddressLine2", "AddressLine3", "AddressLine4")
_PHONE_TYPES = ("DEFAULT", "MOBILE", "DDI")  # the customer's phone: the first of these that has a number
_country_name = functools.lru_cache(maxsize=512)(country_name)  # once per country, not per contact written



def _quote(value: str) -> str:
    """A string literal for a ``where`` expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


def _phone(p: dict[str, Any]) -> str | None:
    """Country code, area code and number as one string; a number stored whole comes back unchanged."""
    country = _text(p.get("PhoneCountryCode"))
    parts = [("+" + country.lstrip("+")) if country else None, _text(p.get("PhoneAreaCode")),
             _text(p.get("PhoneNumber"))]
    return " ".join(x for x in parts if x) if _text(p.get("PhoneNumber")) else None


def _messages(element: dict[str, Any]) -> list[str]:
    return [str(v.get("Message") or "") for v in element.get("ValidationErrors") or [] if isinstance(v, dict)]


def _failed(element: dict[str, Any]) -> bool:
    return bool(element.get("HasValidationErrors") or element.get("HasErrors")
                or element.get("StatusAttributeString") == "ERROR" or _messages(element))


def _field_for(message: str) -> str | None:
    low = message.lower()
    return next((f for hint, f in _FIELD_HINTS if hint in low), None)


def idempotency_key(kind: str, keys: Iterable[str], body: Any = None, *, text: str | None = None) -> str:
    """One key per request: the writes' journal keys plus the body (``text``: as ``dumps`` wrote it
    already), so the same operation resent after a crash replays, while a different body (a value
    changed back and forth) is never mistaken for it."""
    digest = hashlib.sha256()
    digest.update(kind.encode())
    for key in keys:
        digest.update(b"\0" + key.encode())
    digest.update(b"\1" + (dumps(body) if text is None else text).encode())
    return f"crossledger-{digest.hexdigest()[:48]}"


@dataclass(slots=True)
class _Cursor:
    """Opaque to the engine: the newest change seen (ms), what was returned at that edge, known item ids."""

    since: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    ids: list[str] | None = None

    @classmethod
    def load(cls, text: str | None) -> _Cursor | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(int(data["since"]) if data.get("since") is not None else None,
                       {str(k): int(v) for k, v in (data.get("seen") or {}).items()}, data.get("ids"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # unreadable: read everything again

    def dump(self) -> str:
        data: dict[str, Any] = {"v": 1, "since": self.since, "seen": self.seen}
        if self.ids is not None:
            data["ids"] = self.ids
        return json.dumps(data, sort_keys=True)

    @staticmethod
    def cutoff(since_ms: int) -> int:
        """The second the next read starts from (If-Modified-Since has second precision)."""
        return (since_ms - OVERLAP_MS) // 1000

    def advanced(self, rows: list[tuple[str, int]], server_ms: int | None = None) -> _Cursor:
        """The cursor after reading ``rows`` (id, updated ms): the newest stamp and the ids at that edge.
        With nothing read yet, Xero's own time (``server_ms``) starts the next read."""
        newest = max([ms for _, ms in rows] + ([self.since] if self.since is not None else []), default=server_ms)
        if newest is None:
            return _Cursor(None, {}, self.ids)
        edge = self.cutoff(newest) * 1000
        return _Cursor(newest, {rid: ms for rid, ms in rows if ms >= edge}, self.ids)


# -- connecting ---------------------------------------------------------------------------------
def oauth_config(conn: Connection, client_secret: str | None) -> OAuthConfig:
    """PKCE always; a web app's secret, when one is given, goes in Basic auth as Xero requires."""
    root = (conn.auth_url or PROVIDER.default_auth_url).rstrip("/")
    token_root = IDENTITY_HOST if root == PROVIDER.default_auth_url else root
    scopes = conn.extra.get("scopes")
    return OAuthConfig(
        provider="Xero",
        authorize_url=f"{root}/identity/connect/authorize",
        token_url=f"{token_root}/connect/token",
        client_id=conn.client_id,
        client_secret=client_secret or None,
        scopes=tuple(scopes.split() if isinstance(scopes, str) else scopes or SCOPES),
        pkce=True,
        secret_in_basic_auth=True,
    )


def finish_connect(conn: Connection, flow: FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """Pick the organisation from /connections (the one just authorised if several), then name it."""
    connector = Connector(conn, tokens, transport=transport)
    try:
        orgs = [c for c in connector.connections() if c.get("tenantType") == "ORGANISATION"]
        if not orgs:
            raise ConnectorError("This Xero sign-in gave access to no organisation. Connect again and choose "
                                 "an organisation on Xero's consent page.", provider="xero")
        orgs.sort(key=lambda c: str(c.get("updatedDateUtc") or ""), reverse=True)
        chosen = next((c for c in orgs if c.get("tenantId") == conn.tenant_id), orgs[0])
        conn.tenant_id = str(chosen["tenantId"])
        conn.extra["connection_id"] = chosen.get("id")
        if len(orgs) > 1:  # the newest is preselected so syncing works; the user may pick another one
            conn.extra["tenants"] = [{"id": str(c["tenantId"]), "name": c.get("tenantName") or ""} for c in orgs]
            conn.extra["choose_organisation"] = True
        conn.label = connector.company_name() or chosen.get("tenantName") or conn.label
    finally:
        connector.close()


# -- the connector --------------------------------------------------------------------------------
class Connector(XeroLifecycle):
    """One Xero organisation (tenant) of one sign-in."""

    provider = "xero"
    inactive_names_taken = False  # an archived contact's name is free for a new contact

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.transport = transport
        self.limits = Limits(requests=60, window_seconds=60.0, batch_max=BATCH, page_max=PAGE, concurrency=5,
                             daily_cap=5000)
        # A second of margin: Xero's minute and ours never start at exactly the same instant.
        self.api = make_api_client(conn, tokens, provider="Xero", limits=self.limits, refresh=self._refresh,
                                   margin=1.0, transport=transport, sleep=sleep, clock=clock)
        self.sales_account = str(conn.extra.get("sales_account_code") or SALES_ACCOUNT)
        self._item_codes: dict[str, str] = {}  # ItemID -> Code (invoice lines name items by code)

    def _refresh(self, tokens: Tokens) -> Tokens:
        return refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self.transport)

    # -- transport ------------------------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        if not self.conn.tenant_id:
            raise ConnectorError("Choose the Xero organisation for this connection first.", provider=self.provider)
        return self.conn.tenant_id

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              since_s: int | None = None, key: str | None = None, tenant: bool = True,
              text: str | None = None) -> Any:
        """One request; ``body`` is sent as JSON (``text``: the body as ``dumps`` wrote it already)."""
        headers: dict[str, str] = {}
        if tenant:
            headers["xero-tenant-id"] = self.tenant_id
        if since_s is not None:
            headers["If-Modified-Since"] = if_modified_since(since_s)
        if key:
            headers["Idempotency-Key"] = key
        content = None
        if text is not None or body is not None:
            content = (dumps(body) if text is None else text).encode()
            headers["Content-Type"] = "application/json"
        try:
            resp = self.api.request(method, path, params={k: v for k, v in (params or {}).items() if v is not None},
                                    content=content, headers=headers, idempotent=method == "GET" or bool(key))
        except RateLimited as exc:
            # Minute windows never ask for more than 60 s: a longer wait is the daily limit.
            if exc.retry_after is not None and exc.retry_after > 60 and not exc.daily:
                raise RateLimited(f"Xero's daily limit of {self.limits.daily_cap} calls for this organisation is "
                                  f"used up; syncing resumes in {exc.retry_after / 3600:.1f} h.",
                                  retry_after=exc.retry_after, daily=True, provider=self.provider,
                                  status=exc.status) from exc
            raise
        if resp.status_code >= 400:
            raise self._error(resp)
        if not resp.content:
            return {}
        try:
            return self.api.body(resp)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"Xero sent an answer that could not be read (status {resp.status_code}).",
                                 provider=self.provider, status=resp.status_code) from exc

    def _error(self, resp: httpx.Response) -> ConnectorError:
        status = resp.status_code
        try:
            data = self.api.body(resp) if resp.content else {}
        except (ValueError, UnicodeDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        kw: dict[str, Any] = {"provider": self.provider, "status": status}
        if status == 400:
            messages = [m for el in data.get("Elements") or [] if isinstance(el, dict) for m in _messages(el)]
            text = "; ".join(messages) or str(data.get("Message") or "Xero refused the request.")
            kw["code"] = str(data.get("Type") or "") or None
            if any(DUPLICATE_NAME in m for m in messages):
                return DuplicateName(f"Xero: {text}", **kw)
            return ValidationRejected(f"Xero: {text}", field=_field_for(text), **kw)
        if status == 401:
            return Unauthorized("Xero refused the saved sign-in.", **kw)
        if status == 403:
            return Forbidden(f"Xero refused access to the organisation ({data.get('Detail') or 'forbidden'}). "
                             "Reconnect Xero, choose this organisation and allow every permission asked for.", **kw)
        if status == 404:
            return NotFound("Xero has no such record.", **kw)
        return ConnectorError(f"Xero answered {status}: {redact(resp.text[:200])}", **kw)

    def _element_error(self, element: dict[str, Any], resource: str) -> ConnectorError:
        messages = _messages(element) or ["Xero refused this record without saying why."]
        text = "Xero: " + "; ".join(messages)
        kw: dict[str, Any] = {"provider": self.provider, "status": 200, "code": "ValidationException"}
        if resource == "contact" and any(DUPLICATE_NAME in m for m in messages):
            return DuplicateName(text, **kw)
        if any("must be unique" in m or "already exists" in m for m in messages):
            return Conflict(text, **kw)
        return ValidationRejected(text, field=_field_for(" ".join(messages)), **kw)

    def _bulk(self, method: str, path: str, collection: str, resource: str, keys: Sequence[str],
              elements: list[dict[str, Any]], params: dict[str, Any] | None = None,
              ) -> tuple[list[dict[str, Any] | ConnectorError], dict[str, Any]]:
        """One bulk request: each element's answer, or its error, in the order sent; and the envelope."""
        text = dumps({collection: elements})  # written once: sent, and part of the idempotency key
        data = self._call(method, path, params={"summarizeErrors": "false", **(params or {})}, text=text,
                          key=idempotency_key(f"{method} {path}", keys, text=text))
        answers = data.get(collection) or []
        if len(answers) != len(elements):
            raise TransportError(f"Xero answered {len(answers)} of {len(elements)} {collection.lower()}.",
                                 provider=self.provider)
        return [self._element_error(a, resource) if _failed(a) else a for a in answers], data

    def _keyset(self, path: str, collection: str, id_field: str, cursor: str | None,
                params: dict[str, Any]) -> tuple[list[dict[str, Any]], _Cursor, bool, dict[str, Any]]:
        """Every record changed since the cursor, each once (its latest version), oldest change first.

        Pages are keyed by time: each request starts at the newest timestamp seen so far (one second
        early), so records edited while we page move forward instead of shifting others out of view.
        """
        state = _Cursor.load(cursor)
        full = state is None or state.since is None
        since_s = None if full else _Cursor.cutoff(state.since)
        rows: dict[str, dict[str, Any]] = {}
        page, first = 1, None
        while True:
            data = self._call("GET", f"{API}/{path}", since_s=since_s,
                              params={**params, "page": page, "pageSize": PAGE, "order": "UpdatedDateUTC ASC"})
            first = first or data
            batch = data.get(collection) or []
            for row in batch:
                rows.pop(str(row[id_field]), None)
                rows[str(row[id_field])] = row  # a later version moves to the end
            pages = (data.get("pagination") or {}).get("pageCount")
            if len(batch) < PAGE or (pages is not None and page >= pages):
                break
            nxt = (msdate_ms(batch[-1].get("UpdatedDateUTC")) or 0) // 1000 - 1
            floor = since_s if since_s is not None else (msdate_ms(batch[0].get("UpdatedDateUTC")) or 0) // 1000 - 1
            if nxt <= floor:
                page += 1  # a whole page within one second (a bulk import): step through it
            else:
                since_s, page = nxt, 1
        stamped = [(rid, msdate_ms(r.get("UpdatedDateUTC")) or 0) for rid, r in rows.items()]
        base = state or _Cursor()
        fresh = [r for (rid, ms), r in zip(stamped, rows.values(), strict=True) if base.seen.get(rid) != ms]
        return fresh, base.advanced(stamped, msdate_ms((first or {}).get("DateTimeUTC"))), full, first or {}

    @staticmethod
    def _today(envelope: dict[str, Any]) -> dt.date:
        """Xero's own date (from the answer's DateTimeUTC), so a skewed local clock cannot make invoices overdue."""
        stamp = parse_msdate(envelope.get("DateTimeUTC"))
        return (stamp or dt.datetime.now(dt.UTC)).date()

    # -- organisations --------------------------------------------------------------------------
    def connections(self) -> list[dict[str, Any]]:
        data = self._call("GET", "/connections", tenant=False)
        return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []

    def list_tenants(self) -> list[Tenant]:
        return [Tenant(str(c["tenantId"]), c.get("tenantName") or "") for c in self.connections()
                if c.get("tenantType") == "ORGANISATION"]

    def company_name(self) -> str:
        data = self._call("GET", f"{API}/Organisation")
        orgs = data.get("Organisations") or [{}]
        return orgs[0].get("Name") or ""

    def customer_url(self, customer_id: str) -> str:
        return f"{WEB}/Contacts/View/{customer_id}"

    def invoice_url(self, invoice_id: str) -> str:
        return f"{WEB}/AccountsReceivable/View.aspx?InvoiceID={invoice_id}"

    # -- customers ------------------------------------------------------------------------------
    @staticmethod
    def to_customer(c: dict[str, Any]) -> AccountingCustomer:
        """A contact as the ledger's customer (tens of thousands of them in an import: kept lean)."""
        kinds: dict[Any, dict[str, Any]] = {}  # the last address of each type
        for a in c.get("Addresses") or ():
            if isinstance(a, dict):
                kinds[a.get("AddressType")] = a
        address: dict[str, Any] = {}
        for a in (kinds.get("POBOX"), kinds.get("STREET")):
            if a and any(_text(a.get(k)) for k in _ADDRESS_KEYS):
                address = a
                break
        phones: dict[Any, dict[str, Any]] = {}
        for ph in c.get("Phones") or ():
            if isinstance(ph, dict):
                phones[ph.get("PhoneType")] = ph
        phone = None
        for kind in _PHONE_TYPES:
            if (found := phones.get(kind)) and (phone := _phone(found)):
                break
        email = _text(c.get("EmailAddress"))
        if email is None:
            persons = [p for p in c.get("ContactPersons") or () if isinstance(p, dict)]
            email = next((_text(p.get("EmailAddress")) for p in sorted(
                persons, key=lambda p: not p.get("IncludeInEmails")) if _text(p.get("EmailAddress"))), None)
        name = c.get("Name") or ""
        first, last = _text(c.get("FirstName")), _text(c.get("LastName"))
        person = bool(first and last and name.strip().casefold() == f"{first} {last}".casefold())
        party = Party(
            kind="person" if person else "company",
            name=name,
            email=email,
            phone=phone,
            address_line1=_text(address.get("AddressLine1")),
            address_line2=_text(" ".join(x for x in (_text(address.get(k)) for k in _MORE_LINES) if x)),
            city=_text(address.get("City")),
            region=_text(address.get("Region")),
            postal_code=_text(address.get("PostalCode")),
            country=country_code(_text(address.get("Country"))),
            tax_id=_text(c.get("TaxNumber")),
            currency=_text(c.get("DefaultCurrency")),
        )
        return AccountingCustomer(id=str(c["ContactID"]), party=party, updated_at=parse_msdate(c.get("UpdatedDateUTC")),
                                  active=(c.get("ContactStatus") or "ACTIVE") == "ACTIVE",
                                  version=c.get("UpdatedDateUTC"), raw_name=name)

    @staticmethod
    def _contact_body(w: CustomerWrite, current: dict[str, Any] | None = None) -> dict[str, Any]:
        """The contact as Xero takes it. Arrays are replaced when sent, so the addresses and phones we do
        not manage (STREET, FAX...) are sent back as they were."""
        p = w.party
        name = (w.display_name or p.name or "").strip()
        body: dict[str, Any] = {"Name": name, "EmailAddress": p.email or "", "TaxNumber": p.tax_id or ""}
        if p.currency:
            body["DefaultCurrency"] = p.currency
        if p.kind == "person":
            body["FirstName"], body["LastName"] = _split_name(name)
        billing = {"AddressType": "POBOX", "AddressLine1": p.address_line1 or "", "AddressLine2": p.address_line2 or "",
                   "City": p.city or "", "Region": p.region or "", "PostalCode": p.postal_code or "",
                   "Country": _country_name(p.country) or p.country or ""}
        kept = [{k: v for k, v in a.items() if k != "ValidationErrors"} for a in (current or {}).get("Addresses") or []
                if a.get("AddressType") not in ("POBOX", None) and any(_text(v) for k, v in a.items()
                                                                         if k != "AddressType")]
        body["Addresses"] = [billing, *kept]
        phones = [{"PhoneType": "DEFAULT", "PhoneNumber": p.phone or "", "PhoneAreaCode": "", "PhoneCountryCode": ""}]
        phones += [{k: v for k, v in ph.items() if k != "ValidationErrors"}
                   for ph in (current or {}).get("Phones") or []
                   if ph.get("PhoneType") not in ("DEFAULT", None) and _text(ph.get("PhoneNumber"))]
        body["Phones"] = phones
        if w.id:
            body = {"ContactID": w.id, **body}
        return body

    def read_customers(self, cursor: str | None) -> Changes[AccountingCustomer]:
        """Contacts changed since the cursor, archived ones included (they come back inactive)."""
        start = self.api.request_count
        rows, state, full, _ = self._keyset("Contacts", "Contacts", "ContactID", cursor, {"includeArchived": "true"})
        return Changes([self.to_customer(r) for r in rows], state.dump(), full=full,
                       requests=self.api.request_count - start)

    def _contacts_by_id(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), BATCH):
            data = self._call("GET", f"{API}/Contacts", params={"IDs": ",".join(chunk), "includeArchived": "true",
                                                                 "page": 1, "pageSize": PAGE})
            found.update({str(c["ContactID"]): c for c in data.get("Contacts") or []})
        return found

    def get_customers(self, ids: Sequence[str]) -> list[AccountingCustomer]:
        found = self._contacts_by_id(ids)
        return [self.to_customer(found[i]) for i in ids if i in found]

    def find_customers(self, *, name: str | None = None, email: str | None = None) -> list[AccountingCustomer]:
        """Active contacts with exactly this name and/or email (Xero compares without case)."""
        found: dict[str, AccountingCustomer] = {}
        for fld, value in (("Name", name), ("EmailAddress", email)):
            if not value:
                continue
            where = f'ContactStatus=="ACTIVE"&&{fld}=={_quote(value.strip())}'
            data = self._call("GET", f"{API}/Contacts", params={"where": where, "page": 1, "pageSize": PAGE})
            for c in data.get("Contacts") or []:
                found.setdefault(str(c["ContactID"]), self.to_customer(c))
        return list(found.values())

    def create_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]:
        """PUT (create only) in batches of 50: a name already taken is a DuplicateName, not an update."""
        return self._write_contacts("PUT", writes, {})

    def update_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]:
        """Xero has no concurrency token: compare UpdatedDateUTC with the version read (StaleVersion when
        someone edited it since), then POST the batch with the addresses and phones we leave alone."""
        results: dict[str, WriteResult] = {}
        ready: list[CustomerWrite] = []
        current: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(writes), BATCH):
            try:
                current.update(self._contacts_by_id([w.id for w in chunk if w.id]))
            except RateLimited as exc:
                results.update({w.key: WriteResult(w.key, w.id, error=exc) for w in chunk})
                continue
            for w in chunk:
                now = current.get(w.id or "")
                if now is None:
                    results[w.key] = WriteResult(w.key, w.id, error=NotFound(
                        "The customer no longer exists in Xero.", provider=self.provider, status=404))
                elif w.version and now.get("UpdatedDateUTC") != w.version:
                    results[w.key] = WriteResult(w.key, w.id, now.get("UpdatedDateUTC"), error=StaleVersion(
                        "The customer changed in Xero since it was read.", provider=self.provider))
                else:
                    ready.append(w)
        for res in self._write_contacts("POST", ready, current):
            results[res.key] = res
        return [results[w.key] for w in writes]

    def deactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """``POST /Contacts/{id}`` with ContactStatus ARCHIVED (Xero contacts cannot be deleted)."""
        return self._contact_status(customer_id, version, "ARCHIVED", f"archive:{customer_id}")

    def party_problems(self, party: Party) -> list[tuple[str, str]]:
        """What Xero will refuse in a party, found before sending it: (canonical field, message)."""
        problems = []
        if party.email and not party.email.isascii():
            problems.append(("email", f"Xero does not accept accented or non-Latin letters in email addresses "
                                      f"('{party.email}'). Use an address without them in the CRM."))
        return problems

    def _write_contacts(self, method: str, writes: Sequence[CustomerWrite],
                        current: dict[str, dict[str, Any]]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        sendable = []
        for w in writes:
            problems = self.party_problems(w.party)
            if problems:
                results[w.key] = WriteResult(w.key, w.id, error=ValidationRejected(
                    problems[0][1], field=problems[0][0], provider=self.provider))
            else:
                sendable.append(w)
        stop: ConnectorError | None = None
        for chunk in _chunks(sendable, BATCH):
            if stop is not None:
                results.update({w.key: WriteResult(w.key, w.id, error=stop) for w in chunk})
                continue
            bodies = [self._contact_body(w, current.get(w.id or "")) for w in chunk]
            try:
                answers, _ = self._bulk(method, f"{API}/Contacts", "Contacts", "contact", [w.key for w in chunk],
                                        bodies)
            except (AuthExpired, Unauthorized, Forbidden):
                raise
            except ConnectorError as exc:  # the whole request failed: every write in it (and, if limited, after it)
                if isinstance(exc, RateLimited):
                    stop = exc
                results.update({w.key: WriteResult(w.key, w.id, error=exc) for w in chunk})
                continue
            for w, answer in zip(chunk, answers, strict=True):
                if isinstance(answer, ConnectorError):
                    results[w.key] = WriteResult(w.key, w.id, error=answer)
                else:
                    record = self.to_customer(answer)
                    results[w.key] = WriteResult(w.key, record.id, record.version, record=record)
        return [results[w.key] for w in writes]

    # -- items ----------------------------------------------------------------------------------
    def to_item(self, i: dict[str, Any]) -> Item:
        self._item_codes[str(i["ItemID"])] = str(i.get("Code") or "")
        sales = i.get("SalesDetails") or {}
        return Item(id=str(i["ItemID"]), name=i.get("Name") or i.get("Code") or "", sku=_text(i.get("Code")),
                    unit_price=_dec(sales.get("UnitPrice")), active=i.get("IsSold") is not False,
                    description=_text(i.get("Description")))

    def _all_items(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        data = self._call("GET", f"{API}/Items", params={"unitdp": 4})
        rows = list(data.get("Items") or [])
        for row in rows:
            self._item_codes[str(row["ItemID"])] = str(row.get("Code") or "")
        return rows, data

    def read_items(self, cursor: str | None) -> Changes[Item]:
        """GET /Items is not paged: the whole list in one request shows changes and deletions alike."""
        start = self.api.request_count
        state = _Cursor.load(cursor)
        rows, envelope = self._all_items()
        stamped = [(str(r["ItemID"]), msdate_ms(r.get("UpdatedDateUTC")) or 0) for r in rows]
        if state is None:
            changed = rows
        else:
            edge = _Cursor.cutoff(state.since) * 1000 if state.since is not None else None
            changed = [r for r, (rid, ms) in zip(rows, stamped, strict=True)
                       if (edge is None or ms >= edge) and state.seen.get(rid) != ms]
        ids = sorted(rid for rid, _ in stamped)
        deleted = sorted(set(state.ids or []) - set(ids)) if state else []
        new = (state or _Cursor()).advanced(stamped, msdate_ms(envelope.get("DateTimeUTC")))
        new.ids = ids
        return Changes([self.to_item(r) for r in changed], new.dump(), deleted, full=state is None,
                       requests=self.api.request_count - start)

    @staticmethod
    def item_code(item: Item) -> str:
        """Xero needs a unique Code (max 30): the SKU, or one made from the name."""
        if item.sku and len(item.sku.strip()) <= 30:
            return item.sku.strip()
        base = re.sub(r"[^A-Z0-9]+", "-", (item.sku or item.name).upper()).strip("-")[:24] or "ITEM"
        return f"{base}-{hashlib.sha256((item.sku or item.name).encode()).hexdigest()[:5].upper()}"

    def create_items(self, writes: Sequence[ItemWrite]) -> list[WriteResult]:
        """Batches of 50; a Code that exists already is that product (the SKU), so it is returned as made."""
        results: list[WriteResult] = []
        existing: dict[str, dict[str, Any]] | None = None
        stop: ConnectorError | None = None
        for chunk in _chunks(list(writes), BATCH):
            if stop is not None:
                results += [WriteResult(w.key, error=stop) for w in chunk]
                continue
            bodies = []
            for w in chunk:
                item = w.item
                body: dict[str, Any] = {"Code": self.item_code(item), "Name": (item.name or item.sku or "")[:50],
                                        "IsSold": True, "IsPurchased": False,
                                        "SalesDetails": {"AccountCode": self.sales_account}}
                if item.unit_price is not None:
                    body["SalesDetails"]["UnitPrice"] = item.unit_price
                if item.description or len(item.name or "") > 50:
                    body["Description"] = item.description or item.name
                bodies.append(body)
            try:
                answers, _ = self._bulk("PUT", f"{API}/Items", "Items", "item", [w.key for w in chunk], bodies,
                                        {"unitdp": 4})
            except (AuthExpired, Unauthorized, Forbidden):
                raise
            except ConnectorError as exc:
                if isinstance(exc, RateLimited):
                    stop = exc
                results += [WriteResult(w.key, error=exc) for w in chunk]
                continue
            for w, body, answer in zip(chunk, bodies, answers, strict=True):
                if isinstance(answer, Conflict):
                    if existing is None:
                        existing = {str(r.get("Code") or "").casefold(): r for r in self._all_items()[0]}
                    match = existing.get(body["Code"].casefold())
                    answer = match if match is not None else answer
                if isinstance(answer, ConnectorError):
                    results.append(WriteResult(w.key, error=answer))
                else:
                    record = self.to_item(answer)
                    results.append(WriteResult(w.key, record.id, answer.get("UpdatedDateUTC"), record=record))
        return results

    def _code_for(self, item_id: str) -> str:
        if item_id not in self._item_codes:
            self._all_items()
        code = self._item_codes.get(item_id)
        if not code:
            raise ValidationRejected(f"The item {item_id} is not in Xero any more. Check the product's mapping.",
                                     field="item", provider=self.provider)
        return code

    # -- invoices -------------------------------------------------------------------------------
    def to_invoice(self, i: dict[str, Any], today: dt.date) -> Invoice:
        total, due_amount = _dec(i.get("Total")), _dec(i.get("AmountDue"))
        paid = _dec(i.get("AmountPaid"))
        due = msdate_day(i.get("DueDate"))
        raw = i.get("Status") or "DRAFT"
        if raw in ("VOIDED", "DELETED"):
            status = "void"
        elif raw == "PAID":
            status = "paid"
        elif raw in ("DRAFT", "SUBMITTED"):
            status = "draft"
        elif due_amount and due_amount > 0 and due and due < today:
            status = "overdue"
        elif paid and paid > 0:
            status = "partly_paid"
        else:
            status = "awaiting_payment"
        lines = []
        for li in i.get("LineItems") or []:
            item = li.get("Item") or {}
            lines.append(InvoiceLine(
                description=li.get("Description") or "", quantity=_dec(li.get("Quantity")) or Decimal(0),
                unit_price=_dec(li.get("UnitAmount")) or Decimal(0),
                discount_percent=_dec(li.get("DiscountRate")) or Decimal(0),
                item_id=_text(item.get("ItemID")) or next((k for k, v in self._item_codes.items()
                                                            if li.get("ItemCode") and v == li.get("ItemCode")), None),
                tax_code=_text(li.get("TaxType")), amount=_dec(li.get("LineAmount"))))
        return Invoice(
            id=str(i["InvoiceID"]), customer_id=str((i.get("Contact") or {}).get("ContactID") or ""),
            currency=i.get("CurrencyCode") or "", lines=tuple(lines), reference=_text(i.get("Reference")),
            number=_text(i.get("InvoiceNumber")), issue_date=msdate_day(i.get("Date")), due_date=due, total=total,
            amount_paid=paid, balance=due_amount, status=status, updated_at=parse_msdate(i.get("UpdatedDateUTC")),
            web_url=self.invoice_url(str(i["InvoiceID"])))

    def _invoice_body(self, inv: Invoice, status: str | None) -> dict[str, Any]:
        """Quantity and unit price (4 dp), the discount rate and tax type per line: Xero computes the
        amounts itself, rounding tax per line. Without tax codes the invoice is NoTax, as the deal was."""
        lines = []
        for li in inv.lines:
            line: dict[str, Any] = {"Description": li.description or "", "Quantity": li.quantity,
                                    "UnitAmount": li.unit_price}
            if li.item_id:
                line["ItemCode"] = self._code_for(li.item_id)
            else:
                line["AccountCode"] = self.sales_account
            if li.discount_percent:
                line["DiscountRate"] = li.discount_percent
            if li.tax_code:
                line["TaxType"] = li.tax_code
            lines.append(line)
        body: dict[str, Any] = {"Type": "ACCREC", "Contact": {"ContactID": inv.customer_id}, "LineItems": lines,
                                "LineAmountTypes": "Exclusive" if any(li.tax_code for li in inv.lines) else "NoTax"}
        if inv.id:
            body = {"InvoiceID": inv.id, **body}
        for key, value in (("Date", inv.issue_date), ("DueDate", inv.due_date)):
            if value:
                body[key] = value.isoformat()
        if inv.reference:
            body["Reference"] = inv.reference
        if inv.number:
            body["InvoiceNumber"] = inv.number
        if inv.currency:
            body["CurrencyCode"] = inv.currency
        if status:
            body["Status"] = status
        return body

    def read_invoices(self, cursor: str | None) -> Changes[Invoice]:
        """Sales invoices changed since the cursor; voided and deleted ones come back as void (deleted
        ones are also listed as deletions)."""
        start = self.api.request_count
        rows, state, full, envelope = self._keyset("Invoices", "Invoices", "InvoiceID", cursor,
                                                   {"unitdp": 4, "where": 'Type=="ACCREC"'})
        today = self._today(envelope)
        deleted = [str(r["InvoiceID"]) for r in rows if r.get("Status") == "DELETED"]
        return Changes([self.to_invoice(r, today) for r in rows], state.dump(), deleted, full=full,
                       requests=self.api.request_count - start)

    def find_invoices(self, reference: str) -> list[Invoice]:
        data = self._call("GET", f"{API}/Invoices", params={"where": f'Type=="ACCREC"&&Reference=={_quote(reference)}',
                                                             "page": 1, "pageSize": PAGE, "unitdp": 4})
        today = self._today(data)
        hits = [r for r in data.get("Invoices") or []
                if r.get("Reference") == reference and r.get("Status") != "DELETED"]
        hits.sort(key=lambda r: r.get("Status") == "VOIDED")  # a live invoice first
        return [self.to_invoice(r, today) for r in hits]

    def create_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]:
        """Batches of 50, each stamped with its Reference. Status: the invoice's (draft or awaiting payment),
        else the connection's ``invoice_status`` setting, else DRAFT for the accountant to approve."""
        default = INVOICE_STATUS_OUT.get(str(self.conn.extra.get("invoice_status") or "draft"), "DRAFT")
        return self._write_invoices("PUT", writes, lambda inv: INVOICE_STATUS_OUT.get(inv.status or "", default))

    def update_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]:
        """Only drafts are changed (lines are replaced whole); ``version`` is the UpdatedDateUTC read."""
        results: dict[str, WriteResult] = {}
        ready: list[InvoiceWrite] = []
        for chunk in _chunks(list(writes), BATCH):
            ids = [w.invoice.id for w in chunk if w.invoice.id]
            current: dict[str, dict[str, Any]] = {}
            if ids:
                data = self._call("GET", f"{API}/Invoices", params={"IDs": ",".join(ids), "page": 1,
                                                                     "pageSize": PAGE, "unitdp": 4})
                current = {str(r["InvoiceID"]): r for r in data.get("Invoices") or []}
            for w in chunk:
                now = current.get(w.invoice.id or "")
                error: ConnectorError | None = None
                if now is None:
                    error = NotFound("The invoice is not in Xero.", provider=self.provider, status=404)
                elif now.get("Status") not in ("DRAFT", "SUBMITTED"):
                    error = ValidationRejected(
                        f"Invoice {now.get('InvoiceNumber')} is {str(now.get('Status')).lower()}, not a draft; "
                        "Crossledger only changes draft invoices.", field="status", provider=self.provider)
                elif w.version and now.get("UpdatedDateUTC") != w.version:
                    error = StaleVersion("The invoice changed in Xero since it was read.", provider=self.provider)
                if error is None:
                    ready.append(w)
                else:
                    results[w.key] = WriteResult(w.key, w.invoice.id, error=error)
        for res in self._write_invoices("POST", ready, lambda inv: None):
            results[res.key] = res
        return [results[w.key] for w in writes]

    def _write_invoices(self, method: str, writes: Sequence[InvoiceWrite],
                        status_of: Callable[[Invoice], str | None]) -> list[WriteResult]:
        results: list[WriteResult] = []
        stop: ConnectorError | None = None
        for chunk in _chunks(list(writes), BATCH):
            if stop is not None:
                results += [WriteResult(w.key, w.invoice.id, error=stop) for w in chunk]
                continue
            bodies: list[dict[str, Any]] = []
            sent: list[InvoiceWrite] = []
            for w in chunk:
                try:
                    bodies.append(self._invoice_body(w.invoice, status_of(w.invoice)))
                    sent.append(w)
                except ValidationRejected as exc:
                    results.append(WriteResult(w.key, w.invoice.id, error=exc))
            if not sent:
                continue
            try:
                answers, envelope = self._bulk(method, f"{API}/Invoices", "Invoices", "invoice",
                                               [w.key for w in sent], bodies, {"unitdp": 4})
            except (AuthExpired, Unauthorized, Forbidden):
                raise
            except ConnectorError as exc:
                if isinstance(exc, RateLimited):
                    stop = exc
                results += [WriteResult(w.key, w.invoice.id, error=exc) for w in sent]
                continue
            today = self._today(envelope)
            for w, answer in zip(sent, answers, strict=True):
                if isinstance(answer, ConnectorError):
                    results.append(WriteResult(w.key, w.invoice.id, error=answer))
                else:
                    record = self.to_invoice(answer, today)
                    results.append(WriteResult(w.key, record.id, answer.get("UpdatedDateUTC"), record=record))
        order = {w.key: n for n, w in enumerate(writes)}
        return sorted(results, key=lambda r: order[r.key])

    def _invoices_by_id(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dt.date]:
        found: dict[str, dict[str, Any]] = {}
        today = dt.datetime.now(dt.UTC).date()
        for chunk in _chunks(list(dict.fromkeys(ids)), BATCH):
            data = self._call("GET", f"{API}/Invoices", params={"IDs": ",".join(chunk), "page": 1,
                                                                 "pageSize": PAGE, "unitdp": 4})
            today = self._today(data)
            found.update({str(r["InvoiceID"]): r for r in data.get("Invoices") or []})
        return found, today

    def get_invoice_states(self, ids: Sequence[str]) -> list[InvoiceState]:
        """Read by id; sent = SentToContact (Xero's own flag, set when it is emailed or marked sent)."""
        rows, today = self._invoices_by_id(ids)
        return [InvoiceState(self.to_invoice(rows[i], today), bool(rows[i].get("SentToContact")),
                             rows[i].get("UpdatedDateUTC")) for i in ids if i in rows]

    def void_invoice(self, invoice_id: str, version: str | None = None) -> WriteResult:
        """A DRAFT or SUBMITTED invoice becomes DELETED, an AUTHORISED one VOIDED (Xero's Invoices page); Xero
        refuses one with payments allocated."""
        key = f"void:{invoice_id}"
        try:
            rows, today = self._invoices_by_id([invoice_id])
            now = rows.get(invoice_id)
            if now is None:
                raise NotFound("The invoice is not in Xero.", provider=self.provider, status=404)
            status = now.get("Status")
            if status in ("VOIDED", "DELETED"):
                return WriteResult(key, invoice_id, now.get("UpdatedDateUTC"), record=self.to_invoice(now, today))
            if version and now.get("UpdatedDateUTC") != version:
                raise StaleVersion("The invoice changed in Xero since it was read.", provider=self.provider)
            target = "DELETED" if status in ("DRAFT", "SUBMITTED") else "VOIDED"
            answers, envelope = self._bulk("POST", f"{API}/Invoices/{invoice_id}", "Invoices", "invoice", [key],
                                           [{"InvoiceID": invoice_id, "Status": target}], {"unitdp": 4})
        except (AuthExpired, Unauthorized, Forbidden):
            raise
        except ConnectorError as exc:
            return WriteResult(key, invoice_id, error=exc)
        answer = answers[0]
        if isinstance(answer, ConnectorError):
            return WriteResult(key, invoice_id, error=answer)
        return WriteResult(key, invoice_id, answer.get("UpdatedDateUTC"),
                           record=self.to_invoice(answer, self._today(envelope)))

    # -- payments -------------------------------------------------------------------------------
    def read_payments(self, cursor: str | None) -> Changes[Payment]:
        """Payments on sales invoices changed since the cursor; deleted payments are deletions."""
        start = self.api.request_count
        rows, state, full, _ = self._keyset("Payments", "Payments", "PaymentID", cursor,
                                            {"where": 'PaymentType=="ACCRECPAYMENT"'})
        records, deleted = [], []
        for r in rows:
            if r.get("Status") == "DELETED":
                deleted.append(str(r["PaymentID"]))
                continue
            invoice = r.get("Invoice") or {}
            records.append(Payment(id=str(r["PaymentID"]), invoice_id=str(invoice.get("InvoiceID") or ""),
                                   amount=_dec(r.get("Amount")) or Decimal(0),
                                   currency=invoice.get("CurrencyCode") or "",
                                   date=msdate_day(r.get("Date")) or dt.date.min,
                                   recorded_at=parse_msdate(r.get("UpdatedDateUTC"))))  # payments are never edited
        return Changes(records, state.dump(), deleted, full=full, requests=self.api.request_count - start)

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return redact(f"<Xero connector {self.conn.id} tenant={self.conn.tenant_id} at {self.conn.base_url}>")
