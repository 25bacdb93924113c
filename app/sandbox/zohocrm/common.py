"""Zoho CRM imitation: modules, field definitions, exact JSON numbers, times and error bodies."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from decimal import Decimal
from typing import Any

from app.sandbox.base import HttpError

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
ROLE_ID = "4876876000000026005"
SINGULAR_LABEL = {"Accounts": "Account", "Contacts": "Contact", "Deals": "Deal", "Products": "Product"}
USER_TYPES = ("AllUsers", "ActiveUsers", "DeactiveUsers", "ConfirmedUsers", "NotConfirmedUsers",
              "DeletedUsers", "ActiveConfirmedUsers", "AdminUsers", "ActiveConfirmedAdmins", "CurrentUser")
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
