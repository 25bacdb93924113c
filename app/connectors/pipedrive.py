"""Pipedrive CRM connector: organizations and persons, deals with their products, custom fields.

Records are read with the v2 API (cursor paging, ``sort_by=update_time``); changes after the first
read come from v1 ``/recents``, the one feed that also shows deletions, so an incremental read with
nothing changed costs one request. Custom fields are keyed by 40-character hashes that differ per
company, so they are always resolved through the *Fields endpoints, never hard-coded. A deal is won
when its ``status`` is ``won`` (Pipedrive keeps won/lost as a status, not a stage).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import httpx

from app.connectors import hosts, oauth
from app.connectors.base import (
    Changes,
    Connection,
    FieldInfo,
    Limits,
    RecordWrite,
    WriteResult,
    cursor_fields,
    cursor_text,
)
from app.connectors.crm_fates import PipedriveLifecycle
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    ConnectorError,
    NotFound,
    RateLimited,
    TransportError,
    ValidationRejected,
)
from app.connectors.http import RateLimiter, make_api_client, redact
from app.connectors.pipedrive_tokens import daily_tokens, token_cost
from app.connectors.registry import ProviderInfo
from app.connectors.tokens import Tokens, TokenStore
from app.domain.models import CrmRecord, Deal, LineItem
from app.domain.money import decimal_or_none as _dec
from app.domain.money import plain as _plain

PROVIDER = ProviderInfo(
    name="pipedrive",
    kind="crm",
    label="Pipedrive",
    default_base_url="https://api.pipedrive.com",
    default_auth_url="https://oauth.pipedrive.com",
    needs_client_secret=True,
    web_url="https://app.pipedrive.com",
)

V1, V2 = "/api/v1", "/api/v2"
PAGE = 500  # v2 and v1 lists allow limit <= 500
IDS_MAX = 100  # ids= and deal_ids= take at most 100 ids
OVERLAP = 5  # seconds re-read before the watermark; the cursor's `seen` map drops what we already have
SLACK = 0.1  # seconds added to Pipedrive's 2 s windows so our clock and theirs never disagree at the edge
LONG_WAIT = 60.0  # a Retry-After beyond this is the daily token budget, not the 2-second burst window
HASH_RE = re.compile(r"^[0-9a-f]{40}$")
ADDRESS_PARTS = ("country", "admin_area_level_1", "admin_area_level_2", "locality", "sublocality", "route",
                 "street_number", "subpremise", "postal_code")
ENTITY = {"company": "organizations", "person": "persons", "deal": "deals"}
RECENT_ITEM = {"company": "organization", "person": "person", "deal": "deal"}
FIELDS_PATH = {"organizations": "organizationFields", "persons": "personFields", "deals": "dealFields"}
ADDRESS_KEY = {"organizations": "address", "persons": "postal_address"}
WEB_PATH = {"company": "organization", "person": "person", "deal": "deal"}

# Standard fields a write may set, per entity (the v2 PATCH schemas), and which of them are integers.
WRITABLE = {
    "persons": {"name", "owner_id", "org_id", "visible_to", "notes", "birthday", "job_title", "marketing_status"},
    "organizations": {"name", "owner_id", "visible_to", "website", "linkedin", "industry", "annual_revenue",
                      "employee_count"},
    "deals": {"title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency", "status",
              "probability", "lost_reason", "visible_to", "close_time", "won_time", "lost_time",
              "expected_close_date", "is_archived", "is_deleted"},
}
INTEGER_FIELDS = {"owner_id", "org_id", "person_id", "pipeline_id", "stage_id", "visible_to", "industry",
                  "annual_revenue", "employee_count"}
NUMBER_FIELDS = {"value", "probability"}
REQUIRED_TEXT = {"name", "title"}
FIELD_TYPE_FOR = {"string": "varchar", "text": "text", "number": "double", "money": "monetary", "date": "date",
                  "url": "varchar", "phone": "phone"}


def oauth_config(conn: Connection, client_secret: str | None) -> oauth.OAuthConfig:
    """Pipedrive's OAuth: scopes live on the app (not the URL), client secret by HTTP Basic."""
    root = (conn.auth_url or PROVIDER.default_auth_url).rstrip("/")
    return oauth.OAuthConfig(
        provider="pipedrive",
        authorize_url=f"{root}/oauth/authorize",
        token_url=f"{root}/oauth/token",
        client_id=conn.client_id,
        client_secret=client_secret,
        scopes=(),
        pkce=True,  # not documented by Pipedrive (sent anyway); the secret is what it checks
        secret_in_basic_auth=True,
    )


def finish_connect(conn: Connection, flow: oauth.FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """Every OAuth call goes to the company's own ``api_domain``; name the connection after the company."""
    api_domain = flow.token_body.get("api_domain")
    if api_domain:
        if not hosts.from_provider("pipedrive", str(api_domain), (conn.base_url, conn.auth_url)):
            raise hosts.UntrustedHost(f"The sign-in named a company address that is not Pipedrive's ({api_domain}), "
                                      "so it was refused. Connect again.", provider="pipedrive")
        conn.base_url = str(api_domain).rstrip("/")
    _name_company(conn, tokens, transport)


def finish_token(conn: Connection, tokens: TokenStore, transport: httpx.BaseTransport | None) -> None:
    """A personal API token (Settings → Personal preferences → API): sent as ``x-api-token`` to
    api.pipedrive.com; users/me is the one read that checks it and names the company."""
    conn.extra["auth"] = "access_token"
    _name_company(conn, tokens, transport)


def _name_company(conn: Connection, tokens: TokenStore, transport: httpx.BaseTransport | None) -> None:
    connector = Connector(conn, tokens, transport=transport)
    try:
        me = connector._me()
        seats = connector.active_seats()
    finally:
        connector.close()
    if seats:
        conn.extra["seats"] = seats
    conn.tenant_id = str(me.get("company_id")) if me.get("company_id") is not None else None
    conn.label = me.get("company_name") or conn.label
    if me.get("company_domain"):
        conn.extra["company_domain"] = me["company_domain"]


# -- small conversions ------------------------------------------------------------------------

def _epoch(text: str | None) -> int | None:
    """v2 '2026-05-01T09:30:12Z' or v1 '2026-05-01 09:30:12' (both UTC) -> epoch seconds."""
    if not text:
        return None
    text = text.strip().replace(" ", "T").replace("Z", "+00:00")
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _v1_stamp(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _datetime(text: str | None) -> dt.datetime | None:
    epoch = _epoch(text)
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC) if epoch is not None else None


def _wire(obj: Any) -> Any:
    """Decimals -> JSON numbers for the request body.

    Pipedrive stores these as doubles; a value with more digits than a double keeps exactly is
    refused here rather than silently rounded (the shared client has no raw-body option).
    """
    if isinstance(obj, Decimal):
        if obj == obj.to_integral_value() and abs(obj) < 2**53:
            return int(obj)
        number = float(obj)
        if Decimal(repr(number)) != obj:
            raise ValidationRejected(f"{obj} has more digits than Pipedrive can store.", provider="pipedrive")
        return number
    if isinstance(obj, dict):
        return {k: _wire(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_wire(v) for v in obj]
    return obj


def _jsonable(value: Any) -> Any:
    """Properties go into the store's JSON columns: Decimal as str."""
    if isinstance(value, Decimal):
        return str(_plain(value))
    return value


def _primary(items: Any) -> str | None:
    if not isinstance(items, list):
        return None
    chosen = next((i for i in items if isinstance(i, dict) and i.get("primary") and i.get("value")), None)
    chosen = chosen or next((i for i in items if isinstance(i, dict) and i.get("value")), None)
    return chosen.get("value") if chosen else None


def _street(address: dict[str, Any]) -> str | None:
    """One street line from Pipedrive's geocoded parts (number first, as most of our data writes it)."""
    parts = [address.get("street_number"), address.get("route")]
    return " ".join(str(p) for p in parts if p) or None


def _format_address(address: dict[str, Any]) -> str | None:
    town = " ".join(p for p in (address.get("postal_code"), address.get("locality")) if p)
    parts = [p for p in (_street(address), address.get("subpremise"), town, address.get("admin_area_level_1"),
                         address.get("country")) if p]
    return ", ".join(parts) or None


def _flatten(rec: dict[str, Any]) -> dict[str, Any]:
    """A v2 record -> flat properties named the way Pipedrive's v1 API and field list name them.

    Address objects become ``address``/``address_<part>`` (plus ``address_street``, number and
    route in one line), email/phone arrays their primary value, custom fields sit at the root
    under their hash (monetary ones with a ``<hash>_currency`` sibling, as in v1).
    """
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key == "custom_fields" and isinstance(value, dict):
            for ckey, cval in value.items():
                if isinstance(cval, dict) and "currency" in cval:
                    out[ckey], out[f"{ckey}_currency"] = _jsonable(cval.get("value")), cval.get("currency")
                elif isinstance(cval, dict):
                    out[ckey] = cval.get("value")
                    for part in ADDRESS_PARTS:
                        out[f"{ckey}_{part}"] = cval.get(part)
                elif isinstance(cval, list):
                    out[ckey] = ",".join(str(v) for v in cval)
                else:
                    out[ckey] = _jsonable(cval)
        elif key in ("emails", "phones"):
            out[key[:-1]] = _primary(value)
        elif key in ("address", "postal_address"):
            addr = value if isinstance(value, dict) else {}
            out[key] = addr.get("value")
            for part in ADDRESS_PARTS:
                out[f"{key}_{part}"] = addr.get(part)
            out[f"{key}_street"] = _street(addr)
        elif isinstance(value, (list, dict)):
            continue
        else:
            out[key] = _jsonable(value)
    return out


def _row_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Cursor:
    """Watermark (epoch s of the newest update_time seen) plus what we already hold near it."""

    def __init__(self, since: int | None, seen: dict[str, list[Any]] | None = None) -> None:
        self.since = since
        self.seen = seen or {}

    @classmethod
    def parse(cls, text: str | None) -> _Cursor | None:
        raw = cursor_fields(text)
        return None if raw is None else cls(raw.get("since"), raw.get("seen") or {})

    def dump(self) -> str:
        return cursor_text(since=self.since, seen=self.seen)

    def advance(self, seen: dict[str, list[Any]]) -> _Cursor:
        stamps = [v[0] for v in seen.values() if v[0] is not None]
        since = max([*stamps, *([self.since] if self.since is not None else [])], default=None)
        merged = {**self.seen, **seen}
        keep = {} if since is None else {k: v for k, v in merged.items() if v[0] is not None and
                                          v[0] >= since - OVERLAP}
        return _Cursor(since, keep)


class Connector(PipedriveLifecycle):
    """One Pipedrive company, over OAuth, through the shared ApiClient."""

    provider = "pipedrive"
    details_kind = "fields"  # what its ``details`` keep (app.ops.detail_cache)
    # 80 requests per 2 s is the smallest OAuth burst window (Essential plan); larger plans allow more.
    # Pipedrive has no batch create/update for records, so batch_max is 1.
    # Its daily allowance counts tokens, each call priced by its endpoint.
    limits = Limits(requests=80, window_seconds=2.0, batch_max=1, page_max=PAGE, concurrency=1, cap_unit="tokens")

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.tokens = tokens
        self._transport = transport
        # The company's daily token budget (plan × seats), spent at each endpoint's price.
        self.limits = dataclasses.replace(type(self).limits, daily_cap=daily_tokens(conn.extra),
                                          write_cost=token_cost("POST", f"{V2}/persons"))
        api_token = conn.extra.get("auth") == "access_token"  # a personal API token: its own header, no refresh
        self.api = make_api_client(conn, tokens, provider="pipedrive", limits=self.limits,
                                   refresh=None if api_token else self._refresh,
                                   default_base_url=PROVIDER.default_base_url, margin=SLACK, transport=transport,
                                   sleep=sleep, clock=clock, max_wait=LONG_WAIT,
                                   auth_scheme="" if api_token else "Bearer",
                                   auth_header="x-api-token" if api_token else "Authorization")
        self.api.cost = token_cost
        # Search has its own, tighter limit: 10 requests per 2 s per token.
        self._search_limiter = RateLimiter(10, 2.0 + SLACK, clock=clock, sleep=sleep)
        self._fields: dict[str, dict[str, dict[str, Any]]] = {}
        # Field definitions kept in the store for every process on this company (app.ops.detail_cache): an
        # idle sync then reads no *Fields list (20 tokens each). Read again on a full read, and as soon as a
        # record carries a custom field they do not know.
        self.details: Any = None
        self._kept: set[str] = set()  # entities whose definitions came from the store, not from Pipedrive
        self._products: dict[int, dict[str, Any]] = {}
        self._mapping: dict[str, dict[str, str]] | None = None
        self._recent_archived: set[str] = set()  # deals /recents reported as archived (read from /deals/archived)

    def _refresh(self, tokens: Tokens) -> Tokens:
        if not tokens.client_secret:
            raise AuthExpired("The Pipedrive sign-in expired and cannot be renewed without the app's client "
                              "secret. Reconnect Pipedrive to continue.", provider="pipedrive")
        return oauth.refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self._transport)

    # -- HTTP ---------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              idempotent: bool | None = None) -> dict[str, Any]:
        try:
            resp = self.api.request(method, path, params=params,
                                    json_body=_wire(body) if body is not None else None, idempotent=idempotent)
        except RateLimited as exc:
            if exc.retry_after is not None and exc.retry_after > LONG_WAIT:
                hours = exc.retry_after / 3600
                raise RateLimited(
                    f"Today's Pipedrive API tokens for this company are used up (scheduled syncs stop at four "
                    f"fifths of them); they renew in about {hours:.1f} h, at midnight UTC, and syncing continues then.",
                    retry_after=exc.retry_after, daily=True, provider="pipedrive", status=429) from exc
            raise
        try:
            payload = self.api.body(resp) if resp.content else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"Pipedrive sent an answer that could not be read (status {resp.status_code}).",
                                 provider="pipedrive", status=resp.status_code) from exc
        if resp.status_code >= 400:
            raise self._error(resp.status_code, payload, resp.text)
        if not isinstance(payload, dict):
            raise TransportError("Pipedrive sent an unexpected answer.", provider="pipedrive",
                                 status=resp.status_code)
        return payload

    @staticmethod
    def _error(status: int, payload: Any, text: str) -> ConnectorError:
        message = payload.get("error") if isinstance(payload, dict) else None
        message = str(message or redact(text[:200]) or f"HTTP {status}")
        code = payload.get("code") if isinstance(payload, dict) else None
        if status == 404:
            return NotFound(f"Pipedrive: {message}", provider="pipedrive", status=404, code=code)
        if status == 409:
            return Conflict(f"Pipedrive: {message}", provider="pipedrive", status=409, code=code)
        if status in (400, 422):
            m = re.search(r"(?:Validation failed: )?([\w.]+): ", message)
            field = m.group(1) if m else None
            if field and field.startswith("custom_fields."):
                field = field.split(".", 1)[1]
            return ValidationRejected(f"Pipedrive refused the change: {message}", field=field,
                                      provider="pipedrive", status=status, code=code)
        if status == 403:
            return ConnectorError(f"Pipedrive denied access ({message}). Reconnect Pipedrive with an app that has "
                                  "the contacts, deals, products, fields and recents permissions.",
                                  provider="pipedrive", status=403, code=code or "forbidden")
        if status == 402:
            return ConnectorError(f"Pipedrive: {message} (the company's plan does not allow this).",
                                  provider="pipedrive", status=402, code=code)
        return ConnectorError(f"Pipedrive: {message}", provider="pipedrive", status=status, code=code)

    def _list(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of a v2 cursor list."""
        out: list[dict[str, Any]] = []
        query = {**params, "limit": PAGE}
        while True:
            payload = self._call("GET", path, params=query)
            out += payload.get("data") or []
            cursor = (payload.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return out
            query = {**query, "cursor": cursor}

    def _list_v1(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a v1 start/limit list (fields put the paging in additional_data or its pagination)."""
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            payload = self._call("GET", path, params={**(params or {}), "start": start, "limit": PAGE})
            out += payload.get("data") or []
            extra = payload.get("additional_data") or {}
            paging = extra.get("pagination") or extra
            if not paging.get("more_items_in_collection"):
                return out
            start = int(paging.get("next_start") or start + PAGE)

    def _by_ids(self, path: str, ids: Iterable[str], extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = sorted({str(i) for i in ids}, key=int)
        out: list[dict[str, Any]] = []
        for start in range(0, len(wanted), IDS_MAX):
            out += self._list(path, {**(extra or {}), "ids": ",".join(wanted[start:start + IDS_MAX])})
        return out

    def _me(self) -> dict[str, Any]:
        return self._call("GET", f"{V1}/users/me").get("data") or {}

    def active_seats(self) -> int | None:
        """The company's active users: the seats its daily token budget is counted by (None: not readable,
        an app without the users:read scope)."""
        try:
            users = self._call("GET", f"{V1}/users").get("data") or []
        except ConnectorError:
            return None
        return sum(1 for u in users if isinstance(u, dict) and u.get("active_flag")) or None

    # -- protocol: metadata ---------------------------------------------------------------------
    def company_name(self) -> str:
        return str(self._me().get("company_name") or "")

    def _field_defs(self, entity: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        if not fresh and entity not in self._fields and self.details is not None:
            kept = self.details.load([entity]).get(entity)
            try:
                if kept is not None:
                    self._fields[entity] = json.loads(kept[1])
                    self._kept.add(entity)
            except ValueError:
                pass  # a damaged copy: read them from Pipedrive
        if fresh or entity not in self._fields:
            rows = self._list_v1(f"{V1}/{FIELDS_PATH[entity]}")
            self._fields[entity] = {r["key"]: r for r in rows if r.get("key")}
            self._kept.discard(entity)
            if self.details is not None:
                self.details.save([(entity, "", json.dumps(self._fields[entity]))])
        return self._fields[entity]

    def _fields_current(self, entity: str, rows: Sequence[dict[str, Any]], *, full: bool) -> None:
        """Kept definitions are read again on a full read, or when a record has a custom field they lack
        (one was added in Pipedrive since); the default mapping is then worked out again."""
        if entity not in self._kept:
            return
        known = self._fields[entity]
        if full or any(k not in known for r in rows for k in (r.get("custom_fields") or {})):
            self._field_defs(entity, fresh=True)
            self._mapping = None

    def list_fields(self, object_type: str) -> list[FieldInfo]:
        entity = ENTITY[object_type]
        out: list[FieldInfo] = []
        for key, field in self._field_defs(entity).items():
            ftype = field.get("field_type") or "varchar"
            custom = bool(HASH_RE.match(key))
            out.append(FieldInfo(key, field.get("name") or key, _field_kind(ftype), custom))
            if ftype == "address":
                out.append(FieldInfo(f"{key}_street", f"Street of {field.get('name')}", "string", custom))
                for sub in field.get("subfields") or []:
                    if sub.get("key") and sub["key"] != f"{key}_formatted_address":
                        out.append(FieldInfo(sub["key"], sub.get("name") or sub["key"], "string", custom))
            if ftype == "monetary" and custom:
                out.append(FieldInfo(f"{key}_currency", f"Currency of {field.get('name')}", "string", True))
        return out

    def default_mapping(self) -> dict[str, dict[str, str]]:
        """Canonical -> Pipedrive field; the organization's tax ID/email/phone are custom fields found by name."""
        if self._mapping is None:
            company = {"name": "name", "address_line1": "address_street", "address_line2": "address_subpremise",
                       "city": "address_locality", "region": "address_admin_area_level_1",
                       "postal_code": "address_postal_code", "country": "address_country"}
            custom = [(k, f) for k, f in self._field_defs("organizations").items() if HASH_RE.match(k)]
            for canonical, test in (
                ("tax_id", lambda f: re.search(r"\b(tax|vat|ust|btw|abn|ein|gst)\b", f["name"], re.I)),
                ("email", lambda f: re.search(r"e-?mail", f["name"], re.I)),
                ("phone", lambda f: f.get("field_type") == "phone" or re.search(r"phone|tel", f["name"], re.I)),
            ):
                key = next((k for k, f in custom if test(f)), None)
                if key:
                    company[canonical] = key
            person = {"name": "name", "email": "email", "phone": "phone",
                      "address_line1": "postal_address_street", "city": "postal_address_locality",
                      "region": "postal_address_admin_area_level_1", "postal_code": "postal_address_postal_code",
                      "country": "postal_address_country"}
            self._mapping = {"company": company, "person": person}
        return {k: dict(v) for k, v in self._mapping.items()}

    def record_url(self, object_type: str, record_id: str) -> str:
        domain = self.conn.extra.get("company_domain")
        if not domain:
            domain = self._me().get("company_domain") or "app"
            self.conn.extra["company_domain"] = domain
        return f"https://{domain}.pipedrive.com/{WEB_PATH.get(object_type, object_type)}/{record_id}"

    # -- protocol: reading records -----------------------------------------------------------
    def _to_record(self, object_type: str, rec: dict[str, Any]) -> CrmRecord:
        org_id = rec.get("org_id") if object_type == "person" else None
        return CrmRecord(object_type=object_type, id=str(rec["id"]), properties=_flatten(rec),  # type: ignore[arg-type]
                         updated_at=_datetime(rec.get("update_time")), archived=bool(rec.get("is_deleted")),
                         company_id=str(org_id) if org_id else None)

    def read_records(self, object_type: str, cursor: str | None) -> Changes[CrmRecord]:
        entity = ENTITY[object_type]
        before = self.api.request_count
        state = _Cursor.parse(cursor)
        if state is None:
            rows = self._list(f"{V2}/{entity}", {"sort_by": "update_time", "sort_direction": "asc"})
            self._fields_current(entity, rows, full=True)
            latest = {str(r["id"]): r for r in rows}  # a record edited mid-read shows up twice: keep the last
            seen = {rid: [_epoch(r.get("update_time")), None] for rid, r in latest.items()}
            new = _Cursor(None).advance(seen)
            records = [self._to_record(object_type, r) for r in latest.values()]
            return Changes(records, new.dump(), [], full=True, requests=self.api.request_count - before)
        changed, deleted, new = self._recents(object_type, state)
        rows = self._by_ids(f"{V2}/{entity}", changed) if changed else []
        self._fields_current(entity, rows, full=False)
        records = [self._to_record(object_type, r) for r in rows]
        return Changes(records, new.dump(), deleted, full=False, requests=self.api.request_count - before)

    def _recents(self, object_type: str, state: _Cursor) -> tuple[list[str], list[str], _Cursor]:
        """Ask /recents what changed since the watermark (minus the overlap); drop what the cursor holds.

        Records are told apart by update_time and a hash of their v1 body, so a second edit within
        the same second is still seen. Deleted records come back with active_flag false (deals:
        deleted), which is how deletions reach the sync.
        """
        since = (state.since or 0) - OVERLAP
        item = RECENT_ITEM[object_type]
        rows = self._list_v1(f"{V1}/recents", {"since_timestamp": _v1_stamp(max(since, 0)), "items": item})
        seen: dict[str, list[Any]] = {}
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.get("item") != item or not isinstance(row.get("data"), dict):
                continue
            rid = str(row.get("id") or row["data"].get("id"))
            seen[rid] = [_epoch(row["data"].get("update_time")), _row_hash(row["data"])]
            latest[rid] = row["data"]
        changed, deleted = [], []
        self._recent_archived = set()
        for rid, data in latest.items():
            before = state.seen.get(rid)
            if before and before[0] == seen[rid][0] and before[1] in (None, seen[rid][1]):
                continue
            if _is_gone(object_type, data):
                deleted.append(rid)
            else:
                changed.append(rid)
                if data.get("is_archived"):
                    self._recent_archived.add(rid)
        return changed, deleted, state.advance(seen)

    def sample_records(self, object_type: str, limit: int) -> list[CrmRecord]:
        """Up to ``limit`` live records (at most 500) in one v2 list request.

        v2 lists leave deleted records out; a person's organization is its ``org_id``, as on a full read.
        """
        if limit <= 0:
            return []
        payload = self._call("GET", f"{V2}/{ENTITY[object_type]}", params={"limit": min(limit, PAGE)})
        rows = payload.get("data") or []
        return [self._to_record(object_type, r) for r in rows[:limit] if not _is_gone(object_type, r)]

    def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]:
        if not ids:
            return []
        rows = self._by_ids(f"{V2}/{ENTITY[object_type]}", ids)
        by_id = {str(r["id"]): r for r in rows}
        return [self._to_record(object_type, by_id[i]) for i in ids if i in by_id]

    # -- protocol: writing records -----------------------------------------------------------
    def update_records(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """One request per record: Pipedrive has no batch create or update for persons, organizations or deals."""
        return [self._write_guarded(w) for w in writes]

    def update_deals(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """One PATCH per deal (no batch endpoint); custom fields go under ``custom_fields`` by hash."""
        return [self._write_guarded(w if w.object_type == "deal" else
                                    RecordWrite(w.key, "deal", w.id, w.properties)) for w in writes]

    def _write_guarded(self, write: RecordWrite) -> WriteResult:
        try:
            return self._write(write)
        except AuthExpired:
            raise
        except RateLimited as exc:
            if exc.daily:
                raise
            return WriteResult(write.key, write.id, error=exc)
        except ConnectorError as exc:
            return WriteResult(write.key, write.id, error=exc)

    def _write(self, write: RecordWrite) -> WriteResult:
        entity = ENTITY[write.object_type]
        props = dict(write.properties)
        current = None
        if write.id is not None and self._needs_current(entity, props):
            current = self._call("GET", f"{V2}/{entity}/{int(write.id)}").get("data") or {}
        body = self._body(entity, props, current, creating=write.id is None)
        if write.id is None:
            return self._create(write, entity, body)
        if not body:
            raise ValidationRejected("Nothing to change.", provider="pipedrive")
        payload = self._call("PATCH", f"{V2}/{entity}/{int(write.id)}", body=body, idempotent=True)
        return self._result(write, payload.get("data") or {})

    def _result(self, write: RecordWrite, data: dict[str, Any]) -> WriteResult:
        rid = str(data.get("id"))
        record: Any
        if write.object_type == "deal":
            record = self._to_deal(data, [])
        else:
            record = self._to_record(write.object_type, data)
        return WriteResult(write.key, rid, version=data.get("update_time"), record=record)

    def _create(self, write: RecordWrite, entity: str, body: dict[str, Any]) -> WriteResult:
        """Pipedrive accepts duplicates, so look before creating, and look again if the answer was lost."""
        probe = self._duplicate_probe(entity, body)
        if probe:
            hits = self._search(*probe)
            if hits:
                raise Conflict(f"A Pipedrive {entity[:-1]} with this {probe[1]} already exists (id {hits[0]}).",
                               existing_id=hits[0], provider="pipedrive", code="duplicate")
        try:
            payload = self._call("POST", f"{V2}/{entity}", body=body)
        except TransportError:
            hits = self._search(*probe) if probe else []
            if len(hits) == 1:
                data = self._call("GET", f"{V2}/{entity}/{int(hits[0])}").get("data") or {}
                return self._result(write, data)
            raise
        return self._result(write, payload.get("data") or {})

    @staticmethod
    def _duplicate_probe(entity: str, body: dict[str, Any]) -> tuple[str, str, str] | None:
        if entity == "persons":
            email = _primary(body.get("emails"))
            return ("persons", "email", email) if email else None
        if entity == "organizations" and body.get("name"):
            return ("organizations", "name", body["name"])
        return None

    def _search(self, entity: str, field: str, term: str) -> list[str]:
        self._search_limiter.acquire()
        payload = self._call("GET", f"{V2}/{entity}/search",
                             params={"term": term, "fields": field, "exact_match": "true", "limit": 10})
        items = (payload.get("data") or {}).get("items") or []
        return [str(i["item"]["id"]) for i in items if isinstance(i.get("item"), dict)]

    def _needs_current(self, entity: str, props: dict[str, Any]) -> bool:
        prefix = ADDRESS_KEY.get(entity)
        for key in props:
            if entity == "persons" and key in {"email", "phone", "first_name", "last_name"}:
                return True
            if prefix and (key == prefix or key.startswith(prefix + "_")):
                return True
            if (key.endswith("_currency") and HASH_RE.match(key[:40])) or (
                    HASH_RE.match(key) and f"{key}_currency" not in props and self._is_monetary(entity, key)):
                return True
        return False

    def _is_monetary(self, entity: str, key: str) -> bool:
        return (self._field_defs(entity).get(key) or {}).get("field_type") == "monetary"

    def _body(self, entity: str, props: dict[str, Any], current: dict[str, Any] | None, *,
              creating: bool) -> dict[str, Any]:
        """Flat provider fields (as read) -> a v2 request body."""
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        address: dict[str, Any] | None = None
        prefix = ADDRESS_KEY.get(entity)
        names: dict[str, Any] = {}
        for key, value in props.items():
            if HASH_RE.match(key[:40]) and (len(key) == 40 or key.endswith("_currency")):
                self._custom(entity, key, value, props, current, custom)
            elif entity == "persons" and key in ("email", "phone"):
                body[f"{key}s"] = _replace_primary((current or {}).get(f"{key}s"), value)
            elif entity == "persons" and key in ("first_name", "last_name"):
                names[key] = value
            elif prefix and (key == prefix or key.startswith(prefix + "_")):
                if address is None:
                    base = (current or {}).get(prefix) or {}
                    address = {part: base.get(part) for part in ADDRESS_PARTS}
                    address["value"] = base.get("value")
                _set_address(address, key[len(prefix):].lstrip("_") or "value", value)
            elif key in WRITABLE[entity]:
                body[key] = _standard(key, value)
            else:
                raise ValidationRejected(f"'{key}' is not a field Crossledger can write in Pipedrive.", field=key,
                                         provider="pipedrive")
        if names:
            cur = current or {}
            first = names.get("first_name", cur.get("first_name")) or ""
            last = names.get("last_name", cur.get("last_name")) or ""
            body.setdefault("name", " ".join(p for p in (first, last) if p))
        if address is not None:
            if not address.get("_value_set"):
                address["value"] = _format_address(address)
            address.pop("_value_set", None)
            clean = {k: v for k, v in address.items() if v not in (None, "")}
            body[prefix] = clean if clean.get("value") else None  # type: ignore[index]
        if custom:
            body["custom_fields"] = custom
        for key in REQUIRED_TEXT & body.keys():
            if not body[key]:
                raise ValidationRejected(f"Pipedrive needs a {key}; it cannot be cleared.", field=key,
                                         provider="pipedrive")
        if creating and entity in ("persons", "organizations") and not body.get("name"):
            raise ValidationRejected("A new Pipedrive record needs a name.", field="name", provider="pipedrive")
        if creating and entity == "deals" and not body.get("title"):
            raise ValidationRejected("A new Pipedrive deal needs a title.", field="title", provider="pipedrive")
        return body

    def _custom(self, entity: str, key: str, value: Any, props: dict[str, Any], current: dict[str, Any] | None,
                out: dict[str, Any]) -> None:
        """A custom field value in the shape v2 wants for its type (Pipedrive's "Custom fields" guide)."""
        base = key[:40]
        field = self._field_defs(entity).get(base)
        if field is None and entity in self._kept:  # the store's copy may be behind: ask Pipedrive once
            field = self._field_defs(entity, fresh=True).get(base)
        if field is None:
            raise ValidationRejected(f"Pipedrive has no {entity[:-1]} field {base}.", field=base,
                                     provider="pipedrive")
        ftype = field.get("field_type")
        if key.endswith("_currency"):
            if base in props:
                return  # handled with its amount
            amount = ((current or {}).get("custom_fields") or {}).get(base) or {}
            value, currency = amount.get("value"), value
        else:
            currency = props.get(f"{base}_currency")
        blank = value is None or value == "" or value == []
        if blank:
            out[base] = None
        elif ftype == "double":
            out[base] = _number(base, value)
        elif ftype == "monetary":
            if currency in (None, ""):
                currency = (((current or {}).get("custom_fields") or {}).get(base) or {}).get("currency")
            out[base] = {"value": _number(base, value), "currency": currency or self._default_currency()}
        elif ftype == "enum":
            out[base] = _option(field, value)
        elif ftype == "set":
            items = value if isinstance(value, list) else str(value).split(",")
            out[base] = [_option(field, v) for v in items if str(v).strip()] or None
        elif ftype in ("org", "people", "user", "int"):
            out[base] = int(value)
        elif ftype == "address":
            out[base] = {"value": str(value)}
        else:
            out[base] = str(value)

    def _default_currency(self) -> str:
        if "currency" not in self.conn.extra:
            self.conn.extra["currency"] = self._me().get("default_currency") or "EUR"
        return str(self.conn.extra["currency"])

    # -- protocol: deals -----------------------------------------------------------------------
    def read_deals(self, cursor: str | None) -> Changes[Deal]:
        before = self.api.request_count
        state = _Cursor.parse(cursor)
        if state is None:
            rows = self._list(f"{V2}/deals", {"sort_by": "update_time", "sort_direction": "asc"})
            rows += self._list(f"{V2}/deals/archived", {"sort_by": "update_time", "sort_direction": "asc"})
            self._fields_current("deals", rows, full=True)
            latest = {str(r["id"]): r for r in rows}
            new = _Cursor(None).advance({rid: [_epoch(r.get("update_time")), None] for rid, r in latest.items()})
            deals = self._deals_with_lines(list(latest.values()))
            return Changes(deals, new.dump(), [], full=True, requests=self.api.request_count - before)
        changed, deleted, new = self._recents("deal", state)
        archived = [i for i in changed if i in self._recent_archived]
        active = [i for i in changed if i not in self._recent_archived]
        rows = self._by_ids(f"{V2}/deals", active) if active else []
        rows += self._by_ids(f"{V2}/deals/archived", archived) if archived else []
        self._fields_current("deals", rows, full=False)
        deals = self._deals_with_lines(rows)
        return Changes(deals, new.dump(), deleted, full=False, requests=self.api.request_count - before)

    def _deals_with_lines(self, rows: list[dict[str, Any]]) -> list[Deal]:
        ids = [str(r["id"]) for r in rows]
        lines: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(ids), IDS_MAX):
            chunk = ids[start:start + IDS_MAX]
            for line in self._list(f"{V2}/deals/products", {"deal_ids": ",".join(chunk)}):
                lines.setdefault(int(line["deal_id"]), []).append(line)
        missing = {int(x["product_id"]) for group in lines.values() for x in group
                   if x.get("product_id") and int(x["product_id"]) not in self._products}
        if missing:
            for product in self._by_ids(f"{V2}/products", [str(m) for m in missing]):
                self._products[int(product["id"])] = product
        return [self._to_deal(r, lines.get(int(r["id"]), [])) for r in rows]

    def _to_deal(self, rec: dict[str, Any], lines: list[dict[str, Any]]) -> Deal:
        status = rec.get("status")
        won = status == "won"  # won is the deal's status in Pipedrive; stage names say nothing
        closed = rec.get("won_time") if won else rec.get("lost_time") if status == "lost" else None
        close_date = None
        if closed:
            stamp = _datetime(closed)
            close_date = stamp.date() if stamp else None
        elif rec.get("expected_close_date"):
            close_date = dt.date.fromisoformat(str(rec["expected_close_date"]))
        items = []
        for line in sorted(lines, key=lambda x: (x.get("order_nr") or 0, x["id"])):
            if line.get("is_enabled") is False:
                continue
            quantity = _dec(line.get("quantity")) or Decimal(0)
            price = _dec(line.get("item_price")) or Decimal(0)
            discount = _dec(line.get("discount")) or Decimal(0)
            if line.get("discount_type") == "amount" and discount:
                gross = quantity * price
                discount = _plain((discount * 100 / gross).quantize(Decimal("0.000001"))) if gross else Decimal(0)
            product = self._products.get(int(line.get("product_id") or 0)) or {}
            name = line.get("name") or product.get("name") or ""
            description = f"{name} – {line['comments']}" if line.get("comments") else name
            items.append(LineItem(description=description, quantity=_plain(quantity), unit_price=_plain(price),
                                  discount_percent=_plain(discount), sku=product.get("code") or None,
                                  product_name=name or None, tax_code=None, id=str(line["id"])))
        props = _flatten(rec)
        return Deal(
            id=str(rec["id"]), name=rec.get("title") or "", won=won, currency=rec.get("currency") or "",
            amount=_dec(rec.get("value")), close_date=close_date,
            company_id=str(rec["org_id"]) if rec.get("org_id") else None,
            contact_ids=(str(rec["person_id"]),) if rec.get("person_id") else (),
            line_items=tuple(items), properties=props, updated_at=_datetime(rec.get("update_time")),
            archived=bool(rec.get("is_archived")))

    def ensure_deal_fields(self, fields: Sequence[FieldInfo]) -> dict[str, str]:
        """Find our deal fields by name; create the missing ones through POST /v1/dealFields. The definitions
        are read from Pipedrive once in this connector's life (not from the store's copy: a field deleted
        there must be made again), then kept."""
        existing = self._field_defs("deals", fresh="deals" not in self._fields or "deals" in self._kept)
        by_name = {str(f.get("name") or "").casefold(): key for key, f in existing.items() if HASH_RE.match(key)}
        out: dict[str, str] = {}
        made = False
        for info in fields:
            key = by_name.get(info.label.casefold())
            if key is None:
                payload = self._call("POST", f"{V1}/dealFields", body={
                    "name": info.label, "field_type": FIELD_TYPE_FOR.get(info.type, "varchar")})
                created = payload.get("data") or {}
                key = created["key"]
                existing[key] = created
                by_name[info.label.casefold()] = key
                made = True
            out[info.name] = key
        if made and self.details is not None:  # the store's copy holds them too, for the next process
            self.details.save([("deals", "", json.dumps(existing))])
        return out

    def close(self) -> None:
        self.api.close()


# -- helpers for writes -------------------------------------------------------------------------

def _field_kind(ftype: str) -> str:
    if ftype in {"double", "monetary", "int"}:
        return "number"
    if ftype in {"date", "daterange"}:
        return "date"
    if ftype in {"enum", "set"}:
        return "enum"
    if ftype in {"varchar", "varchar_auto", "text", "phone", "address"}:
        return "string"
    return ftype


def _is_gone(object_type: str, data: dict[str, Any]) -> bool:
    if object_type == "deal":
        return bool(data.get("deleted")) or data.get("status") == "deleted"
    return data.get("active_flag") is False or bool(data.get("is_deleted"))


def _number(field: str, value: Any) -> Decimal:
    number = _dec(value)
    if number is None:
        raise ValidationRejected(f"'{value}' is not a number.", field=field, provider="pipedrive")
    return number


def _standard(key: str, value: Any) -> Any:
    if value == "":
        return None
    if value is None:
        return None
    if key in INTEGER_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ValidationRejected(f"'{value}' is not a valid {key}.", field=key, provider="pipedrive") from exc
    if key in NUMBER_FIELDS:
        return _number(key, value)
    if key in {"is_archived", "is_deleted"}:
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
    return value


def _option(field: dict[str, Any], value: Any) -> int:
    options = field.get("options") or []
    text = str(value).strip()
    for option in options:
        if str(option.get("id")) == text or str(option.get("label", "")).casefold() == text.casefold():
            return int(option["id"])
    raise ValidationRejected(f"'{value}' is not an option of the Pipedrive field '{field.get('name')}'.",
                             field=field.get("key"), provider="pipedrive")


def _replace_primary(items: Any, value: Any) -> list[dict[str, Any]]:
    """Change the primary email/phone, keeping the others; empty removes it."""
    items = [dict(i) for i in items or [] if isinstance(i, dict) and i.get("value")]
    keep = [{"value": i["value"], "primary": bool(i.get("primary")), "label": i.get("label") or "work"}
            for i in items]
    primary = next((i for i in keep if i["primary"]), keep[0] if keep else None)
    if value in (None, ""):
        if primary is not None:
            keep.remove(primary)
        if keep:
            keep[0]["primary"] = True
        return keep
    if primary is None:
        return [{"value": str(value), "primary": True, "label": "work"}]
    primary["value"], primary["primary"] = str(value), True
    return keep


def _set_address(address: dict[str, Any], part: str, value: Any) -> None:
    value = None if value == "" else value
    if part in ("value", "formatted_address"):
        address["value"] = value
        address["_value_set"] = True
    elif part == "street":
        address["route"], address["street_number"] = value, None
    elif part in ADDRESS_PARTS:
        address[part] = value
    else:
        raise ValidationRejected(f"Pipedrive addresses have no part '{part}'.", field=part, provider="pipedrive")
