"""A local imitation of Salesforce's REST API (one org) and its OAuth server.

Follows ../shared/reference/salesforce.md and salesforce-rest-subset.openapi.yaml:
- OAuth web-server flow with PKCE at /services/oauth2/{authorize,token,revoke,introspect}; token
  responses carry instance_url, id (identity URL with org and user IDs), issued_at and signature,
  never expires_in; sessions last two hours (extended when used past half-time); refresh tokens do
  not rotate unless the app is set to rotate them; 401 INVALID_SESSION_ID bodies.
- REST under /services/data/vNN.0/: sObject CRUD and describe, SOQL query/queryAll with a small
  real parser (SELECT fields, parent fields, child subqueries, COUNT(), WHERE with AND/OR/NOT,
  comparisons, IN, LIKE, ORDER BY, LIMIT, OFFSET) and nextRecordsUrl paging (2000 a batch),
  getUpdated/getDeleted, sObject Collections (200 records, allOrNone), Composite (25 subrequests,
  @{ref.field} references), limits, Tooling CustomField creation.
- Error bodies are JSON arrays of {message, errorCode, fields}; duplicate rules on Account Name and
  Contact Email answer DUPLICATES_DETECTED with a duplicateResult (the short form in Collections).
- The daily API allocation (rolling 24 h) is reported in Sforce-Limit-Info on every response and
  enforced with 403 REQUEST_LIMIT_EXCEEDED (Salesforce never answers 429).
- Custom fields created through the Tooling API are invisible until field-level security is
  granted through a permission set assigned to the user, as in a real org.
Money is kept as Decimal strings in the state and printed as exact JSON numbers.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import html
import json
import re
import secrets
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError, Request, Response, SandboxApp, route

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

_TOKEN = re.compile(r"""\s*(?:
    (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\d:T])
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
)""", re.X)
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
            "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "COUNT", "INCLUDES", "EXCLUDES"}


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].strip().split(" ")[0]
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{bad}'")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value.upper() in KEYWORDS:
            kind, value = "kw", value.upper()
        out.append((kind, value))
        pos = m.end()
    return out


class SoqlParser:
    """Recursive descent over the tokens; produces plain dicts the evaluator walks."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> str:
        tok = self.take()
        if tok[0] != kind or (value is not None and tok[1] != value):
            shown = tok[1] or "<end of query>"
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}'")
        return tok[1]

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok[0] == "kw" and tok[1] in words

    def parse(self) -> dict[str, Any]:
        query = self.query()
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()[1]}'")
        return query

    def query(self) -> dict[str, Any]:
        self.expect("kw", "SELECT")
        items: list[dict[str, Any]] = []
        count = False
        while True:
            if self.is_kw("COUNT") and self.peek(1) == ("punct", "("):
                self.take(), self.take()
                self.expect("punct", ")")
                count = True
            elif self.peek() == ("punct", "("):
                self.take()
                items.append({"sub": self.query()})
                self.expect("punct", ")")
            else:
                kind, value = self.take()
                if kind != "name":
                    raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value or '<end of query>'}'")
                items.append({"path": value})
            if self.peek() == ("punct", ","):
                self.take()
                continue
            break
        self.expect("kw", "FROM")
        sobject = self.expect("name")
        where = None
        if self.is_kw("WHERE"):
            self.take()
            where = self.condition()
        order: list[tuple[str, bool, bool]] = []
        if self.is_kw("ORDER"):
            self.take()
            self.expect("kw", "BY")
            while True:
                path = self.expect("name")
                desc = False
                if self.is_kw("ASC", "DESC"):
                    desc = self.take()[1] == "DESC"
                nulls_last = desc
                if self.is_kw("NULLS"):
                    self.take()
                    nulls_last = self.take()[1] == "LAST"
                order.append((path, desc, nulls_last))
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
        limit = offset = None
        if self.is_kw("LIMIT"):
            self.take()
            limit = self._int()
        if self.is_kw("OFFSET"):
            self.take()
            offset = self._int()
        if count and items:
            raise SoqlError("MALFORMED_QUERY", "COUNT() cannot be combined with other fields")
        return {"items": items, "count": count, "from": sobject, "where": where, "order": order, "limit": limit,
                "offset": offset}

    def _int(self) -> int:
        kind, value = self.take()
        if kind != "num" or not value.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value}'")
        return int(value)

    def condition(self) -> dict[str, Any]:
        parts = [self.conjunction()]
        while self.is_kw("OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else {"or": parts}

    def conjunction(self) -> dict[str, Any]:
        parts = [self.negation()]
        while self.is_kw("AND"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else {"and": parts}

    def negation(self) -> dict[str, Any]:
        if self.is_kw("NOT"):
            self.take()
            return {"not": self.negation()}
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.condition()
            self.expect("punct", ")")
            return inner
        path = self.expect("name")
        if self.is_kw("NOT") and self.peek(1) == ("kw", "IN"):
            self.take(), self.take()
            return {"in": path, "values": self.value_list(), "negate": True}
        if self.is_kw("IN"):
            self.take()
            return {"in": path, "values": self.value_list(), "negate": False}
        if self.is_kw("LIKE"):
            self.take()
            kind, raw = self.value()
            if kind != "str":
                raise SoqlError("MALFORMED_QUERY", "LIKE takes a quoted string")
            return {"like": path, "pattern": raw}
        kind, op = self.take()
        if kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op or '<end of query>'}'")
        return {"cmp": path, "op": "!=" if op == "<>" else op, "value": self.value()}

    def value_list(self) -> list[tuple[str, Any]]:
        self.expect("punct", "(")
        if self.is_kw("SELECT"):
            raise SoqlError("MALFORMED_QUERY", "semi-join subqueries are not supported by this sandbox")
        values = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            values.append(self.value())
        self.expect("punct", ")")
        return values

    def value(self) -> tuple[str, Any]:
        kind, raw = self.take()
        if kind == "str":
            return "str", re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
                                 raw[1:-1])
        if kind == "num":
            return "num", Decimal(raw)
        if kind == "dt":
            return "dt", parse_dt(raw)
        if kind == "date":
            try:
                dt.date.fromisoformat(raw)
            except ValueError as exc:
                raise SoqlError("MALFORMED_QUERY", f"invalid date: {raw}") from exc
            return "date", raw
        if kind == "kw" and raw in ("TRUE", "FALSE"):
            return "bool", raw == "TRUE"
        if kind == "kw" and raw == "NULL":
            return "null", None
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{raw or '<end of query>'}'")


def _like(pattern: str) -> re.Pattern[str]:
    out = ""
    for ch in pattern:
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
    return re.compile(f"^{out}$", re.I | re.S)


def _version_label(version: str) -> str:
    n = int(float(version)) - 62
    return f"{('Winter', 'Spring', 'Summer')[n % 3]} '{25 + n // 3:02d}"


def api(method: str, pattern: str, *, kind: str = "other") -> Callable:
    """Declare a REST route under /services/data/vNN.0 (auth, allocation and encoding in _serve)."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: SalesforceSandbox, req: Request) -> Response:
            return self._serve(req, fn)

        wrapper.kind = kind  # type: ignore[attr-defined]
        route(method, DATA + pattern)(wrapper)
        return wrapper

    return deco


class SalesforceSandbox(SandboxApp):
    """One Salesforce org: OAuth, sObjects, SOQL, replication, collections, composite and limits."""

    provider = "salesforce"
    access_ttl = SESSION_TTL
    refresh_ttl = None  # "valid until revoked", the default refresh token policy
    refresh_grace = 0

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 multicurrency: bool = True, api_max: int = 15_000, rotate_refresh: bool = False,
                 admin: bool = True) -> None:
        self.multicurrency = multicurrency
        self.api_max = api_max  # Developer Edition's 15,000 a rolling day
        self.refresh_rotates = rotate_refresh
        self.admin = admin  # the user has "Customize Application" (Tooling API field creation)
        self.consumer_secret = "sandbox-secret"
        self._inner_key = secrets.token_hex(8)
        self._locators: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._signing_secret: str | None = None
        super().__init__(state_file, clock=clock)
        self.demo_ids: dict[str, str] = dict(self.state.get("demo_ids") or {})

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        now = self.now()
        org_id, user_id = make_id(PREFIX["Organization"], 1), make_id(PREFIX["User"], 1)
        state: dict[str, Any] = {
            "org_id": org_id, "user_id": user_id, "multicurrency": self.multicurrency,
            "currencies": ["USD", "GBP", "EUR", "AUD", "CAD"] if self.multicurrency else ["USD"],
            "records": {obj: {} for obj in STANDARD}, "custom_fields": {obj: {} for obj in STANDARD},
            "deleted_log": {obj: [] for obj in STANDARD}, "counters": {},
            "usage": {}, "api_max": self.api_max,
            "duplicate_rules": {
                "Account": {"active": True, "action": "alert", "field": "Name",
                            "rule": "Standard_Account_Duplicate_Rule", "match": "Standard_Account_Match_Rule_v1_0"},
                "Contact": {"active": True, "action": "alert", "field": "Email",
                            "rule": "Standard_Contact_Duplicate_Rule", "match": "Standard_Contact_Match_Rule_v1_1"}},
        }
        self.state = state
        self._put("Organization", org_id, {
            "Name": "Crossledger Demo Company", "DefaultCurrencyIsoCode": "USD", "Country": "US",
            "IsSandbox": False, "OrganizationType": "Developer Edition", "InstanceName": "USA1234S"}, now)
        self._put("User", user_id, {"Username": "dana.owner@crossledger-demo.test", "Name": "Dana Owner",
                                    "FirstName": "Dana", "LastName": "Owner",
                                    "Email": "dana.owner@crossledger-demo.test", "IsActive": True}, now)
        for n, (name, prob, closed, won, forecast) in enumerate(STAGES, start=1):
            self._put("OpportunityStage", self._new_id("OpportunityStage"), {
                "ApiName": name, "MasterLabel": name, "IsActive": True, "IsClosed": closed, "IsWon": won,
                "DefaultProbability": str(prob), "SortOrder": n, "ForecastCategoryName": forecast}, now)
        self._put("Pricebook2", self._new_id("Pricebook2"), {"Name": "Standard Price Book", "IsActive": True,
                                                             "IsStandard": True}, now)
        return state

    def _new_id(self, obj: str) -> str:
        return make_id(PREFIX[obj], self.next_id(obj))

    def _put(self, obj: str, rid: str, values: dict[str, Any], when: float) -> dict[str, Any]:
        """Store a record as seeded data (no validation, no duplicate rules)."""
        user = self.state["user_id"]
        rec: dict[str, Any] = {"Id": rid, "IsDeleted": False, "CreatedDate": when, "CreatedById": user,
                               "LastModifiedDate": when, "LastModifiedById": user, "SystemModstamp": when}
        if obj in OWNED:
            rec["OwnerId"] = user
        rec.update(values)
        self.state["records"][obj][rid] = rec
        return rec

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth") or {"codes": {}, "access": {}, "refresh": {}}
            self.state = self.empty_state()
            self.state["oauth"] = oauth
            self.demo_ids = {}
            self._locators.clear()
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed '{kind}'")
            self.state["demo_ids"] = self.demo_ids
            self.persist()

    def _seed_demo(self) -> None:
        from app.sandbox.demo_data import COUNTRY_NAMES, demo_data

        data = demo_data()
        start = self.now() - 30 * DAY
        tick = iter(range(10**6))

        def stamp() -> float:
            return round(start + next(tick) * 60, 3)

        self.add_custom_field("Account", "Tax_Id__c", "Tax ID", "string", length=40)
        self.add_custom_field("Account", "Billing_Email__c", "Billing Email", "string", length=80)
        mc = self.multicurrency
        std_pb = self.standard_pricebook()
        entries: dict[tuple[str, str], str] = {}
        for sku, name, price in data.products:
            when = stamp()
            family = "Licences" if sku.startswith("LIC") else "Hardware" if sku.startswith("HW") else "Services"
            pid = self._new_id("Product2")
            self._put("Product2", pid, {"Name": name, "ProductCode": sku, "Description": name, "IsActive": True,
                                        "Family": family, "StockKeepingUnit": sku,
                                        "QuantityUnitOfMeasure": "Hour" if sku == "CONS-HR" else "Each",
                                        **({"CurrencyIsoCode": "USD"} if mc else {})}, when)
            self.demo_ids[sku] = pid
            for cur in self.state["currencies"]:
                eid = self._new_id("PricebookEntry")
                self._put("PricebookEntry", eid, {"Pricebook2Id": std_pb, "Product2Id": pid, "UnitPrice": str(price),
                                                  "IsActive": True, "UseStandardPrice": False,
                                                  **({"CurrencyIsoCode": cur} if mc else {})}, when)
                entries[(pid, cur)] = eid
        for company in data.companies:
            aid = self._new_id("Account")
            self._put("Account", aid, {
                "Name": company.name, "BillingStreet": company.address_line1, "BillingCity": company.city,
                "BillingState": company.region, "BillingPostalCode": company.postal_code,
                "BillingCountry": company.country_name, "Phone": company.phone,
                "Website": f"https://{company.domain}" if company.domain else None,
                "Tax_Id__c": company.tax_id, "Billing_Email__c": company.email,
                **({"CurrencyIsoCode": company.currency} if mc else {})}, stamp())
            self.demo_ids[company.key] = aid
        first_contact: dict[str, str] = {}
        for person in data.people:
            cid = self._new_id("Contact")
            account = self.demo_ids.get(person.company_key) if person.company_key else None
            currency = next((c.currency for c in data.companies if c.key == person.company_key), "USD")
            self._put("Contact", cid, {
                "AccountId": account, "FirstName": person.first_name, "LastName": person.last_name,
                "Email": person.email, "Phone": person.phone, "MailingCity": person.city,
                "MailingCountry": COUNTRY_NAMES.get(person.country or "", person.country),
                **({"CurrencyIsoCode": currency} if mc else {})}, stamp())
            self.demo_ids[person.key] = cid
            if account and person.company_key not in first_contact:
                first_contact[person.company_key] = cid
        open_stages = [s[0] for s in STAGES if not s[2]]
        for n, deal in enumerate(data.deals):
            when = stamp()
            stage = {"won": "Closed Won", "lost": "Closed Lost"}.get(deal.stage, open_stages[n % len(open_stages)])
            info = self._stage(stage)
            oid = self._new_id("Opportunity")
            currency = deal.currency if mc else "USD"
            opp = self._put("Opportunity", oid, {
                "AccountId": self.demo_ids[deal.company_key], "Name": deal.name, "Amount": None,
                "StageName": stage, "CloseDate": deal.close_date, "Probability": info["DefaultProbability"],
                "IsClosed": info["IsClosed"], "IsWon": info["IsWon"],
                "ForecastCategoryName": info["ForecastCategoryName"], "Pricebook2Id": std_pb,
                "HasOpportunityLineItem": False, **({"CurrencyIsoCode": currency} if mc else {})}, when)
            self.demo_ids[deal.key] = oid
            for line in deal.lines:
                pid = self.demo_ids[line.sku]
                entry = self.state["records"]["PricebookEntry"][entries[(pid, currency)]]
                values = {"OpportunityId": oid, "PricebookEntryId": entry["Id"], "Product2Id": pid,
                          "Quantity": str(line.quantity), "UnitPrice": str(line.unit_price),
                          "ListPrice": entry["UnitPrice"],
                          "Discount": str(line.discount_percent) if line.discount_percent else None,
                          "ServiceDate": None, "Description": None, **({"CurrencyIsoCode": currency} if mc else {})}
                values.update(self._line_totals(values))
                self._put("OpportunityLineItem", self._new_id("OpportunityLineItem"), values, when)
            self._roll_up(opp, when, touch=False)
            contact = first_contact.get(deal.company_key)
            if contact:
                self._put("OpportunityContactRole", self._new_id("OpportunityContactRole"), {
                    "OpportunityId": oid, "ContactId": contact, "Role": "Decision Maker", "IsPrimary": True}, when)

    # -- schema -----------------------------------------------------------------------------
    def add_custom_field(self, obj: str, api_name: str, label: str, ftype: str, *, length: int | None = None,
                         precision: int | None = None, scale: int | None = None,
                         values: tuple[str, ...] | None = None, visible: bool = True) -> dict[str, Any]:
        """Add a custom field as an admin would in Setup (``visible``: granted to the user's profile)."""
        field = _f(api_name, ftype, label, length=length, precision=precision, scale=scale, values=values)
        field.update(custom=True, id=make_id(PREFIX["CustomField"], self.next_id("CustomField")), profile=visible,
                     defaultedOnCreate=ftype == "boolean")
        self.state["custom_fields"][obj][api_name] = field
        return field

    def remove_custom_field(self, obj: str, api_name: str) -> None:
        """An admin deletes a custom field: its values go with it."""
        with self.lock:
            del self.state["custom_fields"][obj][api_name]
            for rec in self.state["records"][obj].values():
                rec.pop(api_name, None)
            self.persist()

    def _granted(self, obj: str) -> tuple[set[str], set[str]]:
        """Custom fields of ``obj`` the user may read and edit through permission sets."""
        recs = self.state["records"]
        user = self.state["user_id"]
        sets = {a["PermissionSetId"] for a in recs["PermissionSetAssignment"].values()
                if not a["IsDeleted"] and a["AssigneeId"] == user}
        read, edit = set(), set()
        for fp in recs["FieldPermissions"].values():
            if fp["IsDeleted"] or fp["ParentId"] not in sets or fp["SobjectType"] != obj:
                continue
            name = fp["Field"].split(".", 1)[-1]
            if fp.get("PermissionsRead") or fp.get("PermissionsEdit"):
                read.add(name)
            if fp.get("PermissionsEdit"):
                edit.add(name)
        return read, edit

    def fields(self, obj: str, *, all_fields: bool = False) -> OrderedDict[str, dict[str, Any]]:
        """The fields of ``obj`` the API user sees (standard, currency, and custom with FLS)."""
        out: OrderedDict[str, dict[str, Any]] = OrderedDict((f["name"], f) for f in _system())
        for field in STANDARD[obj]:
            out[field["name"]] = field
        if self.state["multicurrency"] and obj in CURRENCY_OBJECTS:
            out["CurrencyIsoCode"] = _f("CurrencyIsoCode", "picklist", "Currency ISO Code", length=3,
                                        create_only=obj in ("PricebookEntry", "OpportunityLineItem"),
                                        ro=obj == "OpportunityLineItem", defaulted=True)
        customs = self.state["custom_fields"].get(obj, {})
        if customs:
            read, edit = self._granted(obj)
            for name, field in customs.items():
                if all_fields or field.get("profile") or name in read:
                    if not (all_fields or field.get("profile") or name in edit):
                        field = {**field, "createable": False, "updateable": False}
                    out[name] = field
        return out

    def _lookup_field(self, obj: str, name: str) -> dict[str, Any] | None:
        fields = self.fields(obj)
        return fields.get(name) or next((f for n, f in fields.items() if n.lower() == name.lower()), None)

    def _sobject(self, name: str) -> str | None:
        return next((o for o in STANDARD if o.lower() == name.lower()), None)

    def _picklist(self, obj: str, field: dict[str, Any]) -> list[dict[str, Any]]:
        if field["name"] == "StageName" and obj == "Opportunity":
            stages = sorted(self.state["records"]["OpportunityStage"].values(), key=lambda s: s["SortOrder"])
            return [{"value": s["ApiName"], "label": s["MasterLabel"], "active": s["IsActive"], "defaultValue": False}
                    for s in stages]
        if field["name"] in ("CurrencyIsoCode", "DefaultCurrencyIsoCode"):
            return [{"value": c, "label": c, "active": True, "defaultValue": False} for c in self.state["currencies"]]
        return [{"value": v, "label": v, "active": True, "defaultValue": False} for v in field.get("values") or ()]

    def standard_pricebook(self) -> str:
        return next(p["Id"] for p in self.state["records"]["Pricebook2"].values() if p["IsStandard"])

    def _stage(self, api_name: str) -> dict[str, Any]:
        return next(s for s in self.state["records"]["OpportunityStage"].values() if s["ApiName"] == api_name)

    # -- test helpers (what a user or admin does in the Salesforce UI) -----------------------
    def record(self, obj: str, rid: str) -> dict[str, Any]:
        return self.state["records"][obj][norm_id(rid) or rid]

    def ids(self, obj: str, *, deleted: bool = False) -> list[str]:
        return [r["Id"] for r in self.state["records"][obj].values() if deleted or not r["IsDeleted"]]

    def edit(self, obj: str, rid: str, *, touch_parent: bool = True, **values: Any) -> dict[str, Any]:
        """Change fields as the UI would: stamps move, stage-derived fields follow, no validation.

        ``touch_parent=False`` changes a line item without moving its opportunity's SystemModstamp
        (the reference is unsure whether Salesforce always bumps it), so readers cannot rely on it.
        """
        with self.lock:
            rec = self.record(obj, rid)
            now = self._stamp()
            for key, value in values.items():
                rec[key] = str(value) if isinstance(value, Decimal) else value
            if obj == "Opportunity" and "StageName" in values:
                self._apply_stage(rec, values.get("Probability"))
            self._touch(rec, now)
            if obj == "OpportunityLineItem":
                rec.update(self._line_totals(rec))
                self._roll_up(self.record("Opportunity", rec["OpportunityId"]), now, touch=touch_parent)
            self.persist()
            return rec

    def delete(self, obj: str, rid: str) -> None:
        """Delete to the Recycle Bin (soft: queryAll still sees it, getDeleted lists it)."""
        with self.lock:
            self._soft_delete(obj, self.record(obj, rid), self._stamp())
            self.persist()

    def purge(self, obj: str, rid: str) -> None:
        """Hard delete (Recycle Bin emptied): only getDeleted still knows about it."""
        with self.lock:
            rec = self.record(obj, rid)
            now = self._stamp()
            if not rec["IsDeleted"]:
                self._soft_delete(obj, rec, now)
            for child_obj, fk in CASCADE.get(obj, ()):
                for child in list(self.state["records"][child_obj].values()):
                    if child.get(fk) == rec["Id"] and child["IsDeleted"]:
                        del self.state["records"][child_obj][child["Id"]]
            del self.state["records"][obj][rec["Id"]]
            self.persist()

    def undelete(self, obj: str, rid: str) -> None:
        with self.lock:
            rec = self.record(obj, rid)
            rec["IsDeleted"] = False
            rec.pop("_deleted_at", None)
            self.state["deleted_log"][obj] = [e for e in self.state["deleted_log"][obj] if e["id"] != rec["Id"]]
            self._touch(rec, self._stamp())
            self.persist()

    def merge(self, obj: str, master: str, loser: str) -> None:
        """Merge ``loser`` into ``master`` (Accounts, Contacts): children move, the loser is deleted."""
        with self.lock:
            now = self._stamp()
            win, lose = self.record(obj, master), self.record(obj, loser)
            children = {"Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
                        "Contact": (("OpportunityContactRole", "ContactId"),)}[obj]
            for child_obj, fk in children:
                for child in self.state["records"][child_obj].values():
                    if child.get(fk) == lose["Id"]:
                        child[fk] = win["Id"]
                        self._touch(child, now)
            lose["MasterRecordId"] = win["Id"]
            self._soft_delete(obj, lose, now, cascade=False)
            self._touch(win, now)
            self.persist()

    def rename_stage(self, api_name: str, label: str) -> None:
        """Change a stage's label (MasterLabel) in Setup; records keep the stage's API name."""
        with self.lock:
            stage = self._stage(api_name)
            stage["MasterLabel"] = label
            self._touch(stage, self._stamp())
            self.persist()

    def add_contacts(self, count: int, account_id: str | None = None) -> list[str]:
        """Bulk-load contacts (paging tests), as a data loader would, past the duplicate rules."""
        ids = []
        with self.lock:
            for n in range(count):
                cid = self._new_id("Contact")
                self._put("Contact", cid, {"AccountId": account_id, "FirstName": "Bulk", "LastName": f"Person {n}",
                                           "Email": f"bulk.{n}@bulk.example", **(
                                               {"CurrencyIsoCode": "USD"} if self.state["multicurrency"] else {})},
                          self._stamp())
                ids.append(cid)
            self.persist()
        return ids

    def set_api_usage(self, used: int, maximum: int | None = None) -> None:
        with self.lock:
            if maximum is not None:
                self.state["api_max"] = maximum
            hour = str(int(self.now() // 3600))
            self.state["usage"] = {hour: used}

    def api_usage(self) -> tuple[int, int]:
        self._prune_usage()
        return sum(self.state["usage"].values()), int(self.state["api_max"])

    # -- record plumbing ---------------------------------------------------------------------
    def _stamp(self) -> float:
        """A SystemModstamp strictly after the last one (milliseconds)."""
        now = round(self.now(), 3)
        last = self.state.get("last_stamp", 0.0)
        if now <= last:
            now = round(last + 0.001, 3)
        self.state["last_stamp"] = now
        return now

    def _touch(self, rec: dict[str, Any], when: float) -> None:
        rec["LastModifiedDate"] = rec["SystemModstamp"] = when
        rec["LastModifiedById"] = self.state["user_id"]

    def _soft_delete(self, obj: str, rec: dict[str, Any], when: float, *, cascade: bool = True) -> None:
        if rec["IsDeleted"]:
            return
        rec["IsDeleted"] = True
        rec["_deleted_at"] = when
        self._touch(rec, when)
        self.state["deleted_log"][obj].append({"id": rec["Id"], "deletedDate": when})
        if cascade:
            for child_obj, fk in CASCADE.get(obj, ()):
                for child in list(self.state["records"][child_obj].values()):
                    if child.get(fk) == rec["Id"] and not child["IsDeleted"]:
                        self._soft_delete(child_obj, child, when)
        if obj == "OpportunityLineItem":
            opp = self.state["records"]["Opportunity"].get(rec["OpportunityId"])
            if opp and not opp["IsDeleted"]:
                self._roll_up(opp, when)

    def _expire_recycle_bin(self) -> None:
        """Records stay in the Recycle Bin for 15 days, and the delete log as long."""
        limit = self.now() - DELETED_DAYS * DAY
        for obj, log in self.state["deleted_log"].items():
            if not log or log[0]["deletedDate"] >= limit:
                continue
            recs = self.state["records"][obj]
            for entry in [e for e in log if e["deletedDate"] < limit]:
                rec = recs.get(entry["id"])
                if rec is not None and rec["IsDeleted"]:
                    del recs[entry["id"]]
            self.state["deleted_log"][obj] = [e for e in log if e["deletedDate"] >= limit]

    def _apply_stage(self, rec: dict[str, Any], probability: Any) -> None:
        stage = self._stage(rec["StageName"])
        rec["IsClosed"], rec["IsWon"] = stage["IsClosed"], stage["IsWon"]
        rec["ForecastCategoryName"] = stage["ForecastCategoryName"]
        if probability is None:
            rec["Probability"] = stage["DefaultProbability"]

    @staticmethod
    def _line_totals(line: dict[str, Any]) -> dict[str, Any]:
        """Subtotal and TotalPrice from quantity, sales price and discount (cents, half to even).

        Salesforce computes in doubles, where most half-cents already sit just below .5.
        """
        qty = Decimal(str(line["Quantity"]))
        price = Decimal(str(line["UnitPrice"]))
        disc = Decimal(str(line.get("Discount") or 0))
        subtotal = (qty * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        total = (qty * price - qty * price * disc / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        return {"Subtotal": str(subtotal), "TotalPrice": str(total)}

    def _roll_up(self, opp: dict[str, Any], when: float, *, touch: bool = True) -> None:
        lines = [li for li in self.state["records"]["OpportunityLineItem"].values()
                 if li["OpportunityId"] == opp["Id"] and not li["IsDeleted"]]
        opp["HasOpportunityLineItem"] = bool(lines)
        if lines:
            opp["Amount"] = str(sum((Decimal(li["TotalPrice"]) for li in lines), Decimal(0)))
        if touch:
            self._touch(opp, when)

    # -- oauth ------------------------------------------------------------------------------
    @route("GET", r"/services/oauth2/authorize")
    def oauth_authorize(self, req: Request) -> Response:
        if req.arg("response_type") != "code":
            raise self.token_error(400, "unsupported_response_type", "response type not supported")
        return self.authorize_redirect(req)

    @route("POST", r"/services/oauth2/token")
    def oauth_token(self, req: Request) -> Response:
        form = req.form()
        if not form.get("client_id"):
            raise self.token_error(400, "invalid_client_id", "client identifier invalid")
        grant = form.get("grant_type")
        if grant == "authorization_code" and not form.get("client_secret"):
            code = self.state["oauth"]["codes"].get(form.get("code", ""))
            if code is not None and not code.get("challenge"):
                # A public client proves itself with PKCE; without it the secret is required.
                raise self.token_error(400, "invalid_client", "invalid client credentials")
        self._signing_secret = form.get("client_secret")
        try:
            return self.token_endpoint(req)
        finally:
            self._signing_secret = None

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        text = {"code invalid or expired": "authentication failure",
                "redirect_uri mismatch": "redirect_uri must match configuration",
                "code_verifier does not match": "invalid code verifier",
                "refresh token invalid": "expired access/refresh token",
                "refresh token expired": "expired access/refresh token",
                "refresh token has been rotated": "expired access/refresh token",
                "client authentication failed": "client identifier invalid"}.get(description, description)
        if error == "unsupported_grant_type" and not text:
            text = "grant type not supported"
        if error == "invalid_client" and description == "client authentication failed":
            error = "invalid_client_id"
        return HttpError(400, {"error": error, "error_description": text or error})

    def returns_same_refresh(self) -> bool:
        return False  # a refresh answer carries a refresh token only when rotation is on

    def _issue(self, family: dict[str, Any], *, new_refresh: bool) -> dict[str, Any]:
        """Salesforce's token shape: org-prefixed tokens, no expires_in, identity URL and signature."""
        raw = super()._issue(family, new_refresh=new_refresh)
        oauth = self.state["oauth"]
        record = oauth["access"].pop(raw["access_token"])
        access = f"{self.state['org_id'][:15]}!AQ0AQ{secrets.token_urlsafe(72)}"
        fam = family.get("family")
        refresh = None
        if new_refresh:
            rrec = oauth["refresh"].pop(raw["refresh_token"])
            refresh = "5Aep861" + secrets.token_urlsafe(63)
            rrec["family"] = fam = refresh
            oauth["refresh"][refresh] = rrec
        record["family"] = fam
        oauth["access"][access] = record
        body: dict[str, Any] = {"access_token": access}
        if refresh:
            body["refresh_token"] = refresh
        for key in ("signature", "scope", "instance_url", "id", "token_type", "issued_at"):
            body[key] = raw[key]
        return body

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        issued = str(int(self.now() * 1000))
        identity = f"{self.public_url}/id/{self.state['org_id']}/{self.state['user_id']}"
        key = (self._signing_secret or self.consumer_secret).encode()
        signature = base64.b64encode(hmac.new(key, (identity + issued).encode(), hashlib.sha256).digest()).decode()
        scope = " ".join(sorted(set((grant.get("scope") or "api refresh_token").split()), reverse=True))
        return {"signature": signature, "scope": scope, "instance_url": self.public_url, "id": identity,
                "token_type": "Bearer", "issued_at": issued}

    def authenticate(self, req: Request, scheme: str = "Bearer") -> dict[str, Any]:
        record = super().authenticate(req, scheme)
        now = self.now()
        if record["expires"] - now < self.access_ttl / 2:  # activity past half-time extends the session
            record["expires"] = now + self.access_ttl
        return record

    def unauthorized(self, why: str) -> HttpError:
        return HttpError(401, _errors("INVALID_SESSION_ID", "Session expired or invalid"),
                         {"WWW-Authenticate": "Token"})

    @route("POST", r"/services/oauth2/revoke")
    def oauth_revoke(self, req: Request) -> Response:
        token = req.form().get("token") or req.arg("token") or ""
        oauth = self.state["oauth"]
        if token in oauth["refresh"]:
            oauth["refresh"][token]["revoked"] = True
            fam = oauth["refresh"][token].get("family")
            for at in [a for a, rec in oauth["access"].items() if fam and rec.get("family") == fam]:
                del oauth["access"][at]
        elif token in oauth["access"]:
            del oauth["access"][token]
        else:
            raise HttpError(400, {"error": "invalid_token", "error_description": "invalid token"})
        self.persist()
        return Response(200, b"", content_type="text/plain")

    @route("POST", r"/services/oauth2/introspect")
    def oauth_introspect(self, req: Request) -> Response:
        form = req.form()
        if not self.client_from(req, form):
            raise HttpError(401, {"error": "invalid_client", "error_description": "client identifier invalid"})
        token = form.get("token", "")
        oauth = self.state["oauth"]
        now = self.now()
        user = self.record("User", self.state["user_id"])
        if token in oauth["access"] and oauth["access"][token]["expires"] >= now:
            rec = oauth["access"][token]
            body = {"active": True, "scope": rec.get("scope") or "api refresh_token", "client_id": rec["client_id"],
                    "username": user["Username"], "sub": f"{self.public_url}/id/{self.state['org_id']}/{user['Id']}",
                    "token_type": "access_token", "exp": int(rec["expires"]),
                    "iat": int(rec["expires"] - self.access_ttl), "nbf": int(rec["expires"] - self.access_ttl)}
        elif token in oauth["refresh"] and not oauth["refresh"][token].get("revoked"):
            body = {"active": True, "scope": oauth["refresh"][token].get("scope") or "api refresh_token",
                    "client_id": oauth["refresh"][token]["client_id"], "username": user["Username"],
                    "sub": f"{self.public_url}/id/{self.state['org_id']}/{user['Id']}", "token_type": "refresh_token"}
        else:
            body = {"active": False}
        return Response(200, body)

    # -- the REST wrapper --------------------------------------------------------------------
    def not_found_body(self, req: Request) -> Any:
        return _errors("NOT_FOUND", "The requested resource does not exist")

    def _prune_usage(self) -> None:
        current = int(self.now() // 3600)
        self.state["usage"] = {h: n for h, n in self.state["usage"].items() if int(h) > current - 24}

    def _limit_info(self) -> str:
        used, maximum = self.api_usage()
        return f"api-usage={used}/{maximum}"

    def _serve(self, req: Request, fn: Callable) -> Response:
        inner = req.headers.get(INNER) == self._inner_key
        try:
            if req.params.get("version") not in API_VERSIONS:
                raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
            if not inner:
                self.authenticate(req)
                used, maximum = self.api_usage()
                if used >= maximum:
                    raise _fail(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                hour = str(int(self.now() // 3600))
                self.state["usage"][hour] = self.state["usage"].get(hour, 0) + 1
            self._expire_recycle_bin()
            resp = fn(self, req)
        except HttpError as err:
            resp = err.response
        if inner:
            return resp
        if resp.body is not None and not isinstance(resp.body, bytes | str):
            resp.body = dumps(resp.body)
        resp.headers.setdefault("Sforce-Limit-Info", self._limit_info())
        resp.headers.setdefault("Date", email.utils.formatdate(self.now(), usegmt=True))
        return resp

    def _base(self, req: Request) -> str:
        return f"/services/data/v{req.params['version']}"

    def _body(self, req: Request) -> Any:
        if not req.body:
            return None
        try:
            return json.loads(req.body, parse_float=Decimal)
        except ValueError as exc:
            raise _fail(400, "JSON_PARSER_ERROR", f"Unexpected character: was expecting a JSON value ({exc})") \
                from exc

    # -- versions, limits, describe ---------------------------------------------------------
    @route("GET", r"/services/data")
    def versions(self, req: Request) -> Response:
        return Response(200, [{"label": _version_label(v), "url": f"/services/data/v{v}", "version": v}
                              for v in API_VERSIONS])

    @api("GET", r"/limits")
    def limits(self, req: Request) -> Response:
        used, maximum = self.api_usage()
        return Response(200, {"DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - used)},
                              "ConcurrentSyncLongRunningRequests": {"Max": 25, "Remaining": 25},
                              "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000}})

    def _known(self, name: str) -> str:
        obj = self._sobject(name)
        if obj is None:
            raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    @api("GET", r"/sobjects/(?P<sobject>\w+)/describe")
    def describe(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        fields = []
        for field in self.fields(obj).values():
            item: dict[str, Any] = {
                "name": field["name"], "type": field["type"], "label": field["label"], "nillable": field["nillable"],
                "createable": field["createable"] and obj not in READ_ONLY_OBJECTS,
                "updateable": field["updateable"] and obj not in READ_ONLY_OBJECTS,
                "externalId": field["externalId"], "unique": field["unique"], "custom": field["custom"],
                "length": field["length"], "precision": field["precision"], "scale": field["scale"],
                "referenceTo": field["referenceTo"], "relationshipName": field["relationshipName"],
                "calculated": field["calculated"], "defaultedOnCreate": field["defaultedOnCreate"],
                "picklistValues": self._picklist(obj, field) if field["type"] == "picklist" else []}
            fields.append(item)
        label, plural = LABELS[obj]
        body = {"name": obj, "label": label, "labelPlural": plural, "keyPrefix": PREFIX[obj], "custom": False,
                "createable": obj not in READ_ONLY_OBJECTS, "updateable": obj not in READ_ONLY_OBJECTS,
                "deletable": obj not in READ_ONLY_OBJECTS, "queryable": True, "fields": fields,
                "childRelationships": [{"childSObject": child, "field": fk, "relationshipName": rel}
                                       for rel, (child, fk) in CHILD_RELATIONSHIPS.get(obj, {}).items()]}
        return Response(200, body)

    # -- rendering ---------------------------------------------------------------------------
    def _attributes(self, obj: str, rid: str, version: str) -> dict[str, str]:
        return {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{rid}"}

    @staticmethod
    def _out(field: dict[str, Any], value: Any) -> Any:
        if value is None:
            return None
        ftype = field["type"]
        if ftype == "datetime":
            return fmt_dt(float(value))
        if ftype in NUMBER_TYPES or ftype == "int":
            return _Num(_num_text(Decimal(str(value)), ftype))
        return value

    def _render(self, obj: str, rec: dict[str, Any], names: Iterable[str], version: str) -> dict[str, Any]:
        fields = self.fields(obj)
        out: dict[str, Any] = {"attributes": self._attributes(obj, rec["Id"], version)}
        for name in names:
            out[name] = self._out(fields[name], rec.get(name))
        return out

    # -- SOQL --------------------------------------------------------------------------------
    def _resolve(self, obj: str, path: str) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """'Account.Owner.Name' on Contact -> [(obj, reference field)...], the final field."""
        parts = path.split(".")
        hops: list[tuple[str, dict[str, Any]]] = []
        current = obj
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                field = self._lookup_field(current, part)
                if field is None:
                    raise SoqlError("INVALID_FIELD", f"No such column '{part}' on entity '{current}'. "
                                                     f"{NO_SUCH_COLUMN_HINT}")
                return hops, field
            ref = next((f for f in self.fields(current).values()
                        if f["relationshipName"] and f["relationshipName"].lower() == part.lower()), None)
            if ref is None:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{part}' in field path. "
                                                 f"{NO_SUCH_COLUMN_HINT}")
            hops.append((current, ref))
            current = ref["referenceTo"][0]
        raise SoqlError("MALFORMED_QUERY", "empty field path")

    def _follow(self, rec: dict[str, Any] | None, hops: list[tuple[str, dict[str, Any]]]
                ) -> tuple[dict[str, Any] | None, str | None]:
        obj = None
        for _, ref in hops:
            if rec is None:
                return None, None
            target = ref["referenceTo"][0]
            rec = self.state["records"][target].get(rec.get(ref["name"]) or "")
            obj = target
        return rec, obj

    def _getter(self, hops: list[tuple[str, dict[str, Any]]], field: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
        name = field["name"]
        if not hops:
            return lambda rec: rec.get(name)
        records = self.state["records"]
        chain = [(ref["name"], records[ref["referenceTo"][0]]) for _, ref in hops]

        def get(rec: dict[str, Any]) -> Any:
            current: dict[str, Any] | None = rec
            for fk, table in chain:
                current = table.get((current or {}).get(fk) or "")
                if current is None:
                    return None
            return current.get(name)

        return get

    def _predicate(self, obj: str, cond: dict[str, Any] | None) -> Callable[[dict[str, Any]], bool]:
        """Compile a WHERE tree once: paths resolved and literals type-checked before any row is read."""
        if cond is None:
            return lambda rec: True
        if "and" in cond or "or" in cond:
            parts = [self._predicate(obj, c) for c in cond.get("and") or cond["or"]]
            if "and" in cond:
                return lambda rec: all(p(rec) for p in parts)
            return lambda rec: any(p(rec) for p in parts)
        if "not" in cond:
            inner = self._predicate(obj, cond["not"])
            return lambda rec: not inner(rec)
        path = cond.get("cmp") or cond.get("in") or cond.get("like")
        hops, field = self._resolve(obj, path)
        get = self._getter(hops, field)
        if "like" in cond:
            pattern = _like(cond["pattern"])
            return lambda rec: (v := get(rec)) is not None and bool(pattern.match(str(v)))
        if "in" in cond:
            literals = cond["values"]
            for literal in literals:
                self._check_literal(field, literal)
            negate = cond["negate"]
            return lambda rec: any(self._compare(field, get(rec), "=", lit) for lit in literals) != negate
        self._check_literal(field, cond["value"])
        op, literal = cond["op"], cond["value"]
        return lambda rec: self._compare(field, get(rec), op, literal)

    @staticmethod
    def _check_literal(field: dict[str, Any], literal: tuple[str, Any]) -> None:
        kind = literal[0]
        ftype = field["type"]
        want = {"datetime": "dt", "date": "date", "boolean": "bool", "int": "num"}.get(
            ftype, "num" if ftype in NUMBER_TYPES else "str")
        if kind != "null" and kind != want:
            names = {"dt": "dateTime", "date": "date", "bool": "boolean", "num": "number", "str": "string"}
            if kind == "str":
                hint = " and should not be enclosed in quotes"
            elif want == "str":
                hint = " and should be enclosed in quotes"
            else:
                hint = ""
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                            f"value of filter criterion for field '{field['name']}' must be of type "
                            f"{names[want]}{hint}")

    @staticmethod
    def _compare(field: dict[str, Any], value: Any, op: str, literal: tuple[str, Any]) -> bool:
        kind, lit = literal
        if kind == "null":
            return (value is None) == (op == "=") if op in ("=", "!=") else False
        if value is None:
            return op == "!="
        ftype = field["type"]
        left: Any
        right: Any
        if ftype == "datetime":
            left, right = float(value), float(lit)
        elif ftype in NUMBER_TYPES or ftype == "int":
            left, right = Decimal(str(value)), lit
        elif ftype in ("id", "reference"):
            left, right = value, norm_id(lit) or lit
        elif ftype in ("boolean", "date"):
            left, right = value, lit
        else:
            left, right = str(value).casefold(), str(lit).casefold()
        return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                ">": left > right, ">=": left >= right}[op]

    def _sort_key(self, obj: str, order: list[tuple[str, bool, bool]]) -> Callable[[dict[str, Any]], Any]:
        resolved = []
        for path, desc, nulls_last in order:
            hops, field = self._resolve(obj, path)
            resolved.append((self._getter(hops, field), field["type"], desc, nulls_last))

        class Key:
            __slots__ = ("values",)

            def __init__(self, values: list[tuple[bool, bool, Any]]) -> None:
                self.values = values

            def __lt__(self, other: Key) -> bool:
                for (desc, nulls_last, a), (_, _, b) in zip(self.values, other.values, strict=True):
                    if a == b:
                        continue
                    if a is None or b is None:
                        return (a is None) != nulls_last
                    return (a > b) if desc else (a < b)
                return False

        def key(rec: dict[str, Any]) -> Key:
            values = []
            for get, ftype, desc, nulls_last in resolved:
                value = get(rec)
                if value is not None:
                    if ftype in NUMBER_TYPES or ftype == "int":
                        value = Decimal(str(value))
                    elif ftype == "datetime":
                        value = float(value)
                    elif isinstance(value, str) and ftype not in ("id", "reference"):
                        value = value.casefold()
                values.append((desc, nulls_last, value))
            return Key(values)

        return key

    def run_soql(self, text: str, version: str, *, all_rows: bool = False) -> tuple[int, list[dict[str, Any]]]:
        """Parse and evaluate; (totalSize, rendered rows)."""
        if len(text) > 100_000:
            raise SoqlError("MALFORMED_QUERY", "SOQL statements cannot be longer than 100000 characters")
        plan = self._compile(SoqlParser(text).parse())
        rows = self._select(plan, self.state["records"][plan["obj"]].values(), all_rows)
        if plan["count"]:
            return len(rows), []
        return len(rows), self._render_rows(plan, rows, version, all_rows)

    def _compile(self, query: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
        """Resolve the FROM object, every selected path, subqueries, WHERE and ORDER BY once."""
        fk = rel = None
        if parent is not None:
            rels = CHILD_RELATIONSHIPS.get(parent, {})
            rel = next((r for r in rels if r.lower() == query["from"].lower()), None)
            if rel is None:
                raise SoqlError("INVALID_TYPE", f"Didn't understand relationship '{query['from']}' in FROM part of "
                                                f"query call. {NO_SUCH_COLUMN_HINT}")
            obj, fk = rels[rel]
        else:
            found = self._sobject(query["from"])
            if found is None:
                raise SoqlError("INVALID_TYPE", f"sObject type '{query['from']}' is not supported. If you are "
                                                "attempting to use a custom object, be sure to append the '__c' "
                                                "after the entity name. Please reference your WSDL or the describe "
                                                "call for the appropriate names.")
            obj = found
        if query["offset"] is not None and query["offset"] > 2000:
            raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        selects: list[tuple[str, Any]] = []
        for item in query["items"]:
            if "sub" in item:
                if parent is not None:
                    raise SoqlError("MALFORMED_QUERY", "nested subqueries are not supported")
                selects.append(("sub", self._compile(item["sub"], parent=obj)))
            else:
                selects.append(("field", self._resolve(obj, item["path"])))
        return {"obj": obj, "fk": fk, "rel": rel, "selects": selects, "where": self._predicate(obj, query["where"]),
                "order": self._sort_key(obj, query["order"]) if query["order"] else None,
                "limit": query["limit"], "offset": query["offset"], "count": query["count"]}

    @staticmethod
    def _select(plan: dict[str, Any], records: Iterable[dict[str, Any]], all_rows: bool) -> list[dict[str, Any]]:
        where = plan["where"]
        rows = [r for r in records if (all_rows or not r["IsDeleted"]) and where(r)]
        if plan["order"] is not None:
            rows.sort(key=plan["order"])
        if plan["offset"]:
            rows = rows[plan["offset"]:]
        if plan["limit"] is not None:
            rows = rows[:plan["limit"]]
        return rows

    def _render_rows(self, plan: dict[str, Any], rows: list[dict[str, Any]], version: str,
                     all_rows: bool) -> list[dict[str, Any]]:
        obj = plan["obj"]
        children: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for kind, spec in plan["selects"]:
            if kind == "sub":  # one pass over the child table, grouped by parent
                groups: dict[str, list[dict[str, Any]]] = {}
                for child in self.state["records"][spec["obj"]].values():
                    groups.setdefault(child.get(spec["fk"]) or "", []).append(child)
                children[spec["rel"]] = groups
        out = []
        for rec in rows:
            row: dict[str, Any] = {"attributes": self._attributes(obj, rec["Id"], version)}
            for kind, spec in plan["selects"]:
                if kind == "sub":
                    picked = self._select(spec, children[spec["rel"]].get(rec["Id"], []), all_rows)
                    row[spec["rel"]] = ({"totalSize": len(picked), "done": True,
                                         "records": self._render_rows(spec, picked, version, all_rows)}
                                        if picked else None)
                else:
                    self._put_path(row, rec, spec, version)
            out.append(row)
        return out

    def _put_path(self, row: dict[str, Any], rec: dict[str, Any],
                  spec: tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]], version: str) -> None:
        hops, field = spec
        if not hops:
            row[field["name"]] = self._out(field, rec.get(field["name"]))
            return
        holder = row
        current: dict[str, Any] | None = rec
        for n, (_, ref) in enumerate(hops):
            target = ref["referenceTo"][0]
            current = self.state["records"][target].get((current or {}).get(ref["name"]) or "")
            rel = ref["relationshipName"]
            if current is None:
                holder.setdefault(rel, None)
                return
            nested = holder.get(rel)
            if nested is None:
                nested = {"attributes": self._attributes(target, current["Id"], version)}
                holder[rel] = nested
            if n == len(hops) - 1:
                nested[field["name"]] = self._out(field, current.get(field["name"]))
            holder = nested

    def _query(self, req: Request, *, all_rows: bool) -> Response:
        text = req.arg("q")
        if not text:
            raise _fail(400, "MALFORMED_QUERY", "A query string is required: use the q parameter")
        version = req.params["version"]
        try:
            total, rows = self.run_soql(text, version, all_rows=all_rows)
        except SoqlError as err:
            raise _fail(400, err.code, err.message) from err
        batch = BATCH_DEFAULT
        options = req.header("sforce-query-options") or ""
        m = re.search(r"batchSize\s*=\s*(\d+)", options, re.I)
        if m:
            batch = min(BATCH_DEFAULT, max(200, int(m.group(1))))
        body: dict[str, Any] = {"totalSize": total, "done": True, "records": rows[:batch]}
        if len(rows) > batch:
            locator = make_id(PREFIX["Locator"], self.next_id("Locator"))
            self._locators[locator] = {"rows": rows, "pos": batch, "batch": batch, "touched": self.now()}
            while len(self._locators) > MAX_LOCATORS:
                self._locators.popitem(last=False)
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{batch}"
        return Response(200, body)

    @api("GET", r"/query", kind="query")
    def query(self, req: Request) -> Response:
        return self._query(req, all_rows=False)

    @api("GET", r"/queryAll", kind="query")
    def query_all(self, req: Request) -> Response:
        return self._query(req, all_rows=True)

    @api("GET", r"/query(?:All)?/(?P<locator>[A-Za-z0-9]{18})-(?P<offset>\d+)", kind="query")
    def query_more(self, req: Request) -> Response:
        state = self._locators.get(req.params["locator"])
        now = self.now()
        if state is None or now - state["touched"] > LOCATOR_IDLE or state["pos"] != int(req.params["offset"]):
            self._locators.pop(req.params["locator"], None)
            raise _fail(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        start, batch = state["pos"], state["batch"]
        page = state["rows"][start:start + batch]
        state["pos"] = start + len(page)
        state["touched"] = now
        body: dict[str, Any] = {"totalSize": len(state["rows"]), "done": state["pos"] >= len(state["rows"]),
                                "records": page}
        if body["done"]:
            del self._locators[req.params["locator"]]
        else:
            body["nextRecordsUrl"] = f"/services/data/v{req.params['version']}/query/{req.params['locator']}-" \
                                     f"{state['pos']}"
        return Response(200, body)

    # -- replication -------------------------------------------------------------------------
    def _window(self, req: Request, days: int) -> tuple[float, float]:
        start_raw, end_raw = req.arg("start"), req.arg("end")
        if not start_raw or not end_raw:
            raise _fail(400, "MISSING_ARGUMENT", "start and end are both required")
        start, end = parse_dt(start_raw), parse_dt(end_raw)
        if start is None or end is None:
            shown = start_raw if start is None else end_raw
            raise _fail(400, "INVALID_REPLICATION_DATE", f"unable to parse date: {shown}")
        if end - start <= 60:
            raise _fail(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate by more "
                                                         "than one minute")
        now = self.now()
        if start < now - days * DAY:
            raise _fail(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
        start = start - start % 60  # seconds are ignored
        end = min(end, now)
        return start, end - end % 60

    @api("GET", r"/sobjects/(?P<sobject>\w+)/updated")
    def get_updated(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        start, end = self._window(req, UPDATED_DAYS)
        ids = [r["Id"] for r in self.state["records"][obj].values()
               if not r["IsDeleted"] and start <= r["SystemModstamp"] < end]
        if len(ids) > 600_000:
            raise _fail(400, "EXCEEDED_ID_LIMIT", "too many ids: choose start and end dates closer together")
        return Response(200, {"ids": ids, "latestDateCovered": fmt_dt(end)})

    @api("GET", r"/sobjects/(?P<sobject>\w+)/deleted")
    def get_deleted(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        start, end = self._window(req, DELETED_DAYS)
        log = self.state["deleted_log"][obj]
        earliest = min((e["deletedDate"] for e in log), default=self.now() - DELETED_DAYS * DAY)
        earliest = max(earliest, self.now() - DELETED_DAYS * DAY)
        records = [{"id": e["id"], "deletedDate": fmt_dt(e["deletedDate"])} for e in log
                   if start <= e["deletedDate"] < end]
        return Response(200, {"deletedRecords": records, "earliestDateAvailable": fmt_dt(earliest - earliest % 60),
                              "latestDateCovered": fmt_dt(end)})

    # -- writes ------------------------------------------------------------------------------
    def _parse_fields(self, obj: str, body: Any, *, allow_id: bool = False) -> dict[str, tuple[dict[str, Any], Any]]:
        """Body -> {field: (definition, raw value)}; unknown fields fail the whole request."""
        if not isinstance(body, dict):
            raise _fail(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from non-object value")
        out: dict[str, tuple[dict[str, Any], Any]] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            if key.lower() == "id" and allow_id:
                continue
            field = self._lookup_field(obj, key)
            if field is None:
                raise _fail(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}")
            if value is not None and not self._shape_ok(field, value):
                raise _fail(400, "JSON_PARSER_ERROR",
                            f"Cannot deserialize instance of {field['type']} from {_json_kind(value)} value "
                            f"{value} or request may be missing a required field")
            out[field["name"]] = (field, value)
        return out

    @staticmethod
    def _shape_ok(field: dict[str, Any], value: Any) -> bool:
        ftype = field["type"]
        if ftype == "boolean":
            return isinstance(value, bool)
        if ftype in NUMBER_TYPES or ftype == "int":
            if isinstance(value, bool):
                return False
            if isinstance(value, int | Decimal):
                return ftype != "int" or Decimal(value) == Decimal(value).to_integral_value()
            if isinstance(value, str):
                if value == "":
                    return True
                try:
                    Decimal(value)
                except InvalidOperation:
                    return False
                return True
            return False
        if ftype == "date":
            if not isinstance(value, str):
                return False
            if value == "":
                return True
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return False
            return len(value) == 10
        if ftype == "datetime":
            return isinstance(value, str) and (value == "" or parse_dt(value) is not None)
        return isinstance(value, str | int | Decimal) and not isinstance(value, bool)

    def _coerce(self, obj: str, field: dict[str, Any], value: Any) -> Any:
        """A shape-checked value -> what the state stores; raises RecordError for bad data."""
        name, ftype, label = field["name"], field["type"], field["label"]
        if value is None or value == "":
            return None
        if ftype == "boolean":
            return value
        if ftype in NUMBER_TYPES or ftype == "int":
            number = Decimal(str(value))
            scale = field["scale"]
            if ftype != "int":
                number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
            digits = len(str(abs(int(number))).lstrip("0"))
            if field["precision"] and digits > field["precision"] - scale:
                raise RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                                  f"{label}: value outside of valid range on numeric field: {value}", [name])
            return int(number) if ftype == "int" else str(number)
        if ftype == "date":
            return value
        if ftype == "datetime":
            return parse_dt(value)
        text = str(value).strip()  # Salesforce trims text on save
        if not text:
            return None
        if ftype in ("reference", "id"):
            rid = norm_id(text)
            target = field["referenceTo"][0] if field["referenceTo"] else obj
            if rid is None or TYPE_OF_PREFIX.get(rid[:3]) != target:
                raise RecordError("MALFORMED_ID" if rid is None else "FIELD_INTEGRITY_EXCEPTION",
                                  f"{label}: id value of incorrect type: {text}", [name])
            rec = self.state["records"][target].get(rid)
            if rec is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
            if rec["IsDeleted"]:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [name])
            return rid
        if field["length"] and len(text) > field["length"]:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise RecordError("STRING_TOO_LONG", f"{label}: data value too large: {shown} "
                                                 f"(max length={field['length']})", [name])
        if ftype == "email" and not EMAIL_RE.match(text):
            raise RecordError("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {text}", [name])
        if ftype == "picklist" and (name == "StageName" or name == "CurrencyIsoCode"):
            allowed = [p["value"] for p in self._picklist(obj, field) if p["active"]]
            if text not in allowed:
                raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"{label}: bad value for restricted picklist field: {text}", [name])
        return text

    def _save(self, obj: str, fields: dict[str, tuple[dict[str, Any], Any]], rid: str | None, *,
              allow_duplicates: bool) -> tuple[str, bool]:
        """Validate and store one record; (id, created). Raises RecordError."""
        if obj in READ_ONLY_OBJECTS:
            raise RecordError("INSUFFICIENT_ACCESS_OR_READONLY", f"entity type {obj} does not support insert or "
                                                                 "update")
        creating = rid is None
        current: dict[str, Any] | None = None
        if not creating:
            current = self.state["records"][obj].get(rid or "")
            if current is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            if current["IsDeleted"]:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        locked = [n for n, (f, _) in fields.items() if not (f["createable"] if creating else f["updateable"])]
        if locked:
            verb = "create" if creating else "update"
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to {verb} fields: {', '.join(locked)}. Please check the security settings "
                              "of this field and verify that it is read/write for your profile or permission set.",
                              locked)
        values = {name: self._coerce(obj, f, raw) for name, (f, raw) in fields.items()}
        merged = {**(current or {}), **values}
        all_fields = self.fields(obj)
        missing = [n for n, f in all_fields.items() if f.get("required") and merged.get(n) in (None, "")
                   and (creating or n in values)]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              missing)
        now = self._stamp()
        extra = self._rules(obj, values, merged, current, now)
        self._unique(obj, merged, rid)
        if not allow_duplicates or self.state["duplicate_rules"].get(obj, {}).get("action") == "block":
            self._duplicates(obj, values, merged, rid, allow_duplicates)
        if creating:
            rid = self._new_id(obj)
            defaults: dict[str, Any] = {}
            if self.state["multicurrency"] and obj in CURRENCY_OBJECTS:
                defaults["CurrencyIsoCode"] = self.record("Organization", self.state["org_id"])[
                    "DefaultCurrencyIsoCode"]
            for n, f in all_fields.items():
                if f["type"] == "boolean" and n not in values:
                    defaults[n] = False
            rec = self._put(obj, rid, {**defaults, **values, **extra}, now)
            rec["IsDeleted"] = False
        else:
            assert current is not None
            current.update(values)
            current.update(extra)
            self._touch(current, now)
            rec = current
        self._after_save(obj, rec, now)
        return rec["Id"], creating

    def _rules(self, obj: str, values: dict[str, Any], merged: dict[str, Any], current: dict[str, Any] | None,
               now: float) -> dict[str, Any]:
        """Object logic Salesforce runs on save: stages, price books, line pricing, permissions."""
        extra: dict[str, Any] = {}
        if obj == "Opportunity":
            if current is not None and current.get("HasOpportunityLineItem"):
                if "Amount" in values and values["Amount"] != current.get("Amount"):
                    raise RecordError("FIELD_INTEGRITY_EXCEPTION", "Amount: cannot be changed on an opportunity "
                                                                   "with products", ["Amount"])
                if "CurrencyIsoCode" in values and values["CurrencyIsoCode"] != current.get("CurrencyIsoCode"):
                    raise RecordError("FIELD_INTEGRITY_EXCEPTION", "Currency ISO Code: cannot be changed on an "
                                                                   "opportunity with products", ["CurrencyIsoCode"])
            if "StageName" in values:
                probe = dict(merged)
                self._apply_stage(probe, values.get("Probability"))
                for key in ("IsClosed", "IsWon", "ForecastCategoryName", "Probability"):
                    extra[key] = probe[key]
            if current is None:
                extra.setdefault("HasOpportunityLineItem", False)
        elif obj == "OpportunityLineItem" and current is None:
            extra.update(self._price_line(values, merged))
        elif obj == "OpportunityLineItem":
            if "UnitPrice" in values and "TotalPrice" in values and values["TotalPrice"] is not None:
                raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: TotalPrice (cannot set "
                                                               "both UnitPrice and TotalPrice)", ["TotalPrice"])
            if "TotalPrice" in values and values["TotalPrice"] is not None and "UnitPrice" not in values:
                qty = Decimal(str(merged["Quantity"]))
                extra["UnitPrice"] = str((Decimal(values["TotalPrice"]) / qty).quantize(Decimal("0.01")))
                extra["Discount"] = None
            line = {**merged, **extra}
            extra.update(self._line_totals(line))
        elif obj == "PricebookEntry" and current is None:
            std = self.standard_pricebook()
            if merged["Pricebook2Id"] != std:
                cur = merged.get("CurrencyIsoCode")
                has_std = any(e["Product2Id"] == merged["Product2Id"] and e["Pricebook2Id"] == std
                              and e.get("CurrencyIsoCode") == cur and not e["IsDeleted"]
                              for e in self.state["records"]["PricebookEntry"].values())
                if not has_std:
                    raise RecordError("STANDARD_PRICE_NOT_DEFINED", "Before creating a custom price, create a "
                                                                    "standard price.")
        elif obj == "FieldPermissions":
            sobj, _, fname = str(merged.get("Field") or "").partition(".")
            if sobj != merged.get("SobjectType") or fname not in self.state["custom_fields"].get(sobj, {}):
                raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"Field Name: bad value for restricted picklist field: {merged.get('Field')}",
                                  ["Field"])
            if merged.get("PermissionsEdit") and not merged.get("PermissionsRead"):
                raise RecordError("FIELD_INTEGRITY_EXCEPTION", "Permission Read is required when Edit is "
                                                               "granted", ["PermissionsRead"])
        return extra

    def _price_line(self, values: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
        recs = self.state["records"]
        opp = recs["Opportunity"][merged["OpportunityId"]]
        entry = None
        if merged.get("PricebookEntryId"):
            entry = recs["PricebookEntry"][merged["PricebookEntryId"]]
        elif merged.get("Product2Id"):
            book = opp.get("Pricebook2Id") or self.standard_pricebook()
            entry = next((e for e in recs["PricebookEntry"].values()
                          if e["Product2Id"] == merged["Product2Id"] and e["Pricebook2Id"] == book
                          and e.get("CurrencyIsoCode") == opp.get("CurrencyIsoCode") and not e["IsDeleted"]), None)
        if entry is None:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId, Product2Id "
                                                           "(pricebook entry is required)", ["PricebookEntryId"])
        if not entry["IsActive"]:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId (pricebook "
                                                           "entry is inactive)", ["PricebookEntryId"])
        if opp.get("Pricebook2Id") and opp["Pricebook2Id"] != entry["Pricebook2Id"]:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId (pricebook "
                                                           "entry is in a different pricebook than the one assigned "
                                                           "to the opportunity)", ["PricebookEntryId"])
        if entry.get("CurrencyIsoCode") != opp.get("CurrencyIsoCode"):
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId (pricebook "
                                                           "entry currency code does not match opportunity currency "
                                                           "code)", ["PricebookEntryId"])
        unit, total = values.get("UnitPrice"), values.get("TotalPrice")
        if unit is not None and total is not None:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: TotalPrice (cannot set both "
                                                           "UnitPrice and TotalPrice)", ["TotalPrice"])
        if unit is None and total is None:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: unknown (must specify either "
                                                           "UnitPrice or TotalPrice)", ["UnitPrice"])
        extra: dict[str, Any] = {"PricebookEntryId": entry["Id"], "Product2Id": entry["Product2Id"],
                                 "ListPrice": entry["UnitPrice"]}
        if self.state["multicurrency"]:
            extra["CurrencyIsoCode"] = opp.get("CurrencyIsoCode")
        if unit is None:
            qty = Decimal(str(merged["Quantity"]))
            extra["UnitPrice"] = str((Decimal(total) / qty).quantize(Decimal("0.01")))
            extra["Discount"] = None
        extra.update(self._line_totals({**merged, **extra}))
        if not opp.get("Pricebook2Id"):
            opp["Pricebook2Id"] = entry["Pricebook2Id"]
        return extra

    def _unique(self, obj: str, merged: dict[str, Any], rid: str | None) -> None:
        keys = {"FieldPermissions": ("ParentId", "Field"), "PermissionSetAssignment": ("PermissionSetId", "AssigneeId"),
                "PermissionSet": ("Name",), "PricebookEntry": ("Pricebook2Id", "Product2Id", "CurrencyIsoCode")}
        fields = keys.get(obj)
        if not fields:
            return
        for rec in self.state["records"][obj].values():
            if rec["Id"] != rid and not rec["IsDeleted"] and all(
                    str(rec.get(f) or "").lower() == str(merged.get(f) or "").lower() for f in fields):
                raise RecordError("DUPLICATE_VALUE", f"duplicate value found: {fields[0]} duplicates value on record "
                                                     f"with id: {rec['Id']}", list(fields[:1]))

    @staticmethod
    def _dup_key(value: Any) -> str:
        return " ".join(str(value or "").split()).casefold()

    def _duplicates(self, obj: str, values: dict[str, Any], merged: dict[str, Any], rid: str | None,
                    allow: bool) -> None:
        rule = self.state["duplicate_rules"].get(obj)
        if not rule or not rule["active"] or (rid is not None and rule["field"] not in values):
            return
        key = self._dup_key(merged.get(rule["field"]))
        if not key:
            return
        matches = [r for r in self.state["records"][obj].values()
                   if r["Id"] != rid and not r["IsDeleted"] and self._dup_key(r.get(rule["field"])) == key]
        if not matches:
            return
        version = API_VERSIONS[-1]
        result = {
            "allowSave": rule["action"] == "alert", "duplicateRule": rule["rule"], "duplicateRuleEntityType": obj,
            "errorMessage": "Use one of these records?",
            "matchResults": [{"entityType": obj, "matchEngine": "FuzzyMatchEngine", "rule": rule["match"],
                              "size": len(matches), "success": True, "errors": [],
                              "matchRecords": [{"matchConfidence": _Num("100.0"), "additionalInformation": [],
                                                "fieldDiffs": [],
                                                "record": {"attributes": self._attributes(obj, m["Id"], version),
                                                           "Id": m["Id"]}} for m in matches]}]}
        raise RecordError("DUPLICATES_DETECTED", "Use one of these records?", [], duplicate=result)

    def _after_save(self, obj: str, rec: dict[str, Any], now: float) -> None:
        if obj == "OpportunityLineItem":
            self._roll_up(self.state["records"]["Opportunity"][rec["OpportunityId"]], now)

    def _allow_duplicates(self, req: Request) -> bool:
        header = req.header("sforce-duplicate-rule-header") or ""
        return bool(re.search(r"allowSave\s*=\s*true", header, re.I))

    # -- sObject rows --------------------------------------------------------------------------
    @api("POST", r"/sobjects/(?P<sobject>\w+)")
    def create(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        fields = self._parse_fields(obj, self._body(req))
        try:
            rid, _ = self._save(obj, fields, None, allow_duplicates=self._allow_duplicates(req))
        except RecordError as err:
            raise HttpError(400, err.api_errors()) from err
        self.persist()
        return Response(201, {"id": rid, "success": True, "errors": []},
                        {"Location": f"{self._base(req)}/sobjects/{obj}/{rid}"})

    def _existing(self, obj: str, raw: str) -> dict[str, Any]:
        rid = norm_id(raw)
        rec = self.state["records"][obj].get(rid or "")
        if rec is None:
            raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
        if rec["IsDeleted"]:
            raise _fail(404, "ENTITY_IS_DELETED", "entity is deleted")
        return rec

    @api("GET", r"/sobjects/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)")
    def retrieve(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        rec = self._existing(obj, req.params["id"])
        names = self._field_names(obj, req.arg("fields"))
        return Response(200, self._render(obj, rec, names, req.params["version"]))

    def _field_names(self, obj: str, spec: str | list[str] | None) -> list[str]:
        if not spec:
            return list(self.fields(obj))
        items = spec if isinstance(spec, list) else spec.split(",")
        out = []
        for item in items:
            field = self._lookup_field(obj, str(item).strip())
            if field is None:
                raise _fail(400, "INVALID_FIELD", f"No such column '{str(item).strip()}' on entity '{obj}'. "
                                                  f"{NO_SUCH_COLUMN_HINT}")
            out.append(field["name"])
        return out

    @api("PATCH", r"/sobjects/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)")
    def update(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        rec = self._existing(obj, req.params["id"])
        fields = self._parse_fields(obj, self._body(req))
        try:
            self._save(obj, fields, rec["Id"], allow_duplicates=self._allow_duplicates(req))
        except RecordError as err:
            raise HttpError(400, err.api_errors()) from err
        self.persist()
        return Response(204, None)

    @api("DELETE", r"/sobjects/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)")
    def delete_row(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        if obj in READ_ONLY_OBJECTS:
            raise _fail(400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
        rec = self._existing(obj, req.params["id"])
        self._soft_delete(obj, rec, self._stamp())
        self.persist()
        return Response(204, None)

    # -- sObject Collections -----------------------------------------------------------------
    def _collection_records(self, body: Any) -> tuple[bool, list[Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _fail(400, "JSON_PARSER_ERROR", "Cannot deserialize the request: 'records' is required")
        records = body["records"]
        if len(records) > COLLECTION_MAX:
            raise _fail(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_MAX} "
                                                  "records into this call")
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise _fail(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of boolean from allOrNone")
        return all_or_none, records

    def _record_type(self, record: Any) -> str:
        attrs = record.get("attributes") if isinstance(record, dict) else None
        obj = self._sobject(str((attrs or {}).get("type") or ""))
        if obj is None:
            raise _fail(400, "INVALID_TYPE", "Must send a concrete entity type.")
        return obj

    def _run_collection(self, req: Request, records: list[Any], all_or_none: bool, *, update: bool
                        ) -> list[dict[str, Any]]:
        parsed = []
        for record in records:  # deserialisation errors fail the whole request, as in Salesforce
            obj = self._record_type(record)
            parsed.append((obj, record, self._parse_fields(obj, record, allow_id=update)))
        snapshot = copy.deepcopy(self.state) if all_or_none else None
        allow = self._allow_duplicates(req)
        results: list[dict[str, Any]] = []
        failed = False
        for obj, record, fields in parsed:
            raw_id = next((v for k, v in record.items() if k.lower() == "id"), None)
            try:
                if update:
                    rid = norm_id(str(raw_id or ""))
                    if raw_id is None:
                        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
                    if rid is None or TYPE_OF_PREFIX.get(rid[:3]) != obj:
                        raise RecordError("MALFORMED_ID", f"Id: id value of incorrect type: {raw_id}", ["Id"])
                    saved, _ = self._save(obj, fields, rid, allow_duplicates=allow)
                    results.append({"id": saved, "success": True, "errors": []})
                else:
                    if raw_id is not None:
                        raise RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                    saved, _ = self._save(obj, fields, None, allow_duplicates=allow)
                    results.append({"id": saved, "success": True, "errors": [], "created": True})
            except RecordError as err:
                failed = True
                results.append({"success": False, "errors": err.errors})
        if failed and snapshot is not None:
            self.state = snapshot
            rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                      "message": "Record rolled back because not all records were valid and the request was using "
                                 "AllOrNone header", "fields": []}
            results = [r if not r["success"] else {"success": False, "errors": [rolled]} for r in results]
        self.persist()
        return results

    @api("POST", r"/composite/sobjects", kind="query")
    def collection_create(self, req: Request) -> Response:
        all_or_none, records = self._collection_records(self._body(req))
        return Response(200, self._run_collection(req, records, all_or_none, update=False))

    @api("PATCH", r"/composite/sobjects", kind="query")
    def collection_update(self, req: Request) -> Response:
        all_or_none, records = self._collection_records(self._body(req))
        return Response(200, self._run_collection(req, records, all_or_none, update=True))

    @api("DELETE", r"/composite/sobjects", kind="query")
    def collection_delete(self, req: Request) -> Response:
        ids = [i for i in (req.arg("ids") or "").split(",") if i]
        if not ids:
            raise _fail(400, "MISSING_ARGUMENT", "ids is required")
        if len(ids) > COLLECTION_MAX:
            raise _fail(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_MAX} "
                                                  "records into this call")
        all_or_none = (req.arg("allOrNone") or "false").lower() == "true"
        snapshot = copy.deepcopy(self.state) if all_or_none else None
        results, failed = [], False
        now = self._stamp()
        for raw in ids:
            rid = norm_id(raw)
            obj = TYPE_OF_PREFIX.get((rid or "")[:3])
            rec = self.state["records"].get(obj or "", {}).get(rid or "") if obj else None
            if rec is None or rec["IsDeleted"] or obj in READ_ONLY_OBJECTS:
                failed = True
                code, msg = ("ENTITY_IS_DELETED", "entity is deleted") if rec is not None and rec["IsDeleted"] \
                    else ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                results.append({"id": raw, "success": False, "errors": [{"statusCode": code, "message": msg,
                                                                         "fields": []}]})
                continue
            self._soft_delete(obj, rec, now)  # type: ignore[arg-type]
            results.append({"id": rec["Id"], "success": True, "errors": []})
        if failed and snapshot is not None:
            self.state = snapshot
            results = [r if not r["success"] else {"id": r["id"], "success": False, "errors": [
                {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all "
                 "records were valid and the request was using AllOrNone header", "fields": []}]} for r in results]
        self.persist()
        return Response(200, results)

    def _retrieve_many(self, req: Request, obj: str, ids: list[str], fields: Any) -> Response:
        if not ids or not fields:
            raise _fail(400, "MISSING_ARGUMENT", "ids and fields are both required")
        names = self._field_names(obj, fields)
        out = []
        for raw in ids:
            rec = self.state["records"][obj].get(norm_id(str(raw)) or "")
            out.append(None if rec is None or rec["IsDeleted"] else self._render(obj, rec, names,
                                                                                  req.params["version"]))
        return Response(200, out)

    @api("GET", r"/composite/sobjects/(?P<sobject>\w+)", kind="query")
    def collection_retrieve(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        ids = [i for i in (req.arg("ids") or "").split(",") if i]
        if len(ids) > COLLECTION_MAX:
            raise _fail(400, "EXCEEDED_ID_LIMIT", "too many ids: use the POST form for up to 2000")
        return self._retrieve_many(req, obj, ids, req.arg("fields"))

    @api("POST", r"/composite/sobjects/(?P<sobject>\w+)", kind="query")
    def collection_retrieve_post(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        body = self._body(req) or {}
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise _fail(400, "JSON_PARSER_ERROR", "Cannot deserialize the request: 'ids' is required")
        if len(ids) > RETRIEVE_MAX:
            raise _fail(400, "EXCEEDED_ID_LIMIT", f"cannot retrieve more than {RETRIEVE_MAX} records")
        return self._retrieve_many(req, obj, [str(i) for i in ids], body.get("fields"))

    # -- Composite ---------------------------------------------------------------------------
    @api("POST", r"/composite")
    def composite(self, req: Request) -> Response:
        body = self._body(req)
        subs = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs:
            raise _fail(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        if len(subs) > COMPOSITE_MAX:
            raise _fail(400, "INVALID_REQUEST", f"Composite request has more than {COMPOSITE_MAX} subrequests")
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = copy.deepcopy(self.state) if all_or_none else None
        results: dict[str, tuple[int, Any]] = {}
        out: list[dict[str, Any]] = []
        queries = 0
        failed = False
        for sub in subs:
            if not isinstance(sub, dict) or not all(isinstance(sub.get(k), str) for k in ("method", "url",
                                                                                            "referenceId")):
                raise _fail(400, "JSON_PARSER_ERROR", "each subrequest needs method, url and referenceId")
            ref = sub["referenceId"]
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ref) or ref in results:
                raise _fail(400, "INVALID_REFERENCE_ID", f"Invalid referenceId: {ref}")
            if failed and all_or_none:
                status, payload = 400, _errors("PROCESSING_HALTED", "The transaction was rolled back since another "
                                                                    "operation in the same transaction failed.")
            else:
                try:
                    url = self._substitute(sub["url"], results, quote=True)
                    sub_body = self._substitute(sub.get("body"), results)
                    status, payload, headers = self._subrequest(req, sub["method"].upper(), url, sub_body)
                    kind = headers.pop("_kind", "other")
                    if kind == "query":
                        queries += 1
                        if queries > COMPOSITE_QUERIES_MAX:
                            raise _fail(400, "INVALID_REQUEST", "Composite request can have at most "
                                                                f"{COMPOSITE_QUERIES_MAX} query or collection "
                                                                "operations")
                except HttpError as err:
                    status, payload, headers = err.response.status, err.response.body, {}
                except _Halted as halt:
                    status, payload, headers = 400, _errors("PROCESSING_HALTED", str(halt)), {}
            if status >= 400:
                failed = True
            results[ref] = (status, payload)
            out.append({"body": payload, "httpHeaders": headers if status < 400 else {}, "httpStatusCode": status,
                        "referenceId": ref})
        if failed and snapshot is not None:
            self.state = snapshot
            halted = _errors("PROCESSING_HALTED", "The transaction was rolled back since another operation in the "
                                                  "same transaction failed.")
            out = [o if o["httpStatusCode"] >= 400 else {**o, "body": halted, "httpHeaders": {},
                                                          "httpStatusCode": 400} for o in out]
        self.persist()
        return Response(200, {"compositeResponse": out})

    def _substitute(self, value: Any, results: dict[str, tuple[int, Any]], *, quote: bool = False) -> Any:
        """Replace @{referenceId.path} with values of earlier subresponses."""
        if isinstance(value, dict):
            return {k: self._substitute(v, results) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v, results) for v in value]
        if not isinstance(value, str) or "@{" not in value:
            return value

        def one(m: re.Match[str]) -> str:
            ref, _, path = m.group(1).partition(".")
            if ref not in results or results[ref][0] >= 400:
                raise _Halted(f"Invalid reference specified. No value for {m.group(1)} found in {ref}.")
            node: Any = results[ref][1]
            for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
                try:
                    node = node[int(part[1:-1])] if part.startswith("[") else node[part]
                except (KeyError, IndexError, TypeError):
                    raise _Halted(f"Invalid reference specified. No value for {m.group(1)} found in {ref}.") \
                        from None
            text = node.text if isinstance(node, _Num) else str(node)
            return urllib.parse.quote(text, safe="") if quote else text

        return re.sub(r"@\{([^}]+)\}", one, value)

    def _subrequest(self, outer: Request, method: str, url: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urllib.parse.urlsplit(url)
        if not parts.path.startswith("/services/data/v") or parts.path.rstrip("/").endswith("/composite"):
            raise _fail(400, "INVALID_REQUEST", f"The URL {url} is not supported in a composite request")
        headers = {k: v for k, v in outer.headers.items() if k.startswith("sforce-")}
        headers[INNER] = self._inner_key
        headers["content-type"] = "application/json"
        inner = Request(method=method, path=urllib.parse.unquote(parts.path),
                        query=urllib.parse.parse_qs(parts.query, keep_blank_values=True), headers=headers,
                        body=dumps(body) if body is not None else b"", token=outer.token)
        handler = None
        for m, pattern, fn in self._routes:
            match = pattern.match(inner.path)
            if m == method and match:
                inner.params = match.groupdict()
                handler = fn
                break
        if handler is None:
            raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
        try:
            resp = handler(inner)
        except HttpError as err:
            resp = err.response
        extra = {"_kind": getattr(handler, "kind", "other")}
        extra.update({k: v for k, v in resp.headers.items() if k == "Location"})
        return resp.status, resp.body, extra

    # -- Tooling: custom fields --------------------------------------------------------------
    @api("POST", r"/tooling/sobjects/CustomField")
    def tooling_custom_field(self, req: Request) -> Response:
        if not self.admin:
            raise _fail(403, "INSUFFICIENT_ACCESS", "insufficient access rights on cross-reference id: you need the "
                                                    "Customize Application permission")
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("FullName"), str) or not isinstance(
                body.get("Metadata"), dict):
            raise _fail(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [FullName, Metadata]",
                        ["FullName", "Metadata"])
        obj_name, _, api_name = body["FullName"].partition(".")
        obj = self._sobject(obj_name)
        meta = body["Metadata"]
        if obj is None or obj in READ_ONLY_OBJECTS:
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", f"Cannot create a field on '{obj_name}'", ["FullName"])
        if not CUSTOM_NAME_RE.match(api_name) or len(api_name) > 43:
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", "Field Name: The API name can only contain underscores "
                                                          "and alphanumeric characters, must begin with a letter, "
                                                          "not end with an underscore, and not contain two "
                                                          "consecutive underscores; it must end in __c",
                        ["FullName"])
        existing = self.state["custom_fields"][obj]
        if any(n.lower() == api_name.lower() for n in existing):
            raise _fail(400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field named {api_name[:-3]} on {obj}.",
                        ["FullName"])
        ftype = TOOLING_TYPES.get(str(meta.get("type")))
        if ftype is None:
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", f"Type: bad value for restricted picklist field: "
                                                          f"{meta.get('type')}", ["Metadata"])
        label = meta.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _fail(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["Metadata"])
        length = meta.get("length")
        if ftype in ("string", "textarea") and (not isinstance(length, int) or not
                                                 0 < length <= (255 if ftype == "string" else 131072)):
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", "Length: You must enter a value between 1 and 255",
                        ["Metadata"])
        precision = int(meta.get("precision") or 18) if ftype in NUMBER_TYPES else None
        scale = int(meta.get("scale") if meta.get("scale") is not None else 2) if ftype in NUMBER_TYPES else None
        values = None
        if ftype == "picklist":
            defs = ((meta.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value") or []
            values = tuple(str(v.get("fullName")) for v in defs if isinstance(v, dict) and v.get("fullName"))
            if not values:
                raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", "Values: You must enter at least one value",
                            ["Metadata"])
        if ftype == "email":
            length = 80
        elif ftype in ("phone",):
            length = 40
        field = self.add_custom_field(obj, api_name, label.strip(), ftype, length=length if ftype in (
            "string", "textarea", "email", "phone") else None, precision=precision, scale=scale, values=values,
            visible=False)  # not visible to anyone until field-level security is granted
        field["externalId"] = bool(meta.get("externalId"))
        field["unique"] = bool(meta.get("unique"))
        self.persist()
        return Response(201, {"id": field["id"], "success": True, "errors": []})

    # -- a page for record links --------------------------------------------------------------
    @route("GET", r"/lightning/r/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15,18})/view")
    def lightning_view(self, req: Request) -> Response:
        obj = self._sobject(req.params["sobject"])
        rec = self.state["records"].get(obj or "", {}).get(norm_id(req.params["id"]) or "")
        if rec is None:
            return Response(404, "<h1>Record not found</h1>", content_type="text/html")
        name = rec.get("Name") or " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p) or rec["Id"]
        name = html.escape(str(name))
        page = (f"<!doctype html><title>{obj}: {name}</title><h1>{obj}</h1><p>{name}</p>"
                f"<p>Id {rec['Id']} in the Crossledger Salesforce sandbox.</p>")
        return Response(200, page, content_type="text/html")


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
