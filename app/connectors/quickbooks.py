"""QuickBooks Online (Accounting API v3) as an AccountingConnector.

What shapes this module (Intuit's QuickBooks Online Accounting API docs, developer.intuit.com;
the data model's XSDs are in tests/specs/quickbooks/):
- OAuth: authorize at appcenter.intuit.com, tokens at oauth.platform.intuit.com with HTTP Basic client
  auth (the secret is always required; no PKCE is advertised). The company (``realmId``) arrives only in
  the callback and goes into every URL: ``/v3/company/{realmId}/...``. Refresh tokens may rotate; the
  shared HTTP layer saves the new one before using the new access token.
- Reads: the SQL-like query endpoint pages 1000 rows at a time (``STARTPOSITION``/``MAXRESULTS``) with a
  stable ``ORDERBY Id``; change feeds use CDC (one request per entity, 30 days back at most, 1000
  objects at most) and fall back to a ``MetaData.LastUpdatedTime`` query when the cursor is older than
  that or the CDC answer is saturated. The watermark is the server's ``time`` on the answer.
- Writes go through ``/batch`` (30 items), with a ``requestid`` derived from the writes' keys (and the
  versions they were based on), so a retried batch is answered from QBO's replay cache, never run twice.
- Optimistic locking with ``SyncToken`` (5010 -> StaleVersion); DisplayName clashes (6240 -> DuplicateName).
- Amounts are JSON numbers: parsed as Decimal, sent as JSON numbers written from the Decimal.

The wire format's helpers are in ``quickbooks_wire``; invoices, payments and credit memos in
``quickbooks_invoices`` (a mixin of this connector); merged, deleted and reopened records in
``ledger_fates``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

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
    INACTIVE_CUSTOMER_TEXT,
    AuthExpired,
    Conflict,
    ConnectorError,
    CustomerInactive,
    DuplicateName,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    StaleVersion,
    TransportError,
    Unauthorized,
    ValidationRejected,
)
from app.connectors.http import RateLimiter, make_api_client, redact
from app.connectors.ledger_fates import QuickBooksLifecycle
from app.connectors.oauth import FlowResult, OAuthConfig, OAuthError, refresh_tokens
from app.connectors.quickbooks_invoices import QuickBooksInvoices
from app.connectors.quickbooks_wire import (
    NAMESPACE,
    PAGE,
    _chunks,
    _clean_name,
    found,
    iso_utc,
    json_dumps,
    parse_ts,
    quote,
    unchanged_since,
)
from app.connectors.registry import ProviderInfo
from app.connectors.tokens import TokenStore
from app.domain.models import AccountingCustomer, Item, Party
from app.domain.money import decimal_or_none as _dec
from app.domain.text import country_code
from app.domain.text import text_or_none as _text

PROVIDER = ProviderInfo(
    name="quickbooks",
    kind="accounting",
    label="QuickBooks Online",
    default_base_url="https://quickbooks.api.intuit.com",
    default_auth_url="https://appcenter.intuit.com",
    needs_client_secret=True,
    web_url="https://app.qbo.intuit.com",
)

MINOR_VERSION = "75"  # versions below 75 were retired in Aug 2025 (Intuit's "Minor versions")
SCOPES = ("com.intuit.quickbooks.accounting",)
TOKEN_HOSTS = {"https://appcenter.intuit.com": "https://oauth.platform.intuit.com"}
WEB_HOSTS = {"quickbooks.api.intuit.com": "https://app.qbo.intuit.com",
             "sandbox-quickbooks.api.intuit.com": "https://app.sandbox.qbo.intuit.com"}
BATCH = 30  # BatchItemRequest max
CDC_DAYS = 30
CDC_MAX = 1000  # objects per CDC answer, shared across entities
OVERLAP = 5.0  # seconds subtracted from the watermark: MetaData times have second precision
EDGE_MAX = 2000  # records remembered at the cursor's edge (beyond that they may be handed back once more)
THROTTLE_WAIT = 60.0  # QBO sends no Retry-After with its 429; its advice is to wait a minute
QUERY_GET_MAX = 1500  # longer statements go as POST /query (application/text)
NAME_MAX = {"DisplayName": 500, "CompanyName": 100, "GivenName": 25, "FamilyName": 25}
_DELETED = re.compile(r"\s\(deleted(?:-\d+)?\)$")
_MASKED = re.compile(r"^[X*•]{3,}")
# Where an error's ``element`` points, in canonical field names (for quarantine messages).
ELEMENT_FIELDS = {"DisplayName": "name", "CompanyName": "name", "GivenName": "name", "FamilyName": "name",
                  "PrimaryEmailAddr": "email", "PrimaryEmailAddr.Address": "email", "PrimaryPhone": "phone",
                  "PrimaryPhone.FreeFormNumber": "phone", "BillAddr.Line1": "address_line1",
                  "BillAddr.Line2": "address_line2", "BillAddr.City": "city",
                  "BillAddr.CountrySubDivisionCode": "region", "BillAddr.PostalCode": "postal_code",
                  "BillAddr.Country": "country", "PrimaryTaxIdentifier": "tax_id", "CurrencyRef": "currency"}


# -- connecting -------------------------------------------------------------------------------
def oauth_config(conn: Connection, client_secret: str | None) -> OAuthConfig:
    """Authorize at appcenter.intuit.com, tokens at oauth.platform.intuit.com (or a sandbox's own root)."""
    root = (conn.auth_url or PROVIDER.default_auth_url).rstrip("/")
    token_root = TOKEN_HOSTS.get(root, root)
    return OAuthConfig(
        provider="QuickBooks Online",
        authorize_url=f"{root}/connect/oauth2",
        token_url=f"{token_root}/oauth2/v1/tokens/bearer",
        client_id=conn.client_id,
        client_secret=client_secret,
        scopes=SCOPES,
        pkce=True,  # not advertised by Intuit (sent anyway, as for every provider); the secret is required
        secret_in_basic_auth=True,
    )


def finish_connect(conn: Connection, flow: FlowResult, tokens: TokenStore,
                   transport: httpx.BaseTransport | None) -> None:
    """The company is the ``realmId`` of the callback; its name and currencies come from two reads."""
    realm = flow.callback.get("realmId") or flow.token_body.get("realmId")
    if not realm:
        raise OAuthError("QuickBooks did not say which company was connected. Connect again and pick the "
                         "company when QuickBooks asks.", provider="quickbooks")
    conn.tenant_id = str(realm)
    connector = Connector(conn, tokens, transport=transport)
    try:
        conn.label = connector.company_name() or conn.label
        prefs = connector.preferences()
    finally:
        connector.close()
    currency = (prefs.get("CurrencyPrefs") or {})
    conn.extra["home_currency"] = (currency.get("HomeCurrency") or {}).get("value")
    conn.extra["multicurrency"] = bool(currency.get("MultiCurrencyEnabled"))


def web_root(base_url: str, override: str | None = None) -> str:
    """The QuickBooks web app for an API host: Intuit's sandbox companies have their own.

    Anything else (a local sandbox included) links to the production web app: a link must not change
    when a local sandbox comes back on another port, or every run would rewrite it on every deal.
    ``conn.extra["web_url"]`` overrides it.
    """
    if override:
        return override.rstrip("/")
    return WEB_HOSTS.get(httpx.URL(base_url).host, PROVIDER.web_url)


class _Cursor:
    """Opaque cursor: the server time a read started (the next ``changedSince``, less an overlap), and
    the (SyncToken, time) of records already delivered inside that overlap, so they are not handed
    back again unchanged."""

    def __init__(self, since: float, edge: dict[str, list[Any]] | None = None) -> None:
        self.since = since
        self.edge = edge or {}

    @classmethod
    def load(cls, text: str | None) -> _Cursor | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(float(data["since"]), dict(data.get("edge") or {}))
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable cursor means a full read

    def dump(self) -> str:
        data: dict[str, Any] = {"v": 1, "since": self.since}
        if self.edge:
            data["edge"] = self.edge
        return json.dumps(data, separators=(",", ":"))


@dataclass(slots=True)
class _Read:
    rows: list[dict[str, Any]]
    deleted: list[str]
    cursor: str
    full: bool
    today: dt.date  # in the company's time zone, from the server's clock


class _TooOld(Exception):
    """CDC refused the window (older than 30 days)."""


# -- the connector --------------------------------------------------------------------------------
class Connector(QuickBooksInvoices, QuickBooksLifecycle):
    """One QuickBooks Online company (realm)."""

    provider = "quickbooks"

    def __init__(self, conn: Connection, tokens: TokenStore, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.transport = transport
        self.sleep = sleep
        # 500 requests a minute per realm; an embedded sandbox may allow more (conn.extra, with scale_limits).
        per_minute = int(conn.extra.get("requests_per_minute") or 500)
        self.limits = Limits(requests=per_minute, window_seconds=60.0, batch_max=BATCH, page_max=PAGE,
                             concurrency=10)
        # A second of margin: our clock and Intuit's never start a minute at exactly the same instant.
        self.api = make_api_client(conn, tokens, provider="QuickBooks Online", limits=self.limits,
                                   refresh=self._refresh, margin=1.0, transport=transport, sleep=sleep, clock=clock)
        # And 40 batch calls a minute per realm: paced here, so a large sync waits its turn instead of
        # drawing 429s it must wait out and send again.
        per_minute_batch = int(conn.extra.get("batch_calls_per_minute") or 40)
        self.batch_pacer = RateLimiter(per_minute_batch, 61.0, clock=clock, sleep=sleep)
        self._income_account: str | None = conn.extra.get("income_account_id")

    def _refresh(self, tokens: Any) -> Any:
        try:
            return refresh_tokens(oauth_config(self.conn, tokens.client_secret), tokens, self.transport)
        except OAuthError as exc:
            if exc.status in (400, 401):
                raise AuthExpired("The saved sign-in for QuickBooks Online is no longer valid. Reconnect to "
                                  "continue.", provider=self.provider, status=exc.status) from exc
            raise

    # -- transport ------------------------------------------------------------------------------
    @property
    def realm(self) -> str:
        if not self.conn.tenant_id:
            raise ConnectorError("This QuickBooks connection has no company. Connect it again.",
                                 provider=self.provider)
        return self.conn.tenant_id

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              text: str | None = None, requestid: str | None = None,
              resource: str = "") -> tuple[dict[str, Any], httpx.Response]:
        """One API call; a write with a ``requestid`` may be retried blindly (QBO answers it once)."""
        url = f"/v3/company/{self.realm}{path}"
        query = {"minorversion": MINOR_VERSION, **(params or {})}
        if requestid:
            query["requestid"] = requestid
        for attempt in range(3):
            try:
                if body is not None:
                    resp = self.api.request(method, url, params=query, content=json_dumps(body).encode(),
                                            headers={"Content-Type": "application/json"},
                                            idempotent=True if requestid else None)
                elif text is not None:
                    resp = self.api.request("POST", url, params=query, content=text.encode(),
                                            headers={"Content-Type": "application/text"}, idempotent=True)
                else:
                    resp = self.api.request(method, url, params=query)
            except RateLimited as exc:
                # No Retry-After from QBO: the layer's short back-off is not enough; wait a minute.
                if attempt == 2 or exc.daily:
                    raise
                self.api.limiter.block_for(THROTTLE_WAIT * (attempt + 1))
                continue
            break
        try:
            data = self.api.body(resp) if resp.content else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"QuickBooks Online sent an answer that could not be read "
                                 f"(status {resp.status_code}).", provider=self.provider,
                                 status=resp.status_code) from exc
        if not isinstance(data, dict):
            raise TransportError("QuickBooks Online sent an unexpected answer.", provider=self.provider,
                                 status=resp.status_code)
        if resp.status_code >= 400:
            raise self._error(resp.status_code, data, resource)
        return data, resp

    def _error(self, status: int, data: dict[str, Any], resource: str) -> ConnectorError:
        """Fault (or the lower-case ``fault`` of auth errors) -> a typed error."""
        fault = data.get("Fault") or data.get("fault") or {}
        return self._fault_error(fault, status, resource)

    def _fault_error(self, fault: dict[str, Any], status: int | None, resource: str) -> ConnectorError:
        errors = fault.get("Error") or fault.get("error") or [{}]
        first = errors[0] if isinstance(errors, list) and errors else {}
        code = str(first.get("code") or "")
        message = first.get("Message") or first.get("message") or f"HTTP {status}"
        detail = first.get("Detail") or first.get("detail") or ""
        element = first.get("element") or None
        text = f"QuickBooks Online: {detail or message}"
        kw = {"provider": self.provider, "status": status, "code": code or None}
        if code == "5010":
            return StaleVersion("The record changed in QuickBooks since it was read.", **kw)
        if code == "6240":
            if resource == "customer":
                return DuplicateName(text, **kw)
            return Conflict(text, **kw)
        if code in ("6210", "6140"):
            return Conflict(text, **kw)
        if code == "610" and element == "CustomerRef":
            return CustomerInactive(INACTIVE_CUSTOMER_TEXT.format(ledger="QuickBooks"), provider=self.provider,
                                    status=status, code=code)
        if code == "610":
            return NotFound(text, **kw)
        if status == 403 or code == "6190":
            return Forbidden("QuickBooks refused access to this company (the subscription may have ended, or "
                             f"the sign-in lost access). {detail}".strip(), **kw)
        if status == 401 or code in ("3200", "3100", "120"):
            return Unauthorized(text, **kw)
        if status == 429 or code == "3001":
            return RateLimited(text, retry_after=THROTTLE_WAIT, **kw)
        if status is not None and status >= 500:
            return ServerError(text, **kw)
        if status == 404:
            return NotFound(text, **kw)
        return ValidationRejected(text, field=ELEMENT_FIELDS.get(element or "", element), **kw)

    @staticmethod
    def _server_time(data: dict[str, Any]) -> float | None:
        parsed = parse_ts(data.get("time"))
        return parsed.timestamp() if parsed else None

    @staticmethod
    def _server_date(data: dict[str, Any]) -> dt.date:
        """Today in the company's time zone: the ``time`` of the answer carries its offset."""
        parsed = parse_ts(data.get("time"))
        return parsed.date() if parsed else dt.datetime.now(dt.UTC).date()

    # -- query and CDC --------------------------------------------------------------------------
    def query(self, statement: str) -> dict[str, Any]:
        """One query; the whole answer (``QueryResponse`` and ``time``)."""
        if len(statement) > QUERY_GET_MAX:
            data, _ = self._call("POST", "/query", text=statement)
        else:
            data, _ = self._call("GET", "/query", params={"query": statement})
        return data

    def _pages(self, entity: str, where: str = "", first: list[dict[str, Any]] | None = None
               ) -> Iterator[list[dict[str, Any]]]:
        """Every row, 1000 a page, in a stable order (``ORDERBY Id``)."""
        start = 1
        while True:
            data = self.query(f"select * from {entity}{where} ORDERBY Id STARTPOSITION {start} MAXRESULTS {PAGE}")  # noqa: S608 - literals go through quote()
            if first is not None and not first:
                first.append(data)
            rows = (data.get("QueryResponse") or {}).get(entity) or []
            yield rows
            if len(rows) < PAGE:
                return
            start += PAGE

    def _cdc(self, entity: str, since: float) -> tuple[list[dict[str, Any]], list[str], dict[str, Any], bool]:
        try:
            data, _ = self._call("GET", "/cdc", params={"entities": entity, "changedSince": iso_utc(since)})
        except ValidationRejected as exc:
            if "older than" in exc.message:
                raise _TooOld() from exc
            raise
        rows: list[dict[str, Any]] = []
        deleted: list[str] = []
        count = 0
        for block in data.get("CDCResponse") or []:
            for qr in block.get("QueryResponse") or []:
                for rec in qr.get(entity) or []:
                    count += 1
                    if rec.get("status") == "Deleted":
                        deleted.append(str(rec["Id"]))
                    else:
                        rows.append(rec)
        return rows, deleted, data, count >= CDC_MAX

    def _changes(self, entity: str, cursor: str | None, *, names: bool) -> _Read:
        """Changed rows of one entity since the cursor.

        No cursor: everything by query. A cursor: one CDC request; past 30 days, or when the CDC answer
        is saturated (1000 objects, silently cut), a ``MetaData.LastUpdatedTime`` query instead.
        Rows already delivered with the same SyncToken inside the overlap are dropped.
        """
        state = _Cursor.load(cursor)
        active = " where Active IN (true, false)" if names else ""
        first: list[dict[str, Any]] = []
        deleted: list[str] = []
        if state is None:
            rows = [r for page in self._pages(entity, active, first) for r in page]
            envelope = first[0] if first else {}
            watermark = self._server_time(envelope) or time.time()
            return _Read(rows, [], self._next_cursor(watermark, rows, None), True, self._server_date(envelope))
        since = state.since - OVERLAP
        envelope: dict[str, Any] | None = None
        if time.time() - since < (CDC_DAYS - 0.5) * 86400:
            try:
                rows, deleted, data, saturated = self._cdc(entity, since)
                if not saturated:
                    envelope = data
            except _TooOld:
                pass
        if envelope is None:
            clause = f"MetaData.LastUpdatedTime >= {quote(iso_utc(since))}"
            where = f" where Active IN (true, false) AND {clause}" if names else f" where {clause}"
            rows = [r for page in self._pages(entity, where, first) for r in page]
            envelope = first[0] if first else {}
        rows = self._dedupe(rows)
        watermark = self._server_time(envelope) or state.since
        fresh = [r for r in rows if (state.edge.get(str(r["Id"])) or [None])[0] != str(r.get("SyncToken"))]
        return _Read(fresh, deleted, self._next_cursor(watermark, rows, state), False, self._server_date(envelope))

    @staticmethod
    def _next_cursor(watermark: float, rows: list[dict[str, Any]], old: _Cursor | None) -> str:
        """Remember what was delivered inside the next read's overlap (at most EDGE_MAX records)."""
        floor = watermark - OVERLAP - 1
        edge: dict[str, list[Any]] = {}
        if old is not None:
            edge = {k: v for k, v in old.edge.items() if v[1] >= floor}
        for row in rows:
            when = parse_ts((row.get("MetaData") or {}).get("LastUpdatedTime"))
            if when is not None and when.timestamp() >= floor:
                edge[str(row["Id"])] = [str(row.get("SyncToken")), int(when.timestamp())]
        return _Cursor(watermark, edge if len(edge) <= EDGE_MAX else None).dump()

    @staticmethod
    def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for row in rows:
            rid = str(row["Id"])
            if rid not in seen or int(row.get("SyncToken") or 0) >= int(seen[rid].get("SyncToken") or 0):
                seen[rid] = row
        return list(seen.values())

    def _by_ids(self, entity: str, ids: Sequence[str], names: bool) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        clean = [i for i in dict.fromkeys(str(i) for i in ids) if i.isdigit()]
        for chunk in _chunks(clean, 200):
            where = " AND Active IN (true, false)" if names else ""
            data = self.query(f"select * from {entity} where Id IN ({', '.join(quote(i) for i in chunk)}){where} "  # noqa: S608 - literals go through quote()
                              f"MAXRESULTS {PAGE}")
            for row in (data.get("QueryResponse") or {}).get(entity) or []:
                out[str(row["Id"])] = row
        return out

    # -- batch ------------------------------------------------------------------------------------
    def _batch(self, entity: str, items: Sequence[tuple[str, dict[str, Any]]], seed: str,
               resource: str) -> tuple[list[dict[str, Any] | ConnectorError], dict[str, Any]]:
        """One ``/batch`` call: items are (operation, body); answers (or errors) in the same order.

        The requestid is a UUID derived from ``seed`` (the writes' keys and versions): the same batch
        sent again after a lost answer gets QBO's stored answer instead of running twice.
        """
        requestid = str(uuid.uuid5(NAMESPACE, seed))
        self.batch_pacer.acquire()
        bids = [f"b{n}" for n in range(len(items))]
        body = {"BatchItemRequest": [{"bId": bid, "operation": op, entity: obj}
                                     for bid, (op, obj) in zip(bids, items, strict=True)]}
        data, _ = self._call("POST", "/batch", body=body, requestid=requestid, resource=resource)
        answers = {str(a.get("bId")): a for a in data.get("BatchItemResponse") or []}
        out: list[dict[str, Any] | ConnectorError] = []
        for bid in bids:
            answer = answers.get(bid)
            if answer is None:
                out.append(TransportError("QuickBooks Online did not answer for this record.",
                                          provider=self.provider))
            elif answer.get("Fault"):
                out.append(self._fault_error(answer["Fault"], 400, resource))
            else:
                out.append(answer.get(entity) or {})
        return out, data

    def _run_batches(self, entity: str, resource: str, prepared: list[tuple[str, dict[str, Any]] | ConnectorError],
                     keys: list[str], seed_parts: list[str]) -> list[tuple[dict[str, Any] | ConnectorError,
                                                                          dict[str, Any]]]:
        """Send the prepared items 30 at a time; per item the answer (or error) and its envelope.

        A rate limit that outlasts our waiting stops the rest (each gets the same retryable error);
        a lost sign-in is raised; any other whole-batch error goes to each of its items.
        """
        results: list[tuple[dict[str, Any] | ConnectorError, dict[str, Any]]] = [
            (p, {}) if isinstance(p, ConnectorError) else (ConnectorError("not sent"), {}) for p in prepared]
        todo = [n for n, p in enumerate(prepared) if not isinstance(p, ConnectorError)]
        stop: ConnectorError | None = None
        for chunk in _chunks(todo, BATCH):
            if stop is not None:
                for n in chunk:
                    results[n] = (stop, {})
                continue
            items = [prepared[n] for n in chunk]
            seed = "|".join([entity, resource] + [f"{keys[n]}:{seed_parts[n]}" for n in chunk])
            try:
                answers, data = self._batch(entity, items, seed, resource)  # type: ignore[arg-type]
            except (AuthExpired, Unauthorized, Forbidden):
                raise
            except RateLimited as exc:
                stop = exc
                for n in chunk:
                    results[n] = (exc, {})
                continue
            except ConnectorError as exc:
                for n in chunk:
                    results[n] = (exc, {})
                continue
            for n, answer in zip(chunk, answers, strict=True):
                results[n] = (answer, data)
        return results

    # -- company ------------------------------------------------------------------------------------
    def company_info(self) -> dict[str, Any]:
        data, _ = self._call("GET", f"/companyinfo/{self.realm}")
        return data.get("CompanyInfo") or {}

    def company_name(self) -> str:
        return self.company_info().get("CompanyName") or ""

    def preferences(self) -> dict[str, Any]:
        data, _ = self._call("GET", "/preferences")
        return data.get("Preferences") or {}

    def list_tenants(self) -> list[Tenant]:
        """One authorization is one company (Intuit's OAuth 2.0 docs): the realm of this connection."""
        return [Tenant(self.realm, self.conn.label or self.company_name())]

    def customer_url(self, customer_id: str) -> str:
        return f"{self._web}/app/customerdetail?nameId={customer_id}"

    def invoice_url(self, invoice_id: str) -> str:
        return f"{self._web}/app/invoice?txnId={invoice_id}"

    @property
    def _web(self) -> str:
        return web_root(self.conn.base_url, self.conn.extra.get("web_url"))

    # -- customers: reading ---------------------------------------------------------------------
    @staticmethod
    def to_customer(c: dict[str, Any]) -> AccountingCustomer:
        active = c.get("Active", True) is not False
        display = c.get("DisplayName") or ""
        given, family = _text(c.get("GivenName")), _text(c.get("FamilyName"))
        company = _text(c.get("CompanyName"))
        kind = "person" if not company and (given or family) else "company"
        plain = _DELETED.sub("", display) if not active else display
        # DisplayName may carry a " (2)" added to dodge a name clash: the name proper is in the parts,
        # unless a part was cut at QBO's 25 characters.
        if kind == "company":
            name = company or plain
        elif all(len(p or "") < NAME_MAX["GivenName"] for p in (given, family)):
            name = " ".join(p for p in (given, family) if p) or plain
        else:
            name = plain
        addr = c.get("BillAddr") or {}
        tax = next((_text(c.get(f)) for f in ("PrimaryTaxIdentifier", "BusinessNumber", "GSTIN")
                    if _text(c.get(f))), None)
        if tax and _MASKED.match(tax):
            tax = None  # QBO may hand tax ids back masked; a mask is not a value
        party = Party(
            kind=kind,
            name=name,
            email=_text((c.get("PrimaryEmailAddr") or {}).get("Address")),
            phone=_text((c.get("PrimaryPhone") or {}).get("FreeFormNumber"))
            or _text((c.get("Mobile") or {}).get("FreeFormNumber")),
            address_line1=_text(addr.get("Line1")),
            address_line2=_text(addr.get("Line2")),
            city=_text(addr.get("City")),
            region=_text(addr.get("CountrySubDivisionCode")),
            postal_code=_text(addr.get("PostalCode")),
            country=country_code(_text(addr.get("Country"))) or country_code(_text(addr.get("CountryCode"))),
            tax_id=tax,
            currency=_text((c.get("CurrencyRef") or {}).get("value")),
        )
        return AccountingCustomer(id=str(c["Id"]), party=party,
                                  updated_at=parse_ts((c.get("MetaData") or {}).get("LastUpdatedTime")),
                                  active=active, version=str(c.get("SyncToken") or "0"), raw_name=display)

    def read_customers(self, cursor: str | None) -> Changes[AccountingCustomer]:
        """Everything by query (inactive included: they are the archived ones), then CDC since the cursor."""
        start = self.api.request_count
        read = self._changes("Customer", cursor, names=True)
        return Changes([self.to_customer(r) for r in read.rows], read.cursor, [], full=read.full,
                       requests=self.api.request_count - start)

    def get_customers(self, ids: Sequence[str]) -> list[AccountingCustomer]:
        found = self._by_ids("Customer", ids, names=True)
        return [self.to_customer(found[str(i)]) for i in ids if str(i) in found]

    def find_customers(self, *, name: str | None = None, email: str | None = None) -> list[AccountingCustomer]:
        """Exact lookups by DisplayName (inactive ones too: they still hold names) and by email."""
        found: dict[str, AccountingCustomer] = {}
        for prop, value in (("DisplayName", name), ("PrimaryEmailAddr", email)):
            if not value:
                continue
            data = self.query(f"select * from Customer where {prop} = {quote(value)} AND Active IN (true, false) "  # noqa: S608 - literals go through quote()
                              f"MAXRESULTS {PAGE}")
            for row in (data.get("QueryResponse") or {}).get("Customer") or []:
                found.setdefault(str(row["Id"]), self.to_customer(row))
        return list(found.values())

    # -- customers: writing ---------------------------------------------------------------------
    def _name_fields(self, party: Party) -> dict[str, Any]:
        if party.kind == "person":
            first, _, last = (party.name or "").strip().rpartition(" ")
            given, family = (first, last) if first else (last, "")
            return {"GivenName": _clean_name(given, NAME_MAX["GivenName"]),
                    "FamilyName": _clean_name(family, NAME_MAX["FamilyName"])}
        return {"CompanyName": _clean_name(party.name or "", NAME_MAX["CompanyName"])}

    @staticmethod
    def _address(party: Party) -> dict[str, str]:
        return {"Line1": party.address_line1 or "", "Line2": party.address_line2 or "", "City": party.city or "",
                "CountrySubDivisionCode": party.region or "", "PostalCode": party.postal_code or "",
                "Country": party.country or ""}

    def _create_body(self, w: CustomerWrite) -> dict[str, Any]:
        party = w.party
        name = _clean_name(w.display_name or party.name or "", NAME_MAX["DisplayName"])
        if not name:
            raise ValidationRejected("A customer needs a name.", field="name", provider=self.provider)
        body: dict[str, Any] = {"DisplayName": name, **{k: v for k, v in self._name_fields(party).items() if v}}
        if party.email:
            body["PrimaryEmailAddr"] = {"Address": party.email}
        if party.phone:
            body["PrimaryPhone"] = {"FreeFormNumber": party.phone}
        address = {k: v for k, v in self._address(party).items() if v}
        if address:
            body["BillAddr"] = address
        if party.tax_id:
            # PrimaryTaxIdentifier: the XSD's "primary Tax ID of the Person or Organization" (Product: QBO).
            # BusinessNumber is CA/UK/IN only, GSTIN India only, and ResaleNum is a US resale certificate,
            # not a tax number.
            body["PrimaryTaxIdentifier"] = party.tax_id
        if party.currency and (self.conn.extra.get("multicurrency", True)
                               or party.currency == self.conn.extra.get("home_currency")):
            body["CurrencyRef"] = {"value": party.currency}  # set at creation only (Intuit's Customer entity)
        return body

    def _update_body(self, w: CustomerWrite, current: dict[str, Any]) -> dict[str, Any]:
        """A sparse update with only what differs from the record as QBO holds it now."""
        party, was = w.party, self.to_customer(current)
        body: dict[str, Any] = {}
        display = current.get("DisplayName") or ""
        if w.display_name:
            wanted = _clean_name(w.display_name, NAME_MAX["DisplayName"])
            if wanted != display:
                body["DisplayName"] = wanted
        elif party.name and party.name != was.party.name:
            for key, value in self._name_fields(party).items():
                if value != (current.get(key) or ""):
                    body[key] = value
            if display.casefold() == (was.party.name or "").casefold():
                body["DisplayName"] = _clean_name(party.name, NAME_MAX["DisplayName"])  # it followed the name
        if (party.email or None) != was.party.email:
            body["PrimaryEmailAddr"] = {"Address": party.email or ""}
        if (party.phone or None) != was.party.phone:
            body["PrimaryPhone"] = {"FreeFormNumber": party.phone or ""}
        mine = ("address_line1", "address_line2", "city", "region", "postal_code", "country")
        if any(getattr(party, f) != getattr(was.party, f) for f in mine):
            kept = {k: v for k, v in (current.get("BillAddr") or {}).items()
                    if k not in ("Line1", "Line2", "City", "CountrySubDivisionCode", "PostalCode", "Country",
                                 "CountryCode")}
            body["BillAddr"] = {**kept, **self._address(party)}
        if (party.tax_id or None) != was.party.tax_id:
            body["PrimaryTaxIdentifier"] = party.tax_id or ""
        return body

    def create_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]:
        """Batches of 30 ``create`` items under one requestid (derived from the keys)."""
        prepared: list[tuple[str, dict[str, Any]] | ConnectorError] = []
        for w in writes:
            try:
                prepared.append(("create", self._create_body(w)))
            except ConnectorError as exc:
                prepared.append(exc)
        sent = self._run_batches("Customer", "customer", prepared, [w.key for w in writes], [""] * len(writes))
        return [self._customer_result(w.key, answer) for w, (answer, _) in zip(writes, sent, strict=True)]

    def _customer_result(self, key: str, answer: dict[str, Any] | ConnectorError) -> WriteResult:
        if isinstance(answer, ConnectorError):
            return WriteResult(key, error=answer)
        cust = self.to_customer(answer)
        return WriteResult(key, cust.id, cust.version, record=cust)

    def update_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]:
        """Read the current records (one query a batch), then sparse updates of what differs.

        The SyncToken sent is the write's ``version`` when it has one, so a change made in QuickBooks
        since the engine read the record is refused (StaleVersion), not overwritten.
        """
        results: dict[int, WriteResult] = {}
        prepared: list[tuple[str, dict[str, Any]] | ConnectorError] = []
        versions: list[str] = []
        index: list[int] = []
        current = self._by_ids("Customer", [w.id for w in writes if w.id], names=True)
        for n, w in enumerate(writes):
            rec = current.get(str(w.id)) if w.id else None
            if rec is None:
                results[n] = WriteResult(w.key, error=NotFound(
                    f"Customer {w.id} is not in QuickBooks any more.", provider=self.provider) if w.id else
                    ValidationRejected("An update needs the customer's id.", provider=self.provider))
                continue
            if w.version and str(rec.get("SyncToken")) != str(w.version):
                results[n] = WriteResult(w.key, error=StaleVersion(
                    "The customer changed in QuickBooks since it was read.", provider=self.provider, code="5010"))
                continue
            body = self._update_body(w, rec)
            if not body:
                cust = self.to_customer(rec)
                results[n] = WriteResult(w.key, cust.id, cust.version, record=cust)
                continue
            prepared.append(("update", {"Id": str(rec["Id"]), "SyncToken": str(rec["SyncToken"]), "sparse": True,
                                        **body}))
            versions.append(str(rec["SyncToken"]))
            index.append(n)
        sent = self._run_batches("Customer", "customer", prepared, [writes[n].key for n in index], versions)
        for n, (answer, _) in zip(index, sent, strict=True):
            results[n] = self._customer_result(writes[n].key, answer)
        return [results[n] for n in range(len(writes))]

    def set_customer_active(self, customer_id: str, active: bool) -> AccountingCustomer:
        """Make a customer inactive (QBO's delete for names) or active again."""
        rec = found(self._by_ids("Customer", [customer_id], names=True).get(str(customer_id)), "Customer", customer_id)
        data, _ = self._call("POST", "/customer", body={"Id": rec["Id"], "SyncToken": rec["SyncToken"],
                                                        "sparse": True, "Active": active},
                             requestid=str(uuid.uuid5(NAMESPACE, f"active:{rec['Id']}:{rec['SyncToken']}:{active}")),
                             resource="customer")
        return self.to_customer(data["Customer"])

    def deactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """Sparse update ``Active: false`` (QBO's only "delete" of a name; it gains " (deleted)")."""
        key = f"deactivate:{customer_id}"
        try:
            rec = found(self._by_ids("Customer", [customer_id], names=True).get(str(customer_id)), "Customer",
                        customer_id)
            if rec.get("Active", True) is False:
                cust = self.to_customer(rec)
                return WriteResult(key, cust.id, cust.version, record=cust)
            unchanged_since(rec, version, "Customer")
            data, _ = self._call("POST", "/customer", body={"Id": str(rec["Id"]), "SyncToken": str(rec["SyncToken"]),
                                                            "sparse": True, "Active": False},
                                 requestid=str(uuid.uuid5(NAMESPACE, f"deactivate:{rec['Id']}:{rec['SyncToken']}")),
                                 resource="customer")
        except (AuthExpired, Unauthorized):
            raise
        except ConnectorError as exc:
            return WriteResult(key, customer_id, error=exc)
        cust = self.to_customer(data["Customer"])
        return WriteResult(key, cust.id, cust.version, record=cust)

    # -- items ----------------------------------------------------------------------------------
    @staticmethod
    def to_item(i: dict[str, Any]) -> Item:
        active = i.get("Active", True) is not False
        name = i.get("Name") or ""
        return Item(id=str(i["Id"]), name=name if active else _DELETED.sub("", name), sku=_text(i.get("Sku")),
                    unit_price=_dec(i.get("UnitPrice")), active=active, description=_text(i.get("Description")))

    def read_items(self, cursor: str | None) -> Changes[Item]:
        start = self.api.request_count
        read = self._changes("Item", cursor, names=True)
        return Changes([self.to_item(r) for r in read.rows], read.cursor, [], full=read.full,
                       requests=self.api.request_count - start)

    def income_account(self) -> str:
        """The income account new items post to: "Services" if there is one, else the first income account."""
        if self._income_account:
            return self._income_account
        data = self.query("select * from Account where AccountType = 'Income' AND Active = true ORDERBY Id "  # noqa: S608 - literals go through quote()
                          f"MAXRESULTS {PAGE}")
        rows = (data.get("QueryResponse") or {}).get("Account") or []
        if not rows:
            raise ValidationRejected("QuickBooks has no income account for new products. Add one under "
                                     "Accounting → Chart of accounts, then sync again.", provider=self.provider)
        pick = next((r for r in rows if r.get("AccountSubType") == "ServiceFeeIncome"), None) or next(
            (r for r in rows if r.get("AccountSubType") == "SalesOfProductIncome"), rows[0])
        self._income_account = str(pick["Id"])
        self.conn.extra["income_account_id"] = self._income_account
        return self._income_account

    def _find_items(self, writes: Sequence[ItemWrite]) -> dict[int, dict[str, Any]]:
        """Active items that already are these products: by Sku first, then by Name (unless its Sku differs)."""
        found: dict[int, dict[str, Any]] = {}
        for prop, values in (("Sku", {w.item.sku for w in writes if w.item.sku}),
                             ("Name", {_clean_name(w.item.name, 100) for w in writes if w.item.name})):
            if not values:
                continue
            rows: list[dict[str, Any]] = []
            for chunk in _chunks(sorted(values), 100):
                data = self.query(f"select * from Item where {prop} IN ({', '.join(quote(v) for v in chunk)}) "  # noqa: S608 - literals go through quote()
                                  f"MAXRESULTS {PAGE}")
                rows += (data.get("QueryResponse") or {}).get("Item") or []
            by_value = {str(r.get(prop) or "").casefold(): r for r in sorted(rows, key=lambda r: int(r["Id"]))}
            for n, w in enumerate(writes):
                if n in found:
                    continue
                value = w.item.sku if prop == "Sku" else _clean_name(w.item.name, 100)
                hit = by_value.get(value.casefold()) if value else None
                other_sku = prop == "Name" and hit is not None and w.item.sku and hit.get("Sku") \
                    and str(hit["Sku"]).casefold() != w.item.sku.casefold()
                if hit is not None and not other_sku:  # same name, another code: another product
                    found[n] = hit
        return found

    def create_items(self, writes: Sequence[ItemWrite]) -> list[WriteResult]:
        """Reuse an item with the same Sku (or Name); create the rest as services posting to income."""
        existing = self._find_items(writes)
        prepared: list[tuple[str, dict[str, Any]] | ConnectorError] = []
        index: list[int] = []
        account = None
        for n, w in enumerate(writes):
            if n in existing:
                continue
            item = w.item
            name = _clean_name(item.name or item.sku or "", 100)
            if not name:
                prepared.append(ValidationRejected("A product needs a name.", field="name", provider=self.provider))
                index.append(n)
                continue
            account = account or self.income_account()
            body: dict[str, Any] = {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": account}}
            if item.sku:
                body["Sku"] = item.sku[:100]
            if item.unit_price is not None:
                body["UnitPrice"] = item.unit_price
            if item.description:
                body["Description"] = item.description[:4000]
            prepared.append(("create", body))
            index.append(n)
        sent = self._run_batches("Item", "item", prepared, [writes[n].key for n in index], [""] * len(index))
        results: dict[int, WriteResult] = {}
        for n, rec in existing.items():
            results[n] = WriteResult(writes[n].key, str(rec["Id"]), str(rec.get("SyncToken")), record=self.to_item(rec))
        for n, (answer, _) in zip(index, sent, strict=True):
            if isinstance(answer, ConnectorError):
                results[n] = WriteResult(writes[n].key, error=answer)
            else:
                results[n] = WriteResult(writes[n].key, str(answer["Id"]), str(answer.get("SyncToken")),
                                         record=self.to_item(answer))
        return [results[n] for n in range(len(writes))]

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return redact(f"<QuickBooks Online connector {self.conn.id} realm={self.conn.tenant_id} at "
                      f"{self.conn.base_url}>")
