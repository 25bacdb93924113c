"""A local imitation of Zoho CRM's REST API v8 and of the Zoho Accounts server it signs in through.

Follows ../shared/reference/zoho-crm.md and Zoho's own OpenAPI files (zoho/crm-oas v8.0):

* OAuth: ``/oauth/v2/auth`` answers with ``code``, ``location`` and ``accounts-server`` (this server),
  ``/oauth/v2/token`` takes its parameters as query string or form, names ``api_domain`` (this
  server) in every answer, issues one-hour access tokens and refresh tokens that never rotate
  (a refresh answer carries none), answers a bad code or refresh token with HTTP 200
  ``{"error": "invalid_code"}``, allows 10 refreshes per refresh token per 10 minutes (then 400
  ``Access Denied``) and 20 refresh tokens per client (the 21st evicts the oldest).
* ``Authorization: Zoho-oauthtoken``; scopes are checked per module and per operation.
* Records (Accounts, Contacts, Deals, Products): ``GET`` lists with a mandatory ``fields`` (<= 50),
  ``per_page`` <= 200, ``page`` for the first 2,000 records and ``page_token`` beyond, ``ids``,
  ``sort_by``/``sort_order``, ``If-Modified-Since`` (304), 204 when empty; insert/update/upsert/
  delete of up to 100 records with per-record results (201/200 all good, 207 mixed, 400 all bad),
  ``DUPLICATE_DATA`` naming the existing record, ``MANDATORY_NOT_FOUND``, ``INVALID_DATA``;
  ``/deleted`` (recycle bin, ``If-Modified-Since``); search by ``email``/``phone``/``word``/
  ``criteria``; COQL with a real (small) parser.
* Deals carry a custom subform ``Line_Items`` (Product lookup, Quantity, Unit Price, Discount %),
  stages with ``forecast_type`` metadata in two pipelines; metadata through ``settings/fields``
  (custom fields can be created there), ``settings/layouts``, ``settings/pipeline`` and ``org``.
* API credits per rolling 24 hours by edition (Enterprise: 50,000 + 1,000 per user), priced per
  call as the reference prices them; ``X-API-CREDITS-REMAINING`` once half is used; 429
  ``TOO_MANY_REQUESTS`` when spent.

Money is kept as strings in the state and written as exact JSON numbers.

Simplifications (said here so nobody mistakes them for Zoho behaviour): seeded demo records are
stored as an import would store them, without the API's field validation (so the demo can hold
malformed emails); the per-app concurrency limit is not imitated (the sandbox answers one request
at a time); layouts list no sections; deleting an account does not delete its contacts and deals;
the search index has no lag.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import re
import secrets
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.sandbox import demo_data as demo_set
from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.demo_data import COUNTRY_NAMES
from app.sandbox.zoho_accounts import ZohoAccounts

API = "/crm/v8"
ID_PREFIX = "4876876000000"  # Zoho record ids are 19-digit numeric strings; the high digits are the org's
ORG_ID = "60034123"
TIME_ZONE = "Europe/Berlin"
MODULES = ("Accounts", "Contacts", "Deals", "Products")
SUBFORM_MODULES = {"Line_Items": "Deals"}
RESERVED = r"(?!(?:coql|org|settings|users|actions|__composite_requests)(?:/|$))"
MODULE_RE = RESERVED + r"[A-Za-z][A-Za-z0-9_]*"
MODULE_IDS = {"Accounts": "4876876000000002177", "Contacts": "4876876000000002179",
              "Deals": "4876876000000002181", "Products": "4876876000000002185",
              "Line_Items": "4876876000000091001"}
MODULE_LABEL = {"Accounts": "Accounts", "Contacts": "Contacts", "Deals": "Deals", "Products": "Products",
                "Line_Items": "Line Items"}
DISPLAY_FIELD = {"Accounts": "Account_Name", "Contacts": "Full_Name", "Deals": "Deal_Name",
                 "Products": "Product_Name"}
PROFILE_ID = "4876876000000026011"
CURRENCIES = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "GBP": Decimal("0.85"), "AUD": Decimal("1.65"),
              "CHF": Decimal("0.96")}
NUMERIC = {"currency", "double", "percent", "decimal"}
TEXTUAL = {"text", "textarea", "email", "phone", "website", "picklist", "autonumber"}
CREATABLE_TYPES = {"text", "textarea", "email", "phone", "website", "picklist", "multiselectpicklist", "date",
                   "datetime", "integer", "bigint", "double", "currency", "percent", "boolean"}
JSON_TYPE = {"text": "string", "textarea": "string", "email": "string", "phone": "string", "website": "string",
             "picklist": "string", "multiselectpicklist": "jsonarray", "date": "string", "datetime": "string",
             "integer": "integer", "bigint": "string", "double": "double", "currency": "double",
             "percent": "double", "boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject",
             "subform": "jsonarray", "formula": "double", "autonumber": "string"}
UI_TYPE = {"text": 1, "textarea": 3, "email": 25, "phone": 33, "website": 21, "picklist": 2,
           "multiselectpicklist": 100, "date": 24, "datetime": 333, "integer": 32, "bigint": 36, "double": 38,
           "currency": 36, "percent": 38, "boolean": 301, "lookup": 133, "ownerlookup": 8, "subform": 455,
           "formula": 111, "autonumber": 52}
DEFAULT_LENGTH = {"text": 255, "textarea": 32000, "email": 100, "phone": 30, "website": 255, "picklist": 120,
                  "multiselectpicklist": 2000, "date": 20, "datetime": 120, "integer": 9, "bigint": 19,
                  "double": 16, "currency": 16, "percent": 5, "boolean": 5, "lookup": 120, "ownerlookup": 120,
                  "subform": 100, "formula": 16, "autonumber": 30}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRIGGERS = {"workflow", "approval", "blueprint", "pathfinder", "orchestration"}
# Credits a day by edition: (base, per user, maximum) — reference §9.
EDITIONS = {"free": (5_000, 0, 5_000), "standard": (50_000, 250, 100_000),
            "professional": (50_000, 500, 3_000_000), "enterprise": (50_000, 1_000, 5_000_000),
            "ultimate": (50_000, 2_000, None)}
TOO_MANY = ("The number of API requests for the 24 hour period is exceeded or the concurrency limit of the user "
            "for the app is exceeded.")

# Standard stages: (name, forecast type, probability, forecast category). Won is the forecast type.
STANDARD_STAGES = (("Qualification", "Open", 10, "Pipeline"), ("Needs Analysis", "Open", 20, "Pipeline"),
                   ("Value Proposition", "Open", 40, "Pipeline"), ("Id. Decision Makers", "Open", 60, "Pipeline"),
                   ("Proposal/Price Quote", "Open", 75, "Committed"),
                   ("Negotiation/Review", "Open", 90, "Committed"), ("Closed Won", "Closed Won", 100, "Closed"),
                   ("Closed Lost", "Closed Lost", 0, "Omitted"),
                   ("Closed Lost to Competition", "Closed Lost", 0, "Omitted"))
RENEWAL_STAGES = (("Renewal Due", "Open", 50, "Pipeline"), ("Renewal Negotiation", "Open", 80, "Committed"),
                  ("Renewed", "Closed Won", 100, "Closed"), ("Churned", "Closed Lost", 0, "Omitted"))
FORECAST_CATEGORY_IDS = {"Pipeline": "4876876000000091101", "Committed": "4876876000000091102",
                         "Closed": "4876876000000091103", "Omitted": "4876876000000091104"}


def _f(api: str, label: str, dtype: str, **opts: Any) -> dict[str, Any]:
    return {"api_name": api, "field_label": label, "data_type": dtype, **opts}


SYSTEM = [_f("Created_By", "Created By", "ownerlookup", read_only=True),
          _f("Modified_By", "Modified By", "ownerlookup", read_only=True),
          _f("Created_Time", "Created Time", "datetime", read_only=True),
          _f("Modified_Time", "Modified Time", "datetime", read_only=True)]
CURRENCY_FIELDS = [_f("Currency", "Currency", "picklist", currency_list=True),
                   _f("Exchange_Rate", "Exchange Rate", "double", decimal_place=9)]


def _address(prefix: str, code: str) -> list[dict[str, Any]]:
    return [_f(f"{prefix}_Street", f"{prefix} Street", "text", length=250),
            _f(f"{prefix}_City", f"{prefix} City", "text", length=30),
            _f(f"{prefix}_State", f"{prefix} State", "text", length=30),
            _f(f"{prefix}_{code}", f"{prefix} {code}", "text", length=30),
            _f(f"{prefix}_Country", f"{prefix} Country", "text", length=30)]


STANDARD_FIELDS: dict[str, list[dict[str, Any]]] = {
    "Accounts": [
        _f("Owner", "Account Owner", "ownerlookup"),
        _f("Account_Name", "Account Name", "text", length=200, mandatory=True, unique=True),
        _f("Phone", "Phone", "phone"), _f("Website", "Website", "website"),
        _f("Industry", "Industry", "picklist", values=["-None-", "Software", "Retail", "Services", "Manufacturing",
                                                       "Hospitality", "Healthcare"]),
        *_address("Billing", "Code"), *_address("Shipping", "Code"),
        _f("Description", "Description", "textarea"), *CURRENCY_FIELDS, *SYSTEM],
    "Contacts": [
        _f("Owner", "Contact Owner", "ownerlookup"),
        _f("First_Name", "First Name", "text", length=40),
        _f("Last_Name", "Last Name", "text", length=80, mandatory=True),
        _f("Full_Name", "Full Name", "text", read_only=True),
        _f("Email", "Email", "email", unique=True), _f("Secondary_Email", "Secondary Email", "email"),
        _f("Phone", "Phone", "phone"), _f("Mobile", "Mobile", "phone"),
        _f("Title", "Title", "text", length=100), _f("Department", "Department", "text", length=30),
        _f("Account_Name", "Account Name", "lookup", lookup="Accounts"),
        *_address("Mailing", "Zip"), _f("Description", "Description", "textarea"), *CURRENCY_FIELDS, *SYSTEM],
    "Deals": [
        _f("Owner", "Deal Owner", "ownerlookup"),
        _f("Deal_Name", "Deal Name", "text", length=120, mandatory=True),
        _f("Amount", "Amount", "currency"), *CURRENCY_FIELDS,
        _f("Pipeline", "Pipeline", "picklist", mandatory=True, pipeline=True),
        _f("Stage", "Stage", "picklist", mandatory=True, stage=True),
        _f("Probability", "Probability (%)", "integer", length=3),
        _f("Expected_Revenue", "Expected Revenue", "currency", read_only=True, formula="Amount*Probability/100"),
        _f("Closing_Date", "Closing Date", "date", mandatory=True),
        _f("Account_Name", "Account Name", "lookup", lookup="Accounts"),
        _f("Contact_Name", "Contact Name", "lookup", lookup="Contacts"),
        _f("Type", "Type", "picklist", values=["-None-", "Existing Business", "New Business"]),
        _f("Lead_Source", "Lead Source", "picklist", values=["-None-", "Advertisement", "Cold Call", "Web Site"]),
        _f("Description", "Description", "textarea"),
        _f("Line_Items", "Line Items", "subform", subform="Line_Items"), *SYSTEM],
    "Products": [
        _f("Owner", "Product Owner", "ownerlookup"),
        _f("Product_Name", "Product Name", "text", length=120, mandatory=True, unique=True),
        _f("Product_Code", "Product Code", "text", length=40),
        _f("Product_Active", "Product Active", "boolean"),
        _f("Product_Category", "Product Category", "picklist", values=["-None-", "Hardware", "Software",
                                                                       "Services"]),
        _f("Unit_Price", "Unit Price", "currency"), _f("Taxable", "Taxable", "boolean"),
        _f("Qty_in_Stock", "Qty in Stock", "double", decimal_place=2),
        _f("Description", "Description", "textarea"), *SYSTEM],
    "Line_Items": [
        _f("Product", "Product", "lookup", lookup="Products"),
        _f("Description", "Description", "text", length=255),
        _f("Quantity", "Quantity", "double", decimal_place=2),
        _f("Unit_Price", "Unit Price", "currency"),
        _f("Discount", "Discount (%)", "percent"),
        _f("Line_Total", "Line Total", "currency", read_only=True, formula="Quantity*Unit_Price*(1-Discount/100)"),
        _f("Parent_Id", "Parent Id", "lookup", lookup="Deals", read_only=True),
        _f("Created_Time", "Created Time", "datetime", read_only=True),
        _f("Modified_Time", "Modified Time", "datetime", read_only=True)],
}
CUSTOM_FIELDS = {"Accounts": [_f("Tax_ID", "Tax ID", "text", length=50, custom=True),
                              _f("Billing_Email", "Billing Email", "email", custom=True)]}


# -- encoding and time ---------------------------------------------------------------------------

def _num(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _mark(obj: Any) -> str:
    if isinstance(obj, Decimal):
        return "\x00N" + _num(obj) + "\x00"
    raise TypeError(f"cannot encode {type(obj).__name__}")


_MARKED = re.compile(r'"\\u0000N(-?[0-9.]+)\\u0000"')


def dumps(obj: Any) -> bytes:
    """JSON where Decimals are exact numbers (Zoho's currency and decimal fields are JSON numbers)."""
    return _MARKED.sub(r"\1", json.dumps(obj, default=_mark, ensure_ascii=False, separators=(",", ":"))).encode()


try:
    from zoneinfo import ZoneInfo

    _TZ: dt.tzinfo = ZoneInfo(TIME_ZONE)
except Exception:  # noqa: BLE001 - no tz database (Windows without tzdata): a fixed CET offset
    _TZ = dt.timezone(dt.timedelta(hours=1))


def zoho_time(ts: float) -> str:
    """ISO 8601 in the org's time zone, with its offset, as Zoho prints Modified_Time."""
    return dt.datetime.fromtimestamp(int(ts), tz=_TZ).isoformat(timespec="seconds")


def parse_time(text: str) -> float | None:
    """ISO 8601 with an offset (or Z), or an HTTP date; None when unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def zerr(status: int, code: str, message: str, details: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> HttpError:
    return HttpError(status, {"code": code, "details": details or {}, "message": message, "status": "error"}, headers)


def _item_error(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


def _invalid(api: str, path: str, expected: str | None = None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"api_name": api, "json_path": path}
    if expected:
        details["expected_data_type"] = expected
    details.update(extra)
    return _item_error("INVALID_DATA", "invalid data", details)


def _api_name(label: str) -> str:
    """Zoho derives a custom field's API name from its label: 'Amount paid' -> 'Amount_paid'."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", label).strip("_")
    return name or "Field"


class _Reject(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("code"))
        self.error = error


# -- COQL -----------------------------------------------------------------------------------------

class CoqlError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


_COQL_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.|'')*')
  | (?P<num>-?\d+(?:\.\d+)?)(?![\w.])
  | (?P<op>>=|<=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
  | (?P<ident>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
)""", re.X)
KEYWORDS = {"select", "from", "where", "and", "or", "order", "by", "asc", "desc", "limit", "offset", "like",
            "not", "in", "is", "null", "between", "true", "false"}


def _unquote(text: str) -> str:
    """The inside of a COQL string literal: ``\\x`` is x, ``''`` is one quote."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif ch == "'" and text[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Coql:
    """``select f1, f2 from Module where <cond> [order by f [asc|desc], ...] [limit [offset,] n]``.

    Conditions: ``= != < <= > >=``, ``[not] like``, ``[not] in (...)``, ``is [not] null``,
    ``[not] between a and b``; ``and``/``or`` join two operands, more need parentheses (as in Zoho).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []
        pos = 0
        text = text.rstrip().rstrip(";")
        while pos < len(text):
            m = _COQL_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self._syntax(pos, text[pos:pos + 10])
            kind = m.lastgroup or ""
            raw = m.group(kind)
            start = m.start(kind)
            if kind == "str":
                value: Any = _unquote(raw[1:-1])
            elif kind == "ident" and raw.lower() in KEYWORDS:
                kind, value = "kw", raw.lower()
            else:
                value = raw
            self.tokens.append((kind, value, start))
            pos = m.end()
        self.i = 0

    def _syntax(self, pos: int, near: str) -> CoqlError:
        return CoqlError("SYNTAX_ERROR", "invalid query formed",
                         {"line": 1, "column": pos + 1, "near": near or "end of query"})

    def _peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, kind: str | None = None, value: Any = None) -> tuple[str, Any, int]:
        tok = self._peek()
        if tok is None or (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise self._syntax(tok[2] if tok else len(self.text), str(tok[1]) if tok else "")
        self.i += 1
        return tok

    def _is(self, kind: str, value: Any = None) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == kind and (value is None or tok[1] == value)

    def parse(self) -> dict[str, Any]:
        self._take("kw", "select")
        fields = [self._take("ident")[1]]
        while self._is("punct", ","):
            self._take()
            fields.append(self._take("ident")[1])
        self._take("kw", "from")
        module = self._take("ident")[1]
        if not self._is("kw", "where"):
            raise CoqlError("SYNTAX_ERROR", "invalid query formed", {"clause": "where"})
        self._take()
        where = self._cond()
        order: list[tuple[str, bool]] = []
        if self._is("kw", "order"):
            self._take()
            self._take("kw", "by")
            while True:
                name = self._take("ident")[1]
                desc = False
                if self._is("kw", "asc") or self._is("kw", "desc"):
                    desc = self._take()[1] == "desc"
                order.append((name, desc))
                if not self._is("punct", ","):
                    break
                self._take()
        offset, limit = 0, 200
        if self._is("kw", "limit"):
            self._take()
            first = int(self._take("num")[1])
            if self._is("punct", ","):
                self._take()
                offset, limit = first, int(self._take("num")[1])
            else:
                limit = first
                if self._is("kw", "offset"):
                    self._take()
                    offset = int(self._take("num")[1])
        tok = self._peek()
        if tok is not None:
            raise self._syntax(tok[2], str(tok[1]))
        return {"fields": fields, "module": module, "where": where, "order": order, "offset": offset,
                "limit": limit}

    def _cond(self) -> tuple:
        left = self._operand()
        if self._is("kw", "and") or self._is("kw", "or"):
            op = self._take()[1]
            right = self._operand()
            if self._is("kw", "and") or self._is("kw", "or"):
                tok = self._peek()
                assert tok is not None
                raise self._syntax(tok[2], tok[1])  # a third condition needs parentheses
            return (op, left, right)
        return left

    def _operand(self) -> tuple:
        if self._is("punct", "("):
            self._take()
            inner = self._cond()
            self._take("punct", ")")
            return inner
        field = self._take("ident")[1]
        if self._is("kw", "is"):
            self._take()
            negate = bool(self._is("kw", "not") and self._take())
            self._take("kw", "null")
            return ("null", field, negate)
        negate = bool(self._is("kw", "not") and self._take())
        if self._is("kw", "like"):
            self._take()
            return ("like", field, self._take("str")[1], negate)
        if self._is("kw", "in"):
            self._take()
            self._take("punct", "(")
            values = [self._value()]
            while self._is("punct", ","):
                self._take()
                values.append(self._value())
            self._take("punct", ")")
            return ("in", field, values, negate)
        if self._is("kw", "between"):
            self._take()
            low = self._value()
            self._take("kw", "and")
            return ("between", field, low, self._value(), negate)
        if negate:
            tok = self._peek()
            raise self._syntax(tok[2] if tok else len(self.text), str(tok[1]) if tok else "")
        op = self._take("op")[1]
        return ("cmp", field, "!=" if op == "<>" else op, self._value())

    def _value(self) -> Any:
        tok = self._peek()
        if tok is None:
            raise self._syntax(len(self.text), "")
        if tok[0] in ("str", "num"):
            self.i += 1
            return tok[1]
        if tok[0] == "kw" and tok[1] in ("true", "false"):
            self.i += 1
            return tok[1] == "true"
        raise self._syntax(tok[2], str(tok[1]))


# -- search criteria -------------------------------------------------------------------------------

def parse_criteria(text: str) -> tuple:
    """``((Field:operator:value)and(Field:operator:value))``; ``\\`` escapes ( ) , : in values."""
    pos = 0

    def fail() -> ValueError:
        return ValueError(f"bad criteria near position {pos}")

    def group() -> tuple:
        nonlocal pos
        if pos >= len(text) or text[pos] != "(":
            raise fail()
        pos += 1
        if pos < len(text) and text[pos] == "(":
            left = group()
            m = re.compile(r"(and|or)", re.I).match(text, pos)
            if not m:
                raise fail()
            pos = m.end()
            right = group()
            if pos >= len(text) or text[pos] != ")":
                raise fail()
            pos += 1
            return (m.group(1).lower(), left, right)
        parts: list[str] = []
        buf: list[str] = []
        while pos < len(text):
            ch = text[pos]
            if ch == "\\" and pos + 1 < len(text):
                buf.append(text[pos + 1])
                pos += 2
                continue
            if ch == ":" and len(parts) < 2:
                parts.append("".join(buf))
                buf = []
            elif ch == ")":
                break
            else:
                buf.append(ch)
            pos += 1
        if pos >= len(text) or len(parts) != 2:
            raise fail()
        pos += 1
        parts.append("".join(buf))
        return ("crit", parts[0].strip(), parts[1].strip().lower(), parts[2])

    result = group()
    if pos != len(text):
        raise fail()
    return result


# -- the sandbox ------------------------------------------------------------------------------------

class ZohoCrmSandbox(ZohoAccounts):
    """Zoho CRM for one org, with its Zoho Accounts server on the same host."""

    provider = "zohocrm"
    access_ttl = 3600
    refresh_rotates = False
    code_ttl = 120  # an authorization code is good for a minute or two
    edition = "enterprise"
    users = 5
    full_scope = ("ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.coql.READ,ZohoCRM.org.READ,"
                  "ZohoCRM.users.READ")

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.credit_scale = 1.0
        self._credit_header: str | None = None
        super().__init__(*args, **kw)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {
            "org": {"id": ORG_ID, "company_name": "Crossledger Demo GmbH", "domain_name": f"org{ORG_ID}",
                    "currency": "EUR", "country": "Germany", "country_code": "DE", "time_zone": TIME_ZONE,
                    "created": 1700000000},
            "user": {"id": "4876876000000225013", "name": "Jane Admin", "email": "jane.admin@crossledger-demo.test"},
            "records": {m: {} for m in MODULES},
            "deleted": {m: [] for m in MODULES},
            "fields": {}, "stages": {}, "pipelines": [], "layouts": {}, "credits": [], "page_tokens": {},
        }

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth")
            self.state = self.empty_state()
            self.state["oauth"] = oauth or {"codes": {}, "access": {}, "refresh": {}}
            self._seed_metadata()
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed {kind!r}: use 'empty' or 'demo'")
            self.persist()

    def new_id(self) -> str:
        return f"{ID_PREFIX}{self.next_id('zoho', 100001):06d}"

    def _seed_metadata(self) -> None:
        st = self.state
        for module in (*MODULES, "Line_Items"):
            st["layouts"][module] = {"id": self.new_id(), "name": "Standard"}
            st["fields"][module] = []
            for spec in STANDARD_FIELDS[module] + CUSTOM_FIELDS.get(module, []):
                st["fields"][module].append({**spec, "id": self.new_id(), "created": st["org"]["created"]})
        for name, display, stages, default in (("Standard", "Standard", STANDARD_STAGES, True),
                                               ("Renewals", "Renewals", RENEWAL_STAGES, False)):
            ids = []
            for stage, forecast, probability, category in stages:
                existing = next((s for s in st["stages"].values() if s["actual_value"] == stage), None)
                if existing is None:
                    existing = {"id": self.new_id(), "display_value": stage, "actual_value": stage,
                                "forecast_type": forecast, "probability": probability,
                                "forecast_category": category, "sequence_number": len(st["stages"]) + 1}
                    st["stages"][existing["id"]] = existing
                ids.append(existing["id"])
            st["pipelines"].append({"id": self.new_id(), "display_value": display, "actual_value": name,
                                    "default": default, "maps": ids})

    def _seed_demo(self) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        recs = self.state["records"]
        now = int(self.now())
        user = self.state["user"]["id"]

        def put(module: str, values: dict[str, Any]) -> str:
            rid = self.new_id()
            rec = {"id": rid, "Owner": user, "Created_By": user, "Modified_By": user, "Created_Time": now,
                   "Modified_Time": now, **{k: v for k, v in values.items() if v is not None}}
            self._derive(module, rec, None)
            recs[module][rid] = rec
            return rid

        products: dict[str, str] = {}
        for sku, name, price in data.products:
            products[sku] = put("Products", {"Product_Name": name, "Product_Code": sku, "Unit_Price": str(price),
                                             "Product_Active": True, "Taxable": True})
        accounts: dict[str, str] = {}
        for c in data.companies:
            accounts[c.key] = put("Accounts", {
                "Account_Name": c.name, "Website": c.domain, "Phone": c.phone, "Billing_Street": c.address_line1,
                "Billing_City": c.city, "Billing_State": c.region, "Billing_Code": c.postal_code,
                "Billing_Country": c.country_name, "Tax_ID": c.tax_id, "Billing_Email": c.email,
                "Currency": c.currency if c.currency in CURRENCIES else "EUR"})
        first_contact: dict[str, str] = {}
        for p in data.people:
            rid = put("Contacts", {
                "First_Name": p.first_name, "Last_Name": p.last_name, "Email": p.email, "Phone": p.phone,
                "Account_Name": accounts.get(p.company_key) if p.company_key else None,
                "Mailing_City": p.city, "Mailing_Country": COUNTRY_NAMES.get(p.country or "") or None,
                "Currency": "EUR"})
            if p.company_key:
                first_contact.setdefault(p.company_key, rid)
        stages = {s["actual_value"]: s["id"] for s in self.state["stages"].values()}
        standard, renewals = self.state["pipelines"][0]["id"], self.state["pipelines"][1]["id"]
        open_names = [s[0] for s in STANDARD_STAGES if s[1] == "Open"]
        for n, d in enumerate(data.deals):
            pipeline = standard
            if d.stage == "won":
                stage = "Renewed" if n % 4 == 0 else "Closed Won"
                pipeline = renewals if n % 4 == 0 else standard
            elif d.stage == "lost":
                stage = "Closed Lost"
            else:
                stage = open_names[n % len(open_names)]
            rows = [{"id": self.new_id(), "Product": products[li.sku], "Description": li.name,
                     "Quantity": str(li.quantity), "Unit_Price": str(li.unit_price),
                     "Discount": str(li.discount_percent), "Created_Time": now, "Modified_Time": now}
                    for li in d.lines]
            put("Deals", {"Deal_Name": d.name, "Amount": str(d.amount), "Currency": d.currency,
                          "Pipeline": pipeline, "Stage": stages[stage], "Closing_Date": d.close_date,
                          "Account_Name": accounts[d.company_key], "Contact_Name": first_contact.get(d.company_key),
                          "Line_Items": rows, "Type": "New Business"})

    # -- test helpers -----------------------------------------------------------------------
    def add_contacts(self, count: int, account_id: str | None = None) -> list[str]:
        """Add ``count`` contacts at once (paging tests)."""
        with self.lock:
            now, user = int(self.now()), self.state["user"]["id"]
            ids = []
            for n in range(count):
                rid = self.new_id()
                rec = {"id": rid, "Owner": user, "Created_By": user, "Modified_By": user, "Created_Time": now,
                       "Modified_Time": now, "First_Name": "Test", "Last_Name": f"Person {n:05d}",
                       "Email": f"test.person.{rid}@example.com", "Account_Name": account_id}
                self._derive("Contacts", rec, None)
                self.state["records"]["Contacts"][rid] = rec
                ids.append(rid)
            self.persist()
            return ids

    def edit(self, module: str, record_id: str, **values: Any) -> dict[str, Any]:
        """Change a record as a user in the CRM would (Modified_Time moves)."""
        with self.lock:
            rec = self.state["records"][module][str(record_id)]
            rec.update({k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()})
            rec["Modified_Time"] = int(self.now())
            self._derive(module, rec, None)
            self.persist()
            return rec

    def delete(self, module: str, record_id: str) -> None:
        """Delete a record to the recycle bin, as a user in the CRM would."""
        with self.lock:
            self._delete(module, str(record_id))
            self.persist()

    def stage_id(self, actual_value: str) -> str:
        return next(s["id"] for s in self.state["stages"].values() if s["actual_value"] == actual_value)

    def set_credits_used(self, used: int) -> None:
        """Pretend ``used`` credits were spent in the last 24 hours."""
        with self.lock:
            self.state["credits"] = [[self.now(), used]]

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.credit_scale *= factor

    # -- oauth ------------------------------------------------------------------------------
    def unauthorized(self, why: str) -> HttpError:
        return zerr(401, "INVALID_TOKEN", "invalid oauth token")

    def not_found_body(self, req: Request) -> Any:
        return {"code": "INVALID_URL_PATTERN", "details": {},
                "message": "Please check if the URL trying to access is a correct one", "status": "error"}

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str | None = None) -> dict[str, Any]:
        return super().grant_tokens(client_id, self.full_scope if scope is None else scope)

    # -- the API gate -----------------------------------------------------------------------
    @property
    def credit_limit(self) -> int:
        base, per_user, cap = EDITIONS[self.edition]
        total = base + per_user * self.users
        if cap is not None:
            total = min(total, cap)
        return int(total * self.credit_scale)

    def handle(self, req: Request) -> Response:
        self._credit_header = None
        resp = super().handle(req)
        resp.headers.setdefault("Date", email.utils.formatdate(self.now(), usegmt=True))
        if self._credit_header is not None:
            resp.headers.setdefault("X-API-CREDITS-REMAINING", self._credit_header)
        return resp

    def _authorize(self, req: Request, scopes: tuple[str, ...], *also: tuple[str, ...]) -> None:
        """Token, then scope: any of ``scopes`` (and any of each ``also`` group) must be granted."""
        if not (req.header("authorization") or "").strip():
            raise zerr(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        record = self.authenticate(req, "Zoho-oauthtoken")
        granted = {s.lower() for s in re.split(r"[,\s]+", record.get("scope") or "") if s}
        for group in (scopes, *also):
            if not granted & {s.lower() for s in group}:
                raise zerr(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")

    def _spend(self, cost: int) -> None:
        """Charge ``cost`` credits against the rolling 24 hours; 429 when they are spent."""
        now = self.now()
        ledger = [e for e in self.state["credits"] if now - e[0] < 86400]
        used = sum(e[1] for e in ledger)
        limit = self.credit_limit
        if used + cost > limit:
            self.state["credits"] = ledger
            self._credit_header = "0"
            raise zerr(429, "TOO_MANY_REQUESTS", TOO_MANY, headers={"X-API-CREDITS-REMAINING": "0"})
        if ledger and int(ledger[-1][0]) // 60 == int(now) // 60:
            ledger[-1][1] += cost
        else:
            ledger.append([now, cost])
        self.state["credits"] = ledger
        used += cost
        if used * 2 >= limit:
            self._credit_header = str(limit - used)

    @staticmethod
    def _module_scopes(module: str, op: str) -> tuple[str, ...]:
        name = (SUBFORM_MODULES.get(module) or module).lower()
        scopes = ["ZohoCRM.modules.ALL", f"ZohoCRM.modules.{name}.ALL", f"ZohoCRM.modules.{name}.{op}"]
        if op == "READ":
            scopes.append("ZohoCRM.modules.READ")
        return tuple(scopes)

    def _module(self, req: Request, name: str | None = None) -> str:
        module = name if name is not None else req.params.get("module", "")
        for known in MODULES:
            if known.lower() == (module or "").lower():
                return known
        raise zerr(400, "INVALID_MODULE", "The module name given seems to be invalid",
                   {"resource_path_index": 0})

    def _json(self, status: int, body: Any) -> Response:
        return Response(status, dumps(body))

    def _body(self, req: Request) -> Any:
        try:
            return json.loads(req.body or b"null", parse_float=Decimal)
        except ValueError:
            raise zerr(400, "INVALID_DATA", "invalid data", {"api_name": "body", "json_path": "$"}) from None

    # -- metadata ---------------------------------------------------------------------------
    def _fields(self, module: str) -> list[dict[str, Any]]:
        return self.state["fields"][module]

    def _field(self, module: str, api: str) -> dict[str, Any] | None:
        return next((f for f in self._fields(module) if f["api_name"] == api), None)

    def _stage_by_value(self, value: str) -> dict[str, Any] | None:
        for stage in self.state["stages"].values():
            if value in (stage["display_value"], stage["actual_value"]):
                return stage
        return None

    def _pipeline_by_value(self, value: str) -> dict[str, Any] | None:
        return next((p for p in self.state["pipelines"] if value in (p["display_value"], p["actual_value"])), None)

    def _picklist(self, module: str, f: dict[str, Any]) -> list[dict[str, Any]]:
        if f.get("stage"):
            out = []
            for stage in sorted(self.state["stages"].values(), key=lambda s: s["sequence_number"]):
                cat = stage["forecast_category"]
                out.append({"display_value": stage["display_value"], "actual_value": stage["actual_value"],
                            "sequence_number": stage["sequence_number"], "id": stage["id"], "colour_code": None,
                            "type": "used", "forecast_type": stage["forecast_type"],
                            "probability": stage["probability"],
                            "forecast_category": {"name": cat, "id": FORECAST_CATEGORY_IDS[cat]}})
            return out
        if f.get("pipeline"):
            values = [(p["display_value"], p["actual_value"], p["id"]) for p in self.state["pipelines"]]
        elif f.get("currency_list"):
            values = [(c, c, f"{f['id']}{n}") for n, c in enumerate(CURRENCIES)]
        else:
            values = [(v, v, f"{f['id']}{n}") for n, v in enumerate(f.get("values") or [])]
        return [{"display_value": d, "actual_value": a, "sequence_number": n, "id": i, "colour_code": None,
                 "type": "used"} for n, (d, a, i) in enumerate(values, 1)]

    def _field_json(self, module: str, f: dict[str, Any], seq: int) -> dict[str, Any]:
        """A field as GET settings/fields prints it: every property the spec marks required."""
        dtype = f["data_type"]
        ro = bool(f.get("read_only"))
        custom = bool(f.get("custom"))
        lookup = None
        if f.get("lookup"):
            target = f["lookup"]
            lookup = {"display_label": MODULE_LABEL[target], "api_name": None, "id": None,
                      "module": {"api_name": target, "id": MODULE_IDS[target]},
                      "revalidate_filter_during_edit": False, "query_details": {}, "show_fields": []}
        if dtype == "ownerlookup":
            lookup = {"display_label": "Users", "api_name": None, "id": None,
                      "module": {"api_name": "users", "id": None}, "revalidate_filter_during_edit": False,
                      "query_details": {}, "show_fields": []}
        layout = self.state["layouts"][module]
        return {
            "associated_module": None, "data_type": dtype,
            "operation_type": {"web_update": not ro, "api_create": not ro, "web_create": not ro,
                               "api_update": not ro},
            "system_mandatory": bool(f.get("mandatory")), "webhook": True, "blueprint_supported": False,
            "virtual_field": False, "field_read_only": ro, "customizable_properties": [], "read_only": ro,
            "custom_field": custom, "businesscard_supported": True, "filterable": dtype != "subform",
            "visible": True, "available_in_user_layout": True,
            "display_field": f["api_name"] == DISPLAY_FIELD.get(module),
            "pick_list_values_sorted_lexically": False, "sortable": dtype not in ("subform", "textarea"),
            "layout_associations": [{"api_name": "Standard", "name": layout["name"], "id": layout["id"]}],
            "separator": False, "searchable": dtype in TEXTUAL, "enable_colour_code": False, "mass_update": not ro,
            "json_type": JSON_TYPE.get(dtype, "string"), "created_source": "crm" if custom else "default",
            "type": "used", "display_label": f["field_label"],
            "column_name": f"CUSTOMFIELD{seq}" if custom else f["api_name"].upper().replace("_", ""),
            "api_name": f["api_name"], "display_type": -1, "ui_type": UI_TYPE.get(dtype, 1),
            "colour_code_enabled_by_system": False, "length": int(f.get("length") or DEFAULT_LENGTH.get(dtype, 255)),
            "decimal_place": f.get("decimal_place", 2 if dtype == "currency" else None),
            "quick_sequence_number": str(seq),
            "email_parser": {"fields_update_supported": False, "record_operations_supported": False},
            "rollup_summary": None, "refer_from_field": None,
            "created_time": zoho_time(f["created"]) if custom else None, "modified_time": None,
            "show_type": 7, "category": 0, "id": f["id"], "multi_module_lookup": None, "sharing_properties": None,
            "currency": {"rounding_option": "normal", "precision": 2} if dtype == "currency" else None,
            "file_upolad_optionlist": [], "lookup": lookup,
            "profiles": [{"name": "Administrator", "id": PROFILE_ID,
                          "permission_type": "read_only" if ro else "read_write"}],
            "view_type": {"view": True, "edit": not ro, "quick_create": bool(f.get("mandatory")), "create": not ro},
            "unique": {"casesensitive": "false"} if f.get("unique") else None, "sub_module": None,
            "subform": {"module": f["subform"], "id": MODULE_IDS[f["subform"]]} if f.get("subform") else None,
            "external": None,
            "formula": {"return_type": dtype, "expression": f["formula"]} if f.get("formula") else None,
            "convert_mapping": None, "multiselectlookup": None, "multiuserlookup": None, "autonumber": None,
            "auto_number": None,
            "pick_list_values": self._picklist(module, f) if dtype in ("picklist", "multiselectpicklist") else [],
            "crypt": None, "tooltip": None, "history_tracking": None, "association_details": None,
            "allowed_modules": [], "additional_column": None, "field_label": f["field_label"],
            "common.picklist": None, "hipaa_compliance_enabled": False, "hipaa_compliance": None,
            "_update_existing_records": False, "number_separator": dtype in NUMERIC or dtype == "integer",
            "textarea": {"type": "large"} if dtype == "textarea" else None, "static_field": False,
        }

    # -- record rendering ---------------------------------------------------------------------
    def _display(self, module: str, rid: str | None) -> str | None:
        rec = self.state["records"].get(module, {}).get(str(rid)) if rid else None
        if rec is None:
            return None
        value = rec.get(DISPLAY_FIELD[module])
        return str(value) if value is not None else None

    def _user(self, uid: str | None, *, coql: bool = False) -> dict[str, Any] | None:
        if not uid:
            return None
        user = self.state["user"]
        if coql:  # COQL names users but gives other lookups by id only
            return {"name": user["name"], "id": uid}
        return {"name": user["name"], "id": uid, "email": user["email"]}

    def _value(self, module: str, f: dict[str, Any], raw: Any, *, coql: bool = False) -> Any:
        dtype = f["data_type"]
        if raw is None:
            return [] if dtype == "subform" else None
        if dtype == "datetime":
            return zoho_time(raw)
        if dtype in NUMERIC:
            return Decimal(str(raw))
        if dtype == "integer":
            return int(raw)
        if dtype == "ownerlookup":
            return self._user(raw, coql=coql)
        if dtype == "lookup":
            return {"id": raw} if coql else {"name": self._display(f["lookup"], raw), "id": raw}
        if f.get("stage"):
            stage = self.state["stages"].get(raw)
            return stage["display_value"] if stage else None
        if f.get("pipeline"):
            pipe = next((p for p in self.state["pipelines"] if p["id"] == raw), None)
            return pipe["display_value"] if pipe else None
        if dtype == "subform":
            sub = f["subform"]
            return [{"id": row["id"], **{sf["api_name"]: self._value(sub, sf, row.get(sf["api_name"]))
                                         for sf in self._fields(sub)}} for row in raw]
        return raw

    def render(self, module: str, rec: dict[str, Any], cols: list[str] | None = None) -> dict[str, Any]:
        """A record as the REST API prints it: the asked fields (all when None) and its id."""
        out: dict[str, Any] = {}
        for f in self._fields(module):
            if cols is None or f["api_name"] in cols:
                out[f["api_name"]] = self._value(module, f, rec.get(f["api_name"]))
        out["id"] = rec["id"]
        return out

    # -- writing --------------------------------------------------------------------------------
    def _convert(self, module: str, f: dict[str, Any], value: Any, path: str) -> Any:
        """A JSON value for field ``f`` -> its stored form; raises _Reject with Zoho's error."""
        api, dtype = f["api_name"], f["data_type"]
        if value is None or value == "" or (dtype == "multiselectpicklist" and value == []):
            return None
        if dtype in ("text", "textarea", "phone", "website", "autonumber", "email", "bigint"):
            if dtype == "bigint" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise _Reject(_invalid(api, path, "string"))
            limit = int(f.get("length") or DEFAULT_LENGTH.get(dtype, 255))
            if len(value) > limit:
                raise _Reject(_invalid(api, path, maximum_length=str(limit)))
            if dtype == "email" and not EMAIL_RE.match(value):
                raise _Reject(_invalid(api, path, "email"))
            return value
        if dtype == "picklist":
            if not isinstance(value, str):
                raise _Reject(_invalid(api, path, "string"))
            if f.get("stage"):
                stage = self._stage_by_value(value)
                if stage is None:
                    raise _Reject(_invalid(api, path))
                return stage["id"]
            if f.get("pipeline"):
                pipe = self._pipeline_by_value(value)
                if pipe is None:
                    raise _Reject(_invalid(api, path))
                return pipe["id"]
            if f.get("currency_list") and value not in CURRENCIES:
                raise _Reject(_invalid(api, path))
            return value
        if dtype == "multiselectpicklist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _Reject(_invalid(api, path, "jsonarray"))
            return value
        if dtype in NUMERIC:
            if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                raise _Reject(_invalid(api, path, dtype))
            number = Decimal(value)
            if dtype == "currency":
                number = number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            elif f.get("decimal_place") is not None:
                number = number.quantize(Decimal(1).scaleb(-int(f["decimal_place"])), rounding=ROUND_HALF_UP)
            return str(number)
        if dtype == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Reject(_invalid(api, path, "integer"))
            return value
        if dtype == "boolean":
            if not isinstance(value, bool):
                raise _Reject(_invalid(api, path, "boolean"))
            return value
        if dtype == "date":
            if not isinstance(value, str) or not DATE_RE.match(value):
                raise _Reject(_invalid(api, path, "date"))
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise _Reject(_invalid(api, path, "date")) from None
            return value
        if dtype == "datetime":
            moment = parse_time(value) if isinstance(value, str) else None
            if moment is None:
                raise _Reject(_invalid(api, path, "datetime"))
            return int(moment)
        if dtype in ("lookup", "ownerlookup"):
            rid = value.get("id") if isinstance(value, dict) else value if isinstance(value, str) else None
            if not isinstance(rid, str) or not rid:
                raise _Reject(_invalid(api, path, "jsonobject"))
            if dtype == "ownerlookup":
                if rid != self.state["user"]["id"]:
                    raise _Reject(_invalid(api, path))
            elif rid not in self.state["records"][f["lookup"]]:
                raise _Reject(_invalid(api, path))
            return rid
        return value

    def _apply(self, module: str, current: dict[str, Any] | None, data: dict[str, Any], index: int,
               batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Validate one record of a write and return its new stored form (not yet saved)."""
        rec = json.loads(json.dumps(current)) if current else {}
        path = f"$.data[{index}]"
        for key, value in data.items():
            if key == "id" or key.startswith("$"):
                continue
            f = self._field(module, key)
            if f is None or f.get("read_only"):
                continue  # Zoho ignores fields it does not know and fields nobody may write
            if f["data_type"] == "subform":
                rec[key] = self._subform(module, f, (current or {}).get(key) or [], value, f"{path}.{key}")
            else:
                rec[key] = self._convert(module, f, value, f"{path}.{key}")
        if module == "Deals" and "Stage" in data and "Probability" not in data:
            rec["Probability"] = None  # a new stage brings its own probability
        for f in self._fields(module):
            if f.get("mandatory") and rec.get(f["api_name"]) in (None, "") and not (
                    f.get("pipeline") and current is None):
                raise _Reject(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                          {"api_name": f["api_name"], "json_path": f"{path}.{f['api_name']}"}))
        self._check_unique(module, rec, current, path, batch, None if current is None else set(data))
        return rec

    def _subform(self, module: str, f: dict[str, Any], rows: list[dict[str, Any]], value: Any,
                 path: str) -> list[dict[str, Any]]:
        """Rows with an id are updated, rows without one added, ``_delete`` removes, omitted rows go."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise _Reject(_invalid(f["api_name"], path, "jsonarray"))
        sub = f["subform"]
        by_id = {r["id"]: r for r in rows}
        out = []
        now = int(self.now())
        for n, item in enumerate(value):
            rpath = f"{path}[{n}]"
            if not isinstance(item, dict):
                raise _Reject(_invalid(f["api_name"], rpath, "jsonobject"))
            if item.get("id") is not None:
                row = by_id.get(str(item["id"]))
                if row is None:
                    raise _Reject(_invalid("id", f"{rpath}.id"))
                if "_delete" in item:
                    continue
                row = dict(row)
            else:
                row = {"id": self.new_id(), "Created_Time": now}
            for key, val in item.items():
                sf = self._field(sub, key)
                if key in ("id", "_delete") or sf is None or sf.get("read_only"):
                    continue
                row[key] = self._convert(sub, sf, val, f"{rpath}.{key}")
            row["Modified_Time"] = now
            out.append(row)
        return out

    def _check_unique(self, module: str, rec: dict[str, Any], current: dict[str, Any] | None, path: str,
                      batch: list[dict[str, Any]], written: set[str] | None) -> None:
        """A create checks every unique field; an update only the ones it writes."""
        for f in self._fields(module):
            if not f.get("unique") or (written is not None and f["api_name"] not in written):
                continue
            value = rec.get(f["api_name"])
            if value in (None, ""):
                continue
            key = str(value).casefold()
            for other in [*self.state["records"][module].values(), *batch]:
                if other.get("id") == rec.get("id") or (current and other.get("id") == current.get("id")):
                    continue
                if str(other.get(f["api_name"]) or "").casefold() == key:
                    raise _Reject(_item_error("DUPLICATE_DATA", "duplicate data", {
                        "api_name": f["api_name"], "json_path": f"{path}.{f['api_name']}",
                        "duplicate_record": {"id": other["id"],
                                             "module": {"api_name": module, "id": MODULE_IDS[module]},
                                             "Owner": {"name": self.state["user"]["name"],
                                                       "id": self.state["user"]["id"]}}}))

    def _derive(self, module: str, rec: dict[str, Any], before: dict[str, Any] | None) -> None:
        """What Zoho computes on save: full name, stage probability, exchange rate, line totals."""
        if module == "Contacts":
            rec["Full_Name"] = " ".join(p for p in (rec.get("First_Name"), rec.get("Last_Name")) if p) or None
        if module == "Deals":
            if not rec.get("Pipeline"):
                rec["Pipeline"] = next(p["id"] for p in self.state["pipelines"] if p["default"])
            stage = self.state["stages"].get(rec.get("Stage") or "")
            if stage and rec.get("Probability") is None:
                rec["Probability"] = stage["probability"]
            if rec.get("Amount") is not None and rec.get("Probability") is not None:
                rec["Expected_Revenue"] = str((Decimal(rec["Amount"]) * rec["Probability"] / 100).quantize(
                    Decimal("0.01"), rounding=ROUND_HALF_UP))
            for row in rec.get("Line_Items") or []:
                qty = Decimal(row.get("Quantity") or 0)
                price = Decimal(row.get("Unit_Price") or 0)
                disc = Decimal(row.get("Discount") or 0)
                gross = qty * price
                row["Line_Total"] = str((gross - gross * disc / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
                row["Parent_Id"] = rec["id"]
        if "Currency" in {f["api_name"] for f in self._fields(module)}:
            rec.setdefault("Currency", self.state["org"]["currency"])
            if before is None or before.get("Currency") != rec.get("Currency") or not rec.get("Exchange_Rate"):
                rec["Exchange_Rate"] = str(CURRENCIES.get(rec["Currency"] or "EUR", Decimal(1)))

    def _success(self, rec: dict[str, Any], message: str, **extra: Any) -> dict[str, Any]:
        user = {"name": self.state["user"]["name"], "id": self.state["user"]["id"]}
        return {"code": "SUCCESS", **extra, "details": {
            "Modified_Time": zoho_time(rec["Modified_Time"]), "Modified_By": user,
            "Created_Time": zoho_time(rec["Created_Time"]), "id": rec["id"], "Created_By": user},
            "message": message, "status": "success"}

    def _save(self, module: str, rec: dict[str, Any], before: dict[str, Any] | None) -> None:
        now = int(self.now())
        user = self.state["user"]["id"]
        if before is None:
            rec["id"] = rec.get("id") or self.new_id()
            rec.setdefault("Owner", user)
            rec["Created_Time"], rec["Created_By"] = now, user
        rec["Modified_Time"], rec["Modified_By"] = now, user
        self._derive(module, rec, before)
        self.state["records"][module][rec["id"]] = rec

    def _write_payload(self, req: Request) -> tuple[list[Any], dict[str, Any]]:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not body["data"]:
            raise zerr(400, "INVALID_DATA", "invalid data",
                       {"api_name": "data", "json_path": "$.data", "expected_data_type": "jsonarray"})
        if len(body["data"]) > 100:
            raise zerr(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": 100})
        trigger = body.get("trigger")
        if trigger is not None and (not isinstance(trigger, list) or not set(trigger) <= TRIGGERS):
            raise zerr(400, "INVALID_DATA", "invalid data",
                       {"api_name": "trigger", "json_path": "$.trigger", "expected_data_type": "jsonarray"})
        return body["data"], body

    def _write_response(self, results: list[dict[str, Any]], ok_status: int) -> Response:
        good = sum(1 for r in results if r.get("status") == "success")
        status = ok_status if good == len(results) else 400 if good == 0 else 207
        self.persist()
        return self._json(status, {"data": results})

    def _insert(self, module: str, items: list[Any], *, upsert_fields: list[str] | None = None) -> list[dict]:
        results: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                results.append(_invalid("data", f"$.data[{n}]", "jsonobject"))
                continue
            try:
                current = None
                extra: dict[str, Any] = {}
                if upsert_fields is not None:
                    current, matched = self._upsert_match(module, item, upsert_fields)
                    extra = {"action": "update" if current else "insert"}
                    if matched:
                        extra["duplicate_field"] = matched
                rec = self._apply(module, current, item, n, batch)
            except _Reject as rej:
                results.append(rej.error)
                continue
            self._save(module, rec, current)
            batch.append(rec)
            results.append(self._success(rec, "record updated" if current else "record added", **extra))
        return results

    def _upsert_match(self, module: str, item: dict[str, Any],
                      check: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        if item.get("id"):
            rec = self.state["records"][module].get(str(item["id"]))
            return (rec, None) if rec else (None, None)
        for api in check:
            value = item.get(api)
            if value in (None, ""):
                continue
            for rec in self.state["records"][module].values():
                if str(rec.get(api) or "").casefold() == str(value).casefold():
                    return rec, api
        return None, None

    def _update(self, module: str, items: list[Any], path_id: str | None = None) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                results.append(_invalid("data", f"$.data[{n}]", "jsonobject"))
                continue
            rid = path_id if path_id is not None else item.get("id")
            if not rid:
                results.append(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                           {"api_name": "id", "json_path": f"$.data[{n}].id"}))
                continue
            current = self.state["records"][module].get(str(rid))
            if current is None:
                results.append(_item_error("INVALID_DATA", "the id given seems to be invalid",
                                           {"api_name": "id", "json_path": f"$.data[{n}].id"}))
                continue
            try:
                rec = self._apply(module, current, item, n, [])
            except _Reject as rej:
                results.append(rej.error)
                continue
            self._save(module, rec, current)
            results.append(self._success(rec, "record updated"))
        return results

    def _delete(self, module: str, rid: str) -> dict[str, Any] | None:
        rec = self.state["records"][module].pop(rid, None)
        if rec is None:
            return None
        self.state["deleted"][module].append({
            "id": rid, "display_name": self._display_of(module, rec), "deleted_time": int(self.now()),
            "deleted_by": self.state["user"]["id"], "created_by": rec.get("Created_By") or self.state["user"]["id"]})
        return rec

    def _display_of(self, module: str, rec: dict[str, Any]) -> str:
        return str(rec.get(DISPLAY_FIELD[module]) or "")

    # -- routes: records ------------------------------------------------------------------------
    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")")
    def list_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        cols = [c.strip() for c in (req.arg("fields") or "").split(",") if c.strip()]
        if not cols:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "fields"})
        if len(cols) > 50:
            raise zerr(400, "LIMIT_EXCEEDED", "Max field limit exceeded", {"limit": 50, "param": "fields"})
        per_page = self._int_param(req, "per_page", 200)
        per_page = max(1, min(per_page, 200))
        sort_by = req.arg("sort_by") or "id"
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "sort_by"})
        sort_order = (req.arg("sort_order") or "desc").lower()
        if sort_order not in ("asc", "desc"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "sort_order"})
        ims_text = req.header("if-modified-since")
        ims = None
        if ims_text:
            ims = parse_time(ims_text)
            if ims is None:
                raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "If-Modified-Since"})
        token = req.arg("page_token")
        if token:
            if req.arg("page"):
                raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "page_token"})
            saved = self.state["page_tokens"].get(token)
            if not saved or saved["module"] != module or saved["expires"] < self.now():
                raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "page_token"})
            sort_by, sort_order, ims, start = saved["sort_by"], saved["sort_order"], saved["ims"], saved["offset"]
        else:
            page = max(1, self._int_param(req, "page", 1))
            start = (page - 1) * per_page
            if start >= 2000:
                raise zerr(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                           "You can only get the first 2000 records without using page_token param",
                           {"limit": 2000})
        rows = list(self.state["records"][module].values())
        ids = req.arg("ids")
        if ids:
            wanted = [i.strip() for i in ids.split(",") if i.strip()]
            if len(wanted) > 100:
                raise zerr(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": 100, "param": "ids"})
            rows = [r for r in rows if r["id"] in set(wanted)]
        if ims is not None:
            rows = [r for r in rows if r["Modified_Time"] > ims]
        key: Callable[[dict[str, Any]], Any] = (lambda r: int(r["id"])) if sort_by == "id" else (
            lambda r: (r[sort_by], int(r["id"])))
        rows.sort(key=key, reverse=sort_order == "desc")
        if not rows:
            return Response(304 if ims is not None else 204, b"")
        page_rows = rows[start:start + per_page]
        more = start + per_page < len(rows)
        info: dict[str, Any] = {"per_page": per_page, "count": len(page_rows), "page": start // per_page + 1,
                                "sort_by": sort_by, "sort_order": sort_order, "more_records": more}
        if more:
            token = secrets.token_hex(20)
            now = self.now()
            self.state["page_tokens"] = {t: v for t, v in self.state["page_tokens"].items() if v["expires"] > now}
            self.state["page_tokens"][token] = {"module": module, "offset": start + per_page, "sort_by": sort_by,
                                                "sort_order": sort_order, "ims": ims, "expires": now + 86400}
            info["next_page_token"] = token
            info["page_token_expiry"] = zoho_time(now + 86400)
        if not page_rows:
            return Response(204, b"")
        return self._json(200, {"data": [self.render(module, r, cols) for r in page_rows], "info": info})

    @staticmethod
    def _int_param(req: Request, name: str, default: int) -> int:
        raw = req.arg(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": name}) from None

    @route("POST", API + r"/(?P<module>" + MODULE_RE + r")")
    def insert_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "CREATE"))
        items, _ = self._write_payload(req)
        self._spend(math.ceil(len(items) / 10))
        return self._write_response(self._insert(module, items), 201)

    @route("POST", API + r"/(?P<module>" + MODULE_RE + r")/upsert")
    def upsert_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "CREATE"), self._module_scopes(module, "UPDATE"))
        items, body = self._write_payload(req)
        check = body.get("duplicate_check_fields")
        if check is None:
            check = [f["api_name"] for f in self._fields(module) if f.get("unique")]
        elif not isinstance(check, list) or any(not (self._field(module, c) or {}).get("unique") for c in check):
            raise zerr(400, "INVALID_DATA", "invalid data", {"api_name": "duplicate_check_fields",
                                                             "json_path": "$.duplicate_check_fields"})
        self._spend(math.ceil(len(items) / 10))
        return self._write_response(self._insert(module, items, upsert_fields=check), 201)

    @route("PUT", API + r"/(?P<module>" + MODULE_RE + r")")
    def update_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "UPDATE"))
        items, _ = self._write_payload(req)
        self._spend(math.ceil(len(items) / 10))
        return self._write_response(self._update(module, items), 200)

    @route("PUT", API + r"/(?P<module>" + MODULE_RE + r")/(?P<id>\d+)")
    def update_record(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "UPDATE"))
        items, _ = self._write_payload(req)
        self._spend(1)
        return self._write_response(self._update(module, items[:1], req.params["id"]), 200)

    @route("DELETE", API + r"/(?P<module>" + MODULE_RE + r")")
    def delete_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "DELETE"))
        ids = [i.strip() for i in (req.arg("ids") or "").split(",") if i.strip()]
        if not ids:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param": "ids"})
        if len(ids) > 100:
            raise zerr(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": 100, "param": "ids"})
        self._spend(math.ceil(len(ids) / 10))
        results = []
        for rid in ids:
            if self._delete(module, rid) is None:
                results.append(_item_error("INVALID_DATA", "the id given seems to be invalid", {"id": rid}))
            else:
                results.append({"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted",
                                "status": "success"})
        return self._write_response(results, 200)

    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")/deleted")
    def deleted_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        kind = (req.arg("type") or "all").lower()
        if kind not in ("all", "recycle", "permanent"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "type"})
        per_page = max(1, min(self._int_param(req, "per_page", 200), 200))
        page = max(1, self._int_param(req, "page", 1))
        ims = parse_time(req.header("if-modified-since") or "")
        now = self.now()
        rows = []
        for entry in self.state["deleted"][module]:
            where = "recycle" if now - entry["deleted_time"] < 60 * 86400 else "permanent"
            if kind != "all" and where != kind:
                continue
            if ims is not None and entry["deleted_time"] <= ims:
                continue
            rows.append({"deleted_by": self._user(entry["deleted_by"]), "id": entry["id"],
                         "display_name": entry["display_name"], "type": where,
                         "created_by": self._user(entry["created_by"]),
                         "deleted_time": zoho_time(entry["deleted_time"])})
        rows.sort(key=lambda r: r["deleted_time"], reverse=True)
        if not rows:
            return Response(304 if ims is not None else 204, b"")
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        if not chunk:
            return Response(204, b"")
        return self._json(200, {"data": chunk, "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                                        "more_records": start + per_page < len(rows)}})

    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")/search")
    def search(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        rows = list(self.state["records"][module].values())
        fields = self._fields(module)
        if req.arg("criteria"):
            try:
                tree = parse_criteria(req.arg("criteria") or "")
                rows = [r for r in rows if self._criteria(module, r, tree)]
            except ValueError as exc:
                raise zerr(400, "INVALID_QUERY", "invalid query formed", {"reason": str(exc)}) from None
            except CoqlError as exc:
                raise zerr(400, "INVALID_QUERY", "invalid query formed", {"reason": exc.message}) from None
        elif req.arg("email"):
            want = (req.arg("email") or "").casefold()
            rows = [r for r in rows if any(str(r.get(f["api_name"]) or "").casefold() == want
                                           for f in fields if f["data_type"] == "email")]
        elif req.arg("phone"):
            want = re.sub(r"\D", "", req.arg("phone") or "")
            rows = [r for r in rows if want and any(re.sub(r"\D", "", str(r.get(f["api_name"]) or "")) == want
                                                    for f in fields if f["data_type"] == "phone")]
        elif req.arg("word"):
            want = (req.arg("word") or "").casefold()
            rows = [r for r in rows if any(want in str(r.get(f["api_name"]) or "").casefold()
                                           for f in fields if f["data_type"] in TEXTUAL)]
        else:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "criteria"})
        per_page = max(1, min(self._int_param(req, "per_page", 200), 200))
        page = max(1, self._int_param(req, "page", 1))
        rows.sort(key=lambda r: int(r["id"]))
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        if not chunk:
            return Response(204, b"")
        cols = [c.strip() for c in (req.arg("fields") or "").split(",") if c.strip()] or None
        return self._json(200, {"data": [self.render(module, r, cols) for r in chunk],
                                "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                         "more_records": start + per_page < len(rows)}})

    def _criteria(self, module: str, rec: dict[str, Any], tree: tuple) -> bool:
        if tree[0] in ("and", "or"):
            left, right = self._criteria(module, rec, tree[1]), self._criteria(module, rec, tree[2])
            return (left and right) if tree[0] == "and" else (left or right)
        _, api, op, raw = tree
        f = self._field(module, api) if api != "id" else {"api_name": "id", "data_type": "bigint"}
        if f is None:
            raise zerr(400, "INVALID_QUERY", "invalid query formed", {"api_name": api, "reason": "unknown field"})
        have = self._comparable(module, f, rec.get(api) if api != "id" else rec["id"])
        values = [v.strip() for v in raw.split(",")] if op in ("in", "not_in", "between") else [raw]
        wants = [self._literal(f, v) for v in values]
        if op == "equals":
            return have == wants[0]
        if op == "not_equal":
            return have != wants[0]
        if op == "starts_with":
            return isinstance(have, str) and have.startswith(str(wants[0]))
        if op == "in":
            return have in wants
        if op == "not_in":
            return have not in wants
        if have is None:
            return False
        try:
            if op == "greater_than":
                return have > wants[0]
            if op == "greater_equal":
                return have >= wants[0]
            if op == "less_than":
                return have < wants[0]
            if op == "less_equal":
                return have <= wants[0]
            if op == "between":
                return wants[0] <= have <= wants[1]
        except TypeError:
            return False
        raise zerr(400, "INVALID_QUERY", "invalid query formed", {"operator": op, "reason": "unknown operator"})

    # -- comparisons shared by COQL and search ---------------------------------------------------
    def _comparable(self, module: str, f: dict[str, Any], raw: Any) -> Any:
        dtype = f["data_type"]
        if raw is None or raw == "":
            return None
        if dtype in NUMERIC:
            return Decimal(str(raw))
        if dtype in ("integer", "datetime"):
            return int(raw)
        if dtype in ("lookup", "ownerlookup", "bigint"):
            return int(raw)
        if dtype == "boolean":
            return bool(raw)
        if f.get("stage"):
            stage = self.state["stages"].get(raw)
            return stage["display_value"].casefold() if stage else None
        if f.get("pipeline"):
            pipe = next((p for p in self.state["pipelines"] if p["id"] == raw), None)
            return pipe["display_value"].casefold() if pipe else None
        return str(raw).casefold()

    def _literal(self, f: dict[str, Any], value: Any) -> Any:
        dtype = f["data_type"]
        try:
            if dtype in NUMERIC:
                return Decimal(str(value))
            if dtype == "integer":
                return int(value)
            if dtype in ("lookup", "ownerlookup", "bigint"):
                return int(str(value))
            if dtype == "datetime":
                moment = parse_time(str(value))
                if moment is None:
                    raise ValueError(value)
                return int(moment)
            if dtype == "date":
                return dt.date.fromisoformat(str(value)).isoformat()
            if dtype == "boolean":
                return value if isinstance(value, bool) else str(value).lower() == "true"
        except (ValueError, InvalidOperation):
            raise CoqlError("INVALID_QUERY", "value given seems to be invalid for the column",
                            {"column_name": f["api_name"], "expected_data_type": dtype}) from None
        return str(value).casefold()

    # -- routes: COQL ------------------------------------------------------------------------------
    @route("POST", API + r"/coql")
    def coql(self, req: Request) -> Response:
        body = self._body(req)
        query_text = body.get("select_query") if isinstance(body, dict) else None
        if not isinstance(query_text, str):
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "select_query"})
        try:
            query = Coql(query_text).parse()
        except CoqlError as exc:
            self._authorize(req, ("ZohoCRM.coql.READ",))
            raise zerr(400, exc.code, exc.message, exc.details) from None
        module = next((m for m in MODULES if m.lower() == query["module"].lower()), None)
        if module is None:
            self._authorize(req, ("ZohoCRM.coql.READ",))
            raise zerr(400, "INVALID_QUERY", "invalid query formed", {"module": query["module"],
                                                                       "reason": "invalid module"})
        self._authorize(req, ("ZohoCRM.coql.READ",), self._module_scopes(module, "READ"))
        limit, offset = query["limit"], query["offset"]
        if limit < 1 or limit > 2000:
            raise zerr(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "limit", "limit": 2000})
        if offset + limit > 100_000:
            raise zerr(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "offset", "limit": 100_000})
        if len(query["fields"]) > 500:
            raise zerr(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "select", "limit": 500})
        self._spend(1 if limit <= 200 else 2 if limit <= 1000 else 3)
        try:
            columns = [self._column(module, c) for c in query["fields"]]
            for name, _ in query["order"]:
                self._column(module, name)
            rows = [r for r in self.state["records"][module].values() if self._eval(module, r, query["where"])]
        except CoqlError as exc:
            raise zerr(400, exc.code, exc.message, exc.details) from None

        def sort_key(rec: dict[str, Any], name: str) -> tuple:
            value = self._resolve(module, rec, self._column(module, name))
            return (value is not None, value if value is not None else 0)

        rows.sort(key=lambda r: int(r["id"]))
        for name, desc in reversed(query["order"]):
            rows.sort(key=lambda r, n=name: sort_key(r, n), reverse=desc)
        chunk = rows[offset:offset + limit]
        if not chunk:
            return Response(204, b"")
        out = []
        for rec in chunk:
            row: dict[str, Any] = {}
            for col in columns:
                row[col["key"]] = self._coql_value(module, rec, col)
            row["id"] = rec["id"]
            out.append(row)
        return self._json(200, {"data": out, "info": {"count": len(out),
                                                      "more_records": offset + limit < len(rows)}})

    def _column(self, module: str, name: str) -> dict[str, Any]:
        """A COQL column: a field, ``id``, or ``Lookup.Field`` of the looked-up record."""
        parts = name.split(".")
        if len(parts) > 2:
            raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        if parts[0] == "id" and len(parts) == 1:
            return {"key": "id", "field": {"api_name": "id", "data_type": "bigint"}, "via": None}
        f = next((x for x in self._fields(module) if x["api_name"].lower() == parts[0].lower()), None)
        if f is None:
            raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        if f["data_type"] in ("subform", "multiselectlookup"):
            raise CoqlError("INVALID_QUERY", "data type not supported",
                            {"column_name": name, "data_type": f["data_type"]})
        if len(parts) == 1:
            return {"key": f["api_name"], "field": f, "via": None}
        if f["data_type"] != "lookup":
            raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        target = f["lookup"]
        if parts[1] == "id":
            sub = {"api_name": "id", "data_type": "bigint"}
        else:
            sub = next((x for x in self._fields(target) if x["api_name"].lower() == parts[1].lower()), None)
            if sub is None or sub["data_type"] == "subform":
                raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        return {"key": f"{f['api_name']}.{sub['api_name']}", "field": sub, "via": f}

    def _source(self, module: str, rec: dict[str, Any], col: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if col["via"] is None:
            return module, rec
        target = col["via"]["lookup"]
        return target, self.state["records"][target].get(rec.get(col["via"]["api_name"]) or "")

    def _resolve(self, module: str, rec: dict[str, Any], col: dict[str, Any]) -> Any:
        mod, src = self._source(module, rec, col)
        if src is None:
            return None
        f = col["field"]
        return self._comparable(mod, f, src["id"] if f["api_name"] == "id" else src.get(f["api_name"]))

    def _coql_value(self, module: str, rec: dict[str, Any], col: dict[str, Any]) -> Any:
        mod, src = self._source(module, rec, col)
        if src is None:
            return None
        f = col["field"]
        if f["api_name"] == "id":
            return src["id"]
        return self._value(mod, f, src.get(f["api_name"]), coql=True)

    def _eval(self, module: str, rec: dict[str, Any], node: tuple) -> bool:
        kind = node[0]
        if kind == "and":
            return self._eval(module, rec, node[1]) and self._eval(module, rec, node[2])
        if kind == "or":
            return self._eval(module, rec, node[1]) or self._eval(module, rec, node[2])
        col = self._column(module, node[1])
        have = self._resolve(module, rec, col)
        f = col["field"]
        if kind == "null":
            return (have is None) != node[2]
        if kind == "like":
            pattern = "^" + ".*".join(re.escape(p) for p in str(node[2]).casefold().split("%")) + "$"
            hit = have is not None and re.match(pattern, str(have), re.S) is not None
            return hit != node[3]
        if kind == "in":
            wants = [self._literal(f, v) for v in node[2]]
            return (have in wants) != node[3] if have is not None else False
        if kind == "between":
            low, high = self._literal(f, node[2]), self._literal(f, node[3])
            if have is None:
                return False
            return (low <= have <= high) != node[4]
        _, _, op, raw = node
        want = self._literal(f, raw)
        if have is None:
            return False
        try:
            return {"=": have == want, "!=": have != want, ">": have > want, ">=": have >= want,
                    "<": have < want, "<=": have <= want}[op]
        except TypeError:
            raise CoqlError("INVALID_QUERY", "value given seems to be invalid for the column",
                            {"column_name": node[1], "expected_data_type": f["data_type"]}) from None

    # -- routes: settings and org ----------------------------------------------------------------
    def _settings_module(self, req: Request) -> str:
        name = req.arg("module")
        if not name:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param_name": "module"})
        for known in (*MODULES, *SUBFORM_MODULES):
            if known.lower() == name.lower():
                return known
        raise zerr(400, "INVALID_MODULE", "the module name given seems to be invalid", {"api_name": "module"})

    @route("GET", API + r"/settings/fields")
    def get_fields(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.fields.ALL", "ZohoCRM.settings.fields.READ"))
        module = self._settings_module(req)
        self._spend(1)
        kind = req.arg("type") or "all"
        if kind not in ("all", "used", "unused"):
            raise zerr(400, "INVALID_DATA", "invalid data",
                       {"api_name": "type", "json_path": "$.type", "expected_data_type": "string"})
        fields = [] if kind == "unused" else self._fields(module)
        if not fields:
            return Response(204, b"")
        return self._json(200, {"fields": [self._field_json(module, f, n) for n, f in enumerate(fields, 1)]})

    @route("POST", API + r"/settings/fields")
    def create_fields(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.fields.ALL",
                              "ZohoCRM.settings.fields.CREATE"))
        module = self._settings_module(req)
        body = self._body(req)
        items = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise zerr(400, "MANDATORY_NOT_FOUND", "required field not found",
                       {"api_name": "fields", "json_path": "$.fields"})
        self._spend(1)
        results: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            path = f"$.fields[{n}]"
            label = item.get("field_label") if isinstance(item, dict) else None
            dtype = item.get("data_type") if isinstance(item, dict) else None
            if not label:
                results.append(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                           {"api_name": "field_label", "json_path": f"{path}.field_label"}))
                continue
            if not dtype:
                results.append(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                           {"api_name": "data_type", "json_path": f"{path}.data_type"}))
                continue
            if dtype not in CREATABLE_TYPES:
                results.append(_invalid("data_type", f"{path}.data_type", "string"))
                continue
            if any(f["field_label"].casefold() == str(label).casefold() for f in self._fields(module)):
                results.append(_item_error("INVALID_DATA", "field label already exists",
                                           {"api_name": "field_label", "json_path": f"{path}.field_label"}))
                continue
            if sum(1 for f in self._fields(module) if f.get("custom")) >= 300:
                results.append(_item_error("LIMIT_EXCEEDED", "custom field limit exceeded",
                                           {"limit": 300, "limit_due_to": [{"api_name": "field_label",
                                                                            "json_path": f"{path}.field_label"}]}))
                continue
            api = base = _api_name(str(label))
            taken = {f["api_name"].casefold() for f in self._fields(module)}
            suffix = 1
            while api.casefold() in taken:
                suffix += 1
                api = f"{base}{suffix}"
            length = item.get("length")
            field = _f(api, str(label), dtype, custom=True, id=self.new_id(), created=int(self.now()))
            if isinstance(length, int) and not isinstance(length, bool):
                field["length"] = length
            if dtype in ("double", "currency", "percent") and isinstance(item.get("decimal_place"), int):
                field["decimal_place"] = item["decimal_place"]
            if dtype in ("picklist", "multiselectpicklist"):
                field["values"] = [str(v.get("actual_value") or v.get("display_value")) for v in
                                   item.get("pick_list_values") or [] if isinstance(v, dict)]
            self._fields(module).append(field)
            results.append({"code": "SUCCESS", "details": {"id": field["id"]}, "message": "field created",
                            "status": "success"})
        self.persist()
        failed = [r for r in results if r["status"] == "error"]
        return self._json(400 if failed and len(failed) == len(results) else 201, {"fields": results})

    @route("GET", API + r"/settings/layouts")
    def get_layouts(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.layouts.ALL",
                              "ZohoCRM.settings.layouts.READ"))
        module = self._settings_module(req)
        self._spend(1)
        layout = self.state["layouts"][module]
        org_created = zoho_time(self.state["org"]["created"])
        user = {"name": self.state["user"]["name"], "id": self.state["user"]["id"]}
        return self._json(200, {"layouts": [{
            "display_type": -1, "api_name": "Standard", "has_more_profiles": False, "created_time": org_created,
            "modified_time": org_created, "visible": True, "source": "crm", "id": layout["id"],
            "name": layout["name"], "display_label": layout["name"], "mode": "primary",
            "subform_properties": {"pinned_column": False}, "status": "active", "show_business_card": True,
            "generated_type": "default", "created_for": None, "convert_mapping": None, "modified_by": user,
            "profiles": [{"default": True, "name": "Administrator", "id": PROFILE_ID,
                          "_default_view": {"name": "Standard", "id": layout["id"], "type": "layout"}}],
            "created_by": user, "sections": [],
            "actions_allowed": {"edit": True, "rename": True, "clone": True, "downgrade": False, "delete": False,
                                "deactivate": False, "set_layout_permissions": True}}]})

    def _pipeline_json(self, pipe: dict[str, Any]) -> dict[str, Any]:
        maps = []
        for seq, sid in enumerate(pipe["maps"], 1):
            stage = self.state["stages"][sid]
            cat = stage["forecast_category"]
            maps.append({"display_value": stage["display_value"], "sequence_number": seq,
                         "forecast_category": {"name": cat, "id": FORECAST_CATEGORY_IDS[cat]},
                         "actual_value": stage["actual_value"], "id": sid, "forecast_type": stage["forecast_type"]})
        return {"display_value": pipe["display_value"], "default": pipe["default"], "maps": maps,
                "actual_value": pipe["actual_value"], "id": pipe["id"], "child_available": False}

    def _layout_param(self, req: Request) -> None:
        layout_id = req.arg("layout_id")
        if not layout_id:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "layout_id"})
        if layout_id != self.state["layouts"]["Deals"]["id"]:
            raise zerr(400, "INVALID_DATA", "invalid data", {"resource_path_index": 0})

    @route("GET", API + r"/settings/pipeline")
    def get_pipelines(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.pipeline.ALL",
                              "ZohoCRM.settings.pipeline.READ"))
        self._layout_param(req)
        self._spend(1)
        return self._json(200, {"pipeline": [self._pipeline_json(p) for p in self.state["pipelines"]]})

    @route("PUT", API + r"/settings/pipeline/(?P<id>\d+)")
    def update_pipeline(self, req: Request) -> Response:
        """Rename the pipeline or its stages (maps with an id), or change a stage's forecast type."""
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.pipeline.ALL",
                              "ZohoCRM.settings.pipeline.UPDATE"))
        self._layout_param(req)
        pipe = next((p for p in self.state["pipelines"] if p["id"] == req.params["id"]), None)
        if pipe is None:
            raise zerr(400, "INVALID_DATA", "invalid data", {"resource_path_index": 1})
        body = self._body(req)
        items = body.get("pipeline") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            raise zerr(400, "MANDATORY_NOT_FOUND", "required field not found",
                       {"api_name": "pipeline", "json_path": "$.pipeline"})
        self._spend(1)
        item = items[0]
        for n, m in enumerate(item.get("maps") or []):
            stage = self.state["stages"].get(str(m.get("id"))) if isinstance(m, dict) else None
            if stage is None or stage["id"] not in pipe["maps"]:
                return self._json(400, {"pipeline": [{"status": "error", "code": "INVALID_DATA",
                                                      "message": "invalid data", "details": {
                                                          "api_name": "id", "json_path": f"$.pipeline[0].maps[{n}].id",
                                                          "expected_data_type": "bigint"}}]})
            for key in ("display_value", "forecast_type"):
                if isinstance(m.get(key), str) and m[key]:
                    stage[key] = m[key]
        if isinstance(item.get("display_value"), str) and item["display_value"]:
            pipe["display_value"] = item["display_value"]
        self.persist()
        return self._json(200, {"pipeline": [{"code": "SUCCESS", "message": "pipeline updated",
                                              "status": "success", "details": {"id": pipe["id"]}}]})

    @route("GET", API + r"/org")
    def get_org(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.org.ALL", "ZohoCRM.org.READ", "ZohoCRM.settings.ALL"))
        self._spend(1)
        org = self.state["org"]
        user = self.state["user"]
        return self._json(200, {"org": [{
            "country": org["country"], "photo_id": None, "city": "Berlin", "description": None, "mc_status": True,
            "gapps_enabled": False, "translation_enabled": False, "street": "Friedrichstraße 68",
            "domain_name": org["domain_name"], "alias": None, "currency": org["currency"], "id": org["id"],
            "state": "BE", "fax": None, "zip": "10117", "employee_count": "12",
            "website": "crossledger-demo.test", "currency_symbol": "€", "mobile": None, "currency_locale": "de_DE",
            "primary_zuid": "71534221", "zia_portal_id": None, "time_zone": org["time_zone"], "zgid": org["id"],
            "country_code": org["country_code"], "deletable_org_account": False,
            "license_details": {"paid_expiry": zoho_time(self.now() + 200 * 86400),
                                "users_license_purchased": self.users, "trial_type": None, "trial_expiry": None,
                                "paid": self.edition != "free", "paid_type": self.edition,
                                "trial_action": "none"},
            "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
            "phone": "+49 30 9018 2000", "company_name": org["company_name"], "privacy_settings": False,
            "primary_email": user["email"], "iso_code": org["currency"], "hipaa_compliance_enabled": False,
            "lite_users_enabled": False, "max_per_page": 200, "ezgid": "d9c6b1a7e0f4", "call_icon": "",
            "oauth_presence": True, "zia_zgid": 0, "checkin_preferences": {"restricted_event_types": None},
            "type": "Production", "created_time": zoho_time(org["created"])}]})
