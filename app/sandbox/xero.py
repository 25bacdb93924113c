"""A faithful local imitation of the Xero Accounting API 2.0 and Xero's identity service.

Follows ../shared/reference/xero.md and the official OpenAPI documents in ../shared/specs/xero/:
- Identity: ``/identity/connect/authorize`` (PKCE required, S256), ``/connect/token`` (30-minute access
  tokens; refresh tokens rotate on every use, the previous one living 30 more minutes, or until its
  successor is used; no refresh token without ``offline_access``), ``/connect/revocation`` and
  ``/connections`` (the organisations a sign-in reaches; every Accounting call names one in
  ``xero-tenant-id``, else 403 ``AuthenticationUnsuccessful``).
- Accounting: Contacts, Items, Invoices, Payments, Organisation under ``/api.xro/2.0`` with Xero's
  envelopes, ``/Date(ms+0000)/`` dates, ``page``/``pageSize`` (<= 1000) with ``pagination``,
  ``If-Modified-Since`` (second precision), ``where`` (a subset: ``==``, ``!=``, comparisons, ``&&``,
  ``||``, ``StartsWith``/``Contains``/``EndsWith``, ``Guid("..")``, ``DateTime(y,m,d)``), ``searchTerm``,
  ``IDs``, ``includeArchived`` and ``order``. PUT creates, POST creates or updates (a POST whose contact
  name matches an active contact updates it). ``summarizeErrors`` defaults to true (one failing element
  makes the answer a 400, the valid ones still saved); ``false`` answers each element in order.
  ``Idempotency-Key`` replays the first answer. Contact names are unique among active contacts.
- Invoices: Xero's arithmetic (line amount to the cent after the discount rate, tax rounded per line,
  Exclusive/Inclusive/NoTax), statuses and their transitions, payments that move AmountPaid/AmountDue.
- Limits per organisation: 5 in flight, 60 a minute, 5,000 a day (and 10,000 a minute per app), answered
  with 429, ``X-Rate-Limit-Problem`` and ``Retry-After``; the ``X-*Limit-Remaining`` headers on every answer.

Validation messages quoted by the reference or the spec are exact; the few others are close wording.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.connectors.xero import dumps, loads, msdate, msdate_ms
from app.domain.money import invoice_totals, line_net
from app.sandbox import demo_data as demo_set
from app.sandbox.base import HttpError, Request, Response, SandboxApp, route
from app.sandbox.demo_data import COUNTRY_NAMES, PRODUCTS

API = r"/api\.xro/2\.0"
ZERO_ID = "00000000-0000-0000-0000-000000000000"
CENT = Decimal("0.01")
ZERO = Decimal(0)
FULL_SCOPE = ("offline_access openid profile email accounting.contacts accounting.settings accounting.invoices "
              "accounting.payments accounting.transactions")
SCOPES = {  # resource -> (scopes that may write, scopes that may only read)
    "contacts": ({"accounting.contacts"}, {"accounting.contacts.read"}),
    "settings": ({"accounting.settings"}, {"accounting.settings.read"}),
    "items": ({"accounting.settings", "accounting.invoices"}, {"accounting.settings.read", "accounting.invoices.read"}),
    "invoices": ({"accounting.transactions", "accounting.invoices"},
                 {"accounting.transactions.read", "accounting.invoices.read"}),
    "payments": ({"accounting.transactions", "accounting.payments"},
                 {"accounting.transactions.read", "accounting.payments.read"}),
}
DUPLICATE = ("The contact name {} is already assigned to another contact. "
             "The contact name must be unique across all active contacts.")
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
RATE_BODY = ("oauth_problem=rate%20limit%20exceeded"
             "&oauth_problem_advice=please%20wait%20before%20retrying%20the%20xero%20api")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
PHONE_TYPES = ("DEFAULT", "DDI", "FAX", "MOBILE")
ADDRESS_FIELDS = ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4", "City", "Region", "PostalCode",
                  "Country", "AttentionTo")
ADDRESS_LIMITS = {"AddressLine1": 500, "AddressLine2": 500, "AddressLine3": 500, "AddressLine4": 500, "City": 255,
                  "Region": 255, "PostalCode": 50, "Country": 50, "AttentionTo": 255}
CONTACT_LIMITS = {"Name": 255, "FirstName": 255, "LastName": 255, "EmailAddress": 255, "AccountNumber": 50,
                  "ContactNumber": 50, "TaxNumber": 50, "CompanyNumber": 50}


class XeroResponse(Response):
    """A response whose Decimals go out as JSON numbers, as Xero sends amounts."""

    __slots__ = ()

    def encode(self) -> bytes:
        if isinstance(self.body, dict | list):
            return dumps(self.body).encode()
        return Response.encode(self)


class Invalid(Exception):
    """One element failed validation; ``messages`` become its ValidationErrors."""

    def __init__(self, *messages: str) -> None:
        super().__init__(messages[0])
        self.messages = list(messages)


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """The RFC 7807-style body Xero answers 401 and 403 with."""
    return {"Type": None, "Title": title, "Status": status, "Detail": detail, "Instance": str(uuid.uuid4()),
            "Extensions": {}}


def api_error(message: str, elements: list[dict[str, Any]] | None = None, *, number: int = 10,
              kind: str = "ValidationException") -> HttpError:
    body: dict[str, Any] = {"ErrorNumber": number, "Type": kind, "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return HttpError(400, body)


def status_of(el: dict[str, Any], rec: dict[str, Any]) -> str:
    return s(el.get("Status")).upper() or rec["Status"]


def not_found() -> HttpError:
    err = HttpError(404, NOT_FOUND_TEXT)
    err.response.content_type = "text/plain"
    return err


def money(value: Decimal, places: Decimal = CENT) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_UP)


def dec(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise Invalid(f"{what} must be a number.")
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Invalid(f"{what} must be a number.") from None
    if not out.is_finite():
        raise Invalid(f"{what} must be a number.")
    return out


def s(value: Any) -> str:
    return "" if value is None else str(value).strip()


def parse_day(value: Any, what: str) -> str:
    """``YYYY-MM-DD``, ``YYYY-MM-DDThh:mm:ss`` or ``/Date(..)/`` -> ISO date."""
    text = s(value)
    ms = msdate_ms(text) if text.startswith("/Date(") else None
    if ms is not None:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise Invalid(f"{what} must be a valid date.") from None


def day_ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


def parse_since(value: str | None) -> float | None:
    """If-Modified-Since: ISO (zone optional, UTC assumed) or an HTTP date; unreadable ones are ignored."""
    if not value:
        return None
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return float(int(parsed.timestamp()))  # second precision


# -- the `where` subset ---------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|&&|\|\||[<>(),.])'
                    r'|(?P<num>-?\d+(?:\.\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*))')


class WhereError(Exception):
    pass


class Where:
    """A parsed ``where`` expression: OR of ANDs of comparisons and string methods."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise WhereError(f"Cannot parse the where clause near '{text[pos:pos + 20]}'")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.tree = self._or()
        if self.i != len(self.tokens):
            raise WhereError(f"Unexpected '{self.tokens[self.i][1]}' in the where clause")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            raise WhereError(f"Expected {value or kind} in the where clause")
        self.i += 1
        return tok[1]

    def _or(self) -> list[list[tuple]]:
        groups = [self._and()]
        while self._peek() and self._peek()[1] in ("||", "OR"):
            self.i += 1
            groups.append(self._and())
        return groups

    def _and(self) -> list[tuple]:
        terms = [self._term()]
        while self._peek() and self._peek()[1] in ("&&", "AND"):
            self.i += 1
            terms.append(self._term())
        return terms

    def _term(self) -> tuple:
        path = [self._take(kind="id")]
        while self._peek() and self._peek()[1] == ".":
            self.i += 1
            name = self._take(kind="id")
            if name in ("StartsWith", "Contains", "EndsWith"):
                self._take("(")
                arg = self._literal()
                self._take(")")
                if not isinstance(arg, str):
                    raise WhereError(f"{name} takes a string")
                return ("call", path, name, arg)
            path.append(name)
        op = self._take()
        if op not in ("==", "!=", ">=", "<=", ">", "<"):
            raise WhereError(f"Unknown operator '{op}' in the where clause")
        return ("cmp", path, op, self._literal())

    def _literal(self) -> Any:
        kind, value = self._peek() or ("", "")
        self.i += 1
        if kind == "str":
            return json.loads(value)
        if kind == "num":
            return Decimal(value)
        if kind == "id":
            low = value.lower()
            if low in ("true", "false"):
                return low == "true"
            if low == "null":
                return None
            if low == "guid":
                self._take("(")
                text = self._literal()
                self._take(")")
                return ("guid", str(text).lower())
            if low == "datetime":
                self._take("(")
                parts = [int(self._literal())]
                while self._peek() and self._peek()[1] == ",":
                    self.i += 1
                    parts.append(int(self._literal()))
                self._take(")")
                return ("date", dt.datetime(*parts, tzinfo=dt.UTC))
        raise WhereError(f"Unexpected '{value}' in the where clause")

    def __call__(self, record: dict[str, Any]) -> bool:
        return any(all(self._test(term, record) for term in group) for group in self.tree)

    @staticmethod
    def _resolve(record: Any, path: list[str]) -> Any:
        for part in path:
            if not isinstance(record, dict):
                return None
            record = next((v for k, v in record.items() if k.lower() == part.lower()), None)
        return record

    def _test(self, term: tuple, record: dict[str, Any]) -> bool:
        value = self._resolve(record, term[1])
        if term[0] == "call":
            text, arg = s(value).casefold(), term[3].casefold()
            tests = {"StartsWith": text.startswith, "Contains": lambda a: a in text, "EndsWith": text.endswith}
            return tests[term[2]](arg)
        op, lit = term[2], term[3]
        if lit is None or value in (None, ""):
            same = lit is None and value in (None, "")
            return same if op == "==" else (not same if op == "!=" else False)
        left: Any
        right: Any
        if isinstance(lit, tuple) and lit[0] == "guid":
            left, right = s(value).lower(), lit[1]
        elif isinstance(lit, tuple) and lit[0] == "date":
            ms = msdate_ms(value)
            if ms is None:
                return False
            left, right = ms, int(lit[1].timestamp() * 1000)
        elif isinstance(lit, bool):
            left, right = bool(value), lit
        elif isinstance(lit, Decimal):
            try:
                left, right = Decimal(str(value)), lit
            except InvalidOperation:
                return False
        else:
            left, right = s(value).casefold(), lit.casefold()
        return {"==": left == right, "!=": left != right, ">=": left >= right, "<=": left <= right,
                ">": left > right, "<": left < right}[op]


# -- the sandbox --------------------------------------------------------------------------------------
class XeroSandbox(SandboxApp):
    """Xero's identity service and Accounting API on one host."""

    provider = "xero"
    access_ttl = 1800  # 30 minutes
    refresh_ttl = 60 * 86400  # dies when unused for 60 days (each rotation starts a new one)
    refresh_rotates = True
    refresh_grace = 1800  # the previous refresh token lives 30 more minutes
    minute_limit = 60
    day_limit = 5000
    concurrent_limit = 5
    app_minute_limit = 10_000
    idempotency_ttl = 86400  # (unverified; the reference says minutes to hours at least)
    max_body = 3_500_000
    provider_name = "Crossledger"

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._flight = threading.Condition()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._tl = threading.local()
        super().__init__(state_file, clock=clock)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {"tenants": {}}

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth")
            self.state = self.empty_state()
            self.state["oauth"] = oauth or {"codes": {}, "access": {}, "refresh": {}}
            if kind == "empty":
                self.add_tenant("Crossledger Test Ltd")
            elif kind == "demo":
                self._seed_demo(self.add_tenant("Crossledger Demo Ltd"))
            else:
                raise ValueError(f"unknown seed {kind!r}: use 'empty' or 'demo'")
            self.persist()

    def new_id(self, kind: str) -> str:
        """GUIDs, deterministic per sandbox so seeded data looks the same every run."""
        n = self.next_id(kind)
        return str(uuid.UUID(bytes=hashlib.md5(f"xero:{kind}:{n}".encode()).digest(), version=4))  # noqa: S324

    def add_tenant(self, name: str, *, tenant_type: str = "ORGANISATION", currency: str = "GBP") -> str:
        """An organisation (or a practice) this sign-in reaches; tests add more than one."""
        with self.lock:
            tid = self.new_id("tenant")
            now = self.now()
            self.state["tenants"][tid] = {
                "tenantId": tid, "tenantName": name, "tenantType": tenant_type, "connectionId": self.new_id("conn"),
                "authEventId": self.new_id("auth"), "created": now, "updated": now, "connected": True,
                "org": {"OrganisationID": tid, "Name": name, "LegalName": name, "PaysTax": True, "Version": "UK",
                        "OrganisationType": "COMPANY", "BaseCurrency": currency, "CountryCode": "GB",
                        "IsDemoCompany": False, "OrganisationStatus": "ACTIVE", "FinancialYearEndDay": 31,
                        "FinancialYearEndMonth": 3, "DefaultSalesTax": "Tax Exclusive",
                        "DefaultPurchasesTax": "Tax Exclusive", "Timezone": "GMTSTANDARDTIME",
                        "OrganisationEntityType": "COMPANY", "ShortCode": "!" + tid[:5], "Edition": "BUSINESS",
                        "Class": "PREMIUM", "_created": now},
                "currencies": [currency] + [c for c in ("GBP", "USD", "EUR", "AUD", "NZD") if c != currency],
                "taxes": {"OUTPUT2": "20", "RROUTPUT": "5", "ZERORATEDOUTPUT": "0", "EXEMPTOUTPUT": "0",
                          "INPUT2": "20", "NONE": "0"},
                "accounts": {
                    "090": {"AccountID": self.new_id("account"), "Code": "090", "Name": "Business Bank Account",
                            "Type": "BANK", "TaxType": "NONE", "EnablePaymentsToAccount": True},
                    "200": {"AccountID": self.new_id("account"), "Code": "200", "Name": "Sales", "Type": "REVENUE",
                            "TaxType": "OUTPUT2", "EnablePaymentsToAccount": False},
                    "260": {"AccountID": self.new_id("account"), "Code": "260", "Name": "Other Revenue",
                            "Type": "REVENUE", "TaxType": "OUTPUT2", "EnablePaymentsToAccount": False},
                    "400": {"AccountID": self.new_id("account"), "Code": "400", "Name": "Advertising",
                            "Type": "EXPENSE", "TaxType": "INPUT2", "EnablePaymentsToAccount": False},
                },
                "contacts": {}, "items": {}, "invoices": {}, "payments": {}, "idem": {}, "invoice_no": 0,
            }
            self.persist()
            return tid

    @property
    def default_tenant(self) -> str:
        return next(iter(self.state["tenants"]))

    def _seed_demo(self, tid: str) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        stamp = self.now() - 86400 * 30
        bodies: list[dict[str, Any]] = []
        for c in data.companies:
            if not c.in_ledger:
                continue
            bodies.append({
                "Name": c.ledger_name, "EmailAddress": c.email if c.in_ledger == "email" else "",
                "TaxNumber": c.tax_id if c.in_ledger == "tax_id" else "", "DefaultCurrency": c.currency,
                "Addresses": [{"AddressType": "POBOX", "AddressLine1": c.address_line1 or "", "City": c.city or "",
                               "Region": c.region or "", "PostalCode": c.postal_code or "",
                               "Country": COUNTRY_NAMES.get(c.country or "", "")}],
                "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": c.phone or ""}],
            })
        bodies += [
            {"Name": "Walk-in Customer"},
            {"Name": "Margaret Hale", "FirstName": "Margaret", "LastName": "Hale", "EmailAddress": "m.hale@example.org",
             "Addresses": [{"AddressType": "POBOX", "AddressLine1": "4 Quay Street", "City": "Bristol",
                            "PostalCode": "BS1 4DB", "Country": "United Kingdom"}]},
            {"Name": "Old Mill Tearooms Ltd", "ContactStatus": "ARCHIVED",
             "ContactPersons": [{"FirstName": "Ivy", "LastName": "Kerr", "EmailAddress": "ivy@oldmilltearooms.co.uk",
                                 "IncludeInEmails": True}]},
            {"Name": "Kettlewell Parish Council", "TaxNumber": "GB980780684"},
        ]
        tenant = self.state["tenants"][tid]
        for n, body in enumerate(bodies):
            rec = self._apply_contact(tenant, body, None)
            rec["_updated"] = stamp + n * 60
        for n, (sku, name, price) in enumerate(PRODUCTS):
            rec = self._apply_item(tenant, {"Code": sku, "Name": name, "Description": name, "IsSold": True,
                                            "IsPurchased": False,
                                            "SalesDetails": {"UnitPrice": price, "AccountCode": "200",
                                                             "TaxType": "OUTPUT2"}}, None, unitdp=4)
            rec["_updated"] = stamp + n * 60

    def _tenant_of(self, kind: str, record_id: str) -> dict[str, Any]:
        for tenant in self.state["tenants"].values():
            if record_id in tenant[kind]:
                return tenant
        raise KeyError(f"no {kind} {record_id}")

    # -- clock and formats --------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def today(self) -> str:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC).date().isoformat()

    def _touch(self, rec: dict[str, Any]) -> None:
        rec["_updated"] = self.now()
        rec["_seq"] = self.next_id("seq")

    def envelope(self, key: str, rows: list[dict[str, Any]], pagination: dict[str, int] | None = None) -> dict:
        body: dict[str, Any] = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": self.provider_name,
                                "DateTimeUTC": msdate(self.now_ms(), offset=False)}
        if pagination is not None:
            body["pagination"] = pagination
        body[key] = rows
        return body

    # -- oauth --------------------------------------------------------------------------------
    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        scope = " ".join((grant.get("scope") or "").split())
        extra: dict[str, Any] = {"token_type": "Bearer", "scope": scope}
        if "openid" in scope.split():
            claims = {"iss": self.public_url, "aud": grant.get("client_id"), "sub": grant.get("family", ""),
                      "exp": int(self.now()) + 300}
            part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            extra["id_token"] = f"eyJhbGciOiJSUzI1NiJ9.{part}.c2FuZGJveA"
        return extra

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        """Xero's identity service answers ``{"error": "..."}`` with HTTP 400, and nothing more."""
        return HttpError(400, {"error": error})

    def unauthorized(self, why: str) -> HttpError:
        when = dt.datetime.fromtimestamp(self.now(), dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        detail = f"TokenExpired: token expired at {when}" if why == "expired" else "AuthenticationUnsuccessful"
        return HttpError(401, problem(401, "Unauthorized", detail),
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def not_found_body(self, req: Request) -> Any:
        return NOT_FOUND_TEXT

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = FULL_SCOPE) -> dict[str, Any]:
        return super().grant_tokens(client_id, scope)

    def _issue(self, family: dict[str, Any], *, new_refresh: bool) -> dict[str, Any]:
        """No refresh token without offline_access; every token remembers its sign-in (for revocation)."""
        offline = "offline_access" in (family.get("scope") or "").split()
        fam = family.get("family") or str(uuid.uuid4())
        body = super()._issue({**family, "family": fam}, new_refresh=new_refresh and offline)
        oauth = self.state["oauth"]
        oauth["access"][body["access_token"]]["family"] = fam
        if body.get("refresh_token"):
            oauth["refresh"][body["refresh_token"]]["family"] = fam
        return body

    @route("GET", r"/identity/connect/authorize")
    def authorize(self, req: Request) -> Response:
        """Approves at once. A PKCE app must send an S256 code challenge."""
        if req.arg("response_type") != "code":
            raise HttpError(400, {"error": "unsupported_response_type"})
        if not req.arg("code_challenge") or req.arg("code_challenge_method") != "S256":
            raise HttpError(400, {"error": "invalid_request"})
        return self.authorize_redirect(req)

    @route("POST", r"/connect/token")
    def token(self, req: Request) -> Response:
        """Rotation on top of the base endpoint: using a new refresh token kills the one it replaced."""
        form = req.form()
        old = form.get("refresh_token") if form.get("grant_type") == "refresh_token" else None
        resp = self.token_endpoint(req)
        if old and isinstance(resp.body, dict) and resp.body.get("refresh_token"):
            refresh = self.state["oauth"]["refresh"]
            refresh[resp.body["refresh_token"]]["parent"] = old
            parent = refresh.get(refresh[old].get("parent") or "")
            if parent is not None:
                parent["revoked"] = True
            self.persist()
        return resp

    @route("POST", r"/connect/revocation")
    def revoke(self, req: Request) -> Response:
        """Revoking a refresh token ends its whole sign-in: every token of that family dies."""
        form = req.form()
        if not self.client_from(req, form):
            raise self.token_error(400, "invalid_client")
        oauth = self.state["oauth"]
        record = oauth["refresh"].get(form.get("token", "")) or oauth["access"].get(form.get("token", ""))
        if record is not None:
            fam = record.get("family")
            for rec in oauth["refresh"].values():
                if rec.get("family") == fam:
                    rec["revoked"] = True
            for token in [t for t, rec in oauth["access"].items() if rec.get("family") == fam]:
                oauth["access"].pop(token)
            self.persist()
        return Response(200, b"")

    # -- gate: auth, tenant, scope, limits ---------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Count requests in flight per organisation before queueing for the state lock: the sixth at
        once is refused, as Xero refuses it."""
        tid = (req.header("xero-tenant-id") or "").lower()
        if not (tid and req.path.lower().startswith("/api.xro/")):
            return super().handle(req)
        with self._flight:
            busy = self._in_flight[tid] >= self.concurrent_limit
            if not busy:
                self._in_flight[tid] += 1
                self._flight.notify_all()
        if busy:
            resp = self._limited("concurrent", None)
            self.request_log.append((req.method, req.path, resp.status))
            for hook in self.exchange_hooks:
                hook(req, resp)
            return resp
        try:
            return super().handle(req)
        finally:
            with self._flight:
                self._in_flight[tid] -= 1
                self._flight.notify_all()

    def wait_in_flight(self, tenant_id: str, count: int, timeout: float = 5.0) -> bool:
        """Test helper: block until ``count`` requests for the tenant are in flight."""
        with self._flight:
            return self._flight.wait_for(lambda: self._in_flight[tenant_id.lower()] >= count, timeout)

    def dispatch(self, req: Request) -> Response:
        """JSON only when asked for; every answer gets the remaining-limit headers and Decimal numbers."""
        self._tl.limits = None
        api = req.path.lower().startswith("/api.xro/") or req.path.lower().startswith("/connections")
        try:
            if api and "application/json" not in (req.header("accept") or "").lower():
                resp = Response(406, "This sandbox answers JSON only: send Accept: application/json "
                                     "(Xero answers XML without it).", content_type="text/plain")
            else:
                resp = super().dispatch(req)
        except HttpError as err:
            resp = err.response
        if type(resp) is Response and isinstance(resp.body, dict | list):
            resp = XeroResponse(resp.status, resp.body, resp.headers, resp.content_type)
        if self._tl.limits:
            resp.headers.update(self._tl.limits)
        return resp

    def _limited(self, problem_kind: str, wait: float | None) -> Response:
        headers = {"X-Rate-Limit-Problem": problem_kind}
        if wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return Response(429, RATE_BODY, headers, content_type="text/plain")

    def _peek(self, key: str, limit: int, window: float) -> float | None:
        """The wait if ``key`` is over ``limit`` in ``window`` (nothing recorded)."""
        stamps = self._windows[f"{key}:{window}"]
        now = self.now()
        while stamps and now - stamps[0] >= window:
            stamps.popleft()
        return max(0.0, window - (now - stamps[0])) if len(stamps) >= limit else None

    def _count(self, checks: list[tuple[str, str, int, float]]) -> None:
        """Refuse with the first limit that is used up; otherwise count the call against every one."""
        for kind, key, limit, window in checks:
            wait = self._peek(key, limit, window)
            if wait is not None:
                err = HttpError(429, None)
                err.response = self._limited(kind, wait)
                raise err
        for _, key, limit, window in checks:
            self.check_rate(key, limit, window)

    def _remaining(self, key: str, limit: int, window: float) -> str:
        return str(max(0, limit - len(self._windows[f"{key}:{window}"])))

    def _gate(self, req: Request, resource: str) -> dict[str, Any]:
        """Token, organisation, scope, then the limits: the tenant the request is for."""
        record = self.authenticate(req)
        tid = (req.header("xero-tenant-id") or "").strip().lower()
        tenant = self.state["tenants"].get(tid)
        if tenant is None or not tenant["connected"] or tenant["tenantType"] != "ORGANISATION":
            raise HttpError(403, problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        granted = set((record.get("scope") or "").split())
        write, read = SCOPES[resource]
        if not granted & (write if req.method != "GET" else write | read):
            raise HttpError(403, problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        try:
            self._count([("day", f"day:{tid}", self.day_limit, 86400.0),
                         ("minute", f"min:{tid}", self.minute_limit, 60.0),
                         ("appminute", "app", self.app_minute_limit, 60.0)])
        finally:
            self._tl.limits = {"X-DayLimit-Remaining": self._remaining(f"day:{tid}", self.day_limit, 86400.0),
                               "X-MinLimit-Remaining": self._remaining(f"min:{tid}", self.minute_limit, 60.0),
                               "X-AppMinLimit-Remaining": self._remaining("app", self.app_minute_limit, 60.0)}
        return tenant

    def set_daily_usage(self, count: int, tenant_id: str | None = None) -> None:
        """Test helper: pretend ``count`` calls were made in the last moments."""
        tid = (tenant_id or self.default_tenant).lower()
        stamps = self._windows[f"day:{tid}:86400.0"]
        stamps.clear()
        stamps.extend([self.now()] * count)

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.minute_limit = int(self.minute_limit * factor)
        self.day_limit = int(self.day_limit * factor)
        self.concurrent_limit = max(self.concurrent_limit, int(self.concurrent_limit * factor))

    @staticmethod
    def _body(req: Request) -> Any:
        if len(req.body) > XeroSandbox.max_body:
            raise HttpError(413, "Request Entity Too Large")
        try:
            return loads(req.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise api_error("The request body could not be read as JSON.", number=17,
                            kind="PostDataInvalidException") from None

    def _idempotent(self, req: Request, tenant: dict[str, Any], run: Callable[[], Response]) -> Response:
        """Replay the first answer to an Idempotency-Key instead of writing again."""
        key = req.header("idempotency-key")
        if not key:
            return run()
        if len(key) > 128:
            raise api_error("The Idempotency-Key must be 128 characters or fewer.")
        cache = tenant["idem"]
        now = self.now()
        for old in [k for k, v in cache.items() if v["expires"] < now]:
            cache.pop(old)
        hit = cache.get(key)
        if hit is not None:
            return Response(hit["status"], hit["body"], dict(hit["headers"]), hit["type"])
        try:
            resp = run()
        except HttpError as err:
            resp = err.response
        if resp.status < 500 and resp.status != 429:
            encoded = XeroResponse(resp.status, resp.body).encode().decode() if isinstance(resp.body, dict | list) \
                else resp.encode().decode()
            cache[key] = {"status": resp.status, "body": encoded, "headers": dict(resp.headers),
                          "type": resp.content_type, "expires": now + self.idempotency_ttl}
            self.persist()
        return resp

    # -- listing ------------------------------------------------------------------------------
    def _list(self, req: Request, rows: list[tuple[dict[str, Any], dict[str, Any]]], key: str, *,
              paged: bool = True, search: tuple[str, ...] = ()) -> Response:
        """rows: (stored, output) in creation order. Applies If-Modified-Since, where, searchTerm, order, page."""
        since = parse_since(req.header("if-modified-since"))
        if since is not None:
            rows = [(r, o) for r, o in rows if r["_updated"] >= since]
        where = req.arg("where")
        if where:
            try:
                test = Where(where)
            except WhereError as exc:
                raise api_error(str(exc), number=16, kind="QueryParseException") from None
            rows = [(r, o) for r, o in rows if test(o)]
        term = (req.arg("searchTerm") or "").strip().casefold()
        if term and search:
            rows = [(r, o) for r, o in rows if any(term in s(o.get(f)).casefold() for f in search)]
        order = (req.arg("order") or "").strip()
        if order:
            for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
                name, _, direction = part.partition(" ")
                rows.sort(key=lambda ro, n=name: _sort_key(Where._resolve(ro[1], n.split("."))),
                          reverse=direction.strip().upper() == "DESC")
        outs = [o for _, o in rows]
        if not paged or req.arg("page") is None:
            return XeroResponse(200, self.envelope(key, outs))
        try:
            page = max(1, int(req.arg("page") or 1))
            size = int(req.arg("pageSize") or 100)
        except ValueError:
            raise api_error("page and pageSize must be whole numbers.", number=16, kind="QueryParseException") from None
        size = min(max(size, 1), 1000)
        pagination = {"page": page, "pageSize": size, "pageCount": math.ceil(len(outs) / size), "itemCount": len(outs)}
        return XeroResponse(200, self.envelope(key, outs[(page - 1) * size: page * size], pagination))

    def _bulk(self, req: Request, tenant: dict[str, Any], key: str, apply: Callable[[dict[str, Any]], dict],
              failed: Callable[[dict[str, Any], list[str]], dict]) -> Response:
        """Each element on its own, in order. summarizeErrors (default true): any failure makes the whole
        answer a 400 listing only the failures, though the valid elements were saved all the same."""
        body = self._body(req)
        elements = body.get(key) if isinstance(body, dict) else None
        if not isinstance(elements, list) or not elements:
            raise api_error(f"The request must contain {key}.", number=17, kind="PostDataInvalidException")
        summarize = (req.arg("summarizeErrors") or "true").strip().lower() != "false"
        outs, failures = [], []
        for element in elements:
            if not isinstance(element, dict):
                element = {}
            try:
                outs.append(apply(element))
            except Invalid as exc:
                out = failed(element, exc.messages)
                outs.append(out)
                failures.append(out)
        self.persist()
        if summarize and failures:
            raise api_error("A validation exception occurred", failures)
        return XeroResponse(200, self.envelope(key, outs))

    # -- organisation & connections -------------------------------------------------------------
    @route("GET", r"(?i:/connections)")
    def list_connections(self, req: Request) -> Response:
        self.authenticate(req)
        self._count([("appminute", "app", self.app_minute_limit, 60.0)])
        self._tl.limits = {"X-AppMinLimit-Remaining": self._remaining("app", self.app_minute_limit, 60.0)}
        event = (req.arg("authEventId") or "").lower()
        rows = [self._connection_out(t) for t in self.state["tenants"].values()
                if t["connected"] and (not event or t["authEventId"] == event)]
        return Response(200, rows)

    @staticmethod
    def _iso7(epoch: float) -> str:
        """/connections dates: ISO with seven fraction digits and no zone (UTC)."""
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"

    def _connection_out(self, t: dict[str, Any]) -> dict[str, Any]:
        return {"id": t["connectionId"], "authEventId": t["authEventId"], "tenantId": t["tenantId"],
                "tenantType": t["tenantType"], "tenantName": t["tenantName"],
                "createdDateUtc": self._iso7(t["created"]), "updatedDateUtc": self._iso7(t["updated"])}

    @route("DELETE", r"(?i:/connections/(?P<id>[0-9a-f-]+))")
    def delete_connection(self, req: Request) -> Response:
        self.authenticate(req)
        tenant = next((t for t in self.state["tenants"].values()
                       if t["connectionId"] == req.params["id"].lower() and t["connected"]), None)
        if tenant is None:
            raise not_found()
        tenant["connected"] = False
        self.persist()
        return Response(204, b"")

    @route("GET", rf"(?i:{API}/Organisation)")
    def organisation(self, req: Request) -> Response:
        tenant = self._gate(req, "settings")
        org = {k: v for k, v in tenant["org"].items() if not k.startswith("_")}
        org.update({"Name": tenant["tenantName"], "CreatedDateUTC": msdate(int(tenant["org"]["_created"] * 1000),
                                                                            offset=False),
                    "Addresses": [], "Phones": [], "ExternalLinks": [], "PaymentTerms": {}})
        return XeroResponse(200, self.envelope("Organisations", [org]))

    # -- contacts -----------------------------------------------------------------------------
    def _by_name(self, tenant: dict[str, Any]) -> dict[str, set[str]]:
        """Folded contact name -> ContactIDs, kept in step by ``_apply_contact`` (every contact write goes
        through it) and rebuilt when the state was loaded afresh; a name check is O(1), not a scan."""
        contacts = tenant["contacts"]
        cache = self.__dict__.setdefault("_name_index", {})
        entry = cache.get(id(contacts))
        if entry is None or entry[0] is not contacts or entry[2] != len(contacts):
            index: dict[str, set[str]] = defaultdict(set)
            for cid, c in contacts.items():
                index[c["Name"].strip().casefold()].add(cid)
            entry = cache[id(contacts)] = [contacts, index, len(contacts)]
        return entry[1]

    def _named(self, tenant: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """Active contacts called ``name`` (case and outer spaces ignored)."""
        folded = name.strip().casefold()
        found = (tenant["contacts"].get(cid) for cid in self._by_name(tenant).get(folded, ()))
        return [c for c in found if c is not None and c["ContactStatus"] == "ACTIVE"
                and c["Name"].strip().casefold() == folded]

    def _active_clash(self, tenant: dict[str, Any], name: str, own_id: str | None) -> bool:
        return any(c["ContactID"] != own_id for c in self._named(tenant, name))

    def _apply_contact(self, tenant: dict[str, Any], el: dict[str, Any], existing: dict[str, Any] | None) -> dict:
        """Validate one element and store it (a new contact, or the changes to ``existing``)."""
        rec = dict(existing) if existing else {
            "ContactID": self.new_id("contact"), "ContactStatus": "ACTIVE", "Name": "", "FirstName": "",
            "LastName": "", "EmailAddress": "", "AccountNumber": "", "ContactNumber": "", "TaxNumber": "",
            "CompanyNumber": "", "DefaultCurrency": "",
            "Addresses": [_address("STREET", {}), _address("POBOX", {})],
            "Phones": [_phone_rec(t, {}) for t in PHONE_TYPES], "ContactPersons": [], "IsSupplier": False,
        }
        errors: list[str] = []
        for fld, limit in CONTACT_LIMITS.items():
            if fld in el:
                value = s(el[fld])
                if len(value) > limit:
                    errors.append(f"{fld} must be {limit} characters or fewer.")
                rec[fld] = value
        if not rec["Name"] and (existing is None or "Name" in el):
            errors.append("The contact name must be specified.")
        if rec["EmailAddress"] and (not _EMAIL.match(rec["EmailAddress"]) or not rec["EmailAddress"].isascii()):
            errors.append("Email address must be valid.")
        if "DefaultCurrency" in el:
            code = s(el["DefaultCurrency"]).upper()
            if code and not re.fullmatch(r"[A-Z]{3}", code):
                errors.append("The currency code is not valid.")
            rec["DefaultCurrency"] = code
        if "ContactStatus" in el:
            status = s(el["ContactStatus"]).upper()
            if status not in ("ACTIVE", "ARCHIVED"):
                errors.append("ContactStatus must be ACTIVE or ARCHIVED.")
            rec["ContactStatus"] = status
        if "Addresses" in el:
            given = {s(a.get("AddressType")).upper(): a for a in el["Addresses"] or [] if isinstance(a, dict)}
            if set(given) - {"POBOX", "STREET"}:
                errors.append("AddressType must be POBOX or STREET.")
            for a in given.values():
                errors += [f"{f} must be {n} characters or fewer." for f, n in ADDRESS_LIMITS.items()
                           if len(s(a.get(f))) > n]
            rec["Addresses"] = [_address(t, given.get(t) or {}) for t in ("STREET", "POBOX")]  # arrays are replaced
        if "Phones" in el:
            given = {s(p.get("PhoneType")).upper(): p for p in el["Phones"] or [] if isinstance(p, dict)}
            if set(given) - {*PHONE_TYPES, "OFFICE"}:
                errors.append("PhoneType must be DEFAULT, DDI, MOBILE or FAX.")
            if any(len(s(p.get("PhoneNumber"))) > 50 for p in given.values()):
                errors.append("PhoneNumber must be 50 characters or fewer.")
            rec["Phones"] = [_phone_rec(t, given.get(t) or {}) for t in PHONE_TYPES]
        if "ContactPersons" in el:
            persons = [p for p in el["ContactPersons"] or [] if isinstance(p, dict)]
            if len(persons) > 5:
                errors.append("A contact can have at most 5 contact persons.")
            rec["ContactPersons"] = [{"FirstName": s(p.get("FirstName")), "LastName": s(p.get("LastName")),
                                      "EmailAddress": s(p.get("EmailAddress")),
                                      "IncludeInEmails": bool(p.get("IncludeInEmails"))} for p in persons[:5]]
        if rec["AccountNumber"] and any(c["AccountNumber"].casefold() == rec["AccountNumber"].casefold()
                                        and c["ContactID"] != rec["ContactID"] for c in tenant["contacts"].values()):
            errors.append("Account Number already exists. Please enter a different Account Number.")
        active = rec["ContactStatus"] == "ACTIVE"
        if rec["Name"] and active and self._active_clash(tenant, rec["Name"], rec["ContactID"]):
            errors.append(DUPLICATE.format(rec["Name"]))
        if errors:
            raise Invalid(*errors)
        self._touch(rec)
        index = self._by_name(tenant)
        if existing is not None:
            index.get(existing["Name"].strip().casefold(), set()).discard(rec["ContactID"])
        index[rec["Name"].strip().casefold()].add(rec["ContactID"])
        tenant["contacts"][rec["ContactID"]] = rec
        self.__dict__["_name_index"][id(tenant["contacts"])][2] = len(tenant["contacts"])
        return rec

    def _balances(self, tenant: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
        today, out = self.today(), {}
        for inv in tenant["invoices"].values():
            if inv["Type"] == "ACCREC" and inv["Status"] == "AUTHORISED":
                cid = inv["ContactID"]
                due = Decimal(inv["AmountDue"])
                owed, late = out.get(cid, (ZERO, ZERO))
                out[cid] = (owed + due, late + (due if inv["DueDate"] < today else ZERO))
        return out

    @staticmethod
    def _customers(tenant: dict[str, Any]) -> set[str]:
        """Contacts with sales invoices: Xero derives IsCustomer from the transactions."""
        return {i["ContactID"] for i in tenant["invoices"].values()
                if i["Type"] == "ACCREC" and i["Status"] != "DELETED"}

    def _contact_out(self, tenant: dict[str, Any], c: dict[str, Any],
                     balances: dict[str, tuple[Decimal, Decimal]] | None = None,
                     customers: set[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"ContactID": c["ContactID"], "ContactStatus": c["ContactStatus"], "Name": c["Name"]}
        for fld in ("FirstName", "LastName", "EmailAddress", "AccountNumber", "ContactNumber", "CompanyNumber",
                    "TaxNumber", "DefaultCurrency"):
            if c.get(fld):
                out[fld] = c[fld]
        out.update({
            "Addresses": [dict(a) for a in c["Addresses"]], "Phones": [dict(p) for p in c["Phones"]],
            "UpdatedDateUTC": msdate(int(c["_updated"] * 1000)), "ContactGroups": [],
            "IsSupplier": c["IsSupplier"],
            "IsCustomer": c["ContactID"] in (customers if customers is not None else self._customers(tenant)),
            "ContactPersons": [dict(p) for p in c["ContactPersons"]], "HasAttachments": False,
            "HasValidationErrors": False,
        })
        if balances is not None:
            owed, late = balances.get(c["ContactID"], (ZERO, ZERO))
            out["Balances"] = {"AccountsReceivable": {"Outstanding": money(owed), "Overdue": money(late)},
                               "AccountsPayable": {"Outstanding": money(ZERO), "Overdue": money(ZERO)}}
        return out

    @staticmethod
    def _failed_contact(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "ContactID": el.get("ContactID") or ZERO_ID, "StatusAttributeString": "ERROR",
                "HasValidationErrors": True, "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Contacts)")
    def list_contacts(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        records = sorted(tenant["contacts"].values(), key=lambda c: c["Name"].casefold())
        if (req.arg("includeArchived") or "").lower() != "true":
            records = [c for c in records if c["ContactStatus"] == "ACTIVE"]
        ids = {i.strip().lower() for i in (req.arg("IDs") or "").split(",") if i.strip()}
        if ids:
            records = [c for c in records if c["ContactID"] in ids]
        balances = self._balances(tenant) if req.arg("page") is not None else None
        customers = self._customers(tenant)
        rows = [(c, self._contact_out(tenant, c, balances, customers)) for c in records]
        return self._list(req, rows, "Contacts",
                          search=("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"))

    @route("GET", rf"(?i:{API}/Contacts/(?P<id>[^/]+))")
    def get_contact(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        key = req.params["id"].lower()
        rec = tenant["contacts"].get(key) or next(
            (c for c in tenant["contacts"].values() if c["ContactNumber"] and c["ContactNumber"].lower() == key), None)
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Contacts", [self._contact_out(tenant, rec, self._balances(tenant))]))

    def _write_contact(self, tenant: dict[str, Any], el: dict[str, Any], *, create_only: bool) -> dict[str, Any]:
        existing = None
        cid = s(el.get("ContactID")).lower()
        if cid and not create_only:
            existing = tenant["contacts"].get(cid)
            if existing is None:
                raise Invalid("The document with the supplied id was not found for this endpoint.")
        elif not create_only and s(el.get("Name")):  # POST matches an active contact by name and updates it
            existing = next(iter(self._named(tenant, s(el.get("Name")))), None)
        rec = self._apply_contact(tenant, el, existing)
        return {**self._contact_out(tenant, rec), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Contacts)")
    def create_contacts(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Contacts", lambda el: self._write_contact(tenant, el, create_only=True),
            self._failed_contact))

    @route("POST", rf"(?i:{API}/Contacts)")
    def save_contacts(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Contacts", lambda el: self._write_contact(tenant, el, create_only=False),
            self._failed_contact))

    @route("POST", rf"(?i:{API}/Contacts/(?P<id>[0-9a-fA-F-]{{36}}))")
    def update_contact(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        cid = req.params["id"].lower()
        if cid not in tenant["contacts"]:
            raise not_found()

        def one(el: dict[str, Any]) -> dict[str, Any]:
            return self._write_contact(tenant, {**el, "ContactID": cid}, create_only=False)

        return self._idempotent(req, tenant, lambda: self._bulk(req, tenant, "Contacts", one, self._failed_contact))

    # -- items --------------------------------------------------------------------------------
    def _apply_item(self, tenant: dict[str, Any], el: dict[str, Any], existing: dict[str, Any] | None, *,
                    unitdp: int) -> dict[str, Any]:
        rec = dict(existing) if existing else {
            "ItemID": self.new_id("item"), "Code": "", "Name": "", "Description": "", "PurchaseDescription": "",
            "IsSold": True, "IsPurchased": True, "IsTrackedAsInventory": False, "SalesDetails": {},
            "PurchaseDetails": {},
        }
        errors: list[str] = []
        for fld, limit in (("Code", 30), ("Name", 50), ("Description", 4000), ("PurchaseDescription", 4000)):
            if fld in el:
                rec[fld] = s(el[fld])
                if len(rec[fld]) > limit:
                    errors.append(f"{fld} must be {limit} characters or fewer.")
        if not rec["Code"]:
            errors.append("Item code must be specified.")
        elif any(i["Code"].casefold() == rec["Code"].casefold() and i["ItemID"] != rec["ItemID"]
                 for i in tenant["items"].values()):
            errors.append(f"Price List Item with Code ''{rec['Code']}'' already exists")
        for fld in ("IsSold", "IsPurchased"):
            if fld in el:
                rec[fld] = bool(el[fld])
        for fld in ("SalesDetails", "PurchaseDetails"):
            given = el.get(fld)
            if isinstance(given, dict):
                details = dict(rec[fld])
                try:
                    if given.get("UnitPrice") is not None:
                        places = Decimal("0.0001") if unitdp == 4 else CENT
                        details["UnitPrice"] = str(money(dec(given["UnitPrice"], "UnitPrice"), places))
                except Invalid as exc:
                    errors += exc.messages
                for sub in ("AccountCode", "TaxType", "COGSAccountCode"):
                    if sub in given:
                        details[sub] = s(given[sub])
                if details.get("AccountCode") and details["AccountCode"] not in tenant["accounts"]:
                    errors.append("Account must be valid.")
                if details.get("TaxType") and details["TaxType"] not in tenant["taxes"]:
                    errors.append("Tax rate must be valid.")
                rec[fld] = details
        if errors:
            raise Invalid(*errors)
        self._touch(rec)
        tenant["items"][rec["ItemID"]] = rec
        return rec

    @staticmethod
    def _item_out(i: dict[str, Any], unitdp: int) -> dict[str, Any]:
        def details(d: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in d.items() if k != "UnitPrice" and v}
            if d.get("UnitPrice") is not None:
                out = {"UnitPrice": money(Decimal(d["UnitPrice"]), Decimal("0.0001") if unitdp == 4 else CENT), **out}
            return out

        out: dict[str, Any] = {"ItemID": i["ItemID"], "Code": i["Code"]}
        if i["Description"]:
            out["Description"] = i["Description"]
        if i["PurchaseDescription"]:
            out["PurchaseDescription"] = i["PurchaseDescription"]
        out.update({"UpdatedDateUTC": msdate(int(i["_updated"] * 1000)),
                    "PurchaseDetails": details(i["PurchaseDetails"]),
                    "SalesDetails": details(i["SalesDetails"]), "Name": i["Name"],
                    "IsTrackedAsInventory": i["IsTrackedAsInventory"], "IsSold": i["IsSold"],
                    "IsPurchased": i["IsPurchased"]})
        return out

    @staticmethod
    def _unitdp(req: Request) -> int:
        return 4 if (req.arg("unitdp") or "").strip() == "4" else 2

    def _find_item(self, tenant: dict[str, Any], key: str) -> dict[str, Any] | None:
        key = key.strip()
        return tenant["items"].get(key.lower()) or next(
            (i for i in tenant["items"].values() if i["Code"].casefold() == key.casefold()), None)

    @staticmethod
    def _failed_item(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Items)")
    def list_items(self, req: Request) -> Response:
        """Not paged: every item in one answer."""
        tenant = self._gate(req, "items")
        unitdp = self._unitdp(req)
        items = sorted(tenant["items"].values(), key=lambda i: i["Code"].casefold())
        rows = [(i, self._item_out(i, unitdp)) for i in items]
        return self._list(req, rows, "Items", paged=False)

    @route("GET", rf"(?i:{API}/Items/(?P<id>[^/]+))")
    def get_item(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        rec = self._find_item(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Items", [self._item_out(rec, self._unitdp(req))]))

    def _write_item(self, tenant: dict[str, Any], el: dict[str, Any], unitdp: int, *, create_only: bool) -> dict:
        existing = None
        if not create_only:
            if s(el.get("ItemID")):
                existing = tenant["items"].get(s(el["ItemID"]).lower())
                if existing is None:
                    raise Invalid("The document with the supplied id was not found for this endpoint.")
            elif s(el.get("Code")):
                existing = self._find_item(tenant, s(el["Code"]))
        rec = self._apply_item(tenant, el, existing, unitdp=unitdp)
        return {**self._item_out(rec, unitdp), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Items)")
    def create_items(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Items", lambda el: self._write_item(tenant, el, unitdp, create_only=True), self._failed_item))

    @route("POST", rf"(?i:{API}/Items)")
    def save_items(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Items", lambda el: self._write_item(tenant, el, unitdp, create_only=False),
            self._failed_item))

    @route("POST", rf"(?i:{API}/Items/(?P<id>[^/]+))")
    def update_item(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        rec = self._find_item(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Items", lambda el: self._write_item(tenant, {**el, "ItemID": rec["ItemID"]}, unitdp,
                                                              create_only=False), self._failed_item))

    @route("DELETE", rf"(?i:{API}/Items/(?P<id>[^/]+))")
    def delete_item(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        rec = self._find_item(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        tenant["items"].pop(rec["ItemID"])
        self.persist()
        return Response(204, b"")

    # -- invoices -----------------------------------------------------------------------------
    def _contact_ref(self, tenant: dict[str, Any], given: Any) -> dict[str, Any]:
        given = given if isinstance(given, dict) else {}
        cid, name, number = s(given.get("ContactID")).lower(), s(given.get("Name")), s(given.get("ContactNumber"))
        if not (cid or name or number):
            raise Invalid("The Contact must contain at least 1 of the following elements to identify the contact: "
                          "Name, ContactID, ContactNumber")
        if cid:
            rec = tenant["contacts"].get(cid)
            if rec is None:
                raise Invalid("The contact with the supplied ContactID was not found.")
            return rec
        match = next((c for c in tenant["contacts"].values()
                      if (number and c["ContactNumber"] == number)
                      or (name and c["ContactStatus"] == "ACTIVE" and c["Name"].casefold() == name.casefold())), None)
        return match or self._apply_contact(tenant, {"Name": name or number, "ContactNumber": number}, None)

    def _lines(self, tenant: dict[str, Any], given: Any, current: list[dict[str, Any]], amounts: str,
               unitdp: int) -> list[dict[str, Any]]:
        """Xero's arithmetic: the line amount to the cent after the discount, tax rounded on each line."""
        if not isinstance(given, list):
            raise Invalid("LineItems must be a list.")
        known = {li["LineItemID"]: li for li in current}
        places = Decimal("0.0001") if unitdp == 4 else CENT
        lines, errors = [], []
        for n, li in enumerate(x for x in given if isinstance(x, dict)):
            try:
                item = self._find_item(tenant, s(li.get("ItemCode"))) if s(li.get("ItemCode")) else None
                if s(li.get("ItemCode")) and item is None:
                    raise Invalid(f"Item code '{s(li.get('ItemCode'))}' is not valid.")
                sales = (item or {}).get("SalesDetails") or {}
                qty = money(dec(li.get("Quantity", 1), "Quantity"), Decimal("0.0001"))
                unit_raw = li.get("UnitAmount", sales.get("UnitPrice", 0))
                unit = money(dec(unit_raw, "UnitAmount"), places)
                rate = money(dec(li.get("DiscountRate") or 0, "DiscountRate"), CENT)
                if not ZERO <= rate <= 100:
                    raise Invalid("DiscountRate must be between 0 and 100.")
                account = s(li.get("AccountCode")) or s(sales.get("AccountCode"))
                if account and account not in tenant["accounts"]:
                    raise Invalid("Account must be valid.")
                if amounts == "NoTax":
                    tax_type = "NONE"
                else:
                    tax_type = (s(li.get("TaxType")) or s(sales.get("TaxType"))
                                or (tenant["accounts"].get(account) or {}).get("TaxType") or "NONE")
                if tax_type not in tenant["taxes"]:
                    raise Invalid("Tax rate must be valid.")
                tax_rate = Decimal(tenant["taxes"][tax_type])
                if li.get("DiscountAmount") is not None and not rate:
                    off = money(dec(li["DiscountAmount"], "DiscountAmount"))
                    gross = qty * unit
                    rate = (off * 100 / gross) if gross else ZERO
                net = line_net(qty, unit, rate)  # the line amount, to the cent after the discount
                tax = invoice_totals([(qty, unit, rate, tax_rate)], rounding="line",
                                     inclusive=amounts == "Inclusive").tax  # rounded on this line
                line_id = s(li.get("LineItemID")).lower()
                lines.append({
                    "LineItemID": line_id if line_id in known else self.new_id("line"),
                    "Description": s(li.get("Description")) or (item or {}).get("Description")
                    or (item or {}).get("Name", ""),
                    "Quantity": str(qty), "UnitAmount": str(unit), "ItemCode": (item or {}).get("Code", ""),
                    "ItemID": (item or {}).get("ItemID", ""), "AccountCode": account, "TaxType": tax_type,
                    "TaxAmount": str(tax), "LineAmount": str(net),
                    "DiscountRate": str(rate.normalize()) if rate else "",
                    "Discount": str(money(qty * unit) - net),
                })
            except Invalid as exc:
                errors += [f"Line {n + 1}: {m}" if not m.startswith("Item code") else m for m in exc.messages]
        if errors:
            raise Invalid(*errors)
        return lines

    def _apply_invoice(self, tenant: dict[str, Any], el: dict[str, Any], existing: dict[str, Any] | None,
                       unitdp: int) -> dict[str, Any]:
        today = self.today()
        rec = dict(existing) if existing else {
            "InvoiceID": self.new_id("invoice"), "Type": "", "InvoiceNumber": "", "Reference": "", "ContactID": "",
            "Date": today, "DueDate": "", "LineAmountTypes": "Exclusive", "CurrencyCode": tenant["currencies"][0],
            "Status": "DRAFT", "LineItems": [], "AmountPaid": "0", "AmountCredited": "0", "FullyPaidOnDate": "",
            "SentToContact": False, "Payments": [],
        }
        errors: list[str] = []
        old_status = existing["Status"] if existing else None
        paid = existing is not None and Decimal(existing["AmountPaid"]) > 0
        if existing is not None and old_status in ("PAID", "VOIDED", "DELETED"):
            raise Invalid("This document cannot be edited as it has a payment or credit note allocated to it."
                          if old_status == "PAID" else "Invoice not of valid status for modification")
        changing = {k for k in ("Contact", "LineItems", "LineAmountTypes", "CurrencyCode", "Date") if k in el}
        if paid and changing:
            raise Invalid("This document cannot be edited as it has a payment or credit note allocated to it.")
        if existing is None or "Type" in el:
            kind = s(el.get("Type")).upper()
            if kind not in ("ACCREC", "ACCPAY"):
                errors.append("Invoice Type must be ACCREC or ACCPAY.")
            rec["Type"] = kind
        try:
            if existing is None or "Contact" in el:
                rec["ContactID"] = self._contact_ref(tenant, el.get("Contact"))["ContactID"]
        except Invalid as exc:
            errors += exc.messages
        for fld in ("Date", "DueDate"):
            if s(el.get(fld)):
                try:
                    rec[fld] = parse_day(el[fld], fld)
                except Invalid as exc:
                    errors += exc.messages
        rec["DueDate"] = rec["DueDate"] or rec["Date"]
        if "LineAmountTypes" in el:
            rec["LineAmountTypes"] = s(el["LineAmountTypes"])
        if rec["LineAmountTypes"] not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax.")
            rec["LineAmountTypes"] = "Exclusive"
        if "CurrencyCode" in el:
            code = s(el["CurrencyCode"]).upper()
            if code not in tenant["currencies"]:
                errors.append(f"The currency {code} has not been added to this organisation.")
            rec["CurrencyCode"] = code
        if "Reference" in el:
            rec["Reference"] = s(el["Reference"])
        if "SentToContact" in el:  # Xero marks only approved invoices as sent
            if bool(el["SentToContact"]) and status_of(el, rec) not in ("AUTHORISED", "PAID"):
                errors.append("Only approved invoices can be marked as sent.")
            else:
                rec["SentToContact"] = bool(el["SentToContact"])
        if s(el.get("InvoiceNumber")):
            rec["InvoiceNumber"] = s(el["InvoiceNumber"])
            if len(rec["InvoiceNumber"]) > 255:
                errors.append("InvoiceNumber must be 255 characters or fewer.")
            number = rec["InvoiceNumber"].casefold()
            if any(i["InvoiceNumber"].casefold() == number and i["InvoiceID"] != rec["InvoiceID"]
                   and i["Type"] == rec["Type"] for i in tenant["invoices"].values()):
                errors.append("Invoice # must be unique.")
        if "LineItems" in el or "LineAmountTypes" in el:
            given = el.get("LineItems")
            if given is None:  # a new tax mode recomputes the lines as they are
                given = [{**li, "DiscountRate": li["DiscountRate"] or 0} for li in rec["LineItems"]]
            try:
                rec["LineItems"] = self._lines(tenant, given, rec["LineItems"], rec["LineAmountTypes"], unitdp)
            except Invalid as exc:
                errors += exc.messages
        status = s(el.get("Status")).upper() or rec["Status"]
        allowed = {None: {"DRAFT", "SUBMITTED", "AUTHORISED"},
                   "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
                   "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
                   "AUTHORISED": {"AUTHORISED"} | (set() if paid else {"VOIDED"})}
        if status not in allowed.get(old_status, set()):
            errors.append("Invoice not of valid status for modification" if existing else
                          "Invoice not of valid status for creation")
        if status in ("SUBMITTED", "AUTHORISED"):
            if not rec["LineItems"]:
                errors.append("At least one line item must be specified.")
            if any(not li["AccountCode"] for li in rec["LineItems"]):
                errors.append("Account code must be specified for every line of an approved invoice.")
        rec["Status"] = status
        if errors:
            raise Invalid(*errors)
        self._totals(rec)
        if el.get("Total") is not None and dec(el["Total"], "Total") != Decimal(rec["Total"]):
            raise Invalid("The invoice total does not equal the sum of the lines.")
        if not rec["InvoiceNumber"] and rec["Type"] == "ACCREC":
            tenant["invoice_no"] += 1
            rec["InvoiceNumber"] = f"INV-{tenant['invoice_no']:04d}"
        self._touch(rec)
        tenant["invoices"][rec["InvoiceID"]] = rec
        return rec

    @staticmethod
    def _totals(rec: dict[str, Any]) -> None:
        lines = rec["LineItems"]
        tax = sum((Decimal(li["TaxAmount"]) for li in lines), ZERO)
        amount = sum((Decimal(li["LineAmount"]) for li in lines), ZERO)
        subtotal = amount - tax if rec["LineAmountTypes"] == "Inclusive" else amount
        total = subtotal + tax
        rec["SubTotal"], rec["TotalTax"], rec["Total"] = str(subtotal), str(tax), str(total)
        rec["TotalDiscount"] = str(sum((Decimal(li["Discount"]) for li in lines), ZERO))
        rec["AmountDue"] = str(total - Decimal(rec["AmountPaid"]) - Decimal(rec["AmountCredited"]))

    def _invoice_out(self, tenant: dict[str, Any], i: dict[str, Any], unitdp: int, *, lines: bool = True) -> dict:
        contact = tenant["contacts"].get(i["ContactID"]) or {"ContactID": i["ContactID"], "Name": ""}
        unit_places = Decimal("0.0001") if unitdp == 4 else CENT
        out_lines = []
        for li in i["LineItems"] if lines else []:
            line: dict[str, Any] = {"LineItemID": li["LineItemID"], "Description": li["Description"],
                                    "Quantity": Decimal(li["Quantity"]),
                                    "UnitAmount": money(Decimal(li["UnitAmount"]), unit_places)}
            if li["ItemCode"]:
                line["ItemCode"] = li["ItemCode"]
                item = tenant["items"].get(li["ItemID"])
                if item is not None:
                    line["Item"] = {"ItemID": item["ItemID"], "Name": item["Name"], "Code": item["Code"]}
            if li["AccountCode"]:
                line["AccountCode"] = li["AccountCode"]
            line.update({"TaxType": li["TaxType"], "TaxAmount": money(Decimal(li["TaxAmount"])),
                         "LineAmount": money(Decimal(li["LineAmount"])), "Tracking": []})
            if li["DiscountRate"]:
                line["DiscountRate"] = money(Decimal(li["DiscountRate"]))
            out_lines.append(line)
        payments = [tenant["payments"][p] for p in i["Payments"] if p in tenant["payments"]]
        out: dict[str, Any] = {
            "Type": i["Type"], "InvoiceID": i["InvoiceID"], "InvoiceNumber": i["InvoiceNumber"],
            "Reference": i["Reference"],
            "Payments": [{"PaymentID": p["PaymentID"], "Date": msdate(day_ms(p["Date"])),
                          "Amount": money(Decimal(p["Amount"])), "CurrencyRate": Decimal("1.0"), "HasAccount": True,
                          "HasValidationErrors": False}
                         for p in payments if p["Status"] == "AUTHORISED"],
            "CreditNotes": [], "Prepayments": [], "Overpayments": [],
            "AmountDue": money(Decimal(i["AmountDue"])), "AmountPaid": money(Decimal(i["AmountPaid"])),
            "AmountCredited": money(Decimal(i["AmountCredited"])), "SentToContact": i["SentToContact"],
            "CurrencyRate": Decimal("1.0"), "IsDiscounted": any(li["DiscountRate"] for li in i["LineItems"]),
            "HasAttachments": False, "HasErrors": False,
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"], "Addresses": [], "Phones": [],
                        "ContactGroups": [], "ContactPersons": [], "HasValidationErrors": False},
            "DateString": f"{i['Date']}T00:00:00", "Date": msdate(day_ms(i["Date"])),
            "DueDateString": f"{i['DueDate']}T00:00:00", "DueDate": msdate(day_ms(i["DueDate"])),
            "Status": i["Status"], "LineAmountTypes": i["LineAmountTypes"], "LineItems": out_lines,
            "SubTotal": money(Decimal(i["SubTotal"])), "TotalTax": money(Decimal(i["TotalTax"])),
            "Total": money(Decimal(i["Total"])),
            "UpdatedDateUTC": msdate(int(i["_updated"] * 1000)), "CurrencyCode": i["CurrencyCode"],
        }
        if Decimal(i["TotalDiscount"]):
            out["TotalDiscount"] = money(Decimal(i["TotalDiscount"]))
        if i["FullyPaidOnDate"]:
            out["FullyPaidOnDate"] = msdate(day_ms(i["FullyPaidOnDate"]))
        return out

    @staticmethod
    def _failed_invoice(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "InvoiceID": el.get("InvoiceID") or ZERO_ID, "HasErrors": True, "StatusAttributeString": "ERROR",
                "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Invoices)")
    def list_invoices(self, req: Request) -> Response:
        """Paged answers carry line items; an unpaged list leaves them out."""
        tenant = self._gate(req, "invoices")
        unitdp = self._unitdp(req)
        records = sorted(tenant["invoices"].values(), key=lambda i: (i["Date"], i["_seq"]))

        def listed(param: str) -> set[str]:
            return {v.strip().strip('"').lower() for v in (req.arg(param) or "").split(",") if v.strip()}

        for param, fld in (("IDs", "InvoiceID"), ("InvoiceNumbers", "InvoiceNumber"), ("ContactIDs", "ContactID"),
                           ("Statuses", "Status")):
            wanted = listed(param)
            if wanted:
                records = [i for i in records if i[fld].lower() in wanted]
        lines = req.arg("page") is not None
        rows = [(i, self._invoice_out(tenant, i, unitdp, lines=lines)) for i in records]
        return self._list(req, rows, "Invoices", search=("InvoiceNumber", "Reference"))

    @route("GET", rf"(?i:{API}/Invoices/(?P<id>[^/]+))")
    def get_invoice(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        rec = self._find_invoice(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Invoices", [self._invoice_out(tenant, rec, self._unitdp(req))]))

    @staticmethod
    def _find_invoice(tenant: dict[str, Any], key: str) -> dict[str, Any] | None:
        return tenant["invoices"].get(key.lower()) or next(
            (i for i in tenant["invoices"].values() if i["InvoiceNumber"].casefold() == key.casefold()), None)

    def _write_invoice(self, tenant: dict[str, Any], el: dict[str, Any], unitdp: int, *, create_only: bool) -> dict:
        existing = None
        if not create_only:
            if s(el.get("InvoiceID")):
                existing = tenant["invoices"].get(s(el["InvoiceID"]).lower())
                if existing is None:
                    raise Invalid("The document with the supplied id was not found for this endpoint.")
            elif s(el.get("InvoiceNumber")):  # the natural key
                existing = self._find_invoice(tenant, s(el["InvoiceNumber"]))
        rec = self._apply_invoice(tenant, el, existing, unitdp)
        return {**self._invoice_out(tenant, rec, unitdp), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Invoices)")
    def create_invoices(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Invoices", lambda el: self._write_invoice(tenant, el, unitdp, create_only=True),
            self._failed_invoice))

    @route("POST", rf"(?i:{API}/Invoices)")
    def save_invoices(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Invoices", lambda el: self._write_invoice(tenant, el, unitdp, create_only=False),
            self._failed_invoice))

    @route("POST", rf"(?i:{API}/Invoices/(?P<id>[^/]+))")
    def update_invoice(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        rec = self._find_invoice(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Invoices", lambda el: self._write_invoice(
                tenant, {**el, "InvoiceID": rec["InvoiceID"]}, unitdp, create_only=False), self._failed_invoice))

    @route("POST", rf"(?i:{API}/Invoices/(?P<id>[^/]+)/Email)")
    def email_invoice(self, req: Request) -> Response:
        """Email an approved sales invoice to its contact: 204, and SentToContact becomes true."""
        tenant = self._gate(req, "invoices")
        rec = self._find_invoice(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        if rec["Type"] != "ACCREC" or rec["Status"] not in ("AUTHORISED", "PAID"):
            raise api_error("A validation exception occurred", [{"ValidationErrors": [
                {"Message": "Invoice must be approved before it can be emailed."}]}])
        rec["SentToContact"] = True
        rec["_updated"] = self.now()
        self.persist()
        return Response(204, b"", {})

    # -- payments -----------------------------------------------------------------------------
    def _apply_payment(self, tenant: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        target = el.get("Invoice") if isinstance(el.get("Invoice"), dict) else {}
        invoice = None
        if s(target.get("InvoiceID")):
            invoice = tenant["invoices"].get(s(target["InvoiceID"]).lower())
        elif s(target.get("InvoiceNumber")):
            invoice = self._find_invoice(tenant, s(target["InvoiceNumber"]))
        if invoice is None:
            raise Invalid("The document with the supplied id was not found for this endpoint.")
        account_ref = el.get("Account") if isinstance(el.get("Account"), dict) else {}
        account = tenant["accounts"].get(s(account_ref.get("Code"))) or next(
            (a for a in tenant["accounts"].values() if a["AccountID"] == s(account_ref.get("AccountID")).lower()), None)
        errors = []
        if account is None or not (account["Type"] == "BANK" or account["EnablePaymentsToAccount"]):
            errors.append("Account must be valid.")
        amount = dec(el.get("Amount"), "Amount")
        if amount <= 0:
            errors.append("Payment amount must be greater than zero.")
        if invoice["Status"] != "AUTHORISED":
            errors.append("Payments can only be made against Authorised documents.")
        elif amount > Decimal(invoice["AmountDue"]):
            errors.append("Payment amount exceeds the amount outstanding on this document")
        day = parse_day(el["Date"], "Date") if s(el.get("Date")) else self.today()
        if errors:
            raise Invalid(*errors)
        rec = {"PaymentID": self.new_id("payment"), "InvoiceID": invoice["InvoiceID"], "Date": day,
               "Amount": str(money(amount)), "Reference": s(el.get("Reference")), "Status": "AUTHORISED",
               "PaymentType": "ACCRECPAYMENT" if invoice["Type"] == "ACCREC" else "ACCPAYPAYMENT",
               "AccountCode": account["Code"], "IsReconciled": bool(el.get("IsReconciled"))}
        self._touch(rec)
        tenant["payments"][rec["PaymentID"]] = rec
        invoice["Payments"] = [*invoice["Payments"], rec["PaymentID"]]
        self._settle(invoice, amount, day)
        return rec

    def _settle(self, invoice: dict[str, Any], paid: Decimal, day: str) -> None:
        """Move AmountPaid/AmountDue by ``paid`` (negative for a deleted payment); PAID at zero due."""
        invoice["AmountPaid"] = str(Decimal(invoice["AmountPaid"]) + paid)
        self._totals(invoice)
        if Decimal(invoice["AmountDue"]) == 0 and invoice["Status"] == "AUTHORISED":
            invoice["Status"], invoice["FullyPaidOnDate"] = "PAID", day
        elif Decimal(invoice["AmountDue"]) > 0 and invoice["Status"] == "PAID":
            invoice["Status"], invoice["FullyPaidOnDate"] = "AUTHORISED", ""
        self._touch(invoice)

    def _payment_out(self, tenant: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        invoice = tenant["invoices"][p["InvoiceID"]]
        contact = tenant["contacts"].get(invoice["ContactID"]) or {"ContactID": invoice["ContactID"], "Name": ""}
        account = tenant["accounts"][p["AccountCode"]]
        amount = money(Decimal(p["Amount"]))
        return {
            "PaymentID": p["PaymentID"], "Date": msdate(day_ms(p["Date"])), "BankAmount": amount, "Amount": amount,
            "Reference": p["Reference"], "CurrencyRate": Decimal("1.0"), "PaymentType": p["PaymentType"],
            "Status": p["Status"], "UpdatedDateUTC": msdate(int(p["_updated"] * 1000)),
            "UpdatedDateUTCString": dt.datetime.fromtimestamp(p["_updated"], dt.UTC)
            .strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "HasAccount": True, "IsReconciled": p["IsReconciled"],
            "Account": {"AccountID": account["AccountID"], "Code": account["Code"], "Name": account["Name"]},
            "Invoice": {"Type": invoice["Type"], "InvoiceID": invoice["InvoiceID"],
                        "InvoiceNumber": invoice["InvoiceNumber"], "Payments": [], "CreditNotes": [],
                        "Prepayments": [], "Overpayments": [], "HasErrors": False, "IsDiscounted": False,
                        "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"], "Addresses": [],
                                    "Phones": [], "ContactGroups": [], "ContactPersons": [],
                                    "HasValidationErrors": False},
                        "LineItems": [], "CurrencyCode": invoice["CurrencyCode"]},
            "HasValidationErrors": False,
        }

    @staticmethod
    def _failed_payment(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "StatusAttributeString": "ERROR", "HasValidationErrors": True,
                "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Payments)")
    def list_payments(self, req: Request) -> Response:
        tenant = self._gate(req, "payments")
        rows = [(p, self._payment_out(tenant, p)) for p in sorted(tenant["payments"].values(), key=lambda p: p["_seq"])]
        return self._list(req, rows, "Payments")

    @route("GET", rf"(?i:{API}/Payments/(?P<id>[0-9a-fA-F-]{{36}}))")
    def get_payment(self, req: Request) -> Response:
        tenant = self._gate(req, "payments")
        rec = tenant["payments"].get(req.params["id"].lower())
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Payments", [self._payment_out(tenant, rec)]))

    def _create_payment(self, tenant: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        return {**self._payment_out(tenant, self._apply_payment(tenant, el)), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Payments)")
    def create_payments(self, req: Request) -> Response:
        tenant = self._gate(req, "payments")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Payments", lambda el: self._create_payment(tenant, el), self._failed_payment))

    @route("POST", rf"(?i:{API}/Payments)")
    def create_payment(self, req: Request) -> Response:
        """One payment: as ``{"Payments": [..]}`` or as the bare object the spec describes."""
        tenant = self._gate(req, "payments")
        body = self._body(req)
        if isinstance(body, dict) and "Payments" not in body:
            req = Request(req.method, req.path, req.query, req.headers, dumps({"Payments": [body]}).encode())
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Payments", lambda el: self._create_payment(tenant, el), self._failed_payment))

    @route("POST", rf"(?i:{API}/Payments/(?P<id>[0-9a-fA-F-]{{36}}))")
    def delete_payment(self, req: Request) -> Response:
        """Payments cannot be edited, only deleted (``{"Status": "DELETED"}``), which reopens the invoice."""
        tenant = self._gate(req, "payments")
        rec = tenant["payments"].get(req.params["id"].lower())
        if rec is None:
            raise not_found()

        def drop(el: dict[str, Any]) -> dict[str, Any]:
            if s(el.get("Status")).upper() != "DELETED":
                raise Invalid("Payments can only be deleted: send Status DELETED.")
            if rec["Status"] != "DELETED":
                self._drop_payment(tenant, rec)
            return {**self._payment_out(tenant, rec), "StatusAttributeString": "OK"}

        return self._idempotent(req, tenant, lambda: self._bulk(req, tenant, "Payments", drop, self._failed_payment))

    def _drop_payment(self, tenant: dict[str, Any], rec: dict[str, Any]) -> None:
        rec["Status"] = "DELETED"
        self._touch(rec)
        self._settle(tenant["invoices"][rec["InvoiceID"]], -Decimal(rec["Amount"]), rec["Date"])

    # -- test helpers (what a user would do in Xero's web app) -----------------------------------
    def record_payment(self, invoice_id: str, amount: Decimal, date: str) -> str:
        """A customer paid: a payment into the bank account against the invoice; its PaymentID."""
        with self.lock:
            tenant = self._tenant_of("invoices", invoice_id)
            try:
                rec = self._apply_payment(tenant, {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"},
                                                   "Amount": amount, "Date": date})
            except Invalid as exc:
                raise ValueError("; ".join(exc.messages)) from None
            self.persist()
            return rec["PaymentID"]

    def delete_payment_record(self, payment_id: str) -> None:
        with self.lock:
            tenant = self._tenant_of("payments", payment_id)
            self._drop_payment(tenant, tenant["payments"][payment_id])
            self.persist()

    def add_contact(self, body: dict[str, Any], tenant_id: str | None = None) -> str:
        with self.lock:
            rec = self._apply_contact(self.state["tenants"][tenant_id or self.default_tenant], body, None)
            self.persist()
            return rec["ContactID"]

    def add_contacts(self, count: int, prefix: str = "Bulk Customer", tenant_id: str | None = None) -> list[str]:
        """Many contacts at once (paging tests); all stamped in the same second, as a bulk import is."""
        with self.lock:
            tenant = self.state["tenants"][tenant_id or self.default_tenant]
            ids = []
            for n in range(count):
                rec = self._apply_contact(tenant, {"Name": f"{prefix} {n:05d}",
                                                   "EmailAddress": f"c{n}@bulk.example"}, None)
                ids.append(rec["ContactID"])
            self.persist()
            return ids

    def user_edit(self, kind: str, record_id: str, **fields: Any) -> None:
        """Someone changed the record in Xero: new values, new UpdatedDateUTC."""
        with self.lock:
            collection = {"contact": "contacts", "item": "items", "invoice": "invoices"}[kind]
            tenant = self._tenant_of(collection, record_id)
            existing = tenant[collection][record_id]
            try:
                if kind == "contact":
                    self._apply_contact(tenant, fields, existing)
                elif kind == "item":
                    self._apply_item(tenant, fields, existing, unitdp=4)
                else:
                    self._apply_invoice(tenant, fields, existing, 4)
            except Invalid as exc:
                raise ValueError("; ".join(exc.messages)) from None
            self.persist()

    def user_delete_item(self, item_id: str) -> None:
        with self.lock:
            self._tenant_of("items", item_id)["items"].pop(item_id)
            self.persist()


def _address(kind: str, given: dict[str, Any]) -> dict[str, str]:
    return {"AddressType": kind, **{f: s(given.get(f)) for f in ADDRESS_FIELDS}}


def _phone_rec(kind: str, given: dict[str, Any]) -> dict[str, str]:
    return {"PhoneType": kind, "PhoneNumber": s(given.get("PhoneNumber")),
            "PhoneAreaCode": s(given.get("PhoneAreaCode")), "PhoneCountryCode": s(given.get("PhoneCountryCode"))}


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None or value == "":
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, Decimal | int):
        return (1, Decimal(value))
    ms = msdate_ms(value) if isinstance(value, str) and value.startswith("/Date(") else None
    if ms is not None:
        return (1, Decimal(ms))
    return (2, str(value).casefold())
