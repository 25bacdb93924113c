"""HubSpot CRM connector: companies and contacts, deals with line items, custom properties.

Full reads page the v3 list endpoints (100 per page); incremental reads use CRM search sorted by
``hs_lastmodifieddate`` (200 per page). Search never shows archived records, so deletions are found
by arithmetic: the first search page carries the ``total`` of live records, and when it is smaller
than last time's total plus the records created since, something was archived or merged, and only
then is the ``archived=true`` list read. An incremental read with nothing changed is one request.

Deeper pages of a search use a keyset window (``hs_lastmodifieddate <= the last one seen``) instead
of ``after`` offsets, so the 10,000-result cap is never reached and records archived mid-read do not
shift pages; a full page sharing one modification time is read by (that time, ``hs_object_id``). The
cursor's settled mark is HubSpot's own clock at the last search (its ``Date`` header) less the index's
lag: what was modified before it has been read, so a bulk edit is read once and idle reads stay one
request, however many records changed in the last half minute. A deal is won when its stage's
metadata says closed with probability 1.0, whatever the stage is called. All property values are
strings; money is parsed with Decimal.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from app.connectors import oauth
from app.connectors.base import Changes, Connection, FieldInfo, Limits, RecordWrite, WriteResult
from app.connectors.crm_fates import HubSpotLifecycle
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    ConnectorError,
    Forbidden,
    NotFound,
    RateLimited,
    TransportError,
    ValidationRejected,
)
from app.connectors.http import ApiClient, RateLimiter, make_api_client, redact
from app.connectors.registry import ProviderInfo
from app.connectors.tokens import Tokens, TokenStore
from app.domain.models import CrmRecord, Deal, LineItem
from app.domain.money import decimal_or_none as _dec
from app.domain.money import plain as _plain

PROVIDER = ProviderInfo(
    name="hubspot",
    kind="crm",
    label="HubSpot",
    default_base_url="https://api.hubapi.com",
    default_auth_url="https://app.hubspot.com",
    needs_client_secret=True,
    web_url="https://app.hubspot.com",
)

SCOPES = (
    "oauth",
    "crm.objects.contacts.read", "crm.objects.contacts.write",
    "crm.objects.companies.read", "crm.objects.companies.write",
    "crm.objects.deals.read", "crm.objects.deals.write",
    "crm.objects.line_items.read", "crm.objects.products.read",
    "crm.schemas.contacts.read", "crm.schemas.companies.read",
    "crm.schemas.deals.read", "crm.schemas.deals.write",
)

OBJECTS, PROPERTIES, PIPELINES, ASSOCIATIONS = "/crm/v3/objects", "/crm/v3/properties", "/crm/v3/pipelines", \
    "/crm/v4/associations"
HS_TYPE = {"company": "companies", "person": "contacts", "deal": "deals"}
TYPE_ID = {"company": "0-2", "person": "0-1", "deal": "0-3"}
PAGE = 100  # list limit
SEARCH_PAGE = 200  # search limit
SEARCH_CAP = 10_000  # search refuses `after` beyond this
BATCH = 100  # batch read/create/update inputs
ASSOC_BATCH = 1000  # v4 batch read inputs
OVERLAP_MS = 30_000  # the search index's lag, at most: what was modified this long before a search was in it
SLACK = 0.1  # seconds added to HubSpot's windows so our clock and theirs never disagree at the edge
LONG_WAIT = 60.0
MAX_PROPERTY_QUERY = 6000  # characters of `properties=` a list URL may carry before we trim it (414)
PRIMARY = {("contacts", "companies"): (1, "contact_to_company"), ("deals", "companies"): (5, "deal_to_company")}
# What a list GET asks for when the full property list would make the URL too long.
CORE_PROPERTIES = {
    "companies": ("name", "domain", "website", "phone", "address", "address2", "city", "state", "zip", "country",
                  "industry", "description", "hs_object_id", "createdate", "hs_lastmodifieddate",
                  "hs_merged_object_ids"),
    "contacts": ("firstname", "lastname", "email", "phone", "mobilephone", "address", "city", "state", "zip",
                 "country", "company", "jobtitle", "website", "associatedcompanyid", "hs_object_id", "createdate",
                 "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids"),
    "deals": ("dealname", "amount", "dealstage", "pipeline", "closedate", "deal_currency_code", "description",
              "hs_is_closed_won", "hs_object_id", "createdate", "hs_lastmodifieddate", "hs_merged_object_ids"),
}
LINE_PROPERTIES = ["name", "description", "quantity", "price", "amount", "discount", "hs_discount_percentage",
                   "hs_sku", "hs_product_id", "hs_line_item_currency_code", "hs_tax_rate_group_id"]
PROPERTY_KIND = {"string": "string", "phone_number": "string", "number": "number", "date": "date",
                 "datetime": "date", "enumeration": "enum", "bool": "bool"}
NEW_PROPERTY = {"string": ("string", "text"), "number": ("number", "number"), "date": ("date", "date"),
                "datetime": ("datetime", "date"), "enum": ("string", "text"), "bool": ("bool", "booleancheckbox")}
EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def oauth_config(conn: Connection, client_secret: str | None) -> oauth.OAuthConfig:
    """Authorize on app.hubspot.com; tokens from the API host's v3 endpoint (v1 is retired in 2027).

    HubSpot takes every token parameter in the form body, client secret included; PKCE is sent as well.
    """
    auth_root = (conn.auth_url or PROVIDER.default_auth_url).rstrip("/")
    api_root = (conn.base_url or PROVIDER.default_base_url).rstrip("/")
    return oauth.OAuthConfig(
        provider="hubspot",
        authorize_url=f"{auth_root}/oauth/authorize",
        token_url=f"{api_root}/oauth/v3/token",
        client_id=conn.client_id,
        client_secret=client_secret,
        scopes=SCOPES,
        pkce=True,
        secret_in_basic_auth=False,
    )


def finish_connect(conn: Connection, flow: oauth.FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """The portal (hub) ID is the tenant; currency and UI domain come from the account details."""
    body = flow.token_body
    _name_portal(conn, tokens, transport, body.get("hub_id") or body.get("hubId"))


def finish_token(conn: Connection, tokens: TokenStore, transport: httpx.BaseTransport | None) -> None:
    """A private app's access token (Bearer, no refresh): the account details are the one read that checks it."""
    conn.extra["auth"] = "access_token"
    _name_portal(conn, tokens, transport, None)


def _name_portal(conn: Connection, tokens: TokenStore, transport: httpx.BaseTransport | None, hub: Any) -> None:
    connector = Connector(conn, tokens, transport=transport)
    try:
        details = connector.account_details(fresh=True)
        conn.tenant_id = str(hub or details.get("portalId") or "") or None
        conn.label = connector.company_name() or conn.label
    finally:
        connector.close()


# -- small conversions ---------------------------------------------------------------------------

def _ms(text: Any) -> int | None:
    """ISO-8601 (HubSpot's ``2026-05-01T09:30:12.345Z``) or epoch ms -> epoch milliseconds."""
    if text is None or text == "":
        return None
    text = str(text).strip()
    if re.fullmatch(r"-?\d{9,}", text):
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def _date_ms(header: str | None) -> int | None:
    """An HTTP ``Date`` header (whole seconds, so never later than the moment it names) -> epoch ms."""
    if not header:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(header).timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _settled(mark: int, searched_at: int | None, newest: int | None) -> int:
    """The new settled mark: HubSpot's clock when it searched (its ``Date``), less the index's lag.

    Every record modified at or before it was in the index at that search, so it has been read and is never
    asked for again: a bulk edit is read once, not on every cycle for as long as it is recent. Without a
    ``Date`` (a proxy that drops it), the newest modification seen, less the lag.
    """
    base = searched_at if searched_at is not None else newest
    return max(mark, (base or 0) - OVERLAP_MS)


def _datetime(text: Any) -> dt.datetime | None:
    ms = _ms(text)
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC) if ms is not None else None


def _wire(value: Any) -> str:
    """A property value as HubSpot takes it: always a string; empty clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()  # date properties take YYYY-MM-DD (midnight UTC)
    return str(value)


def _same(sent: str, got: Any) -> bool:
    """Does a returned property value match what we sent, allowing HubSpot's normalisation?"""
    if got is None:
        return sent == ""
    got = str(got)
    if sent.strip().casefold() == got.strip().casefold():
        return True
    a, b = _dec(sent), _dec(got)
    if a is not None and b is not None:
        return a == b
    x, y = _ms(sent), _ms(got)
    return x is not None and x == y


def _property_name(name: str) -> str:
    key = re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_")
    if not key or not key[0].isalpha():
        key = "x_" + key
    return key[3:] if key.startswith("hs_") else key


@dataclass(slots=True)
class _Cursor:
    """Settled mark (ms: every record modified at or before it has been read), live total then, the records
    read since it with their modification times, asked properties.

    Version 1 kept the newest modification seen and re-read 30 s before it on every read; it is taken
    as that time less the 30 s."""

    kind: str
    w: int
    n: int
    seen: dict[str, int] = field(default_factory=dict)
    props: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None, kind: str) -> _Cursor | None:
        if not text:
            return None
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict) or raw.get("v") not in (1, 2) or raw.get("t") != kind:
            return None
        mark = int(raw.get("w") or 0) - (OVERLAP_MS if raw.get("v") == 1 else 0)
        return cls(kind, mark, int(raw.get("n") or 0),
                   {str(k): int(v) for k, v in (raw.get("seen") or {}).items()}, list(raw.get("props") or []))

    def dump(self) -> str:
        return json.dumps({"v": 2, "t": self.kind, "w": self.w, "n": self.n, "seen": self.seen,
                           "props": self.props}, sort_keys=True, separators=(",", ":"))


@dataclass(slots=True)
class _Read:
    rows: list[dict[str, Any]]
    deleted: list[str]
    cursor: _Cursor
    full: bool


class _HubSpotClient(ApiClient):
    """The shared client, taught HubSpot's 429: no Retry-After, but a policy name that says how long."""

    last_policy: str | None = None

    def _retry_after(self, resp: httpx.Response, attempt: int) -> float:
        if resp.headers.get("Retry-After") is not None:
            return super()._retry_after(resp, attempt)
        try:
            body = resp.json()
        except ValueError:
            body = {}
        policy = body.get("policyName") if isinstance(body, dict) else None
        self.last_policy = policy
        if policy == "DAILY":
            now = dt.datetime.now(dt.UTC)
            midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            return (midnight - now).total_seconds()
        if policy in ("SECONDLY", "SECONDLY_ROLLING"):
            return 1.0
        if policy == "TEN_SECONDLY_ROLLING":
            try:
                return int(resp.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds") or 10000) / 1000
            except ValueError:
                return 10.0
        return super()._retry_after(resp, attempt)


class Connector(HubSpotLifecycle):
    """One HubSpot account (portal), over OAuth, through the shared ApiClient."""

    provider = "hubspot"
    # Public apps: 110 requests per rolling 10 s per installed account; batches and list pages of 100.
    limits = Limits(requests=110, window_seconds=10.0, batch_max=BATCH, page_max=PAGE, concurrency=1)

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.tokens = tokens
        self._transport = transport
        self.api = make_api_client(conn, tokens, provider="hubspot", limits=self.limits, refresh=self._refresh,
                                   default_base_url=PROVIDER.default_base_url, margin=SLACK, transport=transport,
                                   sleep=sleep, clock=clock, client_class=_HubSpotClient, max_wait=LONG_WAIT)
        # CRM search has its own limit: 5 requests per second per account.
        self._search_limiter = RateLimiter(5, 1.0 + SLACK, clock=clock, sleep=sleep)
        self._defs: dict[str, dict[str, dict[str, Any]]] = {}
        self._pipelines: dict[str, dict[str, dict[str, Any]]] | None = None
        self._products: dict[str, dict[str, Any]] = {}
        self._details: dict[str, Any] | None = None
        self._searched_at: int | None = None  # HubSpot's clock (ms) at the last search, from its Date header

    def _refresh(self, tokens: Tokens) -> Tokens:
        if not tokens.client_secret:
            raise AuthExpired("The HubSpot sign-in expired and cannot be renewed without the app's client secret. "
                              "Reconnect HubSpot to continue.", provider="hubspot")
        return oauth.refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self._transport)

    # -- HTTP ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              idempotent: bool | None = None, clock: bool = False) -> dict[str, Any]:
        try:
            resp = self.api.request(method, path, params=params, json_body=body, idempotent=idempotent)
            if clock:  # HubSpot's own time when it searched: what its index surely holds (see _settled)
                self._searched_at = _date_ms(resp.headers.get("Date"))
        except RateLimited as exc:
            if self.api.last_policy == "DAILY" or (exc.retry_after or 0) > LONG_WAIT:
                raise RateLimited("This HubSpot account has used its daily API allowance; syncing continues "
                                  "after midnight in the account's time zone.", retry_after=exc.retry_after,
                                  daily=True, provider="hubspot", status=429) from exc
            raise
        try:
            payload = self.api.body(resp) if resp.content else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"HubSpot sent an answer that could not be read (status {resp.status_code}).",
                                 provider="hubspot", status=resp.status_code) from exc
        if resp.status_code >= 400:
            raise self._error(resp.status_code, payload, resp.text)
        if not isinstance(payload, dict):
            raise TransportError("HubSpot sent an unexpected answer.", provider="hubspot", status=resp.status_code)
        return payload

    @staticmethod
    def _error(status: int, payload: Any, text: str) -> ConnectorError:
        body = payload if isinstance(payload, dict) else {}
        message = str(body.get("message") or redact(text[:200]) or f"HTTP {status}")
        category = body.get("category")
        if status == 409:
            m = EXISTING_ID.search(message)
            return Conflict(f"HubSpot: {message}", existing_id=m.group(1) if m else None, provider="hubspot",
                            status=409, code=category)
        if status == 404:
            return NotFound(f"HubSpot: {message}", provider="hubspot", status=404, code=category)
        if status == 403:
            scopes: list[str] = []
            for err in body.get("errors") or []:
                scopes += ((err or {}).get("context") or {}).get("requiredGranularScopes") or []
            need = f" It needs: {', '.join(scopes)}." if scopes else ""
            return Forbidden(f"HubSpot refused this because the connection lacks a permission.{need} Reconnect "
                             "HubSpot and approve every permission Crossledger asks for.", provider="hubspot",
                             status=403, code=category)
        if status == 400:
            field_name = None
            for err in body.get("errors") or []:
                err = err or {}
                field_name = err.get("in") or (((err.get("context") or {}).get("propertyName") or [None])[0])
                if field_name:
                    break
            return ValidationRejected(f"HubSpot refused the change: {message}", field=field_name,
                                      provider="hubspot", status=400, code=category)
        return ConnectorError(f"HubSpot: {message}", provider="hubspot", status=status, code=category)

    def _search(self, hs_type: str, body: dict[str, Any]) -> dict[str, Any]:
        self._search_limiter.acquire()
        return self._call("POST", f"{OBJECTS}/{hs_type}/search", body=body, idempotent=True, clock=True)

    def _list(self, hs_type: str, props: list[str], *, archived: bool = False,
              associations: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every page of a v3 list (ordered by ID, 100 per page)."""
        params: dict[str, Any] = {"limit": PAGE, "properties": ",".join(props)}
        if archived:
            params["archived"] = "true"
        if associations:
            params["associations"] = ",".join(associations)
        out: list[dict[str, Any]] = []
        while True:
            payload = self._call("GET", f"{OBJECTS}/{hs_type}", params=params)
            out += payload.get("results") or []
            after = ((payload.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return out
            params = {**params, "after": after}

    def _batch_read(self, hs_type: str, ids: Iterable[str], props: list[str]) -> list[dict[str, Any]]:
        wanted = list(dict.fromkeys(str(i) for i in ids))
        out: list[dict[str, Any]] = []
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start:start + BATCH]
            payload = self._call("POST", f"{OBJECTS}/{hs_type}/batch/read", idempotent=True, body={
                "properties": props, "propertiesWithHistory": [], "inputs": [{"id": i} for i in chunk]})
            out += payload.get("results") or []
        return out

    def _associations(self, from_type: str, to_type: str, ids: Iterable[str]) -> dict[str, list[tuple[str, list[int]]]]:
        """from id -> [(to id, type ids)] through the v4 batch read (records without links are absent)."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        out: dict[str, list[tuple[str, list[int]]]] = {}
        pending = [{"id": i} for i in wanted]
        while pending:
            chunk, pending = pending[:ASSOC_BATCH], pending[ASSOC_BATCH:]
            payload = self._call("POST", f"{ASSOCIATIONS}/{from_type}/{to_type}/batch/read", idempotent=True,
                                 body={"inputs": chunk})
            for row in payload.get("results") or []:
                rid = str((row.get("from") or {}).get("id"))
                for link in row.get("to") or []:
                    types = [int(t.get("typeId")) for t in link.get("associationTypes") or [] if t.get("typeId")]
                    out.setdefault(rid, []).append((str(link.get("toObjectId")), types))
                after = ((row.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    pending.append({"id": rid, "after": str(after)})
        return out

    # -- account ---------------------------------------------------------------------------------
    def account_details(self, *, fresh: bool = False) -> dict[str, Any]:
        """Portal ID, currency and UI domain; remembered on the connection."""
        if self._details is None or fresh:
            self._details = self._call("GET", "/account-info/v3/details")
            self.conn.extra.update({
                "portal_id": self._details.get("portalId"), "currency": self._details.get("companyCurrency"),
                "ui_domain": self._details.get("uiDomain"), "data_hosting": self._details.get("dataHostingLocation")})
        return self._details

    def company_name(self) -> str:
        """HubSpot exposes no account name in its stable APIs; the portal's domain is what identifies it.

        Token introspection (v3) carries ``hub_domain``; the token travels in the form body, not the URL.
        """
        tokens = self.tokens.load(self.conn.id)
        if tokens is not None and tokens.client_secret:
            for attempt in range(2):
                token = self.api.access_token()
                resp = self.api.request(
                    "POST", "/oauth/v3/token/introspect", authenticated=False, idempotent=True,
                    data={"client_id": self.conn.client_id, "client_secret": tokens.client_secret, "token": token,
                          "token_type_hint": "access_token"})
                try:
                    info = resp.json() if resp.status_code == 200 and resp.content else {}
                except ValueError:
                    info = {}
                if info.get("active") is False and attempt == 0:
                    self.api.refresh(stale=token)
                    continue
                if info.get("hub_domain"):
                    self.conn.extra["hub_domain"] = info["hub_domain"]
                    return str(info["hub_domain"])
                break
        portal = self.conn.tenant_id or self.account_details().get("portalId")
        return f"HubSpot account {portal}"

    def _portal(self) -> tuple[str, str]:
        portal = self.conn.tenant_id or self.conn.extra.get("portal_id")
        domain = self.conn.extra.get("ui_domain")
        if not portal or not domain:
            details = self.account_details()
            portal, domain = portal or details.get("portalId"), domain or details.get("uiDomain")
        return str(portal), str(domain or "app.hubspot.com")

    def record_url(self, object_type: str, record_id: str) -> str:
        portal, domain = self._portal()
        return f"https://{domain}/contacts/{portal}/record/{TYPE_ID[object_type]}/{record_id}"

    def _currency(self) -> str:
        if not self.conn.extra.get("currency"):
            self.account_details()
        return str(self.conn.extra.get("currency") or "USD")

    # -- properties ------------------------------------------------------------------------------
    def _property_defs(self, hs_type: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        if fresh or hs_type not in self._defs:
            payload = self._call("GET", f"{PROPERTIES}/{hs_type}")
            self._defs[hs_type] = {p["name"]: p for p in payload.get("results") or [] if p.get("name")}
        return self._defs[hs_type]

    def _wanted(self, hs_type: str) -> list[str]:
        """Every visible property, unless the list would overflow a GET URL: then the core ones plus custom."""
        defs = self._property_defs(hs_type)
        names = sorted(n for n, d in defs.items() if not d.get("hidden"))
        if len(",".join(names)) > MAX_PROPERTY_QUERY:
            custom = sorted(n for n, d in defs.items() if not d.get("hubspotDefined") and not d.get("hidden"))
            names = [n for n in CORE_PROPERTIES[hs_type] if n in defs] + custom
        return names

    def list_fields(self, object_type: str) -> list[FieldInfo]:
        defs = self._property_defs(HS_TYPE[object_type])
        return [FieldInfo(name, d.get("label") or name, PROPERTY_KIND.get(d.get("type") or "", "string"),
                          custom=not d.get("hubspotDefined")) for name, d in defs.items() if not d.get("hidden")]

    def default_mapping(self) -> dict[str, dict[str, str]]:
        """Canonical -> HubSpot property. Companies have no standard tax ID or email: custom ones are found."""
        company = {"name": "name", "phone": "phone", "address_line1": "address", "address_line2": "address2",
                   "city": "city", "region": "state", "postal_code": "zip", "country": "country"}
        custom = [(n, d) for n, d in self._property_defs("companies").items() if not d.get("hubspotDefined")]
        for canonical, pattern in (("tax_id", r"\b(tax|vat|ust|btw|abn|ein|gst)\b|tax_?id|vat_?number"),
                                   ("email", r"e-?mail")):
            found = next((n for n, d in custom if re.search(pattern, f"{n.replace('_', ' ')} {d.get('label', '')}",
                                                            re.I)), None)
            if found:
                company[canonical] = found
        person = {"first_name": "firstname", "last_name": "lastname", "email": "email", "phone": "phone",
                  "address_line1": "address", "city": "city", "region": "state", "postal_code": "zip",
                  "country": "country"}
        return {"company": company, "person": person}

    # -- reading: the change feed ------------------------------------------------------------------
    def _read(self, hs_type: str, cursor: str | None, associations: Sequence[str] = ()) -> _Read:
        state = _Cursor.parse(cursor, hs_type)
        if state is None:
            return self._full(hs_type, associations)
        return self._incremental(hs_type, state)

    def _snapshot(self, hs_type: str) -> tuple[int, int]:
        """(live total, settled mark) as the search index holds them now."""
        page = self._search(hs_type, {"sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
                                      "properties": ["hs_lastmodifieddate"], "limit": 1})
        rows = page.get("results") or []
        newest = (_ms(rows[0].get("updatedAt")) or 0) if rows else 0
        return int(page.get("total") or 0), _settled(0, self._searched_at, newest)

    def _full(self, hs_type: str, associations: Sequence[str]) -> _Read:
        props = self._wanted(hs_type)
        total, settled = self._snapshot(hs_type)
        rows = self._list(hs_type, props, associations=associations)
        latest = {str(r["id"]): r for r in rows}
        seen = {rid: ms for rid, r in latest.items() if (ms := _ms(r.get("updatedAt")) or 0) > settled}
        return _Read(list(latest.values()), [], _Cursor(hs_type, settled, total, seen, props), True)

    def _incremental(self, hs_type: str, state: _Cursor) -> _Read:
        """Newest first down to the settled mark; the first page's total finds deletions."""
        sort = [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}]
        page = self._search(hs_type, {"sorts": sort, "properties": state.props, "limit": SEARCH_PAGE})
        searched_at = self._searched_at
        total = int(page.get("total") or 0)
        results = page.get("results") or []
        newest = _ms(results[0].get("updatedAt")) if results else None
        fetched = self._newer(hs_type, state, results)
        changed = {rid: r for rid, r in fetched.items() if state.seen.get(rid) != _ms(r.get("updatedAt"))}
        created = sum(1 for rid, r in changed.items()
                      if rid not in state.seen and (_ms(r.get("createdAt")) or 0) > state.w)
        deleted: list[str] = []
        for row in changed.values():  # merged-away records live on inside the survivor
            merged = (row.get("properties") or {}).get("hs_merged_object_ids") or ""
            deleted += [m for m in str(merged).split(";") if m and m not in changed and m not in deleted]
        if total < state.n + created:
            deleted += [i for i in self._archived_since(hs_type, state.w) if i not in deleted]
        settled = _settled(state.w, searched_at, newest)
        seen = {rid: ms for rid, ms in state.seen.items() if ms > settled}
        seen.update({rid: ms for rid, r in fetched.items() if (ms := _ms(r.get("updatedAt")) or 0) > settled})
        return _Read(list(changed.values()), deleted, _Cursor(hs_type, settled, total, seen, state.props), False)

    def _newer(self, hs_type: str, state: _Cursor, results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Every record modified after the settled mark, newest first, in windows of modification time
        (``hs_lastmodifieddate <= the oldest one seen``), so the 10,000-result cap is never reached. A full
        page that shares one modification time (a bulk edit or import) is read by (that time, ID) instead."""
        since = state.w
        sort = [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}]
        fetched: dict[str, dict[str, Any]] = {}
        while True:
            for row in results:
                if (_ms(row.get("updatedAt")) or 0) > since:
                    fetched.setdefault(str(row["id"]), row)
            if len(results) < SEARCH_PAGE:
                return fetched
            top, last = (_ms(results[0].get("updatedAt")) or 0), (_ms(results[-1].get("updatedAt")) or 0)
            if last <= since:
                return fetched
            below = "LTE"
            if top == last:  # a whole page at one time: read that time by ID, then go on below it
                for row in self._at(hs_type, last, state.props):
                    fetched.setdefault(str(row["id"]), row)
                below = "LT"
            filters = [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": str(since)},
                       {"propertyName": "hs_lastmodifieddate", "operator": below, "value": str(last)}]
            results = self._search(hs_type, {"filterGroups": [{"filters": filters}], "sorts": sort,
                                             "properties": state.props, "limit": SEARCH_PAGE}).get("results") or []

    def _at(self, hs_type: str, stamp: int, props: list[str]) -> list[dict[str, Any]]:
        """Every record modified at exactly ``stamp`` (ms), by ascending ID: (time, ID) is the keyset."""
        out: list[dict[str, Any]] = []
        after_id = 0
        while True:
            filters = [{"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(stamp)},
                       {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)}]
            rows = self._search(hs_type, {"filterGroups": [{"filters": filters}],
                                          "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                                          "properties": props, "limit": SEARCH_PAGE}).get("results") or []
            out += rows
            if len(rows) < SEARCH_PAGE:
                return out
            after_id = int(rows[-1]["id"])

    def _archived_since(self, hs_type: str, since: int) -> list[str]:
        rows = self._list(hs_type, ["hs_object_id"], archived=True)
        return [str(r["id"]) for r in rows if (_ms(r.get("archivedAt")) or 0) >= since]

    # -- reading: companies and people -------------------------------------------------------------
    def _to_record(self, object_type: str, row: dict[str, Any], company_id: str | None = None) -> CrmRecord:
        return CrmRecord(object_type=object_type, id=str(row["id"]),  # type: ignore[arg-type]
                         properties=dict(row.get("properties") or {}), updated_at=_datetime(row.get("updatedAt")),
                         archived=bool(row.get("archived")), company_id=company_id)

    @staticmethod
    def _v3_primary(row: dict[str, Any], to_type: str, primary_name: str) -> str | None:
        links = (((row.get("associations") or {}).get(to_type) or {}).get("results")) or []
        chosen = next((a for a in links if a.get("type") == primary_name), None) or (links[0] if links else None)
        return str(chosen["id"]) if chosen else None

    def _primary_companies(self, hs_type: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        primary_id = PRIMARY[(hs_type, "companies")][0]
        out = {}
        for rid, links in self._associations(hs_type, "companies", ids).items():
            chosen = next((to for to, types in links if primary_id in types), None) or (links[0][0] if links else None)
            if chosen:
                out[rid] = chosen
        return out

    def read_records(self, object_type: str, cursor: str | None) -> Changes[CrmRecord]:
        hs_type = HS_TYPE[object_type]
        if object_type == "deal":
            raise ValueError("Deals are read with read_deals().")
        before = self.api.request_count
        person = object_type == "person"
        read = self._read(hs_type, cursor, associations=("companies",) if person else ())
        companies: dict[str, str] = {}
        if person and read.full:
            primary = PRIMARY[("contacts", "companies")][1]
            companies = {str(r["id"]): c for r in read.rows if (c := self._v3_primary(r, "companies", primary))}
        elif person:
            companies = self._primary_companies("contacts", [str(r["id"]) for r in read.rows])
        records = [self._to_record(object_type, r, companies.get(str(r["id"])) if person else None)
                   for r in read.rows]
        return Changes(records, read.cursor.dump(), read.deleted, full=read.full,
                       requests=self.api.request_count - before)

    def sample_records(self, object_type: str, limit: int) -> list[CrmRecord]:
        """Up to ``limit`` live records (at most one page of 100) in one v3 list request.

        The list leaves archived records out unless asked; a contact's primary company comes in the
        same answer through ``associations=companies``, as on a full read.
        """
        if object_type == "deal":
            raise ValueError("Deals are read with read_deals().")
        if limit <= 0:
            return []
        hs_type = HS_TYPE[object_type]
        person = object_type == "person"
        params: dict[str, Any] = {"limit": min(limit, PAGE), "properties": ",".join(self._wanted(hs_type))}
        if person:
            params["associations"] = "companies"
        rows = self._call("GET", f"{OBJECTS}/{hs_type}", params=params).get("results") or []
        primary = PRIMARY[("contacts", "companies")][1]
        return [self._to_record(object_type, r, self._v3_primary(r, "companies", primary) if person else None)
                for r in rows[:limit] if not r.get("archived")]

    def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]:
        if not ids:
            return []
        hs_type = HS_TYPE[object_type]
        rows = self._batch_read(hs_type, ids, self._wanted(hs_type))
        companies = self._primary_companies(hs_type, [str(r["id"]) for r in rows]) if object_type == "person" else {}
        by_id = {str(r["id"]): r for r in rows}
        order = [str(i) for i in ids if str(i) in by_id] + [i for i in by_id if i not in {str(x) for x in ids}]
        return [self._to_record(object_type, by_id[i], companies.get(i)) for i in order]

    # -- writing -------------------------------------------------------------------------------------
    def update_records(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Creates through batch/create, updates through batch/update, 100 at a time, per object type."""
        results: list[WriteResult | None] = [None] * len(writes)
        for object_type in ("company", "person", "deal"):
            mine = [(n, w) for n, w in enumerate(writes) if w.object_type == object_type]
            creates = [(n, w) for n, w in mine if w.id is None]
            updates = [(n, w) for n, w in mine if w.id is not None]
            for start in range(0, len(creates), BATCH):
                self._create_chunk(HS_TYPE[object_type], creates[start:start + BATCH], results)
            for start in range(0, len(updates), BATCH):
                self._update_chunk(HS_TYPE[object_type], updates[start:start + BATCH], results)
        return [r if r is not None else WriteResult(w.key, w.id, error=ConnectorError(
            "HubSpot did not confirm this write.", provider="hubspot")) for r, w in zip(results, writes, strict=True)]

    def update_deals(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return self.update_records([w if w.object_type == "deal" else RecordWrite(w.key, "deal", w.id, w.properties)
                                    for w in writes])

    def _guard(self, items: list[tuple[int, RecordWrite]], results: list[WriteResult | None],
               send: Callable[[list[tuple[int, RecordWrite]]], None]) -> None:
        """Send a chunk; when HubSpot refuses the whole batch for one input, split it to find which."""
        try:
            send(items)
        except AuthExpired:
            raise
        except RateLimited as exc:
            if exc.daily:
                raise
            for n, w in items:
                results[n] = WriteResult(w.key, w.id, error=exc)
        except (Conflict, ValidationRejected) as exc:
            if len(items) == 1:
                n, w = items[0]
                results[n] = WriteResult(w.key, w.id, error=exc)
                return
            mid = len(items) // 2
            self._guard(items[:mid], results, send)
            self._guard(items[mid:], results, send)
        except ConnectorError as exc:
            for n, w in items:
                results[n] = WriteResult(w.key, w.id, error=exc)

    def _create_chunk(self, hs_type: str, items: list[tuple[int, RecordWrite]],
                      results: list[WriteResult | None]) -> None:
        def send(part: list[tuple[int, RecordWrite]]) -> None:
            wired = [{k: _wire(v) for k, v in w.properties.items()} for _, w in part]
            payload = self._call("POST", f"{OBJECTS}/{hs_type}/batch/create", idempotent=False, body={
                "inputs": [{"properties": props, "associations": [], "objectWriteTraceId": w.key[:64]}
                           for props, (_, w) in zip(wired, part, strict=True)]})
            rows = list(payload.get("results") or [])
            # Results are matched to inputs by their values (HubSpot does not promise input order).
            for (n, w), props in zip(part, wired, strict=True):
                row = next((r for r in rows if all(_same(v, (r.get("properties") or {}).get(k))
                                                   for k, v in props.items())), None)
                if row is None and rows:
                    row = rows[0]
                if row is None:
                    continue
                rows.remove(row)
                results[n] = WriteResult(w.key, str(row["id"]), record=self._write_record(w, row))

        self._guard(items, results, send)

    def _update_chunk(self, hs_type: str, items: list[tuple[int, RecordWrite]],
                      results: list[WriteResult | None]) -> None:
        def send(part: list[tuple[int, RecordWrite]]) -> None:
            payload = self._call("POST", f"{OBJECTS}/{hs_type}/batch/update", idempotent=True, body={
                "inputs": [{"id": str(w.id), "properties": {k: _wire(v) for k, v in w.properties.items()}}
                           for _, w in part]})
            by_id = {str(r["id"]): r for r in payload.get("results") or []}
            missing: set[str] = set()
            for err in payload.get("errors") or []:
                if (err or {}).get("category") == "OBJECT_NOT_FOUND":
                    missing.update(str(i) for i in ((err.get("context") or {}).get("ids") or []))
            for n, w in part:
                row = by_id.get(str(w.id))
                if row is not None:
                    results[n] = WriteResult(w.key, str(w.id), record=self._write_record(w, row))
                elif str(w.id) in missing:
                    results[n] = WriteResult(w.key, w.id, error=NotFound(
                        f"HubSpot has no {w.object_type} {w.id} (deleted or merged?).", provider="hubspot",
                        status=404, code="OBJECT_NOT_FOUND"))

        self._guard(items, results, send)

    def _write_record(self, write: RecordWrite, row: dict[str, Any]) -> CrmRecord | None:
        if write.object_type == "deal":
            return None
        return self._to_record(write.object_type, row)

    # -- deals -------------------------------------------------------------------------------------
    def read_deals(self, cursor: str | None) -> Changes[Deal]:
        before = self.api.request_count
        read = self._read("deals", cursor, associations=("companies", "contacts"))
        ids = [str(r["id"]) for r in read.rows]
        self._pipelines = None  # stage metadata is read fresh for every batch of changed deals
        companies: dict[str, str] = {}
        contacts: dict[str, list[str]] = {}
        if ids and read.full:
            for row in read.rows:
                rid = str(row["id"])
                company = self._v3_primary(row, "companies", PRIMARY[("deals", "companies")][1])
                if company:
                    companies[rid] = company
                links = (((row.get("associations") or {}).get("contacts") or {}).get("results")) or []
                contacts[rid] = sorted({str(a["id"]) for a in links}, key=int)
        elif ids:
            companies = self._primary_companies("deals", ids)
            contacts = {rid: sorted({to for to, _ in links}, key=int)
                        for rid, links in self._associations("deals", "contacts", ids).items()}
        lines = self._deal_lines(ids)
        deals = [self._to_deal(r, companies.get(str(r["id"])), contacts.get(str(r["id"]), []),
                               lines.get(str(r["id"]), [])) for r in read.rows]
        return Changes(deals, read.cursor.dump(), read.deleted, full=read.full,
                       requests=self.api.request_count - before)

    def _deal_lines(self, deal_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not deal_ids:
            return {}
        links = self._associations("deals", "line_items", deal_ids)
        line_ids = [to for group in links.values() for to, _ in group]
        rows = {str(r["id"]): r for r in self._batch_read("line_items", line_ids, LINE_PROPERTIES)}
        missing = {str(p["properties"].get("hs_product_id")) for p in rows.values()
                   if (p.get("properties") or {}).get("hs_product_id") and not p["properties"].get("hs_sku")}
        missing -= set(self._products)
        if missing:
            for product in self._batch_read("products", missing, ["name", "hs_sku", "price"]):
                self._products[str(product["id"])] = product.get("properties") or {}
        return {deal: sorted((rows[to] for to, _ in group if to in rows), key=lambda r: int(r["id"]))
                for deal, group in links.items()}

    def _stage(self, pipeline: str | None, stage: str | None) -> dict[str, Any] | None:
        if self._pipelines is None:
            payload = self._call("GET", f"{PIPELINES}/deals")
            self._pipelines = {str(p["id"]): {str(s["id"]): s for s in p.get("stages") or []}
                               for p in payload.get("results") or []}
        return (self._pipelines.get(str(pipeline)) or {}).get(str(stage))

    def _is_won(self, props: dict[str, Any]) -> bool:
        """Closed with probability 1.0 in the stage's metadata; the stage's label never matters."""
        stage = self._stage(props.get("pipeline"), props.get("dealstage"))
        if stage is None:
            return props.get("hs_is_closed_won") == "true"
        meta = stage.get("metadata") or {}
        probability = _dec(meta.get("probability"))
        return str(meta.get("isClosed")).lower() == "true" and probability is not None and probability == 1

    def _to_deal(self, row: dict[str, Any], company: str | None, contacts: list[str],
                 lines: list[dict[str, Any]]) -> Deal:
        props = dict(row.get("properties") or {})
        closed = _datetime(props.get("closedate"))
        items = []
        for line in lines:
            p = line.get("properties") or {}
            quantity = _dec(p.get("quantity"))
            quantity = Decimal(1) if quantity is None else quantity  # a typed 0 stays 0, never 1
            price = _dec(p.get("price")) or Decimal(0)
            percent = _dec(p.get("hs_discount_percentage"))
            if percent is None:
                unit_discount = _dec(p.get("discount")) or Decimal(0)
                percent = (unit_discount * 100 / price).quantize(Decimal("0.000001")) if price and unit_discount \
                    else Decimal(0)
            product = self._products.get(str(p.get("hs_product_id"))) or {}
            name = p.get("name") or product.get("name") or ""
            description = f"{name} – {p['description']}" if p.get("description") else name
            items.append(LineItem(description=description, quantity=_plain(quantity), unit_price=_plain(price),
                                  discount_percent=_plain(percent), sku=p.get("hs_sku") or product.get("hs_sku"),
                                  product_name=name or None, tax_code=p.get("hs_tax_rate_group_id") or None,
                                  id=str(line["id"])))
        return Deal(id=str(row["id"]), name=props.get("dealname") or "", won=self._is_won(props),
                    currency=props.get("deal_currency_code") or self._currency(), amount=_dec(props.get("amount")),
                    close_date=closed.date() if closed else None, company_id=company, contact_ids=tuple(contacts),
                    line_items=tuple(items), properties=props, updated_at=_datetime(row.get("updatedAt")),
                    archived=bool(row.get("archived")))

    def ensure_deal_fields(self, fields: Sequence[FieldInfo]) -> dict[str, str]:
        """Create the missing deal properties (one batch request); returns our name -> property name."""
        defs = self._property_defs("deals", fresh=True)
        out: dict[str, str] = {}
        missing: list[tuple[FieldInfo, str]] = []
        for info in fields:
            name = _property_name(info.name)
            if name in defs:
                out[info.name] = name
            else:
                missing.append((info, name))
        if missing:
            inputs = []
            for info, name in missing:
                kind, field_type = NEW_PROPERTY.get(info.type, ("string", "text"))
                prop: dict[str, Any] = {"name": name, "label": info.label, "type": kind, "fieldType": field_type,
                                        "groupName": "dealinformation",
                                        "description": "Written by Crossledger from the accounting system."}
                if kind == "bool":
                    prop["options"] = [{"label": "Yes", "value": "true", "hidden": False, "displayOrder": 0},
                                       {"label": "No", "value": "false", "hidden": False, "displayOrder": 1}]
                inputs.append(prop)
            try:
                payload = self._call("POST", f"{PROPERTIES}/deals/batch/create", body={"inputs": inputs})
                for prop in payload.get("results") or []:
                    defs[prop["name"]] = prop
            except Conflict:
                defs = self._property_defs("deals", fresh=True)  # created meanwhile by another run
            for info, name in missing:
                if name not in defs:
                    raise ValidationRejected(f"HubSpot did not create the deal property {name}.", field=name,
                                             provider="hubspot")
                out[info.name] = name
        return out

    def close(self) -> None:
        self.api.close()
