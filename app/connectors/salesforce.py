"""Salesforce CRM connector: Accounts and Contacts, Opportunities with products, custom fields.

Everything goes to the org's ``instance_url`` (from the token response) under one pinned REST
version. Records are read with SOQL ordered by ``SystemModstamp``; after the first read one
Composite request per object type carries both the change query (``queryAll``, so deletions and
merges show up at once as ``IsDeleted`` rows) and a getDeleted call for the window up to the
previous read (hard deletes, emptied Recycle Bins), so an idle poll costs one API call. Writes go
through sObject Collections, 200 records a call, ``allOrNone`` false. A deal is won when its
stage's ``OpportunityStage.IsWon`` says so, never by the stage's name or label. Salesforce has no
429: a used-up daily allocation is a 403 ``REQUEST_LIMIT_EXCEEDED``, and ``Sforce-Limit-Info``
reports the usage on every answer. Sessions carry no ``expires_in``: a 401 ``INVALID_SESSION_ID``
triggers the one refresh, and refresh tokens are kept unless the answer carries a new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx

from app.connectors import hosts, oauth
from app.connectors.base import Changes, Connection, FieldInfo, Limits, RecordWrite, WriteResult
from app.connectors.crm_fates import SalesforceLifecycle
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    ConnectorError,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    StaleVersion,
    TransportError,
    ValidationRejected,
)
from app.connectors.http import make_api_client, redact
from app.connectors.registry import ProviderInfo
from app.connectors.salesforce_wire import (
    OVERLAP,
    _api_name,
    _Cursor,
    _datetime,
    _dumps,
    _epoch,
    _field_spec,
    _flat,
    _literal,
    _ms,
    _param_time,
    _quote,
    _soql,
    _typed,
    to18,
)
from app.connectors.tokens import Tokens, TokenStore
from app.domain.models import CrmRecord, Deal, LineItem
from app.domain.money import decimal_or_none as _dec
from app.domain.money import plain as _plain

log = logging.getLogger("crossledger.salesforce")

PROVIDER = ProviderInfo(
    name="salesforce",
    kind="crm",
    label="Salesforce",
    default_base_url="https://login.salesforce.com",  # replaced by the org's instance_url on connect
    default_auth_url="https://login.salesforce.com",
    needs_client_secret=False,  # an External Client App can be a public client: PKCE instead of a secret
    web_url="https://login.salesforce.com",
)

API_VERSION = "64.0"  # Summer '25; conn.extra["api_version"] overrides
LOGIN_HOSTS = {"production": "https://login.salesforce.com", "sandbox": "https://test.salesforce.com"}
SCOPES = ("api", "refresh_token")
OBJECT = {"company": "Account", "person": "Contact", "deal": "Opportunity"}
COMPOUND = {"address", "location", "base64"}
BATCH = 200  # sObject Collections: 200 records a call
RETRIEVE = 2000  # Collections retrieve (POST form): 2000 ids a call
PAGE = 2000  # SOQL batch size (the largest Salesforce allows)
DELETED_MIN_WINDOW = 90  # getDeleted needs start and end more than a minute apart
DELETED_MAX_AGE = 14 * 86400  # getDeleted covers 15 days; older watermarks need a full read
DAILY_RETRY = 3600.0  # the allocation is a rolling 24 h; look again in an hour
QUERY_OPTIONS = {"Sforce-Query-Options": f"batchSize={PAGE}"}
PERMISSION_SET = "Crossledger_Integration"
LINE_FIELDS = ("Id", "Product2Id", "Product2.Name", "Product2.ProductCode", "PricebookEntryId", "Quantity",
               "UnitPrice", "ListPrice", "Discount", "TotalPrice", "Description", "ServiceDate", "IsDeleted",
               "SystemModstamp")
ROLE_FIELDS = ("ContactId", "IsPrimary", "Role", "IsDeleted")
FIELD_KIND = {"currency": "number", "double": "number", "percent": "number", "int": "number", "long": "number",
              "date": "date", "datetime": "date", "picklist": "enum", "multipicklist": "enum",
              "boolean": "boolean"}


def _auth_root(conn: Connection) -> str:
    """The OAuth host: conn.auth_url, else by environment (production, sandbox or the org's My Domain)."""
    if conn.auth_url:
        return _https(conn.auth_url)
    env = str(conn.extra.get("environment") or "production").lower()
    if env == "mydomain":
        domain = conn.extra.get("my_domain") or conn.extra.get("domain")
        if not domain:
            raise ValidationRejected("Enter the org's My Domain (for example acme.my.salesforce.com) to sign in "
                                     "through it.", field="my_domain", provider="salesforce")
        return _my_domain(str(domain))
    if env not in LOGIN_HOSTS:
        raise ValidationRejected(f"Unknown Salesforce environment '{env}': choose production, sandbox or "
                                 "mydomain.", field="environment", provider="salesforce")
    return LOGIN_HOSTS[env]


def _https(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if re.match(r"^https?://", url, re.I) else "https://" + url


def _my_domain(text: str) -> str:
    """'acme', 'acme.my.salesforce.com', 'https://acme.lightning.force.com/' -> the My Domain login URL."""
    host = re.sub(r"^https?://", "", text.strip(), flags=re.I).split("/")[0].lower()
    host = re.sub(r"\.lightning\.force\.com$", ".my.salesforce.com", host)  # the UI host never signs in
    if "." not in host:
        host += ".my.salesforce.com"
    return "https://" + host


def oauth_config(conn: Connection, client_secret: str | None) -> oauth.OAuthConfig:
    """Web-server flow with PKCE on the login host; the secret is sent only for a confidential app."""
    root = _auth_root(conn)
    return oauth.OAuthConfig(
        provider="salesforce",
        authorize_url=f"{root}/services/oauth2/authorize",
        token_url=f"{root}/services/oauth2/token",
        client_id=conn.client_id,
        client_secret=client_secret,
        scopes=SCOPES,
        pkce=True,
        secret_in_basic_auth=False,
    )


def _identity(url: str | None) -> tuple[str | None, str | None]:
    """The identity URL .../id/<orgId>/<userId> -> (org ID, user ID)."""
    m = re.search(r"/id/([A-Za-z0-9]{15,18})/([A-Za-z0-9]{15,18})/?$", url or "")
    return (m.group(1), m.group(2)) if m else (None, None)


def finish_connect(conn: Connection, flow: oauth.FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """API calls go to instance_url (never the login host); the org names the connection."""
    body = flow.token_body
    if body.get("instance_url"):
        if not hosts.from_provider("salesforce", str(body["instance_url"]), (conn.base_url, conn.auth_url)):
            raise hosts.UntrustedHost(f"The sign-in named an org address that is not Salesforce's "
                                      f"({body['instance_url']}), so it was refused. Connect again.",
                                      provider="salesforce")
        conn.base_url = str(body["instance_url"]).rstrip("/")
    org_id, user_id = _identity(body.get("id"))
    conn.tenant_id = org_id or conn.tenant_id
    if user_id:
        conn.extra["user_id"] = user_id
    connector = Connector(conn, tokens, transport=transport)
    try:
        org = connector._organization()
    finally:
        connector.close()
    conn.tenant_id = conn.tenant_id or org.get("Id")
    conn.label = org.get("Name") or conn.label
    if org.get("DefaultCurrencyIsoCode"):
        conn.extra["currency"] = org["DefaultCurrencyIsoCode"]
    conn.extra["is_sandbox"] = bool(org.get("IsSandbox"))


class Connector(SalesforceLifecycle):
    """One Salesforce org, over OAuth, through the shared ApiClient."""

    provider = "salesforce"
    # No short-window rate limit exists (only 25 concurrent long requests and the daily allocation);
    # we pace ourselves at 25 requests a second so one sync never crowds the org's other integrations.
    limits = Limits(requests=25, window_seconds=1.0, batch_max=BATCH, page_max=PAGE, concurrency=1, daily_cap=None)

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.tokens = tokens
        self._transport = transport
        self.version = str(conn.extra.get("api_version") or API_VERSION)
        self.base = f"/services/data/v{self.version}"
        self.api = make_api_client(conn, tokens, provider="salesforce", limits=self.limits, refresh=self._refresh,
                                   default_base_url=PROVIDER.default_base_url, transport=transport, sleep=sleep,
                                   clock=clock)
        self.api_usage: tuple[int, int] | None = None  # (calls used, daily allocation) from Sforce-Limit-Info
        self._server_now: tuple[float, float] | None = None  # (org time from Date, our monotonic then)
        self._describe: dict[str, dict[str, dict[str, Any]]] = {}
        self._mapping: dict[str, dict[str, str]] | None = None

    def _refresh(self, tokens: Tokens) -> Tokens:
        """Refresh at the login host; follow the org if Salesforce moved it to another instance."""
        new = oauth.refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self._transport)
        instance = str(new.extra.get("instance_url") or "").rstrip("/")
        if instance and instance != self.conn.base_url and hosts.from_provider(
                "salesforce", instance, (self.conn.base_url, self.conn.auth_url)):
            self.conn.base_url = instance
            self.api._http.base_url = instance
        return new

    # -- HTTP ---------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              headers: dict[str, str] | None = None, idempotent: bool | None = None) -> Any:
        hdrs = dict(headers or {})
        content = None
        if body is not None:
            content = _dumps(body)
            hdrs["Content-Type"] = "application/json"
        resp = self.api.request(method, path, params=params, content=content, headers=hdrs, idempotent=idempotent)
        self._observe(resp)
        try:
            payload = self.api.body(resp) if resp.content else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"Salesforce sent an answer that could not be read (status {resp.status_code}).",
                                 provider="salesforce", status=resp.status_code) from exc
        if resp.status_code >= 300:
            raise self._error(resp.status_code, payload, resp.text)
        return payload

    def _observe(self, resp: httpx.Response) -> None:
        """Keep the org's clock (Date) and API usage (Sforce-Limit-Info) from every answer."""
        m = re.search(r"api-usage=(\d+)/(\d+)", resp.headers.get("Sforce-Limit-Info", ""))
        if m:
            self.api_usage = (int(m.group(1)), int(m.group(2)))
            used, maximum = self.api_usage
            observe = getattr(self.api.budget, "observe", None)
            if observe is not None:  # the org's allocation and use, every app's calls: the shared budget's cap
                observe(used, maximum)
            if maximum and used >= maximum * 0.9:
                log.warning("salesforce: %d of the org's %d daily API calls used", used, maximum)
        date = resp.headers.get("Date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self._server_now = (email.utils.parsedate_to_datetime(date).timestamp(), time.monotonic())

    def _clock(self) -> float:
        """The org's time: its last Date header plus what has elapsed since (our own clock may be off)."""
        if self._server_now is None:
            return time.time()
        seen, at = self._server_now
        return seen + (time.monotonic() - at)

    def _error(self, status: int, payload: Any, text: str, *, record_id: str | None = None) -> ConnectorError:
        first = payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], dict) else {}
        if isinstance(payload, dict):
            first = payload
        return self._typed(status, str(first.get("errorCode") or first.get("statusCode") or ""),
                           str(first.get("message") or redact(text[:200]) or f"HTTP {status}"),
                           list(first.get("fields") or []), first.get("duplicateResult"), record_id)

    def _typed(self, status: int, code: str, message: str, fields: list[str], duplicate: Any = None,
               record_id: str | None = None) -> ConnectorError:
        kw: dict[str, Any] = {"provider": "salesforce", "status": status, "code": code or None}
        if code == "REQUEST_LIMIT_EXCEEDED":
            used = f" ({self.api_usage[0]} of {self.api_usage[1]} calls)" if self.api_usage else ""
            return RateLimited(f"This Salesforce org has used its daily API allocation{used}. It is a rolling "
                               "24-hour allowance shared by every integration; syncing resumes as it frees up.",
                               retry_after=DAILY_RETRY, daily=True, **kw)
        if code == "DUPLICATES_DETECTED":
            existing = None
            for result in (duplicate or {}).get("matchResults") or []:
                for match in result.get("matchRecords") or []:
                    existing = existing or (match.get("record") or {}).get("Id")
            return Conflict(f"Salesforce found a duplicate: {message}", existing_id=existing, **kw)
        if code == "DUPLICATE_VALUE":
            m = re.search(r"record with id: ([A-Za-z0-9]{15,18})", message)
            return Conflict(f"Salesforce: {message}", existing_id=m.group(1) if m else None, **kw)
        if code in ("ENTITY_IS_DELETED", "NOT_FOUND") or status == 404 or (
                code == "INVALID_CROSS_REFERENCE_KEY" and record_id and not fields):
            return NotFound(f"Salesforce: {message}", **kw)
        if status == 403 or code in ("INSUFFICIENT_ACCESS_OR_READONLY", "INSUFFICIENT_ACCESS", "API_DISABLED_FOR_ORG",
                                     "API_CURRENTLY_DISABLED"):
            return Forbidden(f"Salesforce refused the request ({message}). The signed-in user needs API access and "
                             "permission for this object.", **kw)
        if status == 412 or (code == "CONFLICT" and status == 409):
            return StaleVersion(f"Salesforce: {message}", **kw)
        if status in (300, 409):
            return Conflict(f"Salesforce: {message}", **kw)
        if code == "UNABLE_TO_LOCK_ROW":
            return ServerError(f"Salesforce: {message}", **kw)
        if status == 400 or status is None:
            field = fields[0] if fields else None
            if field is None:
                m = re.search(r"No such column '([^']+)'", message)
                field = m.group(1) if m else None
            return ValidationRejected(f"Salesforce refused the change: {message}", field=field, **kw)
        return ConnectorError(f"Salesforce: {message}", **kw)

    def _query(self, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
        """Every row of a SOQL query, following nextRecordsUrl."""
        path = f"{self.base}/queryAll" if all_rows else f"{self.base}/query"
        first = self._call("GET", path, params={"q": soql}, headers=QUERY_OPTIONS)
        return self._pages(first)

    def _pages(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        rows = list(page.get("records") or [])
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = self._call("GET", page["nextRecordsUrl"], headers=QUERY_OPTIONS)
            rows += page.get("records") or []
        return rows

    def _children(self, holder: dict[str, Any] | None) -> list[dict[str, Any]]:
        """A child subquery's rows (its own nextRecordsUrl when Salesforce pages it)."""
        return self._pages(holder) if holder else []

    def _composite(self, subs: list[tuple[str, str]]) -> dict[str, Any]:
        """Several GETs in one Composite call (one API call); raises the first subrequest's error."""
        body = {"allOrNone": False,
                "compositeRequest": [{"method": "GET", "url": url, "referenceId": ref} for ref, url in subs]}
        payload = self._call("POST", f"{self.base}/composite", body=body, idempotent=True)
        out: dict[str, Any] = {}
        for item in payload.get("compositeResponse") or []:
            status = int(item.get("httpStatusCode") or 0)
            if status >= 300:
                raise self._error(status, item.get("body"), json.dumps(item.get("body"), default=str))
            out[item["referenceId"]] = item.get("body")
        return out

    def _url(self, path: str, params: dict[str, str]) -> str:
        return f"{self.base}{path}?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)

    # -- metadata ---------------------------------------------------------------------------------
    def _fields(self, sobject: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """describe -> {lower-case name: field}, cached for this connector."""
        if fresh or sobject not in self._describe:
            payload = self._call("GET", f"{self.base}/sobjects/{sobject}/describe")
            self._describe[sobject] = {f["name"].lower(): f for f in payload.get("fields") or []}
        return self._describe[sobject]

    def _select(self, sobject: str, cached: list[str] | None = None) -> list[str]:
        """The fields to read: every queryable scalar field (custom ones included)."""
        if sobject not in self._describe and cached:
            return list(cached)
        return [f["name"] for f in self._fields(sobject).values() if f.get("type") not in COMPOUND]

    def _organization(self) -> dict[str, Any]:
        rows = self._query(_soql(("Id", "Name", "DefaultCurrencyIsoCode", "IsSandbox"), "Organization"))
        return rows[0] if rows else {}

    def company_name(self) -> str:
        return str(self._organization().get("Name") or "")

    def _org_currency(self) -> str:
        if not self.conn.extra.get("currency"):
            self.conn.extra["currency"] = self._organization().get("DefaultCurrencyIsoCode") or "USD"
        return str(self.conn.extra["currency"])

    def list_fields(self, object_type: str) -> list[FieldInfo]:
        out = []
        for field in self._fields(OBJECT[object_type]).values():
            if field.get("type") in COMPOUND:
                continue
            name = field["name"]
            out.append(FieldInfo(name, field.get("label") or name, FIELD_KIND.get(field.get("type"), "string"),
                                 name.endswith("__c")))
        return out

    def default_mapping(self) -> dict[str, dict[str, str]]:
        """Canonical -> Salesforce field; the Account's tax ID and billing email are custom fields found by label."""
        if self._mapping is None:
            company = {"name": "Name", "phone": "Phone", "address_line1": "BillingStreet", "city": "BillingCity",
                       "region": "BillingState", "postal_code": "BillingPostalCode", "country": "BillingCountry"}
            custom = [f for f in self._fields("Account").values() if f["name"].endswith("__c")]
            for canonical, test in (
                ("tax_id", lambda f: re.search(r"\b(tax|vat|ust|btw|abn|ein|gst)\b", f["label"], re.I)
                 or re.match(r"(tax|vat)_?id__c$", f["name"], re.I)),
                ("email", lambda f: f.get("type") == "email" or re.search(r"e-?mail", f["label"], re.I)),
            ):
                found = next((f["name"] for f in custom if test(f)), None)
                if found:
                    company[canonical] = found
            person = {"first_name": "FirstName", "last_name": "LastName", "email": "Email", "phone": "Phone",
                      "address_line1": "MailingStreet", "city": "MailingCity", "region": "MailingState",
                      "postal_code": "MailingPostalCode", "country": "MailingCountry"}
            self._mapping = {"company": company, "person": person}
        return {k: dict(v) for k, v in self._mapping.items()}

    def record_url(self, object_type: str, record_id: str) -> str:
        """The record in Lightning Experience (lightning.force.com for My Domain hosts)."""
        sobject = OBJECT.get(object_type, object_type)
        root = (self.conn.base_url or PROVIDER.default_base_url).rstrip("/")
        root = re.sub(r"\.my\.salesforce\.com$", ".lightning.force.com", root)
        return f"{root}/lightning/r/{sobject}/{to18(record_id)}/view"

    # -- reading records --------------------------------------------------------------------
    def _to_record(self, object_type: str, row: dict[str, Any]) -> CrmRecord:
        company = row.get("AccountId") if object_type == "person" else None
        return CrmRecord(object_type=object_type, id=row["Id"], properties=_flat(row),  # type: ignore[arg-type]
                         updated_at=_datetime(row.get("SystemModstamp")), archived=bool(row.get("IsDeleted")),
                         company_id=company or None, merged_into=row.get("MasterRecordId") or None)

    def read_records(self, object_type: str, cursor: str | None) -> Changes[CrmRecord]:
        sobject = OBJECT[object_type]
        before = self.api.request_count
        state = _Cursor.parse(cursor)
        if state is not None and state.dele is not None and self._clock() - state.dele > DELETED_MAX_AGE:
            log.info("salesforce: %s cursor is older than getDeleted covers; reading everything", sobject)
            state = None
        if state is None:
            fields = self._select(sobject)
            rows = self._query(_soql(fields, sobject, order="SystemModstamp, Id"))
            new = self._first_cursor(rows, fields)
            records = [self._to_record(object_type, r) for r in rows]
            return Changes(records, new.dump(), [], full=True, requests=self.api.request_count - before)
        rows, deleted, new, _ = self._changes(sobject, state)
        # Deleted rows go in deleted_ids; a merge loser also comes back archived, naming its winner.
        records = [self._to_record(object_type, r) for r in rows
                   if not r.get("IsDeleted") or r.get("MasterRecordId")]
        return Changes(records, new.dump(), deleted, full=False, requests=self.api.request_count - before)

    def _first_cursor(self, rows: list[dict[str, Any]], fields: list[str]) -> _Cursor:
        stamps = {r["Id"]: _ms(r.get("SystemModstamp")) or 0 for r in rows}
        now = self._clock()
        ts = max(stamps.values()) / 1000 if stamps else now - OVERLAP
        return _Cursor(ts, now, now, _Cursor.window(stamps, ts), {}, fields)

    def _since(self, state: _Cursor) -> float:
        return (state.ts if state.ts is not None else self._clock()) - OVERLAP

    def _changes(self, sobject: str, state: _Cursor, extra: dict[str, str] | None = None,
                 build: Callable[[list[str], float], str] | None = None, *, retried: bool = False
                 ) -> tuple[list[dict[str, Any]], list[str], _Cursor, dict[str, Any]]:
        """What changed since the cursor, in one request: queryAll on SystemModstamp, getDeleted for the
        window up to the previous read, and ``extra`` GETs, together in one Composite call.

        Returns the changed rows (deleted ones included, IsDeleted true, each once), the IDs deleted
        since, the next cursor and the bodies of the extra subrequests.
        """
        fields = self._select(sobject, state.fields)
        since = self._since(state)
        if build is None:
            soql = _soql(fields, sobject, f"SystemModstamp > {_literal(since)}", "SystemModstamp, Id")
        else:
            soql = build(fields, since)
        subs = [("changes", self._url("/queryAll", {"q": soql}))]
        window = state.dele is not None and state.now is not None and state.now - state.dele > DELETED_MIN_WINDOW
        if window:
            subs.append(("deleted", self._url(f"/sobjects/{sobject}/deleted/", {
                "start": _param_time(state.dele), "end": _param_time(state.now)})))  # type: ignore[arg-type]
        subs += list((extra or {}).items())
        try:
            if len(subs) == 1:
                bodies = {"changes": self._call("GET", f"{self.base}/queryAll", params={"q": soql},
                                                headers=QUERY_OPTIONS)}
            else:
                bodies = self._composite(subs)
        except ValidationRejected as exc:
            if exc.code != "INVALID_FIELD" or retried:
                raise
            self._describe.pop(sobject, None)  # a field went away (or lost its field-level security)
            stale = _Cursor(state.ts, state.now, state.dele, state.seen, state.gone, [], state.lines)
            return self._changes(sobject, stale, extra, build, retried=True)
        now = self._clock()
        rows = self._pages(bodies["changes"])
        fresh, deleted = [], []
        stamps: dict[str, int] = {}
        gone = dict(state.gone)
        for row in rows:
            rid, stamp = row["Id"], _ms(row.get("SystemModstamp")) or 0
            stamps[rid] = stamp
            if state.seen.get(rid) == stamp:
                continue
            fresh.append(row)
            if row.get("IsDeleted"):
                if rid not in gone:
                    deleted.append(rid)
                gone[rid] = stamp
        dele = state.dele
        if window:
            result = bodies.get("deleted") or {}
            for item in result.get("deletedRecords") or []:
                rid = item.get("id")
                if rid and rid not in gone:
                    deleted.append(rid)
                    gone[rid] = _ms(item.get("deletedDate")) or 0
            dele = _epoch(result.get("latestDateCovered")) or state.now
        ts = max([state.ts or 0.0, *(s / 1000 for s in stamps.values())])
        seen = _Cursor.window({**state.seen, **stamps}, ts)
        edge = ((dele or now) - 120) * 1000
        gone = {k: v for k, v in gone.items() if v >= edge or k in seen}
        extras = {ref: bodies.get(ref) for ref in (extra or {})}
        return fresh, deleted, _Cursor(ts, now, dele, seen, gone, fields, state.lines), extras

    def sample_records(self, object_type: str, limit: int) -> list[CrmRecord]:
        """Up to ``limit`` live records (at most 2,000) in one SOQL query with LIMIT.

        ``query`` (not ``queryAll``) leaves deleted and merged-away records out; a contact's
        ``AccountId`` is among the selected fields, as on a full read.
        """
        if limit <= 0:
            return []
        sobject = OBJECT[object_type]
        soql = f"{_soql(self._select(sobject), sobject)} LIMIT {min(int(limit), PAGE)}"
        page = self._call("GET", f"{self.base}/query", params={"q": soql}, headers=QUERY_OPTIONS) or {}
        return [self._to_record(object_type, r) for r in (page.get("records") or [])[:limit]
                if not r.get("IsDeleted")]

    def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]:
        if not ids:
            return []
        sobject = OBJECT[object_type]
        fields = self._select(sobject)
        by_id: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), RETRIEVE):
            chunk = wanted[start:start + RETRIEVE]
            rows = self._call("POST", f"{self.base}/composite/sobjects/{sobject}",
                              body={"ids": chunk, "fields": fields}, idempotent=True)
            for row in rows or []:
                if row:
                    by_id[to18(row["Id"]).lower()] = row
        return [self._to_record(object_type, by_id[to18(i).lower()]) for i in ids if to18(i).lower() in by_id]

    # -- writing records --------------------------------------------------------------------
    def update_records(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Creates and updates through sObject Collections, 200 records a call, in input order."""
        return self._write(writes)

    def update_deals(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return self._write([w if w.object_type == "deal" else RecordWrite(w.key, "deal", w.id, w.properties)
                            for w in writes])

    def _write(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        results: dict[int, WriteResult] = {}
        creates: list[tuple[int, RecordWrite, dict[str, Any]]] = []
        updates: list[tuple[int, RecordWrite, dict[str, Any]]] = []
        for n, write in enumerate(writes):
            try:
                record = self._record_body(OBJECT[write.object_type], write.properties, creating=write.id is None)
            except ValidationRejected as exc:
                results[n] = WriteResult(write.key, write.id, error=exc)
                continue
            if write.id is None:
                creates.append((n, write, record))
            else:
                record["Id"] = write.id
                updates.append((n, write, record))
        for start in range(0, len(updates), BATCH):
            self._send("PATCH", updates[start:start + BATCH], results)
        for start in range(0, len(creates), BATCH):
            self._send("POST", creates[start:start + BATCH], results)
        return [results[n] for n in range(len(writes))]

    def _record_body(self, sobject: str, props: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Flat provider fields -> a Collections record, typed by describe; what cannot be sent fails here."""
        fields = self._fields(sobject)
        out: dict[str, Any] = {"attributes": {"type": sobject}}
        for key, value in props.items():
            field = fields.get(key.lower())
            if field is None:
                raise ValidationRejected(f"Salesforce has no {sobject} field '{key}' (or this user cannot see it).",
                                         field=key, provider="salesforce")
            if not (field.get("createable") if creating else field.get("updateable")):
                raise ValidationRejected(f"The {sobject} field '{field['name']}' cannot be "
                                         f"{'set' if creating else 'changed'} through the API.", field=key,
                                         provider="salesforce")
            out[field["name"]] = _typed(field, value, creating=creating)
        if len(out) == 1 and not creating:
            raise ValidationRejected("Nothing to change.", provider="salesforce")
        return out

    def _send(self, method: str, chunk: list[tuple[int, RecordWrite, dict[str, Any]]],
              results: dict[int, WriteResult]) -> None:
        body = {"allOrNone": False, "records": [rec for _, _, rec in chunk]}
        since = self._clock() - 60
        try:
            payload = self._call(method, f"{self.base}/composite/sobjects", body=body, idempotent=method == "PATCH")
        except AuthExpired:
            raise
        except RateLimited as exc:
            if exc.daily:
                raise
            for n, write, _ in chunk:
                results[n] = WriteResult(write.key, write.id, error=exc)
            return
        except TransportError as exc:
            if method != "POST":
                for n, write, _ in chunk:
                    results[n] = WriteResult(write.key, write.id, error=exc)
                return
            self._settle_creates(chunk, results, since, exc)
            return
        except ConnectorError as exc:
            for n, write, _ in chunk:
                results[n] = WriteResult(write.key, write.id, error=exc)
            return
        self._collect(chunk, payload, results)

    def _collect(self, chunk: list[tuple[int, RecordWrite, dict[str, Any]]], payload: Any,
                 results: dict[int, WriteResult]) -> None:
        duplicates: list[tuple[int, RecordWrite, dict[str, Any], Conflict]] = []
        for (n, write, record), res in zip(chunk, payload or [], strict=False):
            if res.get("success"):
                results[n] = WriteResult(write.key, res.get("id") or write.id)
                continue
            errors = res.get("errors") or [{}]
            first = errors[0]
            error = self._typed(400, str(first.get("statusCode") or ""), str(first.get("message") or "failed"),
                                list(first.get("fields") or []), first.get("duplicateResult"), write.id)
            if isinstance(error, Conflict) and error.code == "DUPLICATES_DETECTED" and not error.existing_id:
                duplicates.append((n, write, record, error))
            results[n] = WriteResult(write.key, write.id, error=error)
        for n, write, _ in chunk:
            if n not in results:
                results[n] = WriteResult(write.key, write.id, error=ConnectorError(
                    "Salesforce did not answer for this record.", provider="salesforce"))
        if duplicates:
            self._name_duplicates(duplicates, results)

    def _name_duplicates(self, duplicates: list[tuple[int, RecordWrite, dict[str, Any], Conflict]],
                         results: dict[int, WriteResult]) -> None:
        """Collections give the short duplicate error: find the existing records by the rule's field."""
        key_field = {"Account": "Name", "Contact": "Email", "Opportunity": "Name"}
        by_type: dict[str, list[tuple[int, RecordWrite, dict[str, Any], Conflict]]] = {}
        for item in duplicates:
            by_type.setdefault(item[2]["attributes"]["type"], []).append(item)
        for sobject, items in by_type.items():
            field = key_field.get(sobject)
            values = sorted({str(rec.get(field)).strip() for _, _, rec, _ in items if field and rec.get(field)})
            if not field or not values:
                continue
            found: dict[str, str] = {}
            try:
                for start in range(0, len(values), 100):
                    chunk = ", ".join(_quote(v) for v in values[start:start + 100])
                    for row in self._query(_soql(("Id", field), sobject, f"{field} IN ({chunk})",
                                                 "CreatedDate, Id")):
                        found.setdefault(" ".join(str(row.get(field) or "").split()).casefold(), row["Id"])
            except ConnectorError as exc:
                log.warning("salesforce: could not look up duplicates: %s", exc)
                continue
            for n, write, rec, error in items:
                existing = found.get(" ".join(str(rec.get(field) or "").split()).casefold())
                if existing and existing != write.id:
                    error.existing_id = existing
                    results[n] = WriteResult(write.key, write.id, error=error)

    def _settle_creates(self, chunk: list[tuple[int, RecordWrite, dict[str, Any]]], results: dict[int, WriteResult],
                        since: float, exc: TransportError) -> None:
        """The answer to a create was lost: find what was created since we sent it, resend the rest once."""
        user = self.conn.extra.get("user_id")
        key_fields = {"Account": ("Name",), "Contact": ("Email", "LastName", "FirstName"),
                      "Opportunity": ("Name",)}
        created: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        try:
            for sobject in sorted({rec["attributes"]["type"] for _, _, rec in chunk}):
                keys = key_fields.get(sobject, ("Name",))
                where = f"CreatedDate >= {_literal(since)}" + (f" AND CreatedById = {_quote(user)}" if user else "")
                for row in self._query(_soql(("Id", *keys), sobject, where, "CreatedDate, Id")):
                    ident = tuple(" ".join(str(row.get(k) or "").split()).casefold() for k in keys)
                    created.setdefault((sobject, ident), []).append(row["Id"])
        except ConnectorError as lookup_error:
            log.warning("salesforce: could not settle a lost create: %s", lookup_error)
            for n, write, _ in chunk:
                results[n] = WriteResult(write.key, write.id, error=exc)
            return
        resend = []
        for n, write, rec in chunk:
            sobject = rec["attributes"]["type"]
            keys = key_fields.get(sobject, ("Name",))
            ident = tuple(" ".join(str(rec.get(k) or "").split()).casefold() for k in keys)
            ids = created.get((sobject, ident))
            if ids:
                results[n] = WriteResult(write.key, ids.pop(0))
            else:
                resend.append((n, write, rec))
        if resend:
            try:
                payload = self._call("POST", f"{self.base}/composite/sobjects",
                                     body={"allOrNone": False, "records": [r for _, _, r in resend]})
            except ConnectorError as again:
                if isinstance(again, RateLimited) and again.daily:
                    raise
                for n, write, _ in resend:
                    results[n] = WriteResult(write.key, write.id, error=again)
                return
            self._collect(resend, payload, results)

    # -- deals --------------------------------------------------------------------------------
    def _deal_query(self, fields: list[str], where: str | None = None) -> str:
        lines = "(" + _soql(LINE_FIELDS, "OpportunityLineItems", order="CreatedDate, Id") + ")"
        roles = "(" + _soql(ROLE_FIELDS, "OpportunityContactRoles", order="IsPrimary DESC, CreatedDate") + ")"
        return _soql((*fields, lines, roles), "Opportunity", where, "SystemModstamp, Id")

    def read_deals(self, cursor: str | None) -> Changes[Deal]:
        before = self.api.request_count
        state = _Cursor.parse(cursor)
        if state is not None and state.dele is not None and self._clock() - state.dele > DELETED_MAX_AGE:
            state = None
        stages_url = self._url("/query", {"q": _soql(("ApiName", "MasterLabel", "IsWon", "IsClosed", "IsActive"),
                                                     "OpportunityStage")})
        if state is None:
            fields = self._select("Opportunity")
            bodies = self._composite([("deals", self._url("/query", {"q": self._deal_query(fields)})),
                                      ("stages", stages_url)])
            rows = self._pages(bodies["deals"])
            won = self._won_map(bodies["stages"])
            new = self._first_cursor(rows, fields)
            new.lines = _Cursor.window({li["Id"]: _ms(li.get("SystemModstamp")) or 0 for r in rows
                                        for li in self._children(r.get("OpportunityLineItems"))}, new.ts)
            deals = [self._to_deal(r, won) for r in rows]
            return Changes(deals, new.dump(), [], full=True, requests=self.api.request_count - before)
        line_q = _soql(("Id", "OpportunityId", "IsDeleted", "SystemModstamp"), "OpportunityLineItem",
                       f"SystemModstamp > {_literal(self._since(state))}")
        rows, deleted, new, extra = self._changes(
            "Opportunity", state, {"stages": stages_url, "lines": self._url("/queryAll", {"q": line_q})},
            lambda fields, since: self._deal_query(fields, f"SystemModstamp > {_literal(since)}"))
        won = self._won_map(extra["stages"])
        line_rows = self._pages(extra["lines"] or {})
        line_stamps = {li["Id"]: _ms(li.get("SystemModstamp")) or 0 for li in line_rows}
        have = {r["Id"] for r in rows} | set(deleted)
        parents = sorted({li["OpportunityId"] for li in line_rows
                          if state.lines.get(li["Id"]) != line_stamps[li["Id"]] and li["OpportunityId"] not in have})
        for start in range(0, len(parents), 200):  # lines changed under an opportunity that did not
            ids = ", ".join(_quote(p) for p in parents[start:start + 200])
            rows += self._query(self._deal_query(new.fields, f"Id IN ({ids})"))
        new.lines = _Cursor.window({**state.lines, **line_stamps}, new.ts)
        deals = [self._to_deal(r, won) for r in rows if not r.get("IsDeleted")]
        return Changes(deals, new.dump(), deleted, full=False, requests=self.api.request_count - before)

    def _won_map(self, stages: dict[str, Any] | None) -> dict[str, bool]:
        return {row["ApiName"]: bool(row.get("IsWon")) for row in (stages or {}).get("records") or []}

    def _to_deal(self, row: dict[str, Any], won: dict[str, bool]) -> Deal:
        stage = row.get("StageName")
        is_won = won[stage] if stage in won else bool(row.get("IsWon"))  # stage metadata, never the name
        items = []
        for line in self._children(row.get("OpportunityLineItems")):
            if line.get("IsDeleted"):  # queryAll's subqueries carry deleted children too
                continue
            product = line.get("Product2") or {}
            name = product.get("Name")
            items.append(LineItem(
                description=line.get("Description") or name or "",
                quantity=_plain(_dec(line.get("Quantity")) or Decimal(0)),
                unit_price=_plain(_dec(line.get("UnitPrice")) or Decimal(0)),
                discount_percent=_plain(_dec(line.get("Discount")) or Decimal(0)),
                sku=product.get("ProductCode") or None, product_name=name or None, id=line["Id"]))
        roles = [r for r in self._children(row.get("OpportunityContactRoles")) if not r.get("IsDeleted")]
        contacts = tuple(dict.fromkeys(r["ContactId"] for r in roles if r.get("ContactId")))
        close = row.get("CloseDate")
        return Deal(id=row["Id"], name=row.get("Name") or "", won=is_won,
                    currency=row.get("CurrencyIsoCode") or self._org_currency(),
                    amount=_dec(row.get("Amount")), close_date=dt.date.fromisoformat(close) if close else None,
                    company_id=row.get("AccountId") or None, contact_ids=contacts, line_items=tuple(items),
                    properties=_flat(row), updated_at=_datetime(row.get("SystemModstamp")),
                    archived=bool(row.get("IsDeleted")))

    def ensure_deal_fields(self, fields: Sequence[FieldInfo]) -> dict[str, str]:
        """Find our Opportunity fields by API name or label; create the missing ones (Tooling API) and
        grant this user field-level security through a permission set, without which nobody sees them."""
        existing = self._fields("Opportunity", fresh=True)
        by_label = {str(f.get("label") or "").casefold(): f["name"] for f in existing.values()
                    if f["name"].endswith("__c")}
        out: dict[str, str] = {}
        missing: list[tuple[FieldInfo, str]] = []
        for info in fields:
            api_name = _api_name(info.name)
            found = existing.get(api_name.lower())
            name = found["name"] if found else by_label.get(info.label.casefold())
            if name:
                out[info.name] = name
            else:
                missing.append((info, api_name))
        if not missing:
            return out
        for info, api_name in missing:
            spec = _field_spec(info)
            try:
                # safe to repeat: a second create answers DUPLICATE_DEVELOPER_NAME, handled below
                self._call("POST", f"{self.base}/tooling/sobjects/CustomField",
                           body={"FullName": f"Opportunity.{api_name}", "Metadata": spec}, idempotent=True)
            except ValidationRejected as exc:
                if exc.code != "DUPLICATE_DEVELOPER_NAME":  # exists, but this user cannot see it yet
                    raise
            except Forbidden as exc:
                wanted = "; ".join(f"{api}: {_field_spec(i)['type']} labelled '{i.label}'" for i, api in missing)
                raise Forbidden(f"Creating Salesforce fields needs the Customize Application permission. Ask an "
                                f"admin to add these Opportunity fields and give this user access: {wanted}.",
                                provider="salesforce", status=exc.status, code=exc.code) from exc
            out[info.name] = api_name
        self._grant_field_access("Opportunity", [api for _, api in missing])
        visible = self._fields("Opportunity", fresh=True)
        hidden = [api for _, api in missing if api.lower() not in visible]
        if hidden:
            raise Forbidden(f"Salesforce created the Opportunity fields {', '.join(hidden)} but this user still "
                            "cannot see them. Ask an admin to grant field access.", provider="salesforce")
        return out

    def _grant_field_access(self, sobject: str, names: list[str]) -> None:
        """Field-level security: a permission set with read/edit on the fields, assigned to this user."""
        user = self.conn.extra.get("user_id") or _identity((self.tokens.load(self.conn.id) or Tokens("")).extra
                                                           .get("id"))[1]
        rows = self._query(_soql(("Id",), "PermissionSet", f"Name = {_quote(PERMISSION_SET)}"))
        if rows:
            perm_id = rows[0]["Id"]
        else:
            created = self._call("POST", f"{self.base}/sobjects/PermissionSet", body={
                "Name": PERMISSION_SET, "Label": "Crossledger integration",
                "Description": "Field access for the fields Crossledger writes invoice status to."})
            perm_id = created["id"]
        records: list[dict[str, Any]] = [
            {"attributes": {"type": "FieldPermissions"}, "ParentId": perm_id, "SobjectType": sobject,
             "Field": f"{sobject}.{name}", "PermissionsRead": True, "PermissionsEdit": True} for name in names]
        if user:
            assigned = self._query(_soql(("Id",), "PermissionSetAssignment",
                                         f"PermissionSetId = {_quote(perm_id)} AND AssigneeId = {_quote(user)}"))
            if not assigned:
                records.append({"attributes": {"type": "PermissionSetAssignment"}, "PermissionSetId": perm_id,
                                "AssigneeId": user})
        results = self._call("POST", f"{self.base}/composite/sobjects", body={"allOrNone": False,
                                                                            "records": records})
        for res in results or []:
            errors = res.get("errors") or []
            if not res.get("success") and not any(e.get("statusCode") == "DUPLICATE_VALUE" for e in errors):
                first = errors[0] if errors else {}
                raise self._typed(400, str(first.get("statusCode") or ""), str(first.get("message") or ""),
                                  list(first.get("fields") or []))

    def close(self) -> None:
        self.api.close()
