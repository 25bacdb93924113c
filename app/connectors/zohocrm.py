"""Zoho CRM (REST API v8) as a CrmConnector: Accounts, Contacts, Deals with line items, custom fields.

What shapes this module (Zoho CRM API v8 docs, www.zoho.com/crm/developer/docs/api/v8/; our
schema of the part we use is tests/specs/zoho-crm/zoho-crm-v8.openapi.yaml):
- Data centres: the token response names ``api_domain`` (our ``conn.base_url``) and the OAuth callback
  names the ``accounts-server`` (our ``conn.auth_url``, where refreshes go). Refresh tokens never
  rotate. The header is ``Authorization: Zoho-oauthtoken``.
- Change feeds are COQL queries on ``Modified_Time`` paged by ``id`` (keyset: nothing is skipped when
  records change or vanish mid-read, unlike ``page`` offsets), 2,000 rows a call. The watermark is the
  server's ``Date`` at the first answer of a read, less a small overlap; rows already delivered are
  recognised by id, ``Modified_Time`` and a hash. An incremental read with nothing changed is one
  COQL call (204). Deletions come from ``/{Module}/deleted`` with ``If-Modified-Since``, asked at
  most every ``DELETED_EVERY`` seconds of server time so an idle poll stays at one request.
- Writes: 100 records per insert/update with per-record results in request order; Zoho checks
  duplicates itself (``DUPLICATE_DATA`` names the existing record). There is no idempotency key, so
  a create whose answer was lost is settled by looking the records up by their unique field.
  Updates go out with ``"trigger": []`` so write-backs fire no workflows (and no echo loops).
- Deals: won is the stage's ``forecast_type`` ("Closed Won") from the Stage field's metadata, never
  its name; line items come from the deal's subform (found through the fields API, columns by type).
- Credits: a 429 ``TOO_MANY_REQUESTS`` is retried (concurrency), unless ``X-API-CREDITS-REMAINING``
  says the day's credits are spent, which becomes a daily RateLimited.
- Money: JSON numbers parsed as Decimal and sent as exact JSON numbers, never floats.
"""

from __future__ import annotations

import datetime as dt
import email.utils
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
from app.connectors.crm_fates import ZohoCrmLifecycle
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    ConnectorError,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationRejected,
)
from app.connectors.http import make_api_client, redact
from app.connectors.registry import ProviderInfo
from app.connectors.tokens import Tokens, TokenStore
from app.domain.models import CrmRecord, Deal, LineItem
from app.domain.money import decimal_or_none as _dec
from app.domain.money import plain as _plain

PROVIDER = ProviderInfo(
    name="zohocrm",
    kind="crm",
    label="Zoho CRM",
    default_base_url="https://www.zohoapis.com",
    default_auth_url="https://accounts.zoho.com",
    needs_client_secret=True,
    web_url="https://crm.zoho.com",
)

API = "/crm/v8"
SCOPES = (
    "ZohoCRM.modules.accounts.ALL",
    "ZohoCRM.modules.contacts.ALL",
    "ZohoCRM.modules.deals.ALL",
    "ZohoCRM.modules.products.READ",  # product codes of deal line items
    "ZohoCRM.settings.fields.ALL",  # field metadata, stage forecast types, our deal fields
    "ZohoCRM.coql.READ",
    "ZohoCRM.org.READ",
)

MODULE = {"company": "Accounts", "person": "Contacts", "deal": "Deals"}
WEB_TAB = {"Accounts": "Accounts", "Contacts": "Contacts", "Deals": "Potentials"}
BATCH = 100  # records per insert/update
IDS_MAX = 100  # ids= on GET records, values in a COQL IN (...)
GET_FIELDS_MAX = 50  # fields= on GET records
COQL_PAGE = 2000
COQL_FIRST = 200  # an incremental read asks for 200 rows first: 1 credit instead of 3
COQL_FIELDS_MAX = 500
OVERLAP = 5.0  # seconds re-read before the watermark (second-precision stamps, clocks)
DELETED_EVERY = 300.0  # seconds of server time between two looks at the recycle bin
META_TTL = 3600.0  # field metadata is read again after an hour
DAILY_WAIT = 3600.0  # credits come back over a rolling 24 h; look again in an hour
NOT_SELECTABLE = {"subform", "multiselectlookup", "multiuserlookup", "fileupload", "imageupload",
                  "profileimage"}
NUMBER_TYPES = {"double", "currency", "percent", "decimal"}
EDITION_CREDITS = {"free": (5_000, 0, 5_000), "standard": (50_000, 250, 100_000),
                   "starter": (50_000, 250, 100_000), "professional": (50_000, 500, 3_000_000),
                   "enterprise": (50_000, 1_000, 5_000_000), "zohoone": (50_000, 1_000, 5_000_000),
                   "ultimate": (50_000, 2_000, None), "crmplus": (50_000, 2_000, None)}
EDITION_CONCURRENCY = {"free": 5, "standard": 10, "starter": 10, "professional": 15, "enterprise": 20,
                       "zohoone": 20, "ultimate": 25, "crmplus": 25}
# Our FieldInfo types -> Zoho data_type and the properties its create request needs.
FIELD_TYPE_FOR: dict[str, tuple[str, dict[str, Any]]] = {
    "string": ("text", {"length": 255}), "text": ("textarea", {}),
    "number": ("double", {"length": 16, "decimal_place": 2}), "money": ("currency", {"length": 16}),
    "date": ("date", {}), "url": ("website", {}), "phone": ("phone", {}), "boolean": ("boolean", {}),
}
_TAX_LABEL = re.compile(r"\b(tax|vat|ust|btw|abn|ein|gst|tin)\b|tax_?id|vat_?(no|number|id)", re.I)


# -- connecting -------------------------------------------------------------------------------

def oauth_config(conn: Connection, client_secret: str | None) -> oauth.OAuthConfig:
    """Sign in at the accounts server (Zoho moves the user to their DC); offline access for a refresh token."""
    root = (conn.auth_url or PROVIDER.default_auth_url).rstrip("/")
    return oauth.OAuthConfig(
        provider="Zoho CRM",
        authorize_url=f"{root}/oauth/v2/auth",
        token_url=f"{root}/oauth/v2/token",
        client_id=conn.client_id,
        client_secret=client_secret,
        scopes=SCOPES,
        pkce=True,
        extra_authorize={"access_type": "offline", "prompt": "consent"},
        scope_separator=",",
    )


def finish_connect(conn: Connection, flow: oauth.FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """Keep the DC's API domain and accounts server, then read the org: id, name, currency, edition."""
    hosts.take_data_centre("zohocrm", conn, flow.token_body, flow.callback)
    if flow.callback.get("location"):
        conn.extra["location"] = flow.callback["location"]
    connector = Connector(conn, tokens, transport=transport)
    try:
        org = connector.org(fresh=True)
    finally:
        connector.close()
    conn.tenant_id = str(org.get("id") or "") or None
    conn.label = org.get("company_name") or conn.label
    license_ = org.get("license_details") or {}
    edition = re.sub(r"[^a-z]", "", str(license_.get("paid_type") or "").lower())
    conn.extra.update({"currency": org.get("currency"), "mc_status": org.get("mc_status"),
                       "time_zone": org.get("time_zone"), "domain_name": org.get("domain_name"),
                       "edition": edition or None})
    if edition in EDITION_CREDITS:
        base, per_user, cap = EDITION_CREDITS[edition]
        credits = base + per_user * int(license_.get("users_license_purchased") or 1)
        conn.extra["daily_credits"] = min(credits, cap) if cap else credits
        conn.extra["concurrency"] = EDITION_CONCURRENCY[edition]


def web_root(base_url: str) -> str:
    """https://www.zohoapis.eu -> https://crm.zoho.eu (the web app of the same data centre)."""
    host = httpx.URL(base_url).host
    m = re.search(r"zohoapis\.([a-z.]+)$", host)
    if not m:
        return PROVIDER.web_url
    return "https://crm.zohocloud.ca" if m.group(1) == "ca" else f"https://crm.zoho.{m.group(1)}"


# -- small conversions ------------------------------------------------------------------------

def _mark(obj: Any) -> str:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"not a JSON number: {obj}")
        return "\x00N" + format(obj, "f") + "\x00"
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


_MARKED = re.compile(r'"\\u0000N(-?[0-9.]+)\\u0000"')


def _dumps(obj: Any) -> bytes:
    """JSON where Decimals are exact numbers (the stdlib encoder would need floats, which we never use)."""
    def check(o: Any) -> None:
        if isinstance(o, float):
            raise TypeError("floats are not used for money; pass a Decimal")
        if isinstance(o, dict):
            for v in o.values():
                check(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                check(v)
    check(obj)
    text = json.dumps(obj, default=_mark, ensure_ascii=False, separators=(",", ":"))
    return _MARKED.sub(r"\1", text).encode()


def _epoch(text: Any) -> float | None:
    if not text or not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _datetime(text: Any) -> dt.datetime | None:
    epoch = _epoch(text)
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC) if epoch is not None else None


def _coql_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).isoformat()


def _server_time(resp: httpx.Response | None) -> float | None:
    """The server's clock at an answer: the watermark, so our clock's skew cannot lose changes."""
    if resp is None or not resp.headers.get("Date"):
        return None
    try:
        return email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    except (TypeError, ValueError):
        return None


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    """A record -> flat properties: lookups become their id, Decimals strings, subforms are left out."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out[key] = str(value["id"]) if value.get("id") is not None else None
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                out[key] = ", ".join(str(v) for v in value) or None
        elif isinstance(value, Decimal):
            out[key] = str(_plain(value))
        else:
            out[key] = value
    return out


def _lookup_id(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("id") is not None:
        return str(value["id"])
    return None


def _row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Cursor:
    """Watermark (server epoch of the last read), rows held near it, last recycle-bin look and the
    deletions reported near it, columns."""

    def __init__(self, since: float, seen: dict[str, list[Any]], deleted_at: float,
                 cols: list[str] | None = None, gone: dict[str, float] | None = None) -> None:
        self.since, self.seen, self.deleted_at, self.cols = since, seen, deleted_at, cols
        self.gone = gone or {}

    @classmethod
    def parse(cls, text: str | None) -> _Cursor | None:
        raw = cursor_fields(text)
        if raw is None or not isinstance(raw.get("since"), (int, float)):
            return None
        return cls(float(raw["since"]), raw.get("seen") or {}, float(raw.get("del") or raw["since"]),
                   raw.get("cols"), raw.get("gone") or {})

    def dump(self) -> str:
        return cursor_text(since=self.since, seen=self.seen, cols=self.cols, gone=self.gone, **{"del": self.deleted_at})


class _Watch(httpx.BaseTransport):
    """Notes what the shared client does not hand back: the credits header and the code of a 401/429."""

    def __init__(self, inner: httpx.BaseTransport, *, owned: bool) -> None:
        self.inner = inner
        self.owned = owned  # a transport handed to us (tests, in-process sandboxes) is not ours to close
        self.credits_remaining: int | None = None
        self.last_error_code: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        left = resp.headers.get("X-API-CREDITS-REMAINING")
        try:
            self.credits_remaining = int(left) if left is not None else None
        except ValueError:
            self.credits_remaining = None
        if resp.status_code in (401, 429):
            resp.read()
            try:
                body = json.loads(resp.content)
            except ValueError:
                body = None
            self.last_error_code = body.get("code") if isinstance(body, dict) else None
        return resp

    def close(self) -> None:
        if self.owned:
            self.inner.close()


# -- the connector --------------------------------------------------------------------------------

class Connector(ZohoCrmLifecycle):
    """One Zoho CRM org, reached through its data centre's API domain."""

    provider = "zohocrm"

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.tokens = tokens
        self._transport = transport
        self._clock = clock
        # Zoho prices calls in credits per rolling 24 h and caps concurrent calls; it has no per-second
        # limit. Ten a second keeps one connection well inside any edition's concurrency.
        self.limits = Limits(requests=10, window_seconds=1.0, batch_max=BATCH, page_max=200,
                             concurrency=int(conn.extra.get("concurrency") or 10),
                             daily_cap=conn.extra.get("daily_credits"))
        self._watch = _Watch(transport or httpx.HTTPTransport(), owned=transport is None)
        self.api = make_api_client(conn, tokens, provider="Zoho CRM", limits=self.limits, refresh=self._refresh,
                                   default_base_url=PROVIDER.default_base_url, transport=self._watch, sleep=sleep,
                                   clock=clock, auth_scheme="Zoho-oauthtoken")
        self._meta: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._org: dict[str, Any] | None = None
        self._products: dict[str, dict[str, Any]] = {}
        self._mapping: dict[str, dict[str, str]] | None = None

    def _refresh(self, tokens: Tokens) -> Tokens:
        try:
            return oauth.refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self._transport)
        except oauth.OAuthError as exc:
            if exc.status is None:
                raise  # Zoho Accounts could not be reached: not a dead sign-in
            if exc.status == 400:  # 400 "Access Denied": more than 10 refreshes in 10 minutes
                raise RateLimited("Zoho CRM allows a sign-in to be renewed 10 times in 10 minutes; Crossledger "
                                  "tries again in a few minutes.", retry_after=600.0, provider=self.provider,
                                  status=400) from exc
            # Zoho answers a revoked or evicted refresh token with HTTP 200 {"error": "invalid_code"}.
            raise AuthExpired("The saved sign-in for Zoho CRM is no longer valid. Reconnect Zoho CRM to "
                              "continue.", provider=self.provider, status=exc.status) from exc

    # -- HTTP ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              headers: dict[str, str] | None = None, idempotent: bool | None = None,
              per_record: bool = False) -> tuple[Any, httpx.Response]:
        """One API call; (None, resp) for 204/304. With ``per_record`` a 400 carrying results is returned."""
        hdrs = dict(headers or {})
        content = None
        if body is not None:
            content = _dumps(body)
            hdrs["Content-Type"] = "application/json"
        try:
            resp = self.api.request(method, API + path, params=params, content=content, headers=hdrs,
                                    idempotent=idempotent)
        except RateLimited as exc:
            if self._watch.credits_remaining == 0:
                raise RateLimited("This Zoho CRM org has used its API credits for the last 24 hours. Syncing "
                                  "continues when credits free up.", retry_after=DAILY_WAIT, daily=True,
                                  provider=self.provider, status=429, code="TOO_MANY_REQUESTS") from exc
            raise
        except Unauthorized as exc:
            if self._watch.last_error_code == "OAUTH_SCOPE_MISMATCH":
                raise Forbidden("The Zoho CRM sign-in lacks a permission Crossledger needs. Reconnect Zoho CRM "
                                "and allow every access it asks for.", provider=self.provider, status=401,
                                code="OAUTH_SCOPE_MISMATCH") from exc
            raise
        if resp.status_code in (204, 304):
            return None, resp
        try:
            payload = self.api.body(resp) if resp.content else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"Zoho CRM sent an answer that could not be read (status {resp.status_code}).",
                                 provider=self.provider, status=resp.status_code) from exc
        if resp.status_code >= 400:
            if per_record and isinstance(payload, dict) and isinstance(
                    payload.get("data", payload.get("fields")), list):
                return payload, resp
            raise self._error(resp.status_code, payload, resp.text)
        return payload, resp

    def _error(self, status: int, payload: Any, text: str = "") -> ConnectorError:
        """A Zoho error body (whole request or one record's result) -> the typed error."""
        body = payload if isinstance(payload, dict) else {}
        code = body.get("code")
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        message = str(body.get("message") or redact(text[:200]) or f"HTTP {status}")
        kw: dict[str, Any] = {"provider": self.provider, "status": status, "code": code}
        field = details.get("api_name") or details.get("column_name") or details.get("param") or details.get(
            "param_name")
        if code == "DUPLICATE_DATA":
            dup = details.get("duplicate_record") if isinstance(details.get("duplicate_record"), dict) else {}
            existing = dup.get("id") or details.get("id")
            return Conflict(f"Zoho CRM already has a record with this {field or 'value'}"
                            f"{f' (id {existing})' if existing else ''}.", existing_id=str(existing) if existing
                            else None, **kw)
        if code in ("INVALID_TOKEN", "AUTHENTICATION_FAILURE"):
            return Unauthorized(f"Zoho CRM refused the saved sign-in ({message}).", **kw)
        if code in ("OAUTH_SCOPE_MISMATCH", "NO_PERMISSION"):
            return Forbidden(f"Zoho CRM denied access ({message}). Reconnect Zoho CRM with a user who may "
                             "read and change these records.", **kw)
        if code == "TOO_MANY_REQUESTS" or status == 429:
            return RateLimited(f"Zoho CRM: {message}", **kw)
        if status == 404 or code == "INVALID_URL_PATTERN":
            return NotFound(f"Zoho CRM: {message}", **kw)
        if field == "id" or (code == "INVALID_DATA" and set(details) == {"id"}):
            return NotFound(f"Zoho CRM has no such record ({details.get('id') or ''}).".replace(" ()", ""), **kw)
        if status >= 500 or code == "INTERNAL_ERROR":
            return ServerError(f"Zoho CRM had a server error ({message}).", **kw)
        if code in ("INVALID_DATA", "MANDATORY_NOT_FOUND", "INVALID_QUERY", "SYNTAX_ERROR", "LIMIT_EXCEEDED",
                    "REQUIRED_PARAM_MISSING", "DEPENDENT_FIELD_MISSING", "PATTERN_NOT_MATCHED"):
            what = {"MANDATORY_NOT_FOUND": "is required"}.get(code, "was refused")
            return ValidationRejected(f"Zoho CRM: {field + ' ' + what if field else message} ({code}).",
                                      field=field, **kw)
        return ConnectorError(f"Zoho CRM: {message}", **kw)

    # -- metadata -------------------------------------------------------------------------------
    def org(self, *, fresh: bool = False) -> dict[str, Any]:
        if fresh or self._org is None:
            payload, _ = self._call("GET", "/org")
            orgs = (payload or {}).get("org") or [{}]
            self._org = orgs[0]
        return self._org

    def company_name(self) -> str:
        return str(self.org(fresh=True).get("company_name") or "")

    def _fields(self, module: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        entry = self._meta.get(module)
        if fresh or entry is None or self._clock() - entry[0] > META_TTL:
            payload, _ = self._call("GET", "/settings/fields", params={"module": module})
            fields = {f["api_name"]: f for f in (payload or {}).get("fields") or [] if f.get("api_name")}
            self._meta[module] = (self._clock(), fields)
        return self._meta[module][1]

    def _columns(self, module: str) -> list[str]:
        cols = [api for api, f in self._fields(module).items() if f.get("data_type") not in NOT_SELECTABLE]
        return cols[:COQL_FIELDS_MAX]

    def list_fields(self, object_type: str) -> list[FieldInfo]:
        out = []
        for api, f in self._fields(MODULE[object_type], fresh=True).items():
            dtype = f.get("data_type") or "text"
            if dtype == "subform":
                continue
            kind = ("number" if dtype in NUMBER_TYPES | {"integer", "bigint"} else
                    "date" if dtype in ("date", "datetime") else
                    "enum" if dtype in ("picklist", "multiselectpicklist") else
                    "boolean" if dtype == "boolean" else
                    "reference" if dtype in ("lookup", "ownerlookup") else "string")
            out.append(FieldInfo(api, f.get("field_label") or f.get("display_label") or api, kind,
                                 bool(f.get("custom_field"))))
        return out

    def default_mapping(self) -> dict[str, dict[str, str]]:
        """Canonical -> Zoho field; Accounts have no standard email or tax ID, so custom fields are found."""
        if self._mapping is None:
            company = {"name": "Account_Name", "phone": "Phone", "address_line1": "Billing_Street",
                       "city": "Billing_City", "region": "Billing_State", "postal_code": "Billing_Code",
                       "country": "Billing_Country"}
            fields = self._fields("Accounts")
            custom = [(api, f) for api, f in fields.items() if f.get("custom_field")]
            email = next((api for api, f in custom if f.get("data_type") == "email"), None) or next(
                (api for api, f in custom if re.search(r"e-?mail", f.get("field_label") or api, re.I)), None)
            tax = next((api for api, f in custom if _TAX_LABEL.search(f.get("field_label") or "") or
                        _TAX_LABEL.search(api)), None)
            if email:
                company["email"] = email
            if tax:
                company["tax_id"] = tax
            person = {"first_name": "First_Name", "last_name": "Last_Name", "email": "Email", "phone": "Phone",
                      "address_line1": "Mailing_Street", "city": "Mailing_City", "region": "Mailing_State",
                      "postal_code": "Mailing_Zip", "country": "Mailing_Country"}
            self._mapping = {"company": company, "person": person}
        return {k: dict(v) for k, v in self._mapping.items()}

    def record_url(self, object_type: str, record_id: str) -> str:
        module = MODULE.get(object_type, object_type)
        return f"{web_root(self.conn.base_url)}/crm/tab/{WEB_TAB.get(module, module)}/{record_id}"

    # -- reading ----------------------------------------------------------------------------------
    def _coql(self, query: str) -> tuple[list[dict[str, Any]], bool, httpx.Response]:
        payload, resp = self._call("POST", "/coql", body={"select_query": query}, idempotent=True)
        if payload is None:
            return [], False, resp
        return list(payload.get("data") or []), bool((payload.get("info") or {}).get("more_records")), resp

    def _read(self, module: str, state: _Cursor | None, cols: list[str]) -> tuple[list[dict[str, Any]], _Cursor,
                                                                                  list[str]]:
        """Rows changed since the cursor (all rows without one), the next cursor, and deleted ids."""
        full = state is None
        select = ", ".join(dict.fromkeys(["Modified_Time", *cols]))
        since = None if state is None else max(0.0, state.since - OVERLAP)
        rows: dict[str, dict[str, Any]] = {}
        server_now: float | None = None
        last: str | None = None
        size = COQL_PAGE if full else COQL_FIRST
        while True:
            conds = ([f"Modified_Time >= '{_coql_time(since)}'"] if since is not None else []) + (
                [f"id > {last}"] if last is not None else [])
            where = "id is not null" if not conds else conds[0] if len(conds) == 1 else f"({conds[0]} and {conds[1]})"
            # Only API names from the metadata, digits and our own timestamps go into the query.
            page, more, resp = self._coql(f"select {select} from {module} where {where} order by id asc "  # noqa: S608
                                          f"limit {size}")
            if server_now is None:
                server_now = _server_time(resp)
            for row in page:
                rows[str(row["id"])] = row
            if not more or not page:
                break
            last, size = str(page[-1]["id"]), COQL_PAGE
        if server_now is None:  # no Date header: our clock, with a minute of margin for skew
            server_now = time.time() - 60
        fresh: dict[str, list[Any]] = {}
        out = []
        for rid, row in rows.items():
            mark = [_epoch(row.get("Modified_Time")), _row_hash(row)]
            fresh[rid] = mark
            if state is not None and state.seen.get(rid) == mark:
                continue  # delivered by the last read (the overlap brings it back)
            out.append(row)
        horizon = server_now - 2 * OVERLAP
        seen = {rid: mark for rid, mark in {**(state.seen if state else {}), **fresh}.items()
                if mark[0] is not None and mark[0] >= horizon}
        deleted: list[str] = []
        deleted_at = server_now if state is None else state.deleted_at
        gone = dict(state.gone) if state is not None else {}
        if state is not None and server_now - state.deleted_at >= DELETED_EVERY:
            found, checked = self._deleted(module, state.deleted_at)
            deleted = [rid for rid in found if rid not in gone]  # the overlap brings some back
            deleted_at = checked or server_now
            gone = {rid: when for rid, when in {**gone, **found}.items() if when >= deleted_at - 2 * OVERLAP - 1}
        return out, _Cursor(server_now, seen, deleted_at, cols, gone), deleted

    def _deleted(self, module: str, since: float) -> tuple[dict[str, float], float | None]:
        """Ids moved to the recycle bin (or purged) since ``since`` with their deletion time; the
        server time of the look."""
        stamp = dt.datetime.fromtimestamp(int(max(0.0, since - OVERLAP)), tz=dt.UTC).isoformat()
        ids: dict[str, float] = {}
        checked = None
        page = 1
        while True:
            payload, resp = self._call("GET", f"/{module}/deleted",
                                       params={"type": "all", "per_page": 200, "page": page},
                                       headers={"If-Modified-Since": stamp})
            checked = checked or _server_time(resp)
            if payload is None:
                break
            for row in payload.get("data") or []:
                if row.get("id"):
                    ids[str(row["id"])] = _epoch(row.get("deleted_time")) or since
            if not (payload.get("info") or {}).get("more_records"):
                break
            page += 1
        return ids, checked

    def _state_cols(self, module: str, state: _Cursor | None) -> list[str]:
        """The cursor's columns, unless this connector holds fresher field metadata."""
        entry = self._meta.get(module)
        if state is not None and state.cols and (entry is None or self._clock() - entry[0] > META_TTL):
            return list(state.cols)
        return self._columns(module)

    def _to_record(self, object_type: str, row: dict[str, Any]) -> CrmRecord:
        company = _lookup_id(row.get("Account_Name")) if object_type == "person" else None
        return CrmRecord(object_type=object_type, id=str(row["id"]), properties=_flatten(row),  # type: ignore[arg-type]
                         updated_at=_datetime(row.get("Modified_Time")), archived=False, company_id=company)

    def read_records(self, object_type: str, cursor: str | None) -> Changes[CrmRecord]:
        module = MODULE[object_type]
        before = self.api.request_count
        state = _Cursor.parse(cursor)
        if state is None:
            self._fields(module, fresh=True)
        try:
            rows, new, deleted = self._read(module, state, self._state_cols(module, state))
        except ValidationRejected as exc:
            if exc.code != "INVALID_QUERY":
                raise
            self._fields(module, fresh=True)  # a column went away: read the fields again, once
            rows, new, deleted = self._read(module, state, self._columns(module))
        records = [self._to_record(object_type, r) for r in rows]
        return Changes(records, new.dump(), deleted, full=state is None, requests=self.api.request_count - before)

    def sample_records(self, object_type: str, limit: int) -> list[CrmRecord]:
        """Up to ``limit`` records (at most 200: one credit) in one COQL query.

        COQL rather than GET records: GET takes at most 50 ``fields``, and the mapping wizard shows
        any field of the module (custom ones included), which COQL selects (up to 500) as the
        change feed does. Records in the recycle bin are not queried.
        """
        if limit <= 0:
            return []
        module = MODULE[object_type]
        size = min(int(limit), COQL_FIRST)

        def query(cols: list[str]) -> list[dict[str, Any]]:
            select = ", ".join(dict.fromkeys(["Modified_Time", *cols]))
            # Only API names from the metadata and a number go into the query.
            rows, _, _ = self._coql(f"select {select} from {module} where id is not null "  # noqa: S608
                                    f"order by id asc limit {size}")
            return rows

        try:
            rows = query(self._columns(module))
        except ValidationRejected as exc:
            if exc.code != "INVALID_QUERY":
                raise
            self._fields(module, fresh=True)  # a column went away: read the fields again, once
            rows = query(self._columns(module))
        return [self._to_record(object_type, r) for r in rows[:limit]]

    def _by_ids(self, module: str, ids: Sequence[str], cols: list[str]) -> list[dict[str, Any]]:
        select = ", ".join(dict.fromkeys(["Modified_Time", *cols]))
        out: list[dict[str, Any]] = []
        wanted = [str(i) for i in dict.fromkeys(ids) if str(i).isdigit()]
        for chunk in _chunks(wanted, IDS_MAX):
            rows, _, _ = self._coql(f"select {select} from {module} where id in ({', '.join(chunk)}) "  # noqa: S608
                                    f"limit {len(chunk)}")
            out += rows
        return out

    def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]:
        if not ids:
            return []
        module = MODULE[object_type]
        by_id = {str(r["id"]): r for r in self._by_ids(module, ids, self._columns(module))}
        return [self._to_record(object_type, by_id[str(i)]) for i in ids if str(i) in by_id]

    # -- writing ----------------------------------------------------------------------------------
    def _wire(self, module: str, api: str, f: dict[str, Any], value: Any) -> Any:
        """A flat property value -> the JSON Zoho wants for the field's type."""
        dtype = f.get("data_type") or "text"
        if value is None or value == "":
            return None
        try:
            if dtype in NUMBER_TYPES:
                number = _dec(value)
                if number is None:
                    raise ValueError(value)
                return number
            if dtype == "integer":
                number = _dec(value)
                if number is None or number != number.to_integral_value():
                    raise ValueError(value)
                return int(number)
            if dtype == "bigint":
                return str(value)
            if dtype == "boolean":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return text in ("true", "1", "yes")
            if dtype == "date":
                text = value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
                return dt.date.fromisoformat(text).isoformat()
            if dtype == "datetime":
                if isinstance(value, dt.datetime):
                    return value.isoformat(timespec="seconds")
                if _epoch(str(value)) is None:
                    raise ValueError(value)
                return str(value)
            if dtype in ("lookup", "ownerlookup"):
                return value if isinstance(value, dict) else {"id": str(value)}
            if dtype == "multiselectpicklist":
                return value if isinstance(value, list) else [v.strip() for v in str(value).split(",") if v.strip()]
            if dtype == "subform":
                if not isinstance(value, list):
                    raise ValueError(value)
                return value
        except (ValueError, TypeError, AttributeError):
            raise ValidationRejected(f"'{value}' is not a valid {dtype} for the Zoho CRM field "
                                     f"'{f.get('field_label') or api}'.", field=api, provider=self.provider) from None
        if isinstance(value, (dict, list)):
            raise ValidationRejected(f"The Zoho CRM field '{f.get('field_label') or api}' takes text.", field=api,
                                     provider=self.provider)
        return str(value)

    def _record_body(self, module: str, props: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        fields = self._fields(module)
        body: dict[str, Any] = {}
        for key, value in props.items():
            f = fields.get(key)
            if f is None:
                raise ValidationRejected(f"Zoho CRM has no {module} field '{key}'.", field=key, provider=self.provider)
            if f.get("read_only") or f.get("field_read_only"):
                raise ValidationRejected(f"The Zoho CRM field '{f.get('field_label') or key}' cannot be changed.",
                                         field=key, provider=self.provider)
            body[key] = self._wire(module, key, f, value)
        for api, f in fields.items():
            if f.get("system_mandatory") and api != "Pipeline" and (
                    (creating and body.get(api) in (None, "")) or (api in body and body[api] in (None, ""))):
                raise ValidationRejected(f"Zoho CRM needs the {module} field '{f.get('field_label') or api}'.",
                                         field=api, provider=self.provider)
        return body

    def update_records(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Creates and updates, 100 a request per module, with Zoho's per-record results in input order."""
        results: list[WriteResult | None] = [None] * len(writes)
        groups: dict[tuple[str, bool], list[tuple[int, RecordWrite, dict[str, Any]]]] = {}
        for n, w in enumerate(writes):
            module = MODULE[w.object_type]
            try:
                body = self._record_body(module, dict(w.properties), creating=w.id is None)
            except AuthExpired:
                raise
            except ConnectorError as exc:
                results[n] = WriteResult(w.key, w.id, error=exc)
                continue
            if w.id is not None:
                if not str(w.id).isdigit():
                    results[n] = WriteResult(w.key, w.id, error=NotFound(
                        f"'{w.id}' is not a Zoho CRM record id.", provider=self.provider))
                    continue
                body = {"id": str(w.id), **body}
            groups.setdefault((module, w.id is None), []).append((n, w, body))
        for (module, creating), items in groups.items():
            for chunk in _chunks(items, BATCH):
                for (n, _, _), res in zip(chunk, self._send(module, creating, list(chunk)), strict=True):
                    results[n] = res
        return [r for r in results if r is not None]

    def update_deals(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return self.update_records([w if w.object_type == "deal" else RecordWrite(w.key, "deal", w.id, w.properties)
                                    for w in writes])

    def _send(self, module: str, creating: bool,
              chunk: list[tuple[int, RecordWrite, dict[str, Any]]]) -> list[WriteResult]:
        try:
            if creating:
                started = time.time()
                try:
                    payload, _ = self._call("POST", f"/{module}", body={"data": [b for _, _, b in chunk]},
                                            per_record=True)
                except TransportError:
                    return self._settle_creates(module, chunk, started)
            else:  # no workflows on write-backs: a workflow editing the record again would echo forever
                payload, _ = self._call("PUT", f"/{module}", body={"data": [b for _, _, b in chunk], "trigger": []},
                                        idempotent=True, per_record=True)
        except AuthExpired:
            raise
        except RateLimited as exc:
            if exc.daily:
                raise
            return [WriteResult(w.key, w.id, error=exc) for _, w, _ in chunk]
        except ConnectorError as exc:
            return [WriteResult(w.key, w.id, error=exc) for _, w, _ in chunk]
        items = (payload or {}).get("data") or []
        if len(items) != len(chunk):
            error = TransportError("Zoho CRM answered for a different number of records than were sent.",
                                   provider=self.provider)
            return [WriteResult(w.key, w.id, error=error) for _, w, _ in chunk]
        out = []
        for (_, w, _), item in zip(chunk, items, strict=True):
            if isinstance(item, dict) and item.get("status") == "success":
                details = item.get("details") or {}
                out.append(WriteResult(w.key, str(details.get("id") or w.id),
                                       version=details.get("Modified_Time")))
            else:
                out.append(WriteResult(w.key, w.id, error=self._error(400, item)))
        return out

    def _settle_creates(self, module: str, chunk: list[tuple[int, RecordWrite, dict[str, Any]]],
                        started: float) -> list[WriteResult]:
        """The answer to a create was lost: records found by their unique field were ours; send the rest once."""
        unique = next((api for api, f in self._fields(module).items() if f.get("unique") and
                       f.get("data_type") in ("text", "email")), None)
        found: dict[str, dict[str, Any]] = {}
        values = [str(b[unique]) for _, _, b in chunk if unique and b.get(unique)]
        for part in _chunks(values, IDS_MAX):
            query = (f"select {unique}, Created_Time from {module} where {unique} in "  # noqa: S608 - values quoted
                     f"({', '.join(_quote(v) for v in part)}) limit {COQL_PAGE}")
            for row in self._coql(query)[0]:
                created = _epoch(row.get("Created_Time")) or 0
                if created >= started - 60 and row.get(unique):
                    found[str(row[unique]).casefold()] = row
        out: list[WriteResult | None] = []
        resend = []
        for item in chunk:
            _, w, body = item
            hit = found.get(str(body.get(unique) or "").casefold()) if unique else None
            if hit:
                out.append(WriteResult(w.key, str(hit["id"]), version=None))
            elif unique and body.get(unique):
                out.append(None)
                resend.append(item)
            else:
                out.append(WriteResult(w.key, None, error=TransportError(
                    "The connection to Zoho CRM failed while creating this record; whether it was created is "
                    "unknown.", provider=self.provider)))
        again = iter(self._send(module, True, resend) if resend else [])
        return [r if r is not None else next(again) for r in out]

    # -- deals ------------------------------------------------------------------------------------
    def _stage_types(self, fresh: bool = False) -> dict[str, str]:
        """Stage value (display or actual) -> forecast_type, from the Stage field's picklist metadata."""
        stage = self._fields("Deals", fresh=fresh).get("Stage") or {}
        out: dict[str, str] = {}
        for value in stage.get("pick_list_values") or []:
            kind = value.get("forecast_type")
            if not kind:
                continue
            for key in (value.get("actual_value"), value.get("display_value")):
                if key:
                    out.setdefault(str(key), str(kind))
        return out

    def _subform(self) -> tuple[str, str] | None:
        """(field api name, subform module) of the Deals subform holding line items."""
        for api, f in self._fields("Deals").items():
            if f.get("data_type") == "subform" and isinstance(f.get("subform"), dict) and f["subform"].get("module"):
                return api, str(f["subform"]["module"])
        return None

    def _line_columns(self, sub_module: str) -> dict[str, str | None]:
        """Which subform column is the product, quantity, price, discount and description (by type and name)."""
        fields = self._fields(sub_module)

        def pick(test: Callable[[str, dict[str, Any]], bool]) -> str | None:
            return next((api for api, f in fields.items() if test(api, f)), None)

        def named(pattern: str) -> Callable[[str, dict[str, Any]], bool]:
            return lambda api, f: bool(re.search(pattern, f"{api} {f.get('field_label') or ''}", re.I))

        def lookup_products(api: str, f: dict[str, Any]) -> bool:
            module = ((f.get("lookup") or {}).get("module") or {}).get("api_name")
            return f.get("data_type") == "lookup" and module == "Products"

        return {
            "product": pick(lookup_products),
            "quantity": pick(lambda a, f: f.get("data_type") in NUMBER_TYPES | {"integer"} and
                             named(r"quant|qty")(a, f)),
            "price": pick(lambda a, f: f.get("data_type") in ("currency", "double", "decimal") and
                          named(r"price|rate")(a, f) and not f.get("read_only")),
            "discount": pick(lambda a, f: f.get("data_type") in NUMBER_TYPES and named(r"discount")(a, f)),
            "description": pick(lambda a, f: f.get("data_type") in ("text", "textarea") and
                                named(r"descr|comment|note")(a, f)),
        }

    def _currency(self) -> str:
        if not self.conn.extra.get("currency"):
            self.conn.extra["currency"] = self.org().get("currency") or "USD"
        return str(self.conn.extra["currency"])

    def _deals(self, rows: list[dict[str, Any]]) -> list[Deal]:
        if not rows:
            return []
        types = self._stage_types()
        if any(r.get("Stage") and str(r["Stage"]) not in types for r in rows):
            types = self._stage_types(fresh=True)  # a stage was added or renamed since we looked
        lines: dict[str, list[dict[str, Any]]] = {}
        cols: dict[str, str | None] = {}
        discount_is_amount = False
        sub = self._subform()
        if sub:
            api, sub_module = sub
            cols = self._line_columns(sub_module)
            discount = self._fields(sub_module).get(cols.get("discount") or "") or {}
            discount_is_amount = discount.get("data_type") == "currency"
            for chunk in _chunks([str(r["id"]) for r in rows], IDS_MAX):
                payload, _ = self._call("GET", "/Deals", params={"ids": ",".join(chunk), "fields": api,
                                                                 "per_page": IDS_MAX})
                for rec in (payload or {}).get("data") or []:
                    lines[str(rec["id"])] = [x for x in rec.get(api) or [] if isinstance(x, dict)]
            self._load_products({_lookup_id(x.get(cols["product"])) or "" for group in lines.values()
                                 for x in group if cols.get("product")} - {""})
        currency = self._currency()
        return [self._to_deal(r, types, lines.get(str(r["id"]), []), cols, currency, discount_is_amount)
                for r in rows]

    def _load_products(self, ids: set[str]) -> None:
        missing = sorted(i for i in ids if i not in self._products)
        for chunk in _chunks(missing, IDS_MAX):
            payload, _ = self._call("GET", "/Products", params={
                "ids": ",".join(chunk), "fields": "Product_Name,Product_Code,Unit_Price", "per_page": IDS_MAX})
            for rec in (payload or {}).get("data") or []:
                self._products[str(rec["id"])] = rec

    def _to_deal(self, row: dict[str, Any], types: dict[str, str], lines: list[dict[str, Any]],
                 cols: dict[str, str | None], currency: str, discount_is_amount: bool = False) -> Deal:
        won = types.get(str(row.get("Stage") or "")) == "Closed Won"  # the stage's metadata, never its name
        items = []
        for line in lines:
            quantity = _dec(line.get(cols.get("quantity") or "")) or Decimal(0)
            price = _dec(line.get(cols.get("price") or "")) or Decimal(0)
            discount = _dec(line.get(cols.get("discount") or "")) or Decimal(0)
            if discount and discount_is_amount:  # an amount off the line: as a percentage
                gross = quantity * price
                discount = (discount * 100 / gross).quantize(Decimal("0.000001")) if gross else Decimal(0)
            product_ref = line.get(cols.get("product") or "") if cols.get("product") else None
            product = self._products.get(_lookup_id(product_ref) or "") or {}
            name = (product_ref or {}).get("name") if isinstance(product_ref, dict) else None
            name = name or product.get("Product_Name") or ""
            text = line.get(cols.get("description") or "") if cols.get("description") else None
            items.append(LineItem(description=str(text or name), quantity=_plain(quantity), unit_price=_plain(price),
                                  discount_percent=_plain(discount), sku=product.get("Product_Code") or None,
                                  product_name=name or None, tax_code=None, id=str(line.get("id") or "") or None))
        closing = row.get("Closing_Date")
        contact = _lookup_id(row.get("Contact_Name"))
        return Deal(
            id=str(row["id"]), name=str(row.get("Deal_Name") or ""), won=won,
            currency=str(row.get("Currency") or currency), amount=_dec(row.get("Amount")),
            close_date=dt.date.fromisoformat(closing) if isinstance(closing, str) and closing else None,
            company_id=_lookup_id(row.get("Account_Name")), contact_ids=(contact,) if contact else (),
            line_items=tuple(items), properties=_flatten(row), updated_at=_datetime(row.get("Modified_Time")),
            archived=False)

    def read_deals(self, cursor: str | None) -> Changes[Deal]:
        before = self.api.request_count
        state = _Cursor.parse(cursor)
        if state is None:
            self._fields("Deals", fresh=True)
        try:
            rows, new, deleted = self._read("Deals", state, self._state_cols("Deals", state))
        except ValidationRejected as exc:
            if exc.code != "INVALID_QUERY":
                raise
            self._fields("Deals", fresh=True)
            rows, new, deleted = self._read("Deals", state, self._columns("Deals"))
        deals = self._deals(rows)
        return Changes(deals, new.dump(), deleted, full=state is None, requests=self.api.request_count - before)

    def ensure_deal_fields(self, fields: Sequence[FieldInfo]) -> dict[str, str]:
        """Find our deal fields by label (or API name); create the missing ones through settings/fields."""
        existing = self._fields("Deals", fresh=True)

        def find(info: FieldInfo) -> str | None:
            for api, f in existing.items():
                if str(f.get("field_label") or "").casefold() == info.label.casefold() or api.casefold() in (
                        info.name.casefold(), info.label.replace(" ", "_").casefold()):
                    return api
            return None

        missing = [info for info in fields if find(info) is None]
        if missing:
            specs = []
            for info in missing:
                dtype, extra = FIELD_TYPE_FOR.get(info.type, FIELD_TYPE_FOR["string"])
                specs.append({"field_label": info.label, "data_type": dtype, **extra})
            payload, _ = self._call("POST", "/settings/fields", params={"module": "Deals"},
                                    body={"fields": specs}, per_record=True)
            for info, item in zip(missing, (payload or {}).get("fields") or [], strict=False):
                if not (isinstance(item, dict) and item.get("status") == "success"):
                    error = self._error(400, item)
                    error.message = f"Zoho CRM did not create the deal field '{info.label}': {error.message}"
                    raise error
            existing = self._fields("Deals", fresh=True)
        out = {}
        for info in fields:
            api = find(info)
            if api is None:
                raise ConnectorError(f"Zoho CRM did not report the deal field '{info.label}' after creating it.",
                                     provider=self.provider)
            out[info.name] = api
        return out

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return f"<zohocrm.Connector {self.conn.id} {self.conn.base_url}>"
