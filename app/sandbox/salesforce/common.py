"""Salesforce imitation: limits, the standard objects' fields, record IDs, times, exact JSON numbers,
error bodies and the route decorator."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route

API_VERSIONS = tuple(f"{n}.0" for n in range(31, 68))  # 30.0 and older are retired; 67.0 is Summer '26
DATA = r"/services/data/v(?P<version>\d{2}\.\d)"
INNER = "x-sandbox-composite"
DAY = 86400.0
SESSION_TTL = 7200  # the default two-hour session timeout
LOCATOR_IDLE = 15 * 60
MAX_LOCATORS = 10  # open query cursors per user
BATCH_DEFAULT = 2000
COLLECTION_MAX = 200
RETRIEVE_MAX = 2000
COMPOSITE_MAX = 25
COMPOSITE_QUERIES_MAX = 5
DELETED_DAYS = 15
UPDATED_DAYS = 30
ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
CUSTOM_NAME_RE = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")
TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "id", "reference"}
NUMBER_TYPES = {"currency", "double", "percent"}
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECK = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
NO_SUCH_COLUMN_HINT = ("If you are attempting to use a custom field, be sure to append the '__c' after the custom "
                       "field name. Please reference your WSDL or the describe call for the appropriate names.")

PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "OpportunityLineItem": "00k",
          "Product2": "01t", "Pricebook2": "01s", "PricebookEntry": "01u", "OpportunityStage": "01J",
          "OpportunityContactRole": "00K", "User": "005", "Organization": "00D", "PermissionSet": "0PS",
          "FieldPermissions": "01k", "PermissionSetAssignment": "0Pa", "CustomField": "00N", "Locator": "01g"}
TYPE_OF_PREFIX = {v: k for k, v in PREFIX.items()}
LABELS = {"Account": ("Account", "Accounts"), "Contact": ("Contact", "Contacts"),
          "Opportunity": ("Opportunity", "Opportunities"),
          "OpportunityLineItem": ("Opportunity Product", "Opportunity Product"),
          "Product2": ("Product", "Products"), "Pricebook2": ("Price Book", "Price Books"),
          "PricebookEntry": ("Price Book Entry", "Price Book Entries"),
          "OpportunityStage": ("Opportunity Stage", "Opportunity Stages"),
          "OpportunityContactRole": ("Opportunity Contact Role", "Opportunity Contact Role"),
          "User": ("User", "Users"), "Organization": ("Organization", "Organizations"),
          "PermissionSet": ("Permission Set", "Permission Sets"),
          "FieldPermissions": ("Field Permissions", "Field Permissions"),
          "PermissionSetAssignment": ("Permission Set Assignment", "Permission Set Assignments")}
READ_ONLY_OBJECTS = {"OpportunityStage", "User", "Organization"}
CURRENCY_OBJECTS = {"Account", "Contact", "Opportunity", "OpportunityLineItem", "Product2", "PricebookEntry"}
CHILD_RELATIONSHIPS = {
    "Account": {"Contacts": ("Contact", "AccountId"), "Opportunities": ("Opportunity", "AccountId")},
    "Opportunity": {"OpportunityLineItems": ("OpportunityLineItem", "OpportunityId"),
                    "OpportunityContactRoles": ("OpportunityContactRole", "OpportunityId")},
    "Product2": {"PricebookEntries": ("PricebookEntry", "Product2Id")},
    "Pricebook2": {"PricebookEntries": ("PricebookEntry", "Pricebook2Id")},
    "PermissionSet": {"FieldPerms": ("FieldPermissions", "ParentId"),
                      "Assignments": ("PermissionSetAssignment", "PermissionSetId")},
}
# Deleting a parent deletes these children with it (master-detail and Salesforce's account cascade).
CASCADE = {"Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
           "Opportunity": (("OpportunityLineItem", "OpportunityId"), ("OpportunityContactRole", "OpportunityId")),
           "Contact": (("OpportunityContactRole", "ContactId"),)}
STAGES = (  # ApiName, DefaultProbability, IsClosed, IsWon, ForecastCategoryName
    ("Prospecting", 10, False, False, "Pipeline"), ("Qualification", 10, False, False, "Pipeline"),
    ("Needs Analysis", 20, False, False, "Pipeline"), ("Value Proposition", 50, False, False, "Pipeline"),
    ("Id. Decision Makers", 60, False, False, "Pipeline"), ("Perception Analysis", 70, False, False, "Pipeline"),
    ("Proposal/Price Quote", 75, False, False, "Pipeline"), ("Negotiation/Review", 90, False, False, "Pipeline"),
    ("Closed Won", 100, True, True, "Closed"), ("Closed Lost", 0, True, False, "Omitted"),
)
FORECAST = ("Omitted", "Pipeline", "BestCase", "Commit", "Closed")
TOOLING_TYPES = {"Text": "string", "Number": "double", "Currency": "currency", "Percent": "percent", "Date": "date",
                 "DateTime": "datetime", "Checkbox": "boolean", "Picklist": "picklist", "LongTextArea": "textarea",
                 "Email": "email", "Phone": "phone", "Url": "url"}


# -- field definitions ------------------------------------------------------------------------------

def _f(name: str, ftype: str, label: str, *, length: int | None = None, required: bool = False, ro: bool = False,
       create_only: bool = False, ref: str | None = None, rel: str | None = None, precision: int | None = None,
       scale: int | None = None, values: tuple[str, ...] | None = None, defaulted: bool = False,
       unique: bool = False, calculated: bool = False) -> dict[str, Any]:
    if length is None:
        length = 18 if ftype in ("id", "reference") else 255 if ftype in TEXT_TYPES else 0
    return {"name": name, "type": ftype, "label": label, "length": length,
            "precision": precision if precision is not None else (18 if ftype in NUMBER_TYPES else 0),
            "scale": scale if scale is not None else (2 if ftype in NUMBER_TYPES else 0),
            "createable": not ro, "updateable": not ro and not create_only,
            "nillable": not required and ftype != "boolean" and name != "Id",
            "required": required, "custom": False, "referenceTo": [ref] if ref else [], "relationshipName": rel,
            "values": values, "defaultedOnCreate": defaulted or ftype == "boolean", "unique": unique,
            "externalId": False, "calculated": calculated}


def _system() -> list[dict[str, Any]]:
    return [
        _f("Id", "id", "Record ID", ro=True),
        _f("IsDeleted", "boolean", "Deleted", ro=True),
        _f("CreatedDate", "datetime", "Created Date", ro=True),
        _f("CreatedById", "reference", "Created By ID", ro=True, ref="User", rel="CreatedBy"),
        _f("LastModifiedDate", "datetime", "Last Modified Date", ro=True),
        _f("LastModifiedById", "reference", "Last Modified By ID", ro=True, ref="User", rel="LastModifiedBy"),
        _f("SystemModstamp", "datetime", "System Modstamp", ro=True),
    ]


def _address(prefix: str, label: str) -> list[dict[str, Any]]:
    return [_f(f"{prefix}Street", "textarea", f"{label} Street", length=255),
            _f(f"{prefix}City", "string", f"{label} City", length=40),
            _f(f"{prefix}State", "string", f"{label} State/Province", length=80),
            _f(f"{prefix}PostalCode", "string", f"{label} Zip/Postal Code", length=20),
            _f(f"{prefix}Country", "string", f"{label} Country", length=80)]


def _owner() -> dict[str, Any]:
    return _f("OwnerId", "reference", "Owner ID", ref="User", rel="Owner", defaulted=True)


STANDARD: dict[str, list[dict[str, Any]]] = {
    "Account": [_owner(), _f("Name", "string", "Account Name", required=True), *_address("Billing", "Billing"),
                *_address("Shipping", "Shipping"), _f("Phone", "phone", "Account Phone", length=40),
                _f("Website", "url", "Website"),
                _f("MasterRecordId", "reference", "Master Record ID", ro=True, ref="Account", rel="MasterRecord")],
    "Contact": [_owner(), _f("AccountId", "reference", "Account ID", ref="Account", rel="Account"),
                _f("FirstName", "string", "First Name", length=40),
                _f("LastName", "string", "Last Name", length=80, required=True),
                _f("Email", "email", "Email", length=80), _f("Phone", "phone", "Business Phone", length=40),
                _f("MobilePhone", "phone", "Mobile Phone", length=40), _f("Title", "string", "Title", length=128),
                *_address("Mailing", "Mailing"),
                _f("MasterRecordId", "reference", "Master Record ID", ro=True, ref="Contact", rel="MasterRecord")],
    "Opportunity": [_owner(), _f("AccountId", "reference", "Account ID", ref="Account", rel="Account"),
                    _f("Name", "string", "Name", length=120, required=True),
                    _f("Amount", "currency", "Amount"),
                    _f("StageName", "picklist", "Stage", length=255, required=True),
                    _f("CloseDate", "date", "Close Date", required=True),
                    _f("Probability", "percent", "Probability (%)", precision=3, scale=0, defaulted=True),
                    _f("IsClosed", "boolean", "Closed", ro=True, calculated=True),
                    _f("IsWon", "boolean", "Won", ro=True, calculated=True),
                    _f("ForecastCategoryName", "picklist", "Forecast Category", values=FORECAST, defaulted=True),
                    _f("Pricebook2Id", "reference", "Price Book ID", ref="Pricebook2", rel="Pricebook2"),
                    _f("HasOpportunityLineItem", "boolean", "Has Line Item", ro=True, calculated=True)],
    "OpportunityLineItem": [
        _f("OpportunityId", "reference", "Opportunity ID", create_only=True, required=True, ref="Opportunity",
           rel="Opportunity"),
        _f("PricebookEntryId", "reference", "Price Book Entry ID", create_only=True, ref="PricebookEntry",
           rel="PricebookEntry"),
        _f("Product2Id", "reference", "Product ID", create_only=True, ref="Product2", rel="Product2"),
        _f("Quantity", "double", "Quantity", precision=12, scale=2, required=True),
        _f("UnitPrice", "currency", "Sales Price"),
        _f("ListPrice", "currency", "List Price", ro=True),
        _f("Discount", "percent", "Discount", precision=5, scale=2),
        _f("Subtotal", "currency", "Subtotal", ro=True, calculated=True),
        _f("TotalPrice", "currency", "Total Price"),
        _f("ServiceDate", "date", "Date"),
        _f("Description", "string", "Line Description", length=255)],
    "Product2": [_f("Name", "string", "Product Name", required=True), _f("ProductCode", "string", "Product Code"),
                 _f("Description", "textarea", "Product Description", length=4000),
                 _f("IsActive", "boolean", "Active"),
                 _f("Family", "picklist", "Product Family", values=("Licences", "Services", "Hardware")),
                 _f("StockKeepingUnit", "string", "Product SKU", length=180),
                 _f("QuantityUnitOfMeasure", "picklist", "Quantity Unit Of Measure",
                    values=("Each", "Hour", "Day", "Month", "Year"))],
    "Pricebook2": [_f("Name", "string", "Price Book Name", required=True), _f("IsActive", "boolean", "Active"),
                   _f("IsStandard", "boolean", "Is Standard Price Book", ro=True)],
    "PricebookEntry": [
        _f("Pricebook2Id", "reference", "Price Book ID", create_only=True, required=True, ref="Pricebook2",
           rel="Pricebook2"),
        _f("Product2Id", "reference", "Product ID", create_only=True, required=True, ref="Product2", rel="Product2"),
        _f("UnitPrice", "currency", "List Price", required=True), _f("IsActive", "boolean", "Active"),
        _f("UseStandardPrice", "boolean", "Use Standard Price")],
    "OpportunityStage": [_f("ApiName", "string", "Api Name", ro=True), _f("MasterLabel", "string", "Master Label",
                                                                          ro=True),
                         _f("IsActive", "boolean", "Active", ro=True), _f("IsClosed", "boolean", "Closed", ro=True),
                         _f("IsWon", "boolean", "Won", ro=True),
                         _f("DefaultProbability", "percent", "Probability (%)", ro=True, precision=3, scale=0),
                         _f("SortOrder", "int", "Sort Order", ro=True),
                         _f("ForecastCategoryName", "picklist", "Forecast Category", ro=True, values=FORECAST)],
    "OpportunityContactRole": [
        _f("OpportunityId", "reference", "Opportunity ID", create_only=True, required=True, ref="Opportunity",
           rel="Opportunity"),
        _f("ContactId", "reference", "Contact ID", required=True, ref="Contact", rel="Contact"),
        _f("Role", "picklist", "Role", values=("Business User", "Decision Maker", "Economic Buyer",
                                               "Economic Decision Maker", "Evaluator", "Executive Sponsor",
                                               "Influencer", "Technical Buyer", "Other")),
        _f("IsPrimary", "boolean", "Primary")],
    "User": [_f("Username", "string", "Username", ro=True), _f("Name", "string", "Full Name", ro=True),
             _f("FirstName", "string", "First Name", ro=True), _f("LastName", "string", "Last Name", ro=True),
             _f("Email", "email", "Email", ro=True), _f("IsActive", "boolean", "Active", ro=True)],
    "Organization": [_f("Name", "string", "Name", ro=True),
                     _f("DefaultCurrencyIsoCode", "picklist", "Currency Locale", ro=True),
                     _f("Country", "string", "Country", ro=True), _f("IsSandbox", "boolean", "Is Sandbox", ro=True),
                     _f("OrganizationType", "string", "Edition", ro=True),
                     _f("InstanceName", "string", "Instance Name", ro=True)],
    "PermissionSet": [_f("Name", "string", "Name", length=80, required=True, unique=True),
                      _f("Label", "string", "Label", length=80, required=True),
                      _f("Description", "textarea", "Description", length=255)],
    "FieldPermissions": [
        _f("ParentId", "reference", "Parent ID", create_only=True, required=True, ref="PermissionSet", rel="Parent"),
        _f("SobjectType", "string", "Sobject Type Name", create_only=True, required=True),
        _f("Field", "string", "Field Name", create_only=True, required=True),
        _f("PermissionsRead", "boolean", "Read Access"), _f("PermissionsEdit", "boolean", "Edit Access")],
    "PermissionSetAssignment": [
        _f("PermissionSetId", "reference", "Permission Set ID", create_only=True, required=True,
           ref="PermissionSet", rel="PermissionSet"),
        _f("AssigneeId", "reference", "Assignee ID", create_only=True, required=True, ref="User", rel="Assignee")],
}
OWNED = {obj for obj, fields in STANDARD.items() if any(f["name"] == "OwnerId" for f in fields)}


# -- ids, times, numbers ------------------------------------------------------------------------------

def checksum(id15: str) -> str:
    """The three characters that make a 15-character ID case-insensitive (18-character form)."""
    out = ""
    for chunk in range(3):
        flags = sum(1 << i for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")
        out += CHECK[flags]
    return out


def make_id(prefix: str, n: int) -> str:
    digits = ""
    while True:
        n, rem = divmod(n, 62)
        digits = B62[rem] + digits
        if not n:
            break
    id15 = prefix + "5g" + digits.rjust(10, "0")
    return id15 + checksum(id15)


def norm_id(value: str) -> str | None:
    """15 or 18 characters (any case for 18) -> the canonical 18-character ID, or None if malformed."""
    if not isinstance(value, str) or not ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + checksum(value)
    chars = list(value[:15])
    for chunk in range(3):
        pos = CHECK.find(value[15 + chunk].upper())
        if pos < 0:
            return None
        for i in range(5):
            c = chunk * 5 + i
            chars[c] = chars[c].upper() if pos & (1 << i) else chars[c].lower()
    id15 = "".join(chars)
    return id15 + checksum(id15)


def fmt_dt(epoch: float) -> str:
    """'2026-05-01T09:30:12.000+0000', Salesforce's datetime shape."""
    total = round(epoch * 1000)
    secs, ms = divmod(total, 1000)
    return dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}+0000"


def parse_dt(text: str) -> float | None:
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", text.strip())
    if not m:
        return None
    zone = m.group(4) or "Z"
    if zone != "Z" and ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        moment = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{m.group(3) or ''}"
                                           f"{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None
    return moment.timestamp()


def _num_text(value: Decimal, ftype: str) -> str:
    """Doubles print with a decimal point (1500.0), integers without."""
    if ftype == "int":
        return str(int(value))
    if value == value.to_integral_value():
        return f"{int(value)}.0"
    return format(value.normalize(), "f")


class _Num:
    """A number to print exactly as given (JSON has no Decimal)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _mark(obj: Any) -> Any:
    if isinstance(obj, _Num):
        return "\x00N" + obj.text + "\x00"
    if isinstance(obj, Decimal):
        return "\x00N" + (f"{int(obj)}.0" if obj == obj.to_integral_value() else format(obj.normalize(), "f")) + "\x00"
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_MARKED = re.compile(r'"\\u0000N(-?[0-9.]+)\\u0000"')


def dumps(obj: Any) -> bytes:
    return _MARKED.sub(r"\1", json.dumps(obj, default=_mark, ensure_ascii=False)).encode()


def _errors(code: str, message: str, fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
    out: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        out["fields"] = list(fields)
    return [out]


def _fail(status: int, code: str, message: str, fields: Iterable[str] | None = None) -> HttpError:
    return HttpError(status, _errors(code, message, fields))


class RecordError(Exception):
    """One record's save failed; ``errors`` are SaveResult errors (statusCode, message, fields)."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = (), duplicate: dict | None = None):
        super().__init__(message)
        self.errors = [{"statusCode": code, "message": message, "fields": list(fields)}]
        self.duplicate = duplicate

    def api_errors(self) -> list[dict[str, Any]]:
        """The same errors as a REST error array (errorCode; with duplicateResult when there is one)."""
        out = []
        for e in self.errors:
            item: dict[str, Any] = {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
            if self.duplicate is not None:
                item["duplicateResult"] = self.duplicate
            out.append(item)
        return out


# -- SOQL -----------------------------------------------------------------------------------------


def _version_label(version: str) -> str:
    n = int(float(version)) - 62
    return f"{('Winter', 'Spring', 'Summer')[n % 3]} '{25 + n // 3:02d}"


def api(method: str, pattern: str, *, kind: str = "other") -> Callable:
    """Declare a REST route under /services/data/vNN.0 (auth, allocation and encoding in _serve)."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: Any, req: Request) -> Response:
            return self._serve(req, fn)

        wrapper.kind = kind  # type: ignore[attr-defined]
        route(method, DATA + pattern)(wrapper)
        return wrapper

    return deco


class _Halted(Exception):
    """A composite subrequest could not run because a reference it needs failed."""


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, int | Decimal):
        return "VALUE_NUMBER"
    if isinstance(value, list):
        return "START_ARRAY"
    return "START_OBJECT"
