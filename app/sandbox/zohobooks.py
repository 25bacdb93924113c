"""A faithful local imitation of Zoho Books API v3 and its Zoho Accounts OAuth server.

Follows ../shared/reference/zoho-books.md (and the ballerina OpenAPI sketch where it has shapes):
data-centre aware OAuth (``location`` and ``accounts-server`` on the callback, ``api_domain`` in the
token response, both pointing at this server), refresh tokens that never rotate, one-hour access
tokens, ``Authorization: Zoho-oauthtoken``, ``organization_id`` on every call, ``{code, message}``
envelopes with ``code: 0`` on success, ``page``/``per_page`` (<= 200) paging with
``page_context.has_more_page``, ``last_modified_time`` filters and sorts, list endpoints that return
summaries only (details cost one GET per record), 100 requests per minute per organisation and a
daily cap by plan answered with 429 ``{"code": 45, ...}``.

Money is kept as strings in the state and sent as JSON numbers, computed with Zoho's rounding
(line totals to the organisation's price precision, tax once per rate on the whole invoice).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import formatdate
from typing import Any

from app.connectors.zohobooks import json_dumps
from app.sandbox import demo_data as demo_set
from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.demo_data import COUNTRY_NAMES, PRODUCTS
from app.sandbox.zoho_accounts import ZohoAccounts

API = r"/books/v3"
ID_BASE = 460_000_000_000_000  # Zoho ids are long digit strings
CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)

# Scopes a Crossledger connection asks for; grant_tokens() issues them so in-process tests see
# exactly what a real consent would give.
FULL_SCOPE = ",".join((
    "ZohoBooks.contacts.ALL", "ZohoBooks.invoices.ALL", "ZohoBooks.customerpayments.ALL",
    "ZohoBooks.settings.ALL",
))

DAILY_CAPS = {"free": 1000, "standard": 2000, "professional": 5000, "premium": 10000, "elite": 10000,
              "ultimate": 10000}

CURRENCIES = {
    "GBP": ("British Pound Sterling", "£"), "USD": ("United States Dollar", "$"), "EUR": ("Euro", "€"),
    "AUD": ("Australian Dollar", "$"), "CAD": ("Canadian Dollar", "$"), "INR": ("Indian Rupee", "₹"),
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PCT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


class ZohoResponse(Response):
    """A response whose Decimals go out as JSON numbers, as Zoho sends amounts."""

    __slots__ = ()

    def encode(self) -> bytes:
        if isinstance(self.body, dict | list):
            return json_dumps(self.body).encode()
        return Response.encode(self)


def ok(body: dict[str, Any], status: int = 200, message: str = "success") -> ZohoResponse:
    return ZohoResponse(status, {"code": 0, "message": message, **body})


def zerr(status: int, code: int, message: str) -> HttpError:
    """Zoho's error body: ``{"code": <int>, "message": "<text>"}``."""
    return HttpError(status, {"code": code, "message": message})


def invalid(field: str) -> HttpError:
    return zerr(400, 4, f"Invalid value passed for {field}")


def bad_param(name: str) -> HttpError:
    return zerr(400, 2, f"Invalid value passed for {name}")


def dec(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise invalid(field)
    try:
        out = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise invalid(field) from None
    if not out.is_finite():
        raise invalid(field)
    return out


def money(value: Decimal, places: Decimal = CENT) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_UP)


def s(value: Any) -> str:
    return "" if value is None else str(value)


class ZohoBooksSandbox(ZohoAccounts):
    """Zoho Books with its Zoho Accounts server, on one host (``api_domain`` = ``accounts-server``)."""

    provider = "zohobooks"
    access_ttl = 3600  # one hour
    refresh_rotates = False  # ... and are never rotated
    rate_limit = (100, 60.0)  # requests per minute per organisation

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 plan: str = "Premium", time_zone: str = "Europe/London") -> None:
        self.plan = plan
        self.time_zone = time_zone
        self.daily_scale = 1.0
        super().__init__(state_file, clock=clock)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {"orgs": {}, "books": {}, "usage": {}, "default_org": None}

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth")
            self.state = self.empty_state()
            if oauth:
                self.state["oauth"] = oauth
            self.state.setdefault("oauth", {"codes": {}, "access": {}, "refresh": {}})
            if kind == "empty":
                self.add_organization("Crossledger Test Ltd", is_default=True)
            elif kind == "demo":
                org = self.add_organization("Crossledger Demo Ltd", is_default=True)
                self._seed_demo(org)
            else:
                raise ValueError(f"unknown seed {kind!r}: use 'empty' or 'demo'")
            self.persist()

    def new_id(self) -> str:
        return str(ID_BASE + self.next_id("zoho") * 17)

    def add_organization(self, name: str, *, currency: str = "GBP", is_default: bool = False,
                         plan: str | None = None, time_zone: str | None = None) -> str:
        """Create an organisation with currencies and taxes (also used by tests for multi-org users)."""
        with self.lock:
            org = str(10_234_695 + self.next_id("org") * 1013)
            if is_default:
                for other in self.state["orgs"].values():
                    other["is_default_org"] = False
            currencies = []
            for code, (label, symbol) in CURRENCIES.items():
                currencies.append({
                    "currency_id": self.new_id(), "currency_code": code, "currency_name": label,
                    "currency_symbol": symbol, "price_precision": 2, "currency_format": "1,234,567.89",
                    "is_base_currency": code == currency, "exchange_rate": "1" if code == currency else "0",
                })
            base = next(c for c in currencies if c["currency_code"] == currency)
            self.state["orgs"][org] = {
                "organization_id": org, "name": name, "contact_name": "Alex Ledger",
                "email": "accounts@" + re.sub(r"[^a-z]", "", name.lower())[:20] + ".example",
                "is_default_org": is_default, "plan_type": 0, "plan_name": plan or self.plan,
                "currency_id": base["currency_id"], "currency_code": currency,
                "currency_symbol": base["currency_symbol"], "price_precision": 2,
                "time_zone": time_zone or self.time_zone, "language_code": "en", "date_format": "dd MMM yyyy",
                "field_separator": " ", "fiscal_year_start_month": 0, "country": "United Kingdom",
                "is_org_active": True, "account_created_date": self._date(self.now(), org_tz=None),
                "user_role": "admin", "user_status": "active",
            }
            self.state["books"][org] = {
                "contacts": {}, "items": {}, "invoices": {}, "payments": {}, "currencies": currencies,
                "taxes": [
                    {"tax_id": self.new_id(), "tax_name": "Standard Rate", "tax_percentage": "20",
                     "tax_type": "tax", "is_default_tax": True, "is_editable": True},
                    {"tax_id": self.new_id(), "tax_name": "Reduced Rate", "tax_percentage": "5",
                     "tax_type": "tax", "is_default_tax": False, "is_editable": True},
                    {"tax_id": self.new_id(), "tax_name": "Zero Rate", "tax_percentage": "0",
                     "tax_type": "tax", "is_default_tax": False, "is_editable": True},
                ],
                "numbers": {"invoice": 0, "payment": 0},
            }
            if self.state.get("default_org") is None or is_default:
                self.state["default_org"] = org
            self.persist()
            return org

    def _seed_demo(self, org: str) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        stamp = self.now() - 86400 * 30
        books = self.state["books"][org]
        currency_ids = {c["currency_code"]: c["currency_id"] for c in books["currencies"]}
        bodies: list[dict[str, Any]] = []
        for c in data.companies:
            if not c.in_ledger:
                continue
            person = {"first_name": "", "last_name": "", "is_primary_contact": True,
                      "email": c.email if c.in_ledger == "email" else "", "phone": c.phone or ""}
            bodies.append({
                "contact_name": c.ledger_name, "company_name": c.ledger_name, "contact_type": "customer",
                "customer_sub_type": "business", "currency_id": currency_ids.get(c.currency),
                "vat_reg_no": c.tax_id if c.in_ledger == "tax_id" else "",
                "billing_address": {"address": c.address_line1 or "", "city": c.city or "",
                                    "state": c.region or "", "zip": c.postal_code or "",
                                    "country": COUNTRY_NAMES.get(c.country or "", "")},
                "contact_persons": [person], "payment_terms": 30, "payment_terms_label": "Net 30",
            })
        bodies += [
            {"contact_name": "Walk-in Customer", "customer_sub_type": "individual", "contact_persons": []},
            {"contact_name": "Margaret Hale", "customer_sub_type": "individual",
             "contact_persons": [{"first_name": "Margaret", "last_name": "Hale", "email": "m.hale@example.org",
                                  "is_primary_contact": True}],
             "billing_address": {"address": "4 Quay Street", "city": "Bristol", "zip": "BS1 4DB",
                                 "country": "United Kingdom"}},
            {"contact_name": "Old Mill Tearooms Ltd", "company_name": "Old Mill Tearooms Ltd",
             "customer_sub_type": "business",
             "contact_persons": [{"first_name": "Ivy", "last_name": "Kerr", "email": "ivy@oldmilltearooms.co.uk",
                                  "is_primary_contact": True}]},
            {"contact_name": "Kettlewell Parish Council", "company_name": "Kettlewell Parish Council",
             "customer_sub_type": "business", "vat_reg_no": "GB980780684", "contact_persons": []},
        ]
        for n, body in enumerate(bodies):
            rec = self._contact_from(org, body, None)
            rec["_created"] = rec["_lmt"] = stamp + n * 60
            books["contacts"][rec["contact_id"]] = rec
        books["contacts"][self._find_contact(org, "Old Mill Tearooms Ltd")["contact_id"]]["status"] = "inactive"
        for n, (sku, name, price) in enumerate(PRODUCTS):
            item = self._item_from(org, {"name": name, "sku": sku, "rate": price,
                                         "product_type": "goods" if sku.startswith("HW") else "service"}, None)
            item["_created"] = item["_lmt"] = stamp + n * 60
            books["items"][item["item_id"]] = item

    # -- clock and formats ------------------------------------------------------------------
    def _tz(self, org: str | None) -> dt.tzinfo:
        name = (self.state["orgs"].get(org) or {}).get("time_zone") if org else None
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name or self.time_zone)
        except Exception:  # noqa: BLE001 - no tz database (frozen builds): fall back to UTC
            return dt.UTC

    def ts(self, epoch: float, org: str | None) -> str:
        """``2026-05-12T03:10:11+0100``: organisation time zone, offset without a colon."""
        return dt.datetime.fromtimestamp(int(epoch), self._tz(org)).strftime("%Y-%m-%dT%H:%M:%S%z")

    def _date(self, epoch: float, org_tz: str | None) -> str:
        return dt.datetime.fromtimestamp(epoch, self._tz(org_tz)).date().isoformat()

    def today(self, org: str) -> str:
        return self._date(self.now(), org)

    @staticmethod
    def parse_ts(value: str, name: str) -> float:
        text = value.strip()
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return dt.datetime.strptime(text, fmt).timestamp()
            except ValueError:
                continue
        raise bad_param(name)

    # -- oauth ------------------------------------------------------------------------------
    def unauthorized(self, why: str) -> HttpError:
        return zerr(401, 57, "You are not authorized to perform this operation")

    def not_found_body(self, req: Request) -> Any:
        return {"code": 5, "message": "Invalid URL Passed"}

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = FULL_SCOPE) -> dict[str, Any]:
        return super().grant_tokens(client_id, scope)

    # -- the API gate -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        resp = super().handle(req)
        resp.headers.setdefault("Date", formatdate(self.now(), usegmt=True))
        return resp

    def _gate(self, req: Request, module: str, *, org_required: bool = True) -> str | None:
        """Auth, organisation, per-minute and daily limits, then scope: in Zoho's order."""
        record = self.authenticate(req, "Zoho-oauthtoken")
        org = req.arg("organization_id")
        if org_required:
            if not org or org not in self.state["orgs"]:
                raise zerr(400, 6041, f"This user is not associated with the CompanyID/CompanyName:{org or ''}.")
            limit, window = self.rate_limit
            if self.check_rate(f"org:{org}", limit, window) is not None:
                raise zerr(429, 45, "You have made too many requests per minute for this organization. "
                                    "Please try again after some time.")
            self._count_daily(org)
        op = {"GET": "READ", "POST": "CREATE", "PUT": "UPDATE", "DELETE": "DELETE"}[req.method]
        granted = set(re.split(r"[,\s]+", record.get("scope") or ""))
        if not granted & {f"ZohoBooks.{module}.{op}", f"ZohoBooks.{module}.ALL"}:
            raise self.unauthorized("scope")
        return org

    def daily_cap(self, org: str) -> int:
        plan = (self.state["orgs"][org].get("plan_name") or "free").lower()
        return int(DAILY_CAPS.get(plan, 1000) * self.daily_scale)

    def _count_daily(self, org: str) -> None:
        today = self.today(org)
        usage = self.state["usage"].get(org)
        if not usage or usage["date"] != today:
            usage = self.state["usage"][org] = {"date": today, "count": 0}
        if usage["count"] >= self.daily_cap(org):
            raise zerr(429, 45, "You have reached the maximum number of API requests allowed per day for your "
                                "organization. Please try again tomorrow.")
        usage["count"] += 1

    def set_daily_usage(self, count: int, org: str | None = None) -> None:
        """Test helper: pretend ``count`` calls were already made today."""
        org = org or self.state["default_org"]
        self.state["usage"][org] = {"date": self.today(org), "count": count}

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.daily_scale *= factor

    def _books(self, org: str) -> dict[str, Any]:
        return self.state["books"][org]

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        """JSON body (numbers as Decimal), or the legacy ``JSONString`` form field."""
        raw: bytes | str = req.body
        ctype = (req.header("content-type") or "").lower()
        if "x-www-form-urlencoded" in ctype:
            raw = req.form().get("JSONString", "")
        try:
            body = json.loads(raw or b"{}", parse_float=Decimal)
        except ValueError:
            raise zerr(400, 4, "Invalid value passed for JSONString") from None
        if not isinstance(body, dict):
            raise zerr(400, 4, "Invalid value passed for JSONString")
        return body

    # -- organisations and settings ---------------------------------------------------------
    @route("GET", API + r"/organizations")
    def list_orgs(self, req: Request) -> Response:
        self._gate(req, "settings", org_required=False)
        return ok({"organizations": [self._org_out(o) for o in self.state["orgs"].values()]})

    @route("GET", API + r"/organizations/(?P<org>\d+)")
    def get_org(self, req: Request) -> Response:
        self._gate(req, "settings", org_required=False)
        org = self.state["orgs"].get(req.params["org"])
        if org is None:
            raise zerr(400, 6041, f"This user is not associated with the CompanyID/CompanyName:{req.params['org']}.")
        return ok({"organization": self._org_out(org)})

    @staticmethod
    def _org_out(org: dict[str, Any]) -> dict[str, Any]:
        return dict(org)

    @route("GET", API + r"/settings/currencies")
    def currencies(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        out = [{**c, "exchange_rate": Decimal(c["exchange_rate"])} for c in self._books(org)["currencies"]]
        return ok({"currencies": out})

    @route("GET", API + r"/settings/taxes")
    def taxes(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        out = [{**t, "tax_percentage": Decimal(t["tax_percentage"])} for t in self._books(org)["taxes"]]
        return ok({"taxes": out})

    def _currency(self, org: str, currency_id: Any) -> dict[str, Any]:
        for cur in self._books(org)["currencies"]:
            if cur["currency_id"] == s(currency_id):
                return cur
        raise invalid("currency_id")

    def _base_currency(self, org: str) -> dict[str, Any]:
        return next(c for c in self._books(org)["currencies"] if c["is_base_currency"])

    def _tax(self, org: str, tax_id: Any) -> dict[str, Any]:
        for tax in self._books(org)["taxes"]:
            if tax["tax_id"] == s(tax_id):
                return tax
        raise invalid("tax_id")

    # -- listing ----------------------------------------------------------------------------
    def _list(self, req: Request, org: str, records: list[dict[str, Any]], *, key: str, id_key: str, report: str,
              texts: dict[str, Callable[[dict], Any]], exact: dict[str, Callable[[dict], Any]],
              statuses: dict[str, Callable[[dict], bool]], default_filter: str,
              sorts: dict[str, Callable[[dict], Any]], default_sort: tuple[str, str],
              out: Callable[[dict], dict]) -> Response:
        try:
            page = int(req.arg("page", "1") or "1")
            per_page = min(int(req.arg("per_page", "200") or "200"), 200)  # silently capped at 200
        except ValueError:
            raise bad_param("page") from None
        if page < 1 or per_page < 1:
            raise bad_param("page")
        criteria = []
        rows = list(records)
        for name, getter in texts.items():
            for suffix, test in (("", lambda v, q: v == q), ("_startswith", str.startswith),
                                 ("_contains", lambda v, q: q in v)):
                q = req.arg(name + suffix)
                if q is None:
                    continue
                q = q.casefold()
                rows = [r for r in rows if any(test(s(v).casefold(), q) for v in _many(getter(r)))]
                criteria.append({"column_name": name, "search_text": q,
                                 "comparator": {"": "equal", "_startswith": "starts_with",
                                                "_contains": "contains"}[suffix]})
        for name, getter in exact.items():
            q = req.arg(name)
            if q is not None:
                rows = [r for r in rows if s(getter(r)) == q]
                criteria.append({"column_name": name, "search_text": q, "comparator": "equal"})
        status_filter = req.arg("filter_by") or default_filter
        if status_filter not in statuses:
            raise bad_param("filter_by")
        rows = [r for r in rows if statuses[status_filter](r)]
        text = req.arg("search_text")
        if text:
            needle = text.casefold()
            rows = [r for r in rows if any(needle in s(v).casefold() for g in texts.values() for v in _many(g(r)))]
        since = req.arg("last_modified_time")
        if since is not None:
            after = int(self.parse_ts(since, "last_modified_time"))
            rows = [r for r in rows if int(r["_lmt"]) > after]  # modified after the given time
        column = req.arg("sort_column") or default_sort[0]
        order = req.arg("sort_order") or (default_sort[1] if column == default_sort[0] else "A")
        if column not in sorts:
            raise bad_param("sort_column")
        if order not in ("A", "D"):
            raise bad_param("sort_order")
        rows.sort(key=lambda r: (sorts[column](r), int(r[id_key])), reverse=order == "D")
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        return ok({key: [out(r) for r in chunk], "page_context": {
            "page": page, "per_page": per_page, "has_more_page": start + per_page < len(rows),
            "report_name": report, "applied_filter": status_filter, "sort_column": column, "sort_order": order,
            "search_criteria": criteria,
        }})

    # -- contacts ---------------------------------------------------------------------------
    def _find_contact(self, org: str, name: str) -> dict[str, Any]:
        return next(c for c in self._books(org)["contacts"].values() if c["contact_name"] == name)

    def _contact(self, org: str, contact_id: str) -> dict[str, Any]:
        rec = self._books(org)["contacts"].get(contact_id)
        if rec is None:
            raise zerr(404, 1002, "Contact does not exist.")
        return rec

    def _name_taken(self, org: str, name: str, own_id: str) -> bool:
        """Whether another contact already has ``name`` (case ignored), in O(1): a folded-name index that
        is rebuilt whenever contacts were added or removed behind its back, and checked against the
        records themselves, so a renamed or never-stored contact cannot make a false clash."""
        contacts = self._books(org)["contacts"]
        folded = name.casefold()
        cache = self.__dict__.setdefault("_name_index", {})
        entry = cache.get(org)
        if entry is None or entry[0] is not contacts or entry[2] != len(contacts):
            index: dict[str, set[str]] = {}
            for cid, c in contacts.items():
                index.setdefault(c["contact_name"].casefold(), set()).add(cid)
            entry = cache[org] = [contacts, index, len(contacts)]
        ids = entry[1].setdefault(folded, set())
        taken = any(cid != own_id and (c := contacts.get(cid)) is not None and c["contact_name"].casefold() == folded
                    for cid in ids)
        if not taken:  # the caller stores the contact under this name next (or fails, which the checks allow)
            if own_id not in contacts:
                entry[2] += 1
            ids.add(own_id)
        return taken

    def _contact_from(self, org: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """Validate a create/update body and return the stored contact (not yet saved)."""
        now = self.now()
        rec: dict[str, Any] = dict(existing) if existing else {
            "contact_id": self.new_id(), "contact_type": "customer", "customer_sub_type": "business",
            "status": "active", "company_name": "", "contact_number": "", "payment_terms": 0,
            "payment_terms_label": "Due on Receipt", "website": "", "notes": "", "vat_reg_no": "",
            "tax_reg_no": "", "gst_no": "", "language_code": "en", "billing_address": _address({}),
            "shipping_address": _address({}), "contact_persons": [], "_created": now,
            "currency_id": self._base_currency(org)["currency_id"],
        }
        if existing is None or "contact_name" in body:
            name = s(body.get("contact_name")).strip()
            if not name or len(name) > 200:
                raise invalid("contact_name")
            if self._name_taken(org, name, rec["contact_id"]):
                raise zerr(400, 1001, f"Contact name {name} already exists")
            rec["contact_name"] = name
        for field, limit in (("company_name", 200), ("contact_number", 100), ("website", 200), ("notes", 2000),
                             ("vat_reg_no", 30), ("tax_reg_no", 30), ("gst_no", 15), ("payment_terms_label", 100),
                             ("language_code", 10)):
            if field in body:
                value = s(body[field]).strip()
                if len(value) > limit:
                    raise invalid(field)
                rec[field] = value
        if "contact_type" in body:
            if body["contact_type"] not in ("customer", "vendor"):
                raise invalid("contact_type")
            rec["contact_type"] = body["contact_type"]
        if "customer_sub_type" in body:
            if body["customer_sub_type"] not in ("business", "individual"):
                raise invalid("customer_sub_type")
            rec["customer_sub_type"] = body["customer_sub_type"]
        if "payment_terms" in body:
            if not isinstance(body["payment_terms"], int) or body["payment_terms"] < 0:
                raise invalid("payment_terms")
            rec["payment_terms"] = body["payment_terms"]
        if body.get("currency_id") not in (None, ""):
            cur = self._currency(org, body["currency_id"])
            if existing and cur["currency_id"] != existing["currency_id"] and self._has_transactions(org, rec):
                raise zerr(400, 4, "Currency cannot be changed for a contact that has transactions.")
            rec["currency_id"] = cur["currency_id"]
        for kind in ("billing_address", "shipping_address"):
            if kind in body:
                if not isinstance(body[kind], dict):
                    raise invalid(kind)
                rec[kind] = _address(body[kind])
        if "contact_persons" in body:
            rec["contact_persons"] = self._persons(body["contact_persons"], rec["contact_persons"])
        rec["_lmt"] = now
        return rec

    def _persons(self, given: Any, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The new complete list: ids keep (and modify) a person, no id adds one, left out removes."""
        if not isinstance(given, list):
            raise invalid("contact_persons")
        known = {p["contact_person_id"]: p for p in current}
        out = []
        for raw in given:
            if not isinstance(raw, dict):
                raise invalid("contact_persons")
            person = dict(known.get(s(raw.get("contact_person_id")), {})) or {
                "contact_person_id": self.new_id(), "salutation": "", "first_name": "", "last_name": "",
                "email": "", "phone": "", "mobile": "", "designation": "", "department": "",
                "is_primary_contact": False, "enable_portal": False}
            for field in ("salutation", "first_name", "last_name", "email", "phone", "mobile", "designation",
                          "department"):
                if field in raw:
                    person[field] = s(raw[field]).strip()
            if person["email"] and not _EMAIL.match(person["email"]):
                raise invalid("email")
            for flag in ("is_primary_contact", "enable_portal"):
                if flag in raw:
                    person[flag] = bool(raw[flag])
            out.append(person)
        primaries = [p for p in out if p["is_primary_contact"]]
        for p in out:
            p["is_primary_contact"] = False
        if out:
            (primaries or out)[0]["is_primary_contact"] = True
        return out

    def _has_transactions(self, org: str, contact: dict[str, Any]) -> bool:
        return any(i["customer_id"] == contact["contact_id"] for i in self._books(org)["invoices"].values())

    def _receivable(self, org: str, contact: dict[str, Any]) -> tuple[Decimal, Decimal]:
        books = self._books(org)
        owed = sum((Decimal(i["_balance"]) for i in books["invoices"].values()
                    if i["customer_id"] == contact["contact_id"] and i["_state"] != "draft"
                    and i["_state"] != "void"), ZERO)
        credit = sum((Decimal(p["unused_amount"]) for p in books["payments"].values()
                      if p["customer_id"] == contact["contact_id"]), ZERO)
        return money(owed), money(credit)

    def _contact_summary(self, org: str, c: dict[str, Any]) -> dict[str, Any]:
        primary = next((p for p in c["contact_persons"] if p["is_primary_contact"]), {})
        cur = self._currency(org, c["currency_id"])
        owed, credit = self._receivable(org, c)
        return {
            "contact_id": c["contact_id"], "contact_name": c["contact_name"], "customer_name": c["contact_name"],
            "company_name": c["company_name"], "contact_type": c["contact_type"],
            "customer_sub_type": c["customer_sub_type"], "status": c["status"],
            "payment_terms": c["payment_terms"], "payment_terms_label": c["payment_terms_label"],
            "currency_id": c["currency_id"], "currency_code": cur["currency_code"],
            "outstanding_receivable_amount": owed, "unused_credits_receivable_amount": credit,
            "first_name": primary.get("first_name", ""), "last_name": primary.get("last_name", ""),
            "email": primary.get("email", ""), "phone": primary.get("phone", ""),
            "mobile": primary.get("mobile", ""),
            "created_time": self.ts(c["_created"], org), "last_modified_time": self.ts(c["_lmt"], org),
        }

    def _contact_detail(self, org: str, c: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._contact_summary(org, c),
            "contact_number": c["contact_number"], "website": c["website"], "notes": c["notes"],
            "language_code": c["language_code"], "vat_reg_no": c["vat_reg_no"], "tax_reg_no": c["tax_reg_no"],
            "gst_no": c["gst_no"], "billing_address": dict(c["billing_address"]),
            "shipping_address": dict(c["shipping_address"]),
            "contact_persons": [dict(p) for p in c["contact_persons"]],
        }

    @route("GET", API + r"/contacts")
    def list_contacts(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        return self._list(
            req, org, list(self._books(org)["contacts"].values()), key="contacts", id_key="contact_id",
            report="Contacts",
            texts={
                "contact_name": lambda c: c["contact_name"], "company_name": lambda c: c["company_name"],
                "email": lambda c: [p["email"] for p in c["contact_persons"]],
                "phone": lambda c: [p["phone"] for p in c["contact_persons"]] + [p["mobile"] for p in
                                                                                  c["contact_persons"]],
                "first_name": lambda c: [p["first_name"] for p in c["contact_persons"] if p["is_primary_contact"]],
                "last_name": lambda c: [p["last_name"] for p in c["contact_persons"] if p["is_primary_contact"]],
                "address": lambda c: [c["billing_address"]["address"], c["shipping_address"]["address"]],
            },
            exact={"contact_type": lambda c: c["contact_type"]},
            statuses={"Status.All": lambda c: True, "Status.Active": lambda c: c["status"] == "active",
                      "Status.Inactive": lambda c: c["status"] == "inactive",
                      "Status.Customers": lambda c: c["contact_type"] == "customer"},
            default_filter="Status.All",
            sorts={"contact_name": lambda c: c["contact_name"].casefold(),
                   "company_name": lambda c: c["company_name"].casefold(),
                   "first_name": lambda c: self._contact_summary(org, c)["first_name"].casefold(),
                   "last_name": lambda c: self._contact_summary(org, c)["last_name"].casefold(),
                   "email": lambda c: self._contact_summary(org, c)["email"].casefold(),
                   "outstanding_receivable_amount": lambda c: self._receivable(org, c)[0],
                   "created_time": lambda c: int(c["_created"]), "last_modified_time": lambda c: int(c["_lmt"])},
            default_sort=("contact_name", "A"), out=lambda c: self._contact_summary(org, c))

    @route("POST", API + r"/contacts")
    def create_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        rec = self._contact_from(org, self._body(req), None)
        self._books(org)["contacts"][rec["contact_id"]] = rec
        self.persist()
        return ok({"contact": self._contact_detail(org, rec)}, 201, "The contact has been added.")

    @route("GET", API + r"/contacts/(?P<id>\d+)")
    def get_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        return ok({"contact": self._contact_detail(org, self._contact(org, req.params["id"]))})

    @route("PUT", API + r"/contacts/(?P<id>\d+)")
    def update_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        current = self._contact(org, req.params["id"])
        rec = self._contact_from(org, self._body(req), current)
        self._books(org)["contacts"][rec["contact_id"]] = rec
        self.persist()
        return ok({"contact": self._contact_detail(org, rec)}, 200, "Contact has been updated successfully")

    @route("DELETE", API + r"/contacts/(?P<id>\d+)")
    def delete_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        rec = self._contact(org, req.params["id"])
        if self._has_transactions(org, rec):
            raise zerr(400, 4, "The contact has transactions associated with it and cannot be deleted. "
                               "Mark it as inactive instead.")
        del self._books(org)["contacts"][rec["contact_id"]]
        self.persist()
        return ok({}, 200, "The contact has been deleted.")

    @route("POST", API + r"/contacts/(?P<id>\d+)/(?P<status>active|inactive)")
    def contact_status(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        rec = self._contact(org, req.params["id"])
        rec["status"], rec["_lmt"] = req.params["status"], self.now()
        self.persist()
        word = "active" if req.params["status"] == "active" else "inactive"
        return ok({}, 200, f"The contact has been marked as {word}.")

    # -- items ------------------------------------------------------------------------------
    def _item(self, org: str, item_id: str) -> dict[str, Any]:
        rec = self._books(org)["items"].get(item_id)
        if rec is None:
            raise zerr(404, 1002, "Item does not exist.")
        return rec

    def _item_from(self, org: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        now = self.now()
        rec = dict(existing) if existing else {
            "item_id": self.new_id(), "status": "active", "description": "", "sku": "", "unit": "",
            "product_type": "service", "item_type": "sales", "tax_id": "", "_created": now}
        if existing is None or "name" in body:
            name = s(body.get("name")).strip()
            if not name or len(name) > 100:
                raise invalid("name")
            if any(i["name"].casefold() == name.casefold() and i["item_id"] != rec["item_id"]
                   for i in self._books(org)["items"].values()):
                raise zerr(400, 1001, f"Item name {name} already exists")
            rec["name"] = name
        if existing is None or "rate" in body:
            if body.get("rate") is None:
                raise invalid("rate")
            rate = dec(body["rate"], "rate")
            if rate < 0:
                raise invalid("rate")
            rec["rate"] = str(money(rate))
        for field in ("description", "sku", "unit"):
            if field in body:
                rec[field] = s(body[field]).strip()
        if "product_type" in body:
            if body["product_type"] not in ("goods", "service", "digital_service"):
                raise invalid("product_type")
            rec["product_type"] = body["product_type"]
        if "item_type" in body:
            if body["item_type"] not in ("sales", "purchases", "sales_and_purchases", "inventory"):
                raise invalid("item_type")
            rec["item_type"] = body["item_type"]
        if body.get("tax_id"):
            rec["tax_id"] = self._tax(org, body["tax_id"])["tax_id"]
        rec["_lmt"] = now
        return rec

    def _item_out(self, org: str, i: dict[str, Any]) -> dict[str, Any]:
        tax = self._tax(org, i["tax_id"]) if i["tax_id"] else None
        return {
            "item_id": i["item_id"], "name": i["name"], "item_name": i["name"], "status": i["status"],
            "description": i["description"], "rate": Decimal(i["rate"]), "unit": i["unit"], "sku": i["sku"],
            "product_type": i["product_type"], "item_type": i["item_type"], "tax_id": i["tax_id"],
            "tax_name": tax["tax_name"] if tax else "",
            "tax_percentage": Decimal(tax["tax_percentage"]) if tax else ZERO,
            "created_time": self.ts(i["_created"], org), "last_modified_time": self.ts(i["_lmt"], org),
        }

    @route("GET", API + r"/items")
    def list_items(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        return self._list(
            req, org, list(self._books(org)["items"].values()), key="items", id_key="item_id", report="Items",
            texts={"name": lambda i: i["name"], "description": lambda i: i["description"], "sku": lambda i: i["sku"]},
            exact={},
            statuses={"Status.All": lambda i: True, "Status.Active": lambda i: i["status"] == "active",
                      "Status.Inactive": lambda i: i["status"] == "inactive"},
            default_filter="Status.All",
            sorts={"name": lambda i: i["name"].casefold(), "rate": lambda i: Decimal(i["rate"]),
                   "tax_name": lambda i: i["tax_id"], "created_time": lambda i: int(i["_created"]),
                   "last_modified_time": lambda i: int(i["_lmt"])},
            default_sort=("name", "A"), out=lambda i: self._item_out(org, i))

    @route("POST", API + r"/items")
    def create_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item_from(org, self._body(req), None)
        self._books(org)["items"][rec["item_id"]] = rec
        self.persist()
        return ok({"item": self._item_out(org, rec)}, 201, "The item has been added.")

    @route("GET", API + r"/items/(?P<id>\d+)")
    def get_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        return ok({"item": self._item_out(org, self._item(org, req.params["id"]))})

    @route("PUT", API + r"/items/(?P<id>\d+)")
    def update_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item_from(org, self._body(req), self._item(org, req.params["id"]))
        self._books(org)["items"][rec["item_id"]] = rec
        self.persist()
        return ok({"item": self._item_out(org, rec)}, 200, "The item details have been updated.")

    @route("DELETE", API + r"/items/(?P<id>\d+)")
    def delete_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item(org, req.params["id"])
        if any(li.get("item_id") == rec["item_id"] for inv in self._books(org)["invoices"].values()
               for li in inv["line_items"]):
            raise zerr(400, 4, "The item is used in transactions and cannot be deleted. Mark it as inactive instead.")
        del self._books(org)["items"][rec["item_id"]]
        self.persist()
        return ok({}, 200, "The item has been deleted.")

    @route("POST", API + r"/items/(?P<id>\d+)/(?P<status>active|inactive)")
    def item_status(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item(org, req.params["id"])
        rec["status"], rec["_lmt"] = req.params["status"], self.now()
        self.persist()
        return ok({}, 200, f"The item has been marked as {req.params['status']}.")

    # -- invoices ---------------------------------------------------------------------------
    def _invoice(self, org: str, invoice_id: str) -> dict[str, Any]:
        rec = self._books(org)["invoices"].get(invoice_id)
        if rec is None:
            raise zerr(404, 1002, "Invoice does not exist.")
        return rec

    def _invoice_from(self, org: str, body: dict[str, Any], existing: dict[str, Any] | None,
                      *, own_number: bool) -> dict[str, Any]:
        books = self._books(org)
        now = self.now()
        rec: dict[str, Any] = dict(existing) if existing else {
            "invoice_id": self.new_id(), "_state": "draft", "reference_number": "", "notes": "", "terms": "",
            "is_inclusive_tax": False, "discount_type": "item_level", "payment_terms": 0,
            "payment_terms_label": "Due on Receipt", "_created": now, "_paid": "0"}
        if existing is not None and existing["_state"] == "void":
            raise zerr(400, 4, "Void invoices cannot be edited.")
        if existing is None or "customer_id" in body:
            customer = books["contacts"].get(s(body.get("customer_id")))
            if customer is None or customer["contact_type"] != "customer":
                raise zerr(400, 2, "Invalid value passed for customer_id")
            if existing and existing["customer_id"] != customer["contact_id"] and Decimal(existing["_paid"]):
                raise invalid("customer_id")
            rec["customer_id"] = customer["contact_id"]
            rec["currency_id"] = customer["currency_id"]
            if existing is None:
                rec["payment_terms"] = customer["payment_terms"]
                rec["payment_terms_label"] = customer["payment_terms_label"]
        if existing is None:
            if own_number:
                number = s(body.get("invoice_number")).strip()
                if not number:
                    raise invalid("invoice_number")
            else:
                books["numbers"]["invoice"] += 1
                number = f"INV-{books['numbers']['invoice']:06d}"
            rec["invoice_number"] = number
        elif "invoice_number" in body and s(body["invoice_number"]).strip():
            rec["invoice_number"] = s(body["invoice_number"]).strip()
        number = rec["invoice_number"].casefold()
        if any(i["invoice_number"].casefold() == number and i["invoice_id"] != rec["invoice_id"]
               for i in books["invoices"].values()):
            raise zerr(400, 1001, f"Invoice number {rec['invoice_number']} already exists")
        if "reference_number" in body:
            ref = s(body["reference_number"]).strip()
            if len(ref) > 100:
                raise invalid("reference_number")
            rec["reference_number"] = ref
        for field in ("notes", "terms"):
            if field in body:
                rec[field] = s(body[field])
        if "is_inclusive_tax" in body:
            rec["is_inclusive_tax"] = bool(body["is_inclusive_tax"])
        if "discount_type" in body:
            if body["discount_type"] not in ("item_level", "entity_level"):
                raise invalid("discount_type")
            rec["discount_type"] = body["discount_type"]
        for field in ("date", "due_date"):
            if body.get(field):
                try:
                    dt.date.fromisoformat(s(body[field]))
                except ValueError:
                    raise invalid(field) from None
                rec[field] = s(body[field])
        rec.setdefault("date", self.today(org))
        if not rec.get("due_date") or (existing is None and not body.get("due_date")):
            rec["due_date"] = (dt.date.fromisoformat(rec["date"]) + dt.timedelta(days=rec["payment_terms"])).isoformat()
        if rec["due_date"] < rec["date"]:
            raise invalid("due_date")
        if existing is None or "line_items" in body:
            rec["line_items"] = self._lines(org, body.get("line_items"), rec.get("line_items") or [])
        self._totals(org, rec)
        if Decimal(rec["_paid"]) > Decimal(rec["total"]):
            raise zerr(400, 4, "The invoice total cannot be less than the payments made.")
        rec["_lmt"] = now
        return rec

    def _lines(self, org: str, given: Any, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(given, list) or not given:
            raise invalid("line_items")
        books = self._books(org)
        known = {li["line_item_id"]: li for li in current}
        out = []
        for n, raw in enumerate(given, 1):
            if not isinstance(raw, dict):
                raise invalid("line_items")
            line = dict(known.get(s(raw.get("line_item_id")), {})) or {"line_item_id": self.new_id()}
            item = None
            if raw.get("item_id"):
                item = books["items"].get(s(raw["item_id"]))
                if item is None:
                    raise zerr(400, 2, "Invalid value passed for item_id")
            line["item_id"] = item["item_id"] if item else s(raw.get("item_id") or line.get("item_id"))
            line["name"] = s(raw.get("name") or (item["name"] if item else line.get("name")))
            if not line["name"] and not raw.get("description"):
                raise invalid("name")
            line["description"] = s(raw.get("description", line.get("description", "")))
            rate = raw.get("rate", line.get("rate", item["rate"] if item else None))
            if rate is None:
                raise invalid("rate")
            line["rate"] = str(dec(rate, "rate"))
            qty = dec(raw.get("quantity", line.get("quantity", 1)), "quantity")
            if qty <= 0:
                raise invalid("quantity")
            line["quantity"] = str(qty)
            discount = raw.get("discount", line.get("discount", 0))
            if isinstance(discount, str) and _PCT.match(discount):
                pct = Decimal(_PCT.match(discount).group(1))
                if not ZERO <= pct <= HUNDRED:
                    raise invalid("discount")
                line["discount"] = f"{pct}%"
            else:
                amount = dec(discount or 0, "discount")
                if amount < 0:
                    raise invalid("discount")
                line["discount"] = str(amount)
            tax_id = raw.get("tax_id", line.get("tax_id", ""))
            line["tax_id"] = self._tax(org, tax_id)["tax_id"] if tax_id else ""
            line["unit"] = s(raw.get("unit", line.get("unit", item["unit"] if item else "")))
            line["item_order"] = n
            out.append(line)
        return out

    def _totals(self, org: str, rec: dict[str, Any]) -> None:
        """Zoho's rounding: each line to the price precision, tax once per rate on the invoice."""
        by_rate: dict[Decimal, Decimal] = {}
        names: dict[Decimal, str] = {}
        amount = ZERO
        for line in rec["line_items"]:
            gross = Decimal(line["quantity"]) * Decimal(line["rate"])
            pct = _PCT.match(line["discount"])
            discount = gross * Decimal(pct.group(1)) / HUNDRED if pct else Decimal(line["discount"])
            total = money(gross - discount)
            if total < 0:
                raise invalid("discount")
            line["discount_amount"] = str(money(discount))
            line["item_total"] = str(total)
            rate = Decimal(self._tax(org, line["tax_id"])["tax_percentage"]) if line["tax_id"] else ZERO
            if line["tax_id"]:
                names[rate] = self._tax(org, line["tax_id"])["tax_name"]
            by_rate[rate] = by_rate.get(rate, ZERO) + total
            amount += total
        taxes = []
        tax_total = ZERO
        for rate, net in by_rate.items():
            if not rate:
                continue
            if rec["is_inclusive_tax"]:
                tax = money(net - net * HUNDRED / (HUNDRED + rate))
            else:
                tax = money(net * rate / HUNDRED)
            tax_total += tax
            taxes.append({"tax_name": f"{names.get(rate, 'Tax')} ({rate.normalize()}%)", "tax_amount": str(tax)})
        rec["taxes"] = taxes
        rec["sub_total"] = str(amount - tax_total if rec["is_inclusive_tax"] else amount)
        rec["tax_total"] = str(tax_total)
        rec["total"] = str(amount if rec["is_inclusive_tax"] else amount + tax_total)
        rec["_balance"] = str(Decimal(rec["total"]) - Decimal(rec["_paid"]))

    def _status(self, org: str, rec: dict[str, Any]) -> str:
        """Stored draft/sent/void; paid, partially paid and overdue are computed, as Zoho does."""
        if rec["_state"] in ("draft", "void"):
            return rec["_state"]
        balance, paid = Decimal(rec["_balance"]), Decimal(rec["_paid"])
        if balance <= 0:
            return "paid"
        if rec["due_date"] < self.today(org):
            return "overdue"
        if paid > 0:
            return "partially_paid"
        return "sent"

    def _invoice_summary(self, org: str, i: dict[str, Any]) -> dict[str, Any]:
        customer = self._books(org)["contacts"].get(i["customer_id"]) or {}
        cur = self._currency(org, i["currency_id"])
        return {
            "invoice_id": i["invoice_id"], "ach_payment_initiated": False,
            "customer_name": customer.get("contact_name", ""), "customer_id": i["customer_id"],
            "status": self._status(org, i), "invoice_number": i["invoice_number"],
            "reference_number": i["reference_number"], "date": i["date"], "due_date": i["due_date"],
            "currency_id": i["currency_id"], "currency_code": cur["currency_code"], "exchange_rate": Decimal(1),
            "total": Decimal(i["total"]), "balance": Decimal(i["_balance"]),
            "created_time": self.ts(i["_created"], org), "last_modified_time": self.ts(i["_lmt"], org),
        }

    def _invoice_detail(self, org: str, i: dict[str, Any]) -> dict[str, Any]:
        lines = []
        for li in i["line_items"]:
            tax = self._tax(org, li["tax_id"]) if li["tax_id"] else None
            pct = _PCT.match(li["discount"])
            lines.append({
                "line_item_id": li["line_item_id"], "item_id": li["item_id"], "name": li["name"],
                "description": li["description"], "item_order": li["item_order"], "rate": Decimal(li["rate"]),
                "quantity": Decimal(li["quantity"]), "unit": li["unit"],
                "discount": li["discount"] if pct else Decimal(li["discount"]),
                "discount_amount": Decimal(li["discount_amount"]), "tax_id": li["tax_id"],
                "tax_name": tax["tax_name"] if tax else "",
                "tax_percentage": Decimal(tax["tax_percentage"]) if tax else ZERO,
                "item_total": Decimal(li["item_total"]),
            })
        org_rec = self.state["orgs"][org]
        return {
            **self._invoice_summary(org, i),
            "payment_terms": i["payment_terms"], "payment_terms_label": i["payment_terms_label"],
            "is_inclusive_tax": i["is_inclusive_tax"], "discount_type": i["discount_type"],
            "is_discount_before_tax": True, "line_items": lines, "sub_total": Decimal(i["sub_total"]),
            "tax_total": Decimal(i["tax_total"]),
            "taxes": [{"tax_name": t["tax_name"], "tax_amount": Decimal(t["tax_amount"])} for t in i["taxes"]],
            "payment_made": Decimal(i["_paid"]), "credits_applied": ZERO, "write_off_amount": ZERO,
            "price_precision": org_rec["price_precision"], "notes": i["notes"], "terms": i["terms"],
            "invoice_url": f"{self.public_url}/app/{org}#/invoices/{i['invoice_id']}",
        }

    @route("GET", API + r"/invoices")
    def list_invoices(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        status_of = lambda i: self._status(org, i)  # noqa: E731 - a small getter
        wanted = req.arg("status")
        if wanted is not None and wanted not in ("draft", "sent", "overdue", "paid", "void", "unpaid",
                                                 "partially_paid", "viewed"):
            raise bad_param("status")
        rows = list(self._books(org)["invoices"].values())
        if wanted == "unpaid":
            rows = [r for r in rows if status_of(r) in ("sent", "overdue", "partially_paid")]
        elif wanted is not None:
            rows = [r for r in rows if status_of(r) == wanted]
        for name, test in (("date_start", lambda r, v: r["date"] >= v), ("date_end", lambda r, v: r["date"] <= v),
                           ("date_before", lambda r, v: r["date"] < v), ("date_after", lambda r, v: r["date"] > v)):
            value = req.arg(name)
            if value is not None:
                rows = [r for r in rows if test(r, value)]
        statuses = {"Status.All": lambda i: True}
        for word in ("Draft", "Sent", "Overdue", "Paid", "Void", "PartiallyPaid"):
            statuses[f"Status.{word}"] = (lambda w: lambda i: status_of(i).replace("_", "") == w.lower())(word)
        statuses["Status.Unpaid"] = lambda i: status_of(i) in ("sent", "overdue", "partially_paid")
        return self._list(
            req, org, rows, key="invoices", id_key="invoice_id", report="Invoices",
            texts={"invoice_number": lambda i: i["invoice_number"], "reference_number": lambda i: i["reference_number"],
                   "customer_name": lambda i: self._books(org)["contacts"].get(i["customer_id"], {}).get(
                       "contact_name", "")},
            exact={"customer_id": lambda i: i["customer_id"], "date": lambda i: i["date"],
                   "due_date": lambda i: i["due_date"]},
            statuses=statuses, default_filter="Status.All",
            sorts={"customer_name": lambda i: self._invoice_summary(org, i)["customer_name"].casefold(),
                   "invoice_number": lambda i: i["invoice_number"], "date": lambda i: i["date"],
                   "due_date": lambda i: i["due_date"], "total": lambda i: Decimal(i["total"]),
                   "balance": lambda i: Decimal(i["_balance"]), "created_time": lambda i: int(i["_created"]),
                   "last_modified_time": lambda i: int(i["_lmt"])},
            default_sort=("created_time", "D"), out=lambda i: self._invoice_summary(org, i))

    @route("POST", API + r"/invoices")
    def create_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        own = (req.arg("ignore_auto_number_generation") or "").lower() == "true"
        rec = self._invoice_from(org, self._body(req), None, own_number=own)
        self._books(org)["invoices"][rec["invoice_id"]] = rec
        self.persist()
        return ok({"invoice": self._invoice_detail(org, rec)}, 201, "The invoice has been created.")

    @route("GET", API + r"/invoices/(?P<id>\d+)")
    def get_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        return ok({"invoice": self._invoice_detail(org, self._invoice(org, req.params["id"]))})

    @route("PUT", API + r"/invoices/(?P<id>\d+)")
    def update_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        rec = self._invoice_from(org, self._body(req), self._invoice(org, req.params["id"]), own_number=False)
        self._books(org)["invoices"][rec["invoice_id"]] = rec
        self.persist()
        return ok({"invoice": self._invoice_detail(org, rec)}, 200, "Invoice information has been updated.")

    @route("DELETE", API + r"/invoices/(?P<id>\d+)")
    def delete_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        rec = self._invoice(org, req.params["id"])
        if Decimal(rec["_paid"]):
            raise zerr(400, 4, "Invoices with payments cannot be deleted. Delete the payments first.")
        del self._books(org)["invoices"][rec["invoice_id"]]
        self.persist()
        return ok({}, 200, "The invoice has been deleted.")

    @route("POST", API + r"/invoices/(?P<id>\d+)/status/(?P<to>sent|void|draft)")
    def invoice_status(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        rec = self._invoice(org, req.params["id"])
        to = req.params["to"]
        if to == "void" and Decimal(rec["_paid"]):
            raise zerr(400, 4, "Invoices with payments cannot be voided. Delete the payments first.")
        if to == "draft" and (rec["_state"] == "void" or Decimal(rec["_paid"])):
            raise zerr(400, 4, "Only unpaid invoices can be changed back to draft.")
        if to == "sent" and rec["_state"] == "void":
            raise zerr(400, 4, "Void invoices cannot be marked as sent.")
        rec["_state"], rec["_lmt"] = to, self.now()
        self.persist()
        return ok({}, 200, f"Invoice status has been changed to {to.capitalize()}.")

    @route("GET", API + r"/invoices/(?P<id>\d+)/payments")
    def invoice_payments(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        inv = self._invoice(org, req.params["id"])
        out = []
        for p in self._books(org)["payments"].values():
            for app in p["invoices"]:
                if app["invoice_id"] == inv["invoice_id"]:
                    out.append({"payment_id": p["payment_id"], "payment_number": p["payment_number"],
                                "invoice_id": inv["invoice_id"], "invoice_payment_id": app["invoice_payment_id"],
                                "payment_mode": p["payment_mode"], "description": p["description"],
                                "date": p["date"], "reference_number": p["reference_number"],
                                "exchange_rate": Decimal(1), "amount": Decimal(app["amount_applied"]),
                                "bank_charges": ZERO})
        return ok({"payments": out})

    # -- customer payments ------------------------------------------------------------------
    def _payment(self, org: str, payment_id: str) -> dict[str, Any]:
        rec = self._books(org)["payments"].get(payment_id)
        if rec is None:
            raise zerr(404, 1002, "Payment does not exist.")
        return rec

    def _new_payment(self, org: str, body: dict[str, Any]) -> dict[str, Any]:
        books = self._books(org)
        customer = books["contacts"].get(s(body.get("customer_id")))
        if customer is None:
            raise zerr(400, 2, "Invalid value passed for customer_id")
        amount = dec(body.get("amount"), "amount") if body.get("amount") is not None else None
        if amount is None or amount <= 0:
            raise invalid("amount")
        amount = money(amount)
        date = s(body.get("date")) or self.today(org)
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            raise invalid("date") from None
        applications = body.get("invoices") or []
        if not isinstance(applications, list):
            raise invalid("invoices")
        applied = ZERO
        plan = []
        for app in applications:
            inv = books["invoices"].get(s(app.get("invoice_id"))) if isinstance(app, dict) else None
            if inv is None or inv["customer_id"] != customer["contact_id"]:
                raise zerr(400, 2, "Invalid value passed for invoice_id")
            if inv["_state"] in ("draft", "void"):
                raise zerr(400, 4, f"Payments cannot be recorded for {inv['_state']} invoices.")
            part = money(dec(app.get("amount_applied"), "amount_applied"))
            if part <= 0 or part > Decimal(inv["_balance"]):
                raise zerr(400, 4, "The amount applied exceeds the balance due of the invoice.")
            applied += part
            plan.append((inv, part))
        if applied > amount:
            raise zerr(400, 4, "The amount applied to invoices exceeds the payment amount.")
        now = self.now()
        books["numbers"]["payment"] += 1
        rec = {
            "payment_id": self.new_id(), "payment_number": str(books["numbers"]["payment"]),
            "customer_id": customer["contact_id"], "payment_mode": s(body.get("payment_mode")) or "cash",
            "amount": str(amount), "unused_amount": str(amount - applied), "date": date,
            "reference_number": s(body.get("reference_number")), "description": s(body.get("description")),
            "currency_id": customer["currency_id"], "invoices": [], "_created": now, "_lmt": now,
        }
        for inv, part in plan:
            inv["_paid"] = str(Decimal(inv["_paid"]) + part)
            inv["_balance"] = str(Decimal(inv["total"]) - Decimal(inv["_paid"]))
            inv["_lmt"] = now
            rec["invoices"].append({"invoice_payment_id": self.new_id(), "invoice_id": inv["invoice_id"],
                                    "amount_applied": str(part)})
        books["payments"][rec["payment_id"]] = rec
        return rec

    def _payment_summary(self, org: str, p: dict[str, Any]) -> dict[str, Any]:
        books = self._books(org)
        numbers = [books["invoices"][a["invoice_id"]]["invoice_number"] for a in p["invoices"]
                   if a["invoice_id"] in books["invoices"]]
        return {
            "payment_id": p["payment_id"], "payment_number": p["payment_number"],
            "invoice_numbers": ",".join(numbers), "date": p["date"], "payment_mode": p["payment_mode"],
            "amount": Decimal(p["amount"]), "bcy_amount": Decimal(p["amount"]),
            "unused_amount": Decimal(p["unused_amount"]), "reference_number": p["reference_number"],
            "description": p["description"], "customer_id": p["customer_id"],
            "customer_name": books["contacts"].get(p["customer_id"], {}).get("contact_name", ""),
            "currency_code": self._currency(org, p["currency_id"])["currency_code"],
            "created_time": self.ts(p["_created"], org), "last_modified_time": self.ts(p["_lmt"], org),
        }

    def _payment_detail(self, org: str, p: dict[str, Any]) -> dict[str, Any]:
        books = self._books(org)
        out = self._payment_summary(org, p)
        del out["invoice_numbers"], out["bcy_amount"]
        apps = []
        for a in p["invoices"]:
            inv = books["invoices"].get(a["invoice_id"])
            apps.append({"invoice_payment_id": a["invoice_payment_id"], "invoice_id": a["invoice_id"],
                         "invoice_number": inv["invoice_number"] if inv else "", "date": inv["date"] if inv else "",
                         "total": Decimal(inv["total"]) if inv else ZERO,
                         "balance_amount": Decimal(inv["_balance"]) if inv else ZERO,
                         "amount_applied": Decimal(a["amount_applied"])})
        return {**out, "exchange_rate": Decimal(1), "bank_charges": ZERO, "invoices": apps}

    @route("GET", API + r"/customerpayments")
    def list_payments(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        contacts = self._books(org)["contacts"]
        return self._list(
            req, org, list(self._books(org)["payments"].values()), key="customerpayments", id_key="payment_id",
            report="Payments Received",
            texts={"customer_name": lambda p: contacts.get(p["customer_id"], {}).get("contact_name", ""),
                   "reference_number": lambda p: p["reference_number"], "notes": lambda p: p["description"]},
            exact={"customer_id": lambda p: p["customer_id"], "date": lambda p: p["date"],
                   "payment_mode": lambda p: p["payment_mode"]},
            statuses={"PaymentMode.All": lambda p: True}, default_filter="PaymentMode.All",
            sorts={"customer_name": lambda p: contacts.get(p["customer_id"], {}).get("contact_name", "").casefold(),
                   "payment_number": lambda p: int(p["payment_number"]), "payment_mode": lambda p: p["payment_mode"],
                   "date": lambda p: p["date"], "reference_number": lambda p: p["reference_number"],
                   "amount": lambda p: Decimal(p["amount"]), "created_time": lambda p: int(p["_created"]),
                   "last_modified_time": lambda p: int(p["_lmt"])},
            default_sort=("date", "D"), out=lambda p: self._payment_summary(org, p))

    @route("POST", API + r"/customerpayments")
    def create_payment(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        rec = self._new_payment(org, self._body(req))
        self.persist()
        return ok({"payment": self._payment_detail(org, rec)}, 201, "The payment has been created.")

    @route("GET", API + r"/customerpayments/(?P<id>\d+)")
    def get_payment(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        return ok({"payment": self._payment_detail(org, self._payment(org, req.params["id"]))})

    @route("DELETE", API + r"/customerpayments/(?P<id>\d+)")
    def delete_payment(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        rec = self._payment(org, req.params["id"])
        self._drop_payment(org, rec)
        self.persist()
        return ok({}, 200, "The payment has been deleted.")

    def _drop_payment(self, org: str, rec: dict[str, Any]) -> None:
        books = self._books(org)
        now = self.now()
        for app in rec["invoices"]:
            inv = books["invoices"].get(app["invoice_id"])
            if inv:
                inv["_paid"] = str(Decimal(inv["_paid"]) - Decimal(app["amount_applied"]))
                inv["_balance"] = str(Decimal(inv["total"]) - Decimal(inv["_paid"]))
                inv["_lmt"] = now
        del books["payments"][rec["payment_id"]]

    # -- the web app (links only) -----------------------------------------------------------
    @route("GET", r"/app/(?P<org>\d+)")
    def web_app(self, req: Request) -> Response:
        org = self.state["orgs"].get(req.params["org"], {}).get("name", "Zoho Books")
        page = (f"<!doctype html><title>{org} – Zoho Books (sandbox)</title>"
                f"<p>{org}: the record is named in this page's #fragment.</p>")
        return Response(200, page, content_type="text/html")

    # -- test helpers -----------------------------------------------------------------------
    def _org_of(self, kind: str, record_id: str) -> str:
        for org, books in self.state["books"].items():
            if record_id in books[kind]:
                return org
        raise KeyError(f"no {kind[:-1]} {record_id}")

    def record_payment(self, invoice_id: str, amount: Decimal, date: str) -> str:
        """A customer pays (part of) an invoice, as entered in Zoho's UI; returns the payment id."""
        with self.lock:
            org = self._org_of("invoices", invoice_id)
            inv = self._books(org)["invoices"][invoice_id]
            if inv["_state"] == "draft":  # recording a payment marks a draft invoice as sent
                inv["_state"] = "sent"
            rec = self._new_payment(org, {"customer_id": inv["customer_id"], "amount": Decimal(amount),
                                          "date": date, "payment_mode": "banktransfer",
                                          "invoices": [{"invoice_id": invoice_id, "amount_applied": Decimal(amount)}]})
            self.persist()
            return rec["payment_id"]

    def add_contact(self, body: dict[str, Any], org: str | None = None) -> str:
        """Someone adds a contact in Zoho's UI (same validation as the API); returns its id."""
        with self.lock:
            org = org or self.state["default_org"]
            rec = self._contact_from(org, body, None)
            self._books(org)["contacts"][rec["contact_id"]] = rec
            self.persist()
            return rec["contact_id"]

    def user_edit(self, kind: str, record_id: str, **fields: Any) -> None:
        """Someone edits a record in Zoho's UI (top-level fields only; bumps last_modified_time)."""
        with self.lock:
            org = self._org_of(kind, record_id)
            rec = self._books(org)[kind][record_id]
            rec.update(fields)
            rec["_lmt"] = self.now()
            self.persist()

    def user_delete(self, kind: str, record_id: str) -> None:
        """Someone deletes a record in Zoho's UI: it is gone, with no tombstone."""
        with self.lock:
            org = self._org_of(kind, record_id)
            del self._books(org)[kind][record_id]
            self.persist()


def _address(raw: dict[str, Any]) -> dict[str, str]:
    return {k: s(raw.get(k)).strip() for k in ("attention", "address", "street2", "city", "state", "state_code",
                                                "zip", "country", "phone", "fax")}


def _many(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
