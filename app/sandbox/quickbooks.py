"""A faithful local imitation of the QuickBooks Online Accounting API v3 and Intuit's OAuth server.

Follows ../shared/reference/quickbooks-online.md (section 13, "What a faithful fake server should do")
and the XSDs in ../shared/specs/quickbooks/xsd/ for every field name:

- OAuth at Intuit's real paths: authorize ``/connect/oauth2`` (auto-approves, ``realmId`` in the
  callback), tokens ``/oauth2/v1/tokens/bearer`` (client secret required, Basic or post), revoke
  ``/v2/oauth2/tokens/revoke``. Access tokens live an hour; refresh tokens roll for ~100 days and rotate
  (a new value on every refresh; the old one keeps working for a short grace, as community reports say).
- ``/v3/company/{realmId}/...``: entity create/read/sparse+full update with ``SyncToken`` (5010 when
  stale), ``?operation=delete|void``, the SQL-like ``query`` (a real small parser: ``=``, ``<``, ``>``,
  ``<=``, ``>=``, ``IN``, ``LIKE``, ``AND``, ``ORDERBY``, ``STARTPOSITION``, ``MAXRESULTS`` <= 1000,
  ``count(*)``), ``cdc`` (30-day look-back, 1000 objects shared across entities, tombstones),
  ``batch`` (<= 30 items, serial, per-item Fault, answers keyed by bId in no promised order),
  ``requestid`` replay (the original answer, nothing executed twice), ``companyinfo`` and ``preferences``.
- Rules: DisplayName unique (case-insensitive) across customers, vendors and employees (6240);
  ``Amount = Qty x UnitPrice`` rounded half-up to cents; references must exist and be active (610);
  invoice totals, discounts and balances computed the way QBO does; voided invoices keep their lines
  with zero amounts and a "Voided" private note; deactivated names gain " (deleted)".
- Limits: 500 requests a minute per realm and 40 batch calls a minute per realm, answered with 429 and
  no Retry-After (none is documented).
- Errors in QBO's Fault envelope ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}],
  "type"}, "time"}``; authentication failures use the lower-case ``fault``/``error`` keys QBO sends.

Money is kept as strings in the state and sent as JSON numbers; every response carries ``intuit_tid``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.connectors.quickbooks import json_dumps
from app.sandbox import demo_data as demo_set
from app.sandbox.base import HttpError, Request, Response, SandboxApp, route
from app.sandbox.demo_data import PRODUCTS

API = r"/v3/company/(?P<realm>[^/]+)"
CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)
SCOPE = "com.intuit.quickbooks.accounting"
DEFAULT_REALM = "9341453172471737"
CDC_DAYS = 30
CDC_MAX = 1000
QUERY_MAX = 1000
QUERY_DEFAULT = 100
BATCH_MAX = 30
REQUESTID_TTL = 24 * 3600.0  # retention is undocumented (reference §8: "assume hours, not weeks")

CURRENCIES = {"USD": "United States Dollar", "GBP": "British Pound Sterling", "EUR": "Euro",
              "AUD": "Australian Dollar", "CAD": "Canadian Dollar", "NZD": "New Zealand Dollar"}
RATES = {"USD": Decimal(1), "GBP": Decimal("1.27"), "EUR": Decimal("1.08"), "AUD": Decimal("0.66"),
         "CAD": Decimal("0.73"), "NZD": Decimal("0.60")}  # home (USD) per unit, fixed for the sandbox

# Field names from the XSD (Finance.xsd / IntuitNamesTypes.xsd); anything else is error 2010.
CUSTOMER_FIELDS = frozenset((
    "Id SyncToken MetaData CustomField AttachableRef domain status sparse IntuitId Organization Title GivenName "
    "MiddleName FamilyName Suffix FullyQualifiedName CompanyName DisplayName PrintOnCheckName UserId Active "
    "V4IDPseudonym PrimaryPhone AlternatePhone Mobile Fax PrimaryEmailAddr WebAddr OtherContactInfo "
    "DefaultTaxCodeRef Taxable BillAddr ShipAddr OtherAddr ContactName AltContactName Notes Job BillWithParent "
    "RootCustomerRef ParentRef Level CustomerTypeRef SalesTermRef SalesRepRef TaxGroupCodeRef TaxRateRef "
    "PaymentMethodRef CCDetail PriceLevelRef Balance OpenBalanceDate BalanceWithJobs CreditLimit AcctNum "
    "CurrencyRef OverDueBalance TotalRevenue TotalExpense PreferredDeliveryMethod ResaleNum JobInfo TDSEnabled "
    "CustomerEx SecondaryTaxIdentifier ARAccountRef PrimaryTaxIdentifier TaxExemptionReasonId IsProject "
    "BusinessNumber GSTIN GSTRegistrationType IsCISContractor ClientCompanyId ClientEntityId Source TaxRegime"
).split())
ITEM_FIELDS = frozenset((
    "Id SyncToken MetaData CustomField AttachableRef domain status sparse Name Sku Description Active SubItem "
    "ParentRef Level FullyQualifiedName Taxable SalesTaxIncluded PercentBased UnitPrice RatePercent Type "
    "PaymentMethodRef UOMSetRef IncomeAccountRef PurchaseDesc PurchaseTaxIncluded PurchaseCost ExpenseAccountRef "
    "COGSAccountRef AssetAccountRef PrefVendorRef AvgCost TrackQtyOnHand QtyOnHand QtyOnPurchaseOrder "
    "QtyOnSalesOrder ReorderPoint ManPartNum DepositToAccountRef SalesTaxCodeRef PurchaseTaxCodeRef InvStartDate "
    "BuildPoint PrintGroupedItems SpecialItem SpecialItemType ItemGroupDetail ItemAssemblyDetail AbatementRate "
    "ReverseChargeRate ServiceType ItemCategoryType TaxClassificationRef UQCDisplayText UQCId ClassRef Source "
    "DeferredRevenue CustomExtensions ItemEx"
).split())
_TXN = ("Id SyncToken MetaData CustomField AttachableRef domain status sparse DocNumber TxnDate TxnSubType "
        "DepartmentRef CurrencyRef ExchangeRate PrivateNote TxnStatus LinkedTxn Line TxnTaxDetail TxnSource "
        "TaxFormType TaxFormNum TransactionLocationType Tag TxnApprovalInfo RecurDataRef RecurringInfo ProjectRef "
        "TotalCostAmount HomeTotalCostAmount ")
_SALES = ("AutoDocNumber CustomerRef CustomerMemo BillAddr ShipAddr FreeFormAddress ShipFromAddr RemitToRef "
          "ClassRef SalesTermRef DueDate SalesRepRef PONumber FOB ShipMethodRef ShipDate TrackingNum "
          "GlobalTaxCalculation TotalAmt HomeTotalAmt ApplyTaxAfterDiscount ShippingTaxIncludedInTotalTax "
          "TemplateRef PrintStatus EmailStatus BillEmail BillEmailCc BillEmailBcc ARAccountRef Balance HomeBalance "
          "FinanceCharge PaymentMethodRef PaymentRefNum PaymentType CheckPayment CreditCardPayment "
          "DepositToAccountRef DeliveryInfo DiscountRate DiscountAmt GovtTxnRefIdentifier TaxExemptionRef ")
INVOICE_FIELDS = frozenset((_TXN + _SALES + (
    "Deposit AllowIPNPayment AllowOnlinePayment AllowOnlineCreditCardPayment AllowOnlineACHPayment "
    "AllowOnlinePayPalPayment AllowOnlineAffirmPayment EInvoiceStatus ECloudStatusTimeStamp CfdiUse Exportation "
    "GlobalInfo invoiceStatus callToAction invoiceStatusLog LessCIS InvoiceLink PaymentDetailsMessage "
    "ConvenienceFeeDetail EnabledSurchargeInfo InvoiceLinkSecurityCode InvoiceLinkExpiryDate AutoPayEligible "
    "SchedulePayEligible ScheduledPaymentId GratuityEnabled FinancingProductType SubscriptionPaymentsSetting "
    "TxnRetainageDetail InvoiceEx")).split())
CREDIT_MEMO_FIELDS = frozenset((_TXN + _SALES + "RemainingCredit InvoiceRef CreditMemoEx").split())
PAYMENT_FIELDS = frozenset((_TXN + (
    "CustomerRef RemitToRef ARAccountRef DepositToAccountRef PaymentMethodRef PaymentRefNum PaymentType "
    "CheckPayment CreditCardPayment TotalAmt UnappliedAmt ProcessPayment PaymentExtendedType PaymentEx")).split())
ADDRESS_FIELDS = frozenset(("Id Line1 Line2 Line3 Line4 Line5 City Country CountryCode County "
                            "CountrySubDivisionCode PostalCode PostalCodeSuffix Lat Long Tag Note").split())
LINE_FIELDS = frozenset((
    "Id LineNum Description Amount Received LinkedTxn DetailType PaymentLineDetail DiscountLineDetail "
    "TaxLineDetail SalesItemLineDetail DescriptionLineDetail ItemBasedExpenseLineDetail "
    "AccountBasedExpenseLineDetail ReimburseLineDetail DepositLineDetail PurchaseOrderItemLineDetail "
    "SalesOrderItemLineDetail ItemReceiptLineDetail JournalEntryLineDetail GroupLineDetail SubTotalLineDetail "
    "TDSLineDetail ItemAdjustmentLineDetail CustomField ProjectRef CostAmount HomeCostAmount CustomExtensions "
    "LineEx").split())
SALES_DETAIL_FIELDS = frozenset((
    "ItemRef ClassRef UnitPrice UnitCostPrice RatePercent PriceLevelRef MarkupInfo Qty UOMRef ItemAccountRef "
    "InventorySiteRef TaxCodeRef TaxClassificationRef ServiceDate TaxInclusiveAmt DiscountRate DiscountAmt "
    "DeferredRevenue RetainageAmount SalesItemLineDetailEx").split())
DISCOUNT_DETAIL_FIELDS = frozenset(
    "DiscountRef PercentBased DiscountPercent DiscountAccountRef ServiceDate ClassRef TaxCodeRef".split())

FIELDS = {"Customer": CUSTOMER_FIELDS, "Item": ITEM_FIELDS, "Invoice": INVOICE_FIELDS,
          "CreditMemo": CREDIT_MEMO_FIELDS, "Payment": PAYMENT_FIELDS}
URL_ENTITY = {"customer": "Customer", "item": "Item", "invoice": "Invoice", "payment": "Payment",
              "creditmemo": "CreditMemo", "account": "Account", "vendor": "Vendor", "employee": "Employee"}
NAME_LISTS = ("Customer", "Vendor", "Employee", "Item", "Account")
NAME_HOLDERS = ("Customer", "Vendor", "Employee")  # DisplayName is unique across these (6240)
TRANSACTIONS = ("Invoice", "Payment", "CreditMemo")
READ_ONLY = frozenset(("Id", "SyncToken", "MetaData", "domain", "status", "sparse", "FullyQualifiedName",
                       "Balance", "BalanceWithJobs", "V4IDPseudonym", "TotalAmt", "HomeTotalAmt", "HomeBalance",
                       "RemainingCredit", "UnappliedAmt", "LinkedTxn", "Level", "OverDueBalance", "TotalRevenue",
                       "TotalExpense", "TxnTaxDetail", "Deposit", "InvoiceLink", "AvgCost"))
NUMERIC = frozenset(("Amount", "UnitPrice", "Qty", "TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt",
                     "BalanceWithJobs", "DiscountPercent", "UnappliedAmt", "RemainingCredit", "ExchangeRate",
                     "TotalTax", "Deposit", "PurchaseCost", "QtyOnHand", "CurrentBalance",
                     "CurrentBalanceWithSubAccounts"))

# Which properties a query may filter or sort on (reference §5 "reliable filters").
_COMMON = {"id": ("Id", "id"), "metadata.createtime": ("_created", "ts"),
           "metadata.lastupdatedtime": ("_updated", "ts")}
QUERYABLE: dict[str, dict[str, tuple[str, str]]] = {
    "Customer": {**_COMMON, "displayname": ("DisplayName", "str"), "givenname": ("GivenName", "str"),
                 "familyname": ("FamilyName", "str"), "companyname": ("CompanyName", "str"),
                 "primaryemailaddr": ("PrimaryEmailAddr.Address", "str"), "active": ("Active", "bool"),
                 "balance": ("Balance", "num"), "fullyqualifiedname": ("FullyQualifiedName", "str")},
    "Item": {**_COMMON, "name": ("Name", "str"), "sku": ("Sku", "str"), "type": ("Type", "str"),
             "active": ("Active", "bool"), "fullyqualifiedname": ("FullyQualifiedName", "str")},
    "Invoice": {**_COMMON, "docnumber": ("DocNumber", "str"), "txndate": ("TxnDate", "date"),
                "duedate": ("DueDate", "date"), "customerref": ("CustomerRef.value", "id"),
                "balance": ("Balance", "num"), "totalamt": ("TotalAmt", "num")},
    "CreditMemo": {**_COMMON, "docnumber": ("DocNumber", "str"), "txndate": ("TxnDate", "date"),
                   "customerref": ("CustomerRef.value", "id"), "totalamt": ("TotalAmt", "num")},
    "Payment": {**_COMMON, "txndate": ("TxnDate", "date"), "customerref": ("CustomerRef.value", "id")},
    "Account": {**_COMMON, "name": ("Name", "str"), "accounttype": ("AccountType", "str"),
                "classification": ("Classification", "str"), "active": ("Active", "bool")},
    "Vendor": {**_COMMON, "displayname": ("DisplayName", "str"), "active": ("Active", "bool")},
    "Employee": {**_COMMON, "displayname": ("DisplayName", "str"), "active": ("Active", "bool")},
    "CompanyInfo": dict(_COMMON),
}
CDC_ENTITIES = ("Customer", "Vendor", "Employee", "Item", "Account", "Invoice", "Payment", "CreditMemo")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# -- faults ---------------------------------------------------------------------------------------
class QboFault(Exception):
    """One QBO error: raised by entity logic, answered as a top-level Fault or a batch item's Fault."""

    def __init__(self, code: str, message: str, detail: str, element: str = "", *, status: int = 400,
                 kind: str = "ValidationFault") -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message, self.detail, self.element = code, message, detail, element
        self.status, self.kind = status, kind

    def fault(self) -> dict[str, Any]:
        return {"Error": [{"Message": self.message, "Detail": self.detail, "code": self.code,
                           "element": self.element}], "type": self.kind}


def _name_key(name: str | None) -> str:
    """How QuickBooks compares display names: trimmed, case-insensitive."""
    return (name or "").strip().casefold()


def unsupported(name: str) -> QboFault:
    return QboFault("2010", "Request has invalid or unsupported property",
                    f'Property Name:Unrecognized field "{name}" specified is unsupported or invalid', name)


def missing(name: str) -> QboFault:
    return QboFault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", name)


def too_long(name: str, limit: int, supplied: int) -> QboFault:
    return QboFault("2050", "String length is either shorter or longer than supported by specification",
                    f"String length specified does not match the supported length. Min:0 Max:{limit} "
                    f"supplied length:{supplied}", name)


def business(detail: str, element: str = "") -> QboFault:
    return QboFault("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}", element)


def not_found(entity: str, element: str = "") -> QboFault:
    return QboFault("610", "Object Not Found",
                    "Object Not Found : Something you're trying to use has been made inactive. Check the fields "
                    f"with accounts, customers, items, vendors or employees. ({entity})", element)


def invalid_ref(entity: str, value: Any, element: str) -> QboFault:
    return QboFault("2500", "Invalid Reference Id", f"Invalid Reference Id : {entity} element id {value} not found",
                    element)


def parse_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_invalid(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


# -- numbers ---------------------------------------------------------------------------------------
def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise QboFault("2010", "Request has invalid or unsupported property",
                       f"Property Name:{name} must be a number", name)
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise QboFault("2010", "Request has invalid or unsupported property",
                       f"Property Name:{name} must be a number", name) from None
    if not out.is_finite():
        raise QboFault("2010", "Request has invalid or unsupported property", f"Property Name:{name}", name)
    return out


def s(value: Decimal) -> str:
    return format(value, "f")


def _out(node: Any) -> Any:
    """Stored record -> wire: drop ``_private`` keys, amounts (stored as strings) become numbers."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k.startswith("_"):
                continue
            if k in NUMERIC and isinstance(v, str):
                out[k] = Decimal(v)
            else:
                out[k] = _out(v)
        return out
    if isinstance(node, list):
        return [_out(v) for v in node]
    return node


class QboResponse(Response):
    """A response whose Decimals go out as JSON numbers, and which carries Intuit's ``intuit_tid``."""

    __slots__ = ()

    def encode(self) -> bytes:
        if isinstance(self.body, dict | list):
            return json_dumps(self.body).encode()
        return Response.encode(self)


# -- the query language ------------------------------------------------------------------------------
_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|"""
                    r"""(?P<op><=|>=|!=|=|<|>|\(|\)|,|\*)|(?P<word>[A-Za-z_][\w.]*))""")


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip().rstrip(";")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise parse_error(f'Encountered " "{text[pos]}" at line 1, column {pos + 1}.')
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value, m.start(kind) + 1))
        pos = m.end()
    return tokens


class Query:
    """``SELECT ... FROM Entity [WHERE c AND c ...] [ORDERBY f [ASC|DESC], ...] [STARTPOSITION n] [MAXRESULTS n]``."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.count = False
        self.fields: list[str] | None = None
        self.conditions: list[tuple[str, str, Any]] = []
        self.order: list[tuple[str, bool]] = []
        self.start = 1
        self.max = QUERY_DEFAULT
        self._parse()

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, what: str = "") -> tuple[str, str, int]:
        tok = self._peek()
        if tok is None:
            raise parse_error(f'Encountered "<EOF>" at line 1; was expecting {what or "more input"}.')
        self.i += 1
        return tok

    def _word(self, *words: str) -> bool:
        tok = self._peek()
        if tok and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return True
        return False

    def _expect_word(self, word: str) -> None:
        if not self._word(word):
            tok = self._peek()
            raise parse_error(f'Encountered "{tok[1] if tok else "<EOF>"}" at line 1, column '
                              f'{tok[2] if tok else 0}. Was expecting "{word.upper()}".')

    def _expect_op(self, op: str) -> None:
        tok = self._next(op)
        if tok[0] != "op" or tok[1] != op:
            raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. Was expecting "{op}".')

    def _parse(self) -> None:
        self._expect_word("select")
        tok = self._next("*")
        if tok == ("op", "*", tok[2]):
            pass
        elif tok[0] == "word" and tok[1].lower() == "count":
            self._expect_op("(")
            self._expect_op("*")
            self._expect_op(")")
            self.count = True
        elif tok[0] == "word":
            self.fields = [tok[1]]
            while (p := self._peek()) and p[:2] == ("op", ","):
                self.i += 1
                name = self._next("a property")
                if name[0] != "word":
                    raise parse_error(f'Encountered "{name[1]}" at line 1, column {name[2]}.')
                self.fields.append(name[1])
        else:
            raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.')
        self._expect_word("from")
        ent = self._next("an entity")
        if ent[0] != "word":
            raise parse_error(f'Encountered "{ent[1]}" at line 1, column {ent[2]}.')
        self.entity_raw = ent[1]
        if self._word("where"):
            self.conditions.append(self._condition())
            while self._word("and"):
                self.conditions.append(self._condition())
            if (p := self._peek()) and p[0] == "word" and p[1].lower() == "or":
                raise parse_error(f'Encountered " "OR" "or "" at line 1, column {p[2]}. OR is not supported.')
        while self._peek() is not None:
            if self._word("orderby"):
                while True:
                    name = self._next("a property")
                    desc = False
                    if self._word("desc"):
                        desc = True
                    else:
                        self._word("asc")
                    self.order.append((name[1], desc))
                    if (p := self._peek()) and p[:2] == ("op", ","):
                        self.i += 1
                        continue
                    break
            elif self._word("startposition"):
                self.start = self._int("STARTPOSITION")
            elif self._word("maxresults"):
                self.max = self._int("MAXRESULTS")
            else:
                tok = self._next()
                raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.')

    def _int(self, what: str) -> int:
        tok = self._next("a number")
        if tok[0] != "num" or "." in tok[1]:
            raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. {what} takes an integer.')
        return int(tok[1])

    def _value(self) -> Any:
        tok = self._next("a value")
        if tok[0] == "str":
            return tok[1]
        if tok[0] == "num":
            return Decimal(tok[1])
        if tok[0] == "word" and tok[1].lower() in ("true", "false"):
            return tok[1].lower() == "true"
        raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. Was expecting a value.')

    def _condition(self) -> tuple[str, str, Any]:
        name = self._next("a property")
        if name[0] != "word":
            raise parse_error(f'Encountered "{name[1]}" at line 1, column {name[2]}.')
        if self._word("in"):
            self._expect_op("(")
            values = [self._value()]
            while (p := self._peek()) and p[:2] == ("op", ","):
                self.i += 1
                values.append(self._value())
            self._expect_op(")")
            return name[1], "in", values
        if self._word("like"):
            value = self._value()
            if not isinstance(value, str):
                raise parse_error("LIKE takes a quoted string.")
            return name[1], "like", value
        op = self._next("an operator")
        if op[0] != "op" or op[1] not in ("=", "<", ">", "<=", ">=", "!="):
            raise parse_error(f'Encountered "{op[1]}" at line 1, column {op[2]}. Was expecting an operator.')
        return name[1], op[1], self._value()


def _get(rec: dict[str, Any], path: str) -> Any:
    node: Any = rec
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _parse_when(text: str) -> float:
    value = text.strip().replace(" ", "T", 1)
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise query_invalid(f"Invalid date/time value {text!r}") from None
    if parsed.tzinfo is None:
        raise query_invalid(f"Invalid date/time value {text!r}: give a UTC offset")
    return parsed.timestamp()


def _coerce(kind: str, value: Any, prop: str) -> Any:
    if kind == "str":
        return str(value).casefold()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise query_invalid(f"{prop} takes true or false")
    if kind == "num":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise query_invalid(f"{prop} takes a number") from None
    if kind == "id":
        text = str(value)
        if not text.isdigit():
            raise query_invalid(f"{prop} takes an id")
        return int(text)
    if kind == "date":
        text = str(value)
        if not _DATE.match(text):
            raise query_invalid(f"{prop} takes a date (YYYY-MM-DD)")
        return text
    return _parse_when(str(value))  # ts


def _record_value(rec: dict[str, Any], path: str, kind: str) -> Any:
    raw = _get(rec, path)
    if raw is None:
        return None
    if kind == "str":
        return str(raw).casefold()
    if kind == "bool":
        return bool(raw)
    if kind == "num":
        return Decimal(str(raw))
    if kind == "id":
        return int(raw)
    if kind == "ts":
        return float(int(raw))  # stored with second precision, as MetaData shows it
    return str(raw)


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Missing values sort last (first when descending), like SQL NULLs."""
    return (value is None, value if value is not None else 0)


def _matches(value: Any, op: str, want: Any) -> bool:
    if value is None:
        return False
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    if op == "in":
        return value in want
    if op == "like":
        pattern = "^" + ".*".join(re.escape(part) for part in want.split("%")) + "$"
        return re.match(pattern, value, re.DOTALL) is not None
    try:
        return {"<": value < want, ">": value > want, "<=": value <= want, ">=": value >= want}[op]
    except TypeError:
        return False


# -- the sandbox -----------------------------------------------------------------------------------------
class QuickBooksSandbox(SandboxApp):
    """One QuickBooks Online company (more can be added) behind Intuit's OAuth server."""

    provider = "quickbooks"
    access_ttl = 3600
    refresh_ttl = 8726400  # ~100 days, rolling: every refresh starts a new one
    refresh_rotates = True
    refresh_grace = 600  # the old value works for a short while (community reports; reference §1)
    rate_limit = (500, 60.0)  # requests per minute per realm
    batch_limit = (40, 60.0)  # batch calls per minute per realm and app
    pkce_supported = False

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 time_zone: str = "America/Los_Angeles") -> None:
        self.time_zone = time_zone
        # per company: [company, list sizes, DisplayName key -> {(entity, id)}]; see _names
        self._name_index: dict[int, list[Any]] = {}
        super().__init__(state_file, clock=clock)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {"companies": {}, "default_realm": None}

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth")
            self.state = self.empty_state()
            self.state["oauth"] = oauth or {"codes": {}, "access": {}, "refresh": {}}
            if kind == "empty":
                self.add_company("Crossledger Test Inc.", realm=DEFAULT_REALM)
            elif kind == "demo":
                realm = self.add_company("Crossledger Demo Inc.", realm=DEFAULT_REALM)
                self._seed_demo(realm)
            else:
                raise ValueError(f"unknown seed {kind!r}: use 'empty' or 'demo'")
            self.persist()

    def add_company(self, name: str, *, realm: str | None = None, home_currency: str = "USD",
                    multicurrency: bool = True) -> str:
        """A QBO company (realm) with its chart of accounts; returns the realmId."""
        with self.lock:
            realm = realm or str(9_130_000_000_000_000 + secrets.randbelow(10**15))
            now = self.now()
            co: dict[str, Any] = {
                "realm": realm, "home_currency": home_currency, "multicurrency": multicurrency,
                "duplicate_doc_check": False,
                "entities": {name_: {} for name_ in (*NAME_LISTS, *TRANSACTIONS)},
                "deleted": {name_: {} for name_ in TRANSACTIONS},
                "requestids": {}, "counters": {}, "doc_number": 1000,
                "info": {"Id": "1", "SyncToken": "0", "CompanyName": name, "LegalName": name,
                         "CompanyAddr": {"Id": "1", "Line1": "2600 Marine Way", "City": "Mountain View",
                                         "CountrySubDivisionCode": "CA", "PostalCode": "94043", "Country": "US"},
                         "Country": "US", "Email": {"Address": "books@crossledger.example"},
                         "CompanyStartDate": self._date(now), "FiscalYearStartMonth": "January",
                         "SupportedLanguages": "en", "DefaultTimeZone": self.time_zone,
                         "NameValue": [{"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                                       {"Name": "NeoEnabled", "Value": "true"}],
                         "_created": now, "_updated": now},
            }
            self.state["companies"][realm] = co
            if not self.state.get("default_realm"):
                self.state["default_realm"] = realm
            accounts = co["entities"]["Account"]
            for aid, aname, atype, classification, sub in (
                    ("1", "Services", "Income", "Revenue", "ServiceFeeIncome"),
                    ("79", "Sales of Product Income", "Income", "Revenue", "SalesOfProductIncome"),
                    ("86", "Discounts given", "Income", "Revenue", "DiscountsRefundsGiven"),
                    ("84", "Accounts Receivable (A/R)", "Accounts Receivable", "Asset", "AccountsReceivable"),
                    ("4", "Undeposited Funds", "Other Current Asset", "Asset", "UndepositedFunds"),
                    ("35", "Checking", "Bank", "Asset", "Checking")):
                accounts[aid] = {"Id": aid, "SyncToken": "0", "Name": aname, "SubAccount": False,
                                 "FullyQualifiedName": aname, "Active": True, "Classification": classification,
                                 "AccountType": atype, "AccountSubType": sub, "CurrentBalance": "0",
                                 "CurrentBalanceWithSubAccounts": "0",
                                 "CurrencyRef": self._currency_ref(home_currency), "domain": "QBO",
                                 "sparse": False, "_created": now, "_updated": now}
            co["counters"]["Account"] = 100
            self.persist()
            return realm

    def company(self, realm: str | None = None) -> dict[str, Any]:
        return self.state["companies"][realm or self.state["default_realm"]]

    def _next(self, co: dict[str, Any], entity: str, start: int) -> str:
        counters = co["counters"]
        counters[entity] = max(counters.get(entity, start - 1), start - 1) + 1
        return str(counters[entity])

    _START = {"Customer": 1, "Vendor": 30, "Employee": 55, "Item": 1, "Invoice": 130, "Payment": 190,
              "CreditMemo": 240, "Addr": 90, "Phone": 1}

    def _new_id(self, co: dict[str, Any], entity: str) -> str:
        return self._next(co, entity, self._START.get(entity, 1))

    def _seed_demo(self, realm: str) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        co = self.company(realm)
        stamp = self.now() - 86400 * 20
        n = 0

        def at(rec_id: str, entity: str, created: bool = True) -> None:
            nonlocal n
            rec = co["entities"][entity][rec_id]
            rec["_updated"] = stamp + n * 60
            if created:
                rec["_created"] = rec["_updated"]
            n += 1

        for c in data.companies:
            if not c.in_ledger:
                continue
            body: dict[str, Any] = {
                "DisplayName": c.ledger_name, "CompanyName": c.ledger_name,
                "BillAddr": {k: v for k, v in (("Line1", c.address_line1), ("City", c.city),
                                               ("CountrySubDivisionCode", c.region), ("PostalCode", c.postal_code),
                                               ("Country", c.country)) if v},
                "CurrencyRef": {"value": c.currency},
            }
            if c.in_ledger == "email" and c.email:
                body["PrimaryEmailAddr"] = {"Address": c.email}
            if c.in_ledger == "tax_id" and c.tax_id:
                body["PrimaryTaxIdentifier"] = c.tax_id
            if c.phone:
                body["PrimaryPhone"] = {"FreeFormNumber": c.phone}
            at(self._write(co, "Customer", body)["Id"], "Customer")
        extras = [
            {"DisplayName": "Harbourview Dental Group", "CompanyName": "Harbourview Dental Group",
             "PrimaryEmailAddr": {"Address": "frontdesk@harbourviewdental.example"},
             "BillAddr": {"Line1": "18 Pier Road", "City": "Seattle", "CountrySubDivisionCode": "WA",
                          "PostalCode": "98101", "Country": "US"}},
            {"DisplayName": "Diego Ramírez", "GivenName": "Diego", "FamilyName": "Ramírez",
             "PrimaryEmailAddr": {"Address": "diego.ramirez@example.org"},
             "PrimaryPhone": {"FreeFormNumber": "+1 415 555 0142"}},
            {"DisplayName": "Ottoline's Flowers", "CompanyName": "Ottoline's Flowers",
             "BillAddr": {"Line1": "4 Market Street", "City": "Portland", "CountrySubDivisionCode": "OR",
                          "PostalCode": "97204", "Country": "US"}},
            {"DisplayName": "Quayside Rowing Club", "CompanyName": "Quayside Rowing Club",
             "PrimaryEmailAddr": {"Address": "treasurer@quaysiderowing.example"},
             "CurrencyRef": {"value": "GBP"},
             "BillAddr": {"Line1": "The Boathouse", "City": "Bristol", "PostalCode": "BS1 4DB", "Country": "GB"}},
            {"DisplayName": "Lumen Bicycle Repair", "CompanyName": "Lumen Bicycle Repair"},
        ]
        ids = [self._write(co, "Customer", body)["Id"] for body in extras]
        for cid in ids:
            at(cid, "Customer")
        self._write(co, "Customer", {"Id": ids[-1], "SyncToken": "0", "sparse": True, "Active": False})
        at(ids[-1], "Customer", created=False)
        vendor = self._name_record(co, "Vendor", "Northwind Office Supplies")
        employee = self._name_record(co, "Employee", "Alex Ledger")
        at(vendor, "Vendor")
        at(employee, "Employee")
        item_ids: dict[str, str] = {}
        for sku, name, price in PRODUCTS:
            hardware = sku.startswith("HW")
            item = self._write(co, "Item", {"Name": name, "Sku": sku, "UnitPrice": price, "Description": name,
                                            "Type": "NonInventory" if hardware else "Service",
                                            "IncomeAccountRef": {"value": "79" if hardware else "1"}})
            item_ids[sku] = item["Id"]
            at(item["Id"], "Item")
        today = dt.datetime.fromtimestamp(self.now(), self._tz()).date()
        paid = self._write(co, "Invoice", {
            "CustomerRef": {"value": ids[0]}, "TxnDate": (today - dt.timedelta(days=40)).isoformat(),
            "DueDate": (today - dt.timedelta(days=10)).isoformat(),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("250.00"), "Description": "Consulting",
                      "SalesItemLineDetail": {"ItemRef": {"value": item_ids["CONS-HR"]}, "Qty": Decimal(2),
                                              "UnitPrice": Decimal("125.00")}}]})
        at(paid["Id"], "Invoice")
        overdue = self._write(co, "Invoice", {
            "CustomerRef": {"value": ids[2]}, "TxnDate": (today - dt.timedelta(days=45)).isoformat(),
            "DueDate": (today - dt.timedelta(days=15)).isoformat(),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("249.50"), "Description": "Starter kit",
                      "SalesItemLineDetail": {"ItemRef": {"value": item_ids["HW-KIT"]}, "Qty": Decimal(1),
                                              "UnitPrice": Decimal("249.50")}}]})
        at(overdue["Id"], "Invoice")
        pay = self._write(co, "Payment", {"CustomerRef": {"value": ids[0]}, "TotalAmt": Decimal("250.00"),
                                          "TxnDate": (today - dt.timedelta(days=12)).isoformat(),
                                          "Line": [{"Amount": Decimal("250.00"),
                                                    "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}]})
        at(pay["Id"], "Payment")
        at(paid["Id"], "Invoice", created=False)

    def _name_record(self, co: dict[str, Any], entity: str, name: str) -> str:
        """A vendor or employee: only there to hold a display name (uniqueness spans them)."""
        self._check_name_free(co, name, None)
        rec_id = self._new_id(co, entity)
        now = self.now()
        co["entities"][entity][rec_id] = {"Id": rec_id, "SyncToken": "0", "DisplayName": name,
                                          "PrintOnCheckName": name, "Active": True, "domain": "QBO",
                                          "sparse": False, "_created": now, "_updated": now}
        self._index_name(co, entity, co["entities"][entity][rec_id], new=True)
        return rec_id

    # -- clock and formats ----------------------------------------------------------------------
    def _tz(self) -> dt.tzinfo:
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(self.time_zone)
        except Exception:  # noqa: BLE001 - no tz database: QBO sandbox companies are US Pacific
            return dt.timezone(dt.timedelta(hours=-8))

    def ts(self, epoch: float) -> str:
        """``2026-05-12T03:10:11-07:00``: MetaData times, seconds, company time zone."""
        return dt.datetime.fromtimestamp(int(epoch), self._tz()).isoformat()

    def stamp(self) -> str:
        """``2026-05-12T03:10:11.392-07:00``: the ``time`` of every answer."""
        return dt.datetime.fromtimestamp(self.now(), self._tz()).isoformat(timespec="milliseconds")

    def _date(self, epoch: float) -> str:
        return dt.datetime.fromtimestamp(epoch, self._tz()).date().isoformat()

    def today(self) -> str:
        return self._date(self.now())

    # -- oauth ------------------------------------------------------------------------------
    def callback_extra(self, req: Request) -> dict[str, str]:
        """``realmId`` only comes with the accounting (or payment) scope."""
        scope = req.arg("scope")
        if scope is not None and SCOPE not in scope.split() and "com.intuit.quickbooks.payment" not in scope:
            return {}
        return {"realmId": self.state.get("default_realm") or ""}

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        return {"x_refresh_token_expires_in": self.refresh_ttl}

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        """Intuit's bodies: ``{"error": "invalid_grant", "error_description": "Token invalid"}``."""
        if error == "invalid_grant":
            description = ("Token has been expired or revoked." if "expired" in description or "rotated" in description
                           else "Token invalid")
        elif error == "invalid_client":
            description = "Client authentication failed"
        body = {"error": error, **({"error_description": description} if description else {})}
        return HttpError(status, body, {"intuit_tid": str(uuid.uuid4())})

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = SCOPE) -> dict[str, Any]:
        return super().grant_tokens(client_id, scope)

    @route("GET", r"/connect/oauth2")
    def authorize(self, req: Request) -> Response:
        if req.arg("response_type") != "code":
            raise HttpError(400, {"error": "unsupported_response_type"})
        if not (req.arg("scope") or "").strip():
            raise HttpError(400, {"error": "invalid_scope"})
        return self.authorize_redirect(req)

    @route("POST", r"/oauth2/v1/tokens/bearer")
    def token(self, req: Request) -> Response:
        """Intuit requires the client secret (Basic or form); there is no public-client flow."""
        form = req.form()
        auth = req.header("authorization") or ""
        has_secret = bool(form.get("client_secret"))
        if auth.lower().startswith("basic "):
            import base64

            try:
                has_secret = bool(base64.b64decode(auth[6:]).decode().split(":", 1)[1])
            except (ValueError, IndexError):
                has_secret = False
        if not has_secret:
            raise self.token_error(401, "invalid_client")
        resp = self.token_endpoint(req)
        resp.headers["intuit_tid"] = str(uuid.uuid4())
        return resp

    @route("POST", r"/v2/oauth2/tokens/revoke")
    def revoke(self, req: Request) -> Response:
        """Revoking a refresh token disconnects the app; an access token is simply killed."""
        try:
            token = (json.loads(req.body or b"{}") or {}).get("token", "")
        except ValueError:
            token = ""
        oauth = self.state["oauth"]
        if token in oauth["refresh"]:
            oauth["refresh"][token]["revoked"] = True
            client = oauth["refresh"][token]["client_id"]
            for rec in oauth["access"].values():
                if rec["client_id"] == client:
                    rec["expires"] = 0
        elif token in oauth["access"]:
            oauth["access"][token]["expires"] = 0
        else:
            raise HttpError(400, {"error": "invalid_request"})
        self.persist()
        return Response(200, b"")

    def unauthorized(self, why: str) -> HttpError:
        """QBO's authentication faults use lower-case keys (reference §13, observed)."""
        detail = "Token expired" if why == "expired" else "Token invalid"
        return HttpError(401, {"fault": {"error": [{
            "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "detail": detail, "code": "3200"}], "type": "AUTHENTICATION"}, "time": self.stamp()},
            {"WWW-Authenticate": 'Bearer realm="Intuit"'})

    def not_found_body(self, req: Request) -> Any:
        return {"Fault": {"Error": [{"Message": "Unsupported Operation",
                                     "Detail": f"Operation {req.method} {req.path} is not supported.",
                                     "code": "500", "element": ""}], "type": "ValidationFault"},
                "time": self.stamp()}

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.batch_limit = (int(self.batch_limit[0] * factor), self.batch_limit[1])

    def dispatch(self, req: Request) -> Response:
        tid = str(uuid.uuid4())
        try:
            resp = super().dispatch(req)
        except HttpError as err:
            err.response.headers.setdefault("intuit_tid", tid)
            raise
        resp.headers.setdefault("intuit_tid", tid)
        return resp

    # -- request plumbing -----------------------------------------------------------------------
    def _fail(self, err: QboFault) -> HttpError:
        return HttpError(err.status, {"Fault": err.fault(), "time": self.stamp()})

    def _enter(self, req: Request, *, batch: bool = False) -> dict[str, Any]:
        """Token, company and rate limit, in QBO's order: 401, then 403, then 429."""
        self.authenticate(req, "Bearer")
        realm = req.params["realm"]
        co = self.state["companies"].get(realm)
        if co is None:
            raise HttpError(403, {"Fault": {"Error": [{
                "Message": "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                "Detail": f"The company {realm} is not available to this connection.", "code": "3100",
                "element": ""}], "type": "AuthorizationFault"}, "time": self.stamp()})
        minor = req.arg("minorversion")
        if minor is not None and not minor.strip().isdigit():
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      f"Invalid minorversion {minor!r}", "minorversion"))
        limit, window = self.rate_limit or (500, 60.0)
        if self.check_rate(f"realm:{realm}", limit, window) is not None or (
                batch and self.check_rate(f"batch:{realm}", *self.batch_limit) is not None):
            raise HttpError(429, {"Fault": {"Error": [{
                "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "Detail": "The request limit was reached.", "code": "3001", "element": ""}],
                "type": "ThrottlingFault"}, "time": self.stamp()})
        return co

    def _body(self, req: Request) -> Any:
        try:
            text = req.body.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(QboFault("500", "Unsupported Operation",
                                      "The request body is not valid UTF-8.")) from None
        if not text.strip():
            raise self._fail(QboFault("2020", "Required param missing, need to supply the required value for "
                                      "the API", "The request has no body"))
        try:
            return json.loads(text, parse_float=Decimal)
        except ValueError:
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      "Request body is not valid JSON")) from None

    def ok(self, body: dict[str, Any]) -> QboResponse:
        return QboResponse(200, {**body, "time": self.stamp()})

    def _replay(self, co: dict[str, Any], req: Request, limit: int = 50) -> QboResponse | None:
        """A request id already answered for this company gets the original answer again."""
        rid = req.arg("requestid")
        if rid is None:
            return None
        if not rid or len(rid) > limit:
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      f"requestid must be 1 to {limit} characters", "requestid"))
        now = self.now()
        cache = co["requestids"]
        for key in [k for k, v in cache.items() if now - v["at"] > REQUESTID_TTL]:
            del cache[key]
        hit = cache.get(rid)
        if hit is None:
            return None
        return QboResponse(hit["status"], json.loads(hit["body"], parse_float=Decimal))

    def _keep(self, co: dict[str, Any], req: Request, resp: Response) -> Response:
        rid = req.arg("requestid")
        if rid:
            co["requestids"][rid] = {"at": self.now(), "status": resp.status, "body": json_dumps(resp.body)}
        return resp

    # -- wire form -----------------------------------------------------------------------------
    def wire(self, co: dict[str, Any], entity: str, rec: dict[str, Any]) -> dict[str, Any]:
        out = _out(rec)
        out["MetaData"] = {"CreateTime": self.ts(rec["_created"]), "LastUpdatedTime": self.ts(rec["_updated"])}
        if entity == "Customer":
            out["Balance"] = out["BalanceWithJobs"] = self._customer_balance(co, rec["Id"])
        return out

    def _customer_balance(self, co: dict[str, Any], cid: str) -> Decimal:
        total = ZERO
        for inv in co["entities"]["Invoice"].values():
            if inv["CustomerRef"]["value"] == cid:
                total += Decimal(inv["Balance"])
        for memo in co["entities"]["CreditMemo"].values():
            if memo["CustomerRef"]["value"] == cid:
                total -= Decimal(memo["RemainingCredit"])
        return total

    def _currency_ref(self, code: str) -> dict[str, str]:
        return {"value": code, "name": CURRENCIES.get(code, code)}

    # -- writes: dispatch -------------------------------------------------------------------------
    def _write(self, co: dict[str, Any], entity: str, body: Any, operation: str | None = None,
               include: str | None = None) -> dict[str, Any]:
        """Create, update, delete or void one entity; returns its wire form (or a tombstone)."""
        if not isinstance(body, dict):
            raise QboFault("2010", "Request has invalid or unsupported property", f"{entity} must be an object")
        if entity not in FIELDS:
            raise QboFault("500", "Unsupported Operation", f"Operation not supported for {entity}")
        for key in body:
            if key not in FIELDS[entity]:
                raise unsupported(key)
        op = (operation or "").lower()
        if op == "update" and include == "void":
            op = "void"
        store = co["entities"][entity]
        if op in ("delete", "void"):
            current = self._current(co, entity, body)
            if op == "delete":
                return self._delete(co, entity, current)
            return self._void(co, entity, current)
        if op not in ("", "create", "update"):
            raise QboFault("2010", "Request has invalid or unsupported property", f"Unknown operation {op}",
                           "operation")
        if body.get("Id") is None:
            if op == "update":
                raise missing("Id")
            rec = self._build(co, entity, body, None)
            rec["Id"] = self._new_id(co, entity)
            rec["SyncToken"] = "0"
            rec["_created"] = rec["_updated"] = self.now()
            store[rec["Id"]] = rec
            self._index_name(co, entity, rec, new=True)
            self._after(co, entity, rec, None)
            return self.wire(co, entity, rec)
        if op == "create":
            raise QboFault("2010", "Request has invalid or unsupported property", "Id is read-only on create", "Id")
        current = self._current(co, entity, body)
        if current.get("_voided"):
            raise business("A voided transaction can't be changed.")
        before = copy.deepcopy(current)
        rec = self._build(co, entity, body, current)
        rec["Id"], rec["_created"] = current["Id"], current["_created"]
        rec["SyncToken"] = str(int(current["SyncToken"]) + 1)
        rec["_updated"] = self.now()
        store[rec["Id"]] = rec
        self._index_name(co, entity, rec, new=False)
        self._after(co, entity, rec, before)
        return self.wire(co, entity, rec)

    def _current(self, co: dict[str, Any], entity: str, body: dict[str, Any]) -> dict[str, Any]:
        rec_id = str(body.get("Id") or "")
        if not rec_id:
            raise missing("Id")
        current = co["entities"][entity].get(rec_id)
        if current is None:
            raise not_found(entity, "Id")
        token = body.get("SyncToken")
        if token is None:
            raise missing("SyncToken")
        if str(token) != current["SyncToken"]:
            raise QboFault("5010", "Stale Object Error",
                           "Stale Object Error : You and Alex Ledger were working on this at the same time. "
                           "Alex Ledger finished before you did, so your work was not saved.", "SyncToken")
        return current

    def _base(self, entity: str, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        """Sparse: start from the current record. Full update: writable fields omitted are cleared."""
        if current is not None and body.get("sparse") is True:
            rec = copy.deepcopy(current)
        else:
            rec = {k: v for k, v in (current or {}).items() if k.startswith("_")}
        read_only = READ_ONLY - {"TotalAmt"} if entity == "Payment" else READ_ONLY
        for key, value in body.items():
            if key in read_only:
                continue
            if value is None or value == "":
                rec.pop(key, None)
            else:
                rec[key] = copy.deepcopy(value)
        rec["domain"], rec["sparse"] = "QBO", False
        return rec

    def _build(self, co: dict[str, Any], entity: str, body: dict[str, Any],
               current: dict[str, Any] | None) -> dict[str, Any]:
        rec = self._base(entity, body, current)
        if entity == "Customer":
            return self._customer(co, rec, current)
        if entity == "Item":
            return self._item(co, rec, current)
        if entity in ("Invoice", "CreditMemo"):
            return self._sales(co, entity, rec, current)
        return self._payment(co, rec, current)

    def _after(self, co: dict[str, Any], entity: str, rec: dict[str, Any], before: dict[str, Any] | None) -> None:
        if entity == "Payment":
            if before is not None:
                self._unapply(co, before)
            self._apply(co, rec)

    # -- customers ------------------------------------------------------------------------------
    def _names(self, co: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
        """DisplayName (stripped, case-folded) -> the customers, vendors and employees that held it.

        Kept in step by ``_index_name`` on every create and update; entries are checked against the
        record on lookup (a rename or delete leaves a stale one behind), and the index is rebuilt when
        the lists' sizes show a record arrived some other way (seed, loaded state)."""
        sizes = tuple(len(co["entities"][e]) for e in NAME_HOLDERS)
        cached = self._name_index.get(id(co))
        if cached is None or cached[0] is not co or cached[1] != sizes:
            index: dict[str, set[tuple[str, str]]] = {}
            for entity in NAME_HOLDERS:
                for rec in co["entities"][entity].values():
                    index.setdefault(_name_key(rec.get("DisplayName")), set()).add((entity, rec["Id"]))
            cached = self._name_index[id(co)] = [co, sizes, index]
        return cached[2]

    def _index_name(self, co: dict[str, Any], entity: str, rec: dict[str, Any], *, new: bool) -> None:
        if entity not in NAME_HOLDERS:
            return
        cached = self._name_index.get(id(co))
        if cached is None or cached[0] is not co:
            return  # built on the next lookup, this record included
        sizes = tuple(len(co["entities"][e]) for e in NAME_HOLDERS)
        expected = tuple(n + (1 if new and e == entity else 0) for e, n in zip(NAME_HOLDERS, cached[1], strict=True))
        if sizes != expected:  # something else changed the lists meanwhile: rebuild on the next lookup
            del self._name_index[id(co)]
            return
        cached[1] = sizes
        cached[2].setdefault(_name_key(rec.get("DisplayName")), set()).add((entity, rec["Id"]))

    def _name_holder(self, co: dict[str, Any], key: str, own: tuple[str, str] | None) -> tuple[str, str] | None:
        for entity, rec_id in self._names(co).get(key, ()):
            if own == (entity, rec_id):
                continue
            rec = co["entities"][entity].get(rec_id)
            if rec is not None and _name_key(rec.get("DisplayName")) == key:
                return entity, rec_id
        return None

    def _check_name_free(self, co: dict[str, Any], name: str, own: tuple[str, str] | None) -> None:
        if self._name_holder(co, _name_key(name), own) is not None:
            raise QboFault("6240", "Duplicate Name Exists Error",
                           "The name supplied already exists. : Another customer, vendor or employee is "
                           "already using this name. Please use a different name.", "DisplayName")

    def _customer(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        for field, limit in (("Title", 16), ("GivenName", 25), ("MiddleName", 25), ("FamilyName", 25),
                             ("Suffix", 16), ("CompanyName", 100), ("DisplayName", 500), ("Notes", 2000),
                             ("PrimaryTaxIdentifier", 30), ("ResaleNum", 16), ("BusinessNumber", 30)):
            value = rec.get(field)
            if value is not None and not isinstance(value, str):
                raise QboFault("2010", "Request has invalid or unsupported property",
                               f"Property Name:{field} must be a string", field)
            if value is not None and len(value) > limit:
                raise too_long(field, limit, len(value))
        if not rec.get("DisplayName"):
            parts = [rec.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            built = " ".join(p for p in parts if p) or rec.get("CompanyName")
            if not built:
                raise missing("DisplayName")
            rec["DisplayName"] = built
        name = rec["DisplayName"]
        if any(ch in name for ch in ":\t\n"):
            raise business("A name can't contain a colon (:), tab or new line.", "DisplayName")
        for key in ("PrimaryEmailAddr",):
            email = rec.get(key)
            if email is not None:
                if not isinstance(email, dict) or set(email) - {"Id", "Address", "Default", "Tag"}:
                    raise unsupported(key)
                address = (email.get("Address") or "").strip()
                if not address:
                    rec.pop(key)
                elif not all(_EMAIL.match(part.strip()) for part in address.split(",")):
                    raise business(f"Invalid email address: {address}", f"{key}.Address")
        for key in ("PrimaryPhone", "AlternatePhone", "Mobile", "Fax"):
            phone = rec.get(key)
            if phone is not None:
                allowed = {"Id", "DeviceType", "CountryCode", "AreaCode", "ExchangeCode", "Extension",
                           "FreeFormNumber", "Default", "Tag"}
                if not isinstance(phone, dict) or set(phone) - allowed:
                    raise unsupported(key)
                if not phone.get("FreeFormNumber"):
                    rec.pop(key)
                elif len(phone["FreeFormNumber"]) > 30:
                    raise too_long(f"{key}.FreeFormNumber", 30, len(phone["FreeFormNumber"]))
        for key in ("BillAddr", "ShipAddr"):
            self._address(co, rec, key, current)
        active = rec.get("Active", True)
        if not isinstance(active, bool):
            raise QboFault("2010", "Request has invalid or unsupported property", "Active must be a boolean",
                           "Active")
        was_active = current.get("Active", True) if current else True
        if not active and was_active and not name.endswith(" (deleted)"):
            name = rec["DisplayName"] = self._deleted_name(co, name)  # frees the name (reference §4)
        elif active and not was_active and name.endswith(" (deleted)"):
            plain = name[: -len(" (deleted)")]
            try:
                self._check_name_free(co, plain, ("Customer", current["Id"]) if current else None)
                name = rec["DisplayName"] = plain
            except QboFault:
                pass
        rec["Active"] = active
        self._check_name_free(co, name, ("Customer", current["Id"]) if current else None)
        # Currency: set at creation; changing it is refused once the customer has transactions.
        wanted = (rec.get("CurrencyRef") or {}).get("value") if isinstance(rec.get("CurrencyRef"), dict) else None
        if rec.get("CurrencyRef") is not None and wanted is None:
            raise missing("CurrencyRef.value")
        had = ((current or {}).get("CurrencyRef") or {}).get("value")
        code = wanted or had or co["home_currency"]
        if code != co["home_currency"] and not co["multicurrency"]:
            raise business("Multicurrency is off in this company, so a customer can only use "
                           f"{co['home_currency']}.", "CurrencyRef")
        if code not in CURRENCIES:
            raise invalid_ref("Currency", code, "CurrencyRef")
        if current is not None and had and code != had and self._has_transactions(co, current["Id"]):
            raise business("You can't change the currency of a customer that has transactions.", "CurrencyRef")
        rec["CurrencyRef"] = self._currency_ref(code)
        rec["FullyQualifiedName"] = name
        rec.setdefault("PrintOnCheckName", name)
        for key, default in (("Job", False), ("BillWithParent", False), ("Taxable", False),
                             ("PreferredDeliveryMethod", "Print")):
            rec.setdefault(key, default)
        return rec

    def _deleted_name(self, co: dict[str, Any], name: str) -> str:
        candidate, n = f"{name} (deleted)", 1
        while self._name_holder(co, _name_key(candidate), None) is not None:
            candidate, n = f"{name} (deleted-{n})", n + 1
        return candidate

    def _has_transactions(self, co: dict[str, Any], cid: str) -> bool:
        return any(t["CustomerRef"]["value"] == cid for e in TRANSACTIONS for t in co["entities"][e].values())

    def _address(self, co: dict[str, Any], rec: dict[str, Any], key: str, current: dict[str, Any] | None) -> None:
        addr = rec.get(key)
        if addr is None:
            return
        if not isinstance(addr, dict):
            raise unsupported(key)
        for field, value in addr.items():
            if field not in ADDRESS_FIELDS:
                raise unsupported(f"{key}.{field}")
            if not isinstance(value, str):
                raise QboFault("2010", "Request has invalid or unsupported property",
                               f"Property Name:{key}.{field} must be a string", f"{key}.{field}")
            if field.startswith("Line") and len(value) > 500:
                raise too_long(f"{key}.{field}", 500, len(value))
        clean = {k: v for k, v in addr.items() if v}
        if not clean or set(clean) == {"Id"}:
            rec.pop(key)
            return
        old = ((current or {}).get(key) or {}).get("Id")
        clean["Id"] = old or self._new_id(co, "Addr")
        rec[key] = clean

    # -- items -----------------------------------------------------------------------------------
    def _item(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        name = rec.get("Name")
        if not name:
            raise missing("Name")
        if not isinstance(name, str):
            raise unsupported("Name")
        if len(name) > 100:
            raise too_long("Name", 100, len(name))
        if ":" in name:
            raise business("The name can't contain a colon (:).", "Name")
        if rec.get("Sku") is not None and len(str(rec["Sku"])) > 100:
            raise too_long("Sku", 100, len(str(rec["Sku"])))
        if rec.get("Description") is not None and len(str(rec["Description"])) > 4000:
            raise too_long("Description", 4000, len(str(rec["Description"])))
        kind = rec.get("Type")
        if not kind:
            raise missing("Type")
        if kind not in ("Service", "NonInventory", "Inventory", "Group", "Category"):
            raise QboFault("2010", "Request has invalid or unsupported property", f"Invalid Type {kind}", "Type")
        if kind == "Inventory" and not (rec.get("AssetAccountRef") and rec.get("InvStartDate")
                                        and rec.get("QtyOnHand") is not None):
            raise missing("AssetAccountRef, InvStartDate and QtyOnHand")
        if kind in ("Service", "NonInventory", "Inventory"):
            ref = rec.get("IncomeAccountRef")
            if not isinstance(ref, dict) or not ref.get("value"):
                raise missing("IncomeAccountRef")
            account = co["entities"]["Account"].get(str(ref["value"]))
            if account is None or not account.get("Active", True):
                raise invalid_ref("Accounts", ref["value"], "IncomeAccountRef")
            rec["IncomeAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        if rec.get("UnitPrice") is not None:
            price = dec(rec["UnitPrice"], "UnitPrice")
            rec["UnitPrice"] = s(price)
        active = rec.get("Active", True)
        was_active = current.get("Active", True) if current else True
        if not active and was_active and not name.endswith(" (deleted)"):
            name = rec["Name"] = f"{name} (deleted)"
        rec["Active"] = bool(active)
        key = name.strip().casefold()
        for other in co["entities"]["Item"].values():
            if current is not None and other["Id"] == current["Id"]:
                continue
            if other["Name"].strip().casefold() == key:
                raise QboFault("6240", "Duplicate Name Exists Error",
                               "The name supplied already exists. : Another product or service is already using "
                               "this name. Please use a different name.", "Name")
        rec["FullyQualifiedName"] = name
        rec.setdefault("Taxable", False)
        rec.setdefault("TrackQtyOnHand", kind == "Inventory")
        return rec

    # -- invoices and credit memos ----------------------------------------------------------------
    def _customer_ref(self, co: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        ref = rec.get("CustomerRef")
        if not isinstance(ref, dict) or not ref.get("value"):
            raise missing("CustomerRef")
        customer = co["entities"]["Customer"].get(str(ref["value"]))
        if customer is None or not customer.get("Active", True):
            raise not_found("Customer", "CustomerRef")
        rec["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        return customer

    def _currency(self, co: dict[str, Any], rec: dict[str, Any], customer: dict[str, Any]) -> str:
        code = customer["CurrencyRef"]["value"]
        sent = rec.get("CurrencyRef")
        if sent is not None:
            if not isinstance(sent, dict) or not sent.get("value"):
                raise missing("CurrencyRef.value")
            if sent["value"] != code:
                raise business(f"The transaction currency ({sent['value']}) must match the currency of the "
                               f"customer ({code}).", "CurrencyRef")
        rec["CurrencyRef"] = self._currency_ref(code)
        if code != co["home_currency"]:
            rate = dec(rec["ExchangeRate"], "ExchangeRate") if rec.get("ExchangeRate") else RATES.get(code, ZERO)
            rec["ExchangeRate"] = s(rate)
        else:
            rec.pop("ExchangeRate", None)
        return code

    def _dates(self, rec: dict[str, Any], with_due: bool) -> None:
        for key in ("TxnDate", "DueDate"):
            value = rec.get(key)
            if value is not None:
                try:
                    dt.date.fromisoformat(str(value))
                except ValueError:
                    raise QboFault("2010", "Request has invalid or unsupported property",
                                   f"Property Name:{key} must be a date (YYYY-MM-DD)", key) from None
        rec.setdefault("TxnDate", self.today())
        if with_due and not rec.get("DueDate"):
            rec["DueDate"] = (dt.date.fromisoformat(rec["TxnDate"]) + dt.timedelta(days=30)).isoformat()
        if with_due and rec["DueDate"] < rec["TxnDate"]:
            raise business("The due date can't be before the transaction date.", "DueDate")

    def _lines(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> Decimal:
        """Validate and number the lines; add QBO's subtotal line; returns the total (no tax here)."""
        lines = rec.get("Line")
        if not isinstance(lines, list) or not lines:
            raise missing("Line")
        old_ids = {str(line.get("Id")) for line in (current or {}).get("Line", []) if line.get("Id")}
        next_id = max([int(i) for i in old_ids if i.isdigit()] + [0]) + 1
        sales: list[dict[str, Any]] = []
        discount: dict[str, Any] | None = None
        for n, raw in enumerate(lines):
            if not isinstance(raw, dict):
                raise unsupported("Line")
            for key in raw:
                if key not in LINE_FIELDS:
                    raise unsupported(f"Line.{key}")
            kind = raw.get("DetailType")
            if not kind:
                raise missing(f"Line[{n}].DetailType")
            if kind == "SubTotalLineDetail":
                continue  # read-only: QBO recomputes it
            line: dict[str, Any] = {}
            if raw.get("Id") and str(raw["Id"]) in old_ids:
                line["Id"] = str(raw["Id"])
            if raw.get("Description") is not None:
                if len(str(raw["Description"])) > 4000:
                    raise too_long("Line.Description", 4000, len(str(raw["Description"])))
                line["Description"] = str(raw["Description"])
            if kind == "SalesItemLineDetail":
                detail = raw.get("SalesItemLineDetail")
                if not isinstance(detail, dict):
                    raise missing("SalesItemLineDetail")
                for key in detail:
                    if key not in SALES_DETAIL_FIELDS:
                        raise unsupported(f"SalesItemLineDetail.{key}")
                if raw.get("Amount") is None:
                    raise missing("Line.Amount")
                amount = dec(raw["Amount"], "Line.Amount")
                ref = detail.get("ItemRef")
                if not isinstance(ref, dict) or not ref.get("value"):
                    raise missing("SalesItemLineDetail.ItemRef")
                item = co["entities"]["Item"].get(str(ref["value"]))
                if item is None or not item.get("Active", True):
                    raise not_found("Item", "SalesItemLineDetail.ItemRef")
                out_detail: dict[str, Any] = {"ItemRef": {"value": item["Id"], "name": item["Name"]}}
                qty = dec(detail["Qty"], "Qty") if detail.get("Qty") is not None else None
                price = dec(detail["UnitPrice"], "UnitPrice") if detail.get("UnitPrice") is not None else None
                if price is not None and price.as_tuple().exponent < -5:  # type: ignore[operator]
                    raise business("UnitPrice takes at most 5 decimal places.", "UnitPrice")
                if qty is not None and price is not None and money(qty * price) != amount:
                    raise business(f"Amount is not equal to UnitPrice * Qty. Supplied value:{s(amount)}",
                                   "Line.Amount")
                if amount != money(amount):
                    raise business("Amount takes at most 2 decimal places.", "Line.Amount")
                if price is not None:
                    out_detail["UnitPrice"] = s(price)
                if qty is not None:
                    out_detail["Qty"] = s(qty)
                tax = detail.get("TaxCodeRef")
                if tax is not None:
                    if not isinstance(tax, dict) or tax.get("value") not in ("TAX", "NON"):
                        raise invalid_ref("TaxCode", (tax or {}).get("value"), "TaxCodeRef")
                    out_detail["TaxCodeRef"] = {"value": tax["value"]}
                if detail.get("ServiceDate"):
                    out_detail["ServiceDate"] = str(detail["ServiceDate"])
                line.update({"Amount": s(amount), "DetailType": kind, "SalesItemLineDetail": out_detail})
                sales.append(line)
            elif kind == "DescriptionOnly":
                line.update({"DetailType": kind, "DescriptionLineDetail": {}})
                sales.append(line)
            elif kind == "DiscountLineDetail":
                if discount is not None:
                    raise business("Only one discount line is allowed on a transaction.", "Line")
                detail = raw.get("DiscountLineDetail") or {}
                for key in detail:
                    if key not in DISCOUNT_DETAIL_FIELDS:
                        raise unsupported(f"DiscountLineDetail.{key}")
                discount = {**line, "DetailType": kind, "_raw": detail, "_amount": raw.get("Amount")}
            else:
                raise business(f"Line type {kind} isn't supported on this transaction.", "Line.DetailType")
        subtotal = sum((Decimal(line.get("Amount", "0")) for line in sales), ZERO)
        out = []
        for num, line in enumerate(sales, start=1):
            line_id = line.pop("Id", None)
            if line_id is None:
                line_id = str(next_id)
                next_id += 1
            out.append({"Id": line_id, "LineNum": num, **line})
        total = subtotal
        if discount is not None:
            detail = discount.pop("_raw")
            sent = discount.pop("_amount")
            account = {"value": "86", "name": "Discounts given"}
            if detail.get("PercentBased"):
                if detail.get("DiscountPercent") is None:
                    raise missing("DiscountLineDetail.DiscountPercent")
                pct = dec(detail["DiscountPercent"], "DiscountPercent")
                if not ZERO <= pct <= HUNDRED:
                    raise business("A discount percentage is between 0 and 100.", "DiscountPercent")
                amount = money(subtotal * pct / HUNDRED)  # QBO rounds the discount on the subtotal
                out_detail = {"PercentBased": True, "DiscountPercent": s(pct), "DiscountAccountRef": account}
            else:
                if sent is None:
                    raise missing("Line.Amount")
                amount = money(dec(sent, "Line.Amount"))
                if amount < 0 or amount > subtotal:
                    raise business("A discount can't be negative or more than the subtotal.", "Line.Amount")
                out_detail = {"PercentBased": False, "DiscountAccountRef": account}
            if "Id" not in discount:
                discount["Id"] = str(next_id)
            out.append({"Id": discount["Id"], **({"Description": discount["Description"]}
                                                 if discount.get("Description") else {}),
                        "Amount": s(amount), "DetailType": "DiscountLineDetail", "DiscountLineDetail": out_detail})
            total = subtotal - amount
        out.append({"Amount": s(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        rec["Line"] = out
        return total

    def _sales(self, co: dict[str, Any], entity: str, rec: dict[str, Any],
               current: dict[str, Any] | None) -> dict[str, Any]:
        customer = self._customer_ref(co, rec)
        if current is not None and current["CustomerRef"]["value"] != customer["Id"] and Decimal(current["_paid"]):
            raise business("You can't change the customer of a transaction that has payments applied.", "CustomerRef")
        code = self._currency(co, rec, customer)
        self._dates(rec, with_due=entity == "Invoice")
        if entity == "Invoice" and not rec.get("SalesTermRef"):
            rec["SalesTermRef"] = {"value": "3", "name": "Net 30"}
        total = self._lines(co, rec, current)
        doc = rec.get("DocNumber")
        if doc is not None:
            doc = str(doc)
            if len(doc) > 21:
                raise too_long("DocNumber", 21, len(doc))
            if co["duplicate_doc_check"] and any(
                    o.get("DocNumber") == doc and (current is None or o["Id"] != current["Id"])
                    for o in co["entities"][entity].values()):
                raise QboFault("6210", "Duplicate Document Number Error",
                               "Duplicate Document Number Error : You must specify a different number. This number "
                               "has already been used.", "DocNumber")
        elif current is None:
            co["doc_number"] += 1
            rec["DocNumber"] = str(co["doc_number"])
        for key, limit in (("PrivateNote", 4000),):
            if rec.get(key) is not None and len(str(rec[key])) > limit:
                raise too_long(key, limit, len(str(rec[key])))
        memo = rec.get("CustomerMemo")
        if memo is not None:
            if not isinstance(memo, dict) or set(memo) - {"value", "id"}:
                raise unsupported("CustomerMemo")
            if len(str(memo.get("value") or "")) > 1000:
                raise too_long("CustomerMemo", 1000, len(str(memo.get("value"))))
        bill_email = rec.get("BillEmail")
        if bill_email is not None and not _EMAIL.match(str((bill_email or {}).get("Address") or "")):
            raise business("Invalid email address in BillEmail.", "BillEmail.Address")
        applied = Decimal((current or {}).get("_paid", "0"))
        if total < applied:
            raise business(f"The new total ({s(total)}) is less than the amount already paid ({s(applied)}).",
                           "Line")
        rec["TotalAmt"] = s(total)
        rec["TxnTaxDetail"] = {"TotalTax": "0"}
        rec["_paid"] = s(applied)
        rec["LinkedTxn"] = list((current or {}).get("LinkedTxn") or [])
        if entity == "Invoice":
            rec["Balance"] = s(total - applied)
            rec.setdefault("EmailStatus", "NotSet")
            rec.setdefault("PrintStatus", "NeedToPrint")
            rec.setdefault("ApplyTaxAfterDiscount", False)
            rec["Deposit"] = "0"
        else:
            rec["RemainingCredit"] = rec["Balance"] = s(total - applied)
        if code != co["home_currency"]:
            rate = Decimal(rec["ExchangeRate"])
            rec["HomeTotalAmt"] = s(money(total * rate))
            if entity == "Invoice":
                rec["HomeBalance"] = s(money((total - applied) * rate))
        else:
            rec.pop("HomeTotalAmt", None)
            rec.pop("HomeBalance", None)
        return rec

    # -- payments --------------------------------------------------------------------------------
    def _payment(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        customer = self._customer_ref(co, rec)
        if rec.get("TotalAmt") is None:
            raise missing("TotalAmt")
        total = dec(rec["TotalAmt"], "TotalAmt")
        if total < 0 or total != money(total):
            raise business("TotalAmt must be a positive amount with at most 2 decimal places.", "TotalAmt")
        self._currency(co, rec, customer)
        self._dates(rec, with_due=False)
        lines = rec.get("Line") or []
        if not isinstance(lines, list):
            raise unsupported("Line")
        prior = {(link["TxnType"], link["TxnId"]): Decimal(line["Amount"])
                 for line in (current or {}).get("Line", []) for link in line.get("LinkedTxn", [])}
        out, invoices, credits = [], ZERO, ZERO
        for n, line in enumerate(lines):
            if not isinstance(line, dict) or set(line) - LINE_FIELDS:
                raise unsupported(f"Line[{n}]")
            if line.get("Amount") is None:
                raise missing(f"Line[{n}].Amount")
            amount = dec(line["Amount"], "Line.Amount")
            links = line.get("LinkedTxn") or []
            if len(links) != 1 or not isinstance(links[0], dict):
                raise missing(f"Line[{n}].LinkedTxn")
            link = links[0]
            kind, txn_id = link.get("TxnType"), str(link.get("TxnId") or "")
            if kind not in ("Invoice", "CreditMemo"):
                raise business(f"A payment can't be applied to a {kind}.", "LinkedTxn.TxnType")
            txn = co["entities"][kind].get(txn_id)
            if txn is None:
                raise not_found(kind, "LinkedTxn.TxnId")
            if txn["CustomerRef"]["value"] != customer["Id"]:
                raise business(f"{kind} {txn_id} belongs to another customer.", "LinkedTxn")
            if txn.get("_voided"):
                raise business(f"{kind} {txn_id} is void.", "LinkedTxn")
            open_amount = Decimal(txn["TotalAmt"]) - Decimal(txn["_paid"]) + prior.get((kind, txn_id), ZERO)
            if amount <= 0 or amount > open_amount:
                raise business(f"The amount applied to {kind} {txn_id} ({s(amount)}) is more than its open "
                               f"balance ({s(open_amount)}).", "Line.Amount")
            if kind == "Invoice":
                invoices += amount
            else:
                credits += amount
            out.append({"Amount": s(amount), "LinkedTxn": [{"TxnId": txn_id, "TxnType": kind}]})
        applied = invoices - credits
        if applied > total:
            raise business(f"The lines ({s(applied)}) add up to more than the payment ({s(total)}).", "TotalAmt")
        rec["Line"] = out
        rec["TotalAmt"] = s(total)
        rec["UnappliedAmt"] = s(total - applied)
        rec.setdefault("DepositToAccountRef", {"value": "4", "name": "Undeposited Funds"})
        rec.setdefault("ProcessPayment", False)
        return rec

    def _apply(self, co: dict[str, Any], payment: dict[str, Any], sign: int = 1) -> None:
        now = self.now()
        for line in payment.get("Line", []):
            for link in line["LinkedTxn"]:
                txn = co["entities"][link["TxnType"]].get(link["TxnId"])
                if txn is None:
                    continue
                paid = Decimal(txn["_paid"]) + sign * Decimal(line["Amount"])
                txn["_paid"] = s(paid)
                balance = Decimal(txn["TotalAmt"]) - paid
                if link["TxnType"] == "Invoice":
                    txn["Balance"] = s(balance)
                    if txn.get("ExchangeRate"):
                        txn["HomeBalance"] = s(money(balance * Decimal(txn["ExchangeRate"])))
                else:
                    txn["RemainingCredit"] = txn["Balance"] = s(balance)
                linked = [t for t in txn.get("LinkedTxn", []) if t["TxnId"] != payment["Id"]]
                if sign > 0:
                    linked.append({"TxnId": payment["Id"], "TxnType": "Payment"})
                txn["LinkedTxn"] = linked
                txn["SyncToken"] = str(int(txn["SyncToken"]) + 1)
                txn["_updated"] = now

    def _unapply(self, co: dict[str, Any], payment: dict[str, Any]) -> None:
        self._apply(co, payment, sign=-1)

    # -- delete and void --------------------------------------------------------------------------
    def _delete(self, co: dict[str, Any], entity: str, current: dict[str, Any]) -> dict[str, Any]:
        if entity not in TRANSACTIONS:
            raise business(f"A {entity.lower()} can't be deleted; make it inactive instead.", "operation")
        if entity != "Payment" and any(t["TxnType"] == "Payment" for t in current.get("LinkedTxn", [])):
            raise business("This transaction has payments applied. Delete the payments first.")
        if entity == "Payment":
            self._unapply(co, current)
        del co["entities"][entity][current["Id"]]
        co["deleted"][entity][current["Id"]] = self.now()
        return {"Id": current["Id"], "status": "Deleted", "domain": "QBO"}

    def _void(self, co: dict[str, Any], entity: str, current: dict[str, Any]) -> dict[str, Any]:
        """Amounts become zero, the lines and the record stay, the private note says "Voided"."""
        if entity not in ("Invoice", "Payment"):
            raise business(f"A {entity} can't be voided.", "operation")
        if current.get("_voided"):
            raise business("This transaction is already void.")
        now = self.now()
        if entity == "Invoice":
            for pid in [t["TxnId"] for t in current.get("LinkedTxn", []) if t["TxnType"] == "Payment"]:
                payment = co["entities"]["Payment"].get(pid)
                if payment is None:
                    continue
                self._unapply(co, payment)
                kept = [line for line in payment["Line"] if line["LinkedTxn"][0]["TxnId"] != current["Id"]
                        or line["LinkedTxn"][0]["TxnType"] != "Invoice"]
                applied = sum((Decimal(line["Amount"]) * (1 if line["LinkedTxn"][0]["TxnType"] == "Invoice"
                                                          else -1) for line in kept), ZERO)
                payment["Line"] = kept
                payment["UnappliedAmt"] = s(Decimal(payment["TotalAmt"]) - applied)
                payment["SyncToken"] = str(int(payment["SyncToken"]) + 1)
                payment["_updated"] = now
                self._apply(co, payment)
            for line in current["Line"]:
                line["Amount"] = "0"
                detail = line.get("SalesItemLineDetail")
                if detail is not None:
                    detail["Qty"] = "0"
            for key in ("TotalAmt", "Balance", "_paid"):
                current[key] = "0"
            for key in ("HomeTotalAmt", "HomeBalance"):
                if key in current:
                    current[key] = "0"
            current["LinkedTxn"] = []
        else:
            self._unapply(co, current)
            current["Line"] = []
            current["TotalAmt"] = current["UnappliedAmt"] = "0"
        current["PrivateNote"] = "Voided"
        current["_voided"] = True
        current["SyncToken"] = str(int(current["SyncToken"]) + 1)
        current["_updated"] = now
        return self.wire(co, entity, current)

    # -- API: entities ----------------------------------------------------------------------------
    @route("POST", API + r"/(?P<entity>customer|item|invoice|payment|creditmemo)")
    def post_entity(self, req: Request) -> Response:
        co = self._enter(req)
        replay = self._replay(co, req)
        if replay is not None:
            return replay
        entity = URL_ENTITY[req.params["entity"]]
        body = self._body(req)
        try:
            result = self._write(co, entity, body, req.arg("operation"), req.arg("include"))
        except QboFault as err:
            resp: Response = self._fail(err).response
            return self._keep(co, req, resp)
        self.persist()
        return self._keep(co, req, self.ok({entity: result}))

    @route("POST", API + r"/invoice/(?P<id>[^/]+)/send")
    def send_invoice(self, req: Request) -> Response:
        """Email the invoice: ``sendTo`` or its BillEmail; EmailStatus becomes EmailSent (reference §3)."""
        co = self._enter(req)
        rec = co["entities"]["Invoice"].get(req.params["id"])
        if rec is None:
            raise self._fail(not_found("Invoice", "Id"))
        to = req.arg("sendTo") or (rec.get("BillEmail") or {}).get("Address")
        if not to:
            raise self._fail(business("Email address is missing. Add an email address for the customer or "
                                      "pass sendTo.", "BillEmail"))
        now = self.now()
        rec["BillEmail"] = {"Address": to}
        rec["EmailStatus"] = "EmailSent"
        rec["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": self.ts(now)}
        rec["SyncToken"] = str(int(rec["SyncToken"]) + 1)
        rec["_updated"] = now
        self.persist()
        return self.ok({"Invoice": self.wire(co, "Invoice", rec)})

    @route("GET", API + r"/(?P<entity>customer|item|invoice|payment|creditmemo|account|vendor|employee)"
                        r"/(?P<id>[^/]+)")
    def get_entity(self, req: Request) -> Response:
        co = self._enter(req)
        entity = URL_ENTITY[req.params["entity"]]
        rec = co["entities"][entity].get(req.params["id"])
        if rec is None:
            raise self._fail(not_found(entity, "Id"))
        return self.ok({entity: self.wire(co, entity, rec)})

    @route("GET", API + r"/companyinfo/(?P<id>[^/]+)")
    def company_info(self, req: Request) -> Response:
        co = self._enter(req)
        if req.params["id"] not in (co["realm"], co["info"]["Id"]):
            raise self._fail(not_found("CompanyInfo", "Id"))
        return self.ok({"CompanyInfo": self._info(co)})

    def _info(self, co: dict[str, Any]) -> dict[str, Any]:
        return {**_out(co["info"]), "domain": "QBO", "sparse": False,
                "MetaData": {"CreateTime": self.ts(co["info"]["_created"]),
                             "LastUpdatedTime": self.ts(co["info"]["_updated"])}}

    @route("GET", API + r"/preferences")
    def preferences(self, req: Request) -> Response:
        co = self._enter(req)
        return self.ok({"Preferences": {
            "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False,
            "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDiscount": True, "DefaultDiscountAccount": "86",
                                "DefaultTerms": {"value": "3"}},
            "CurrencyPrefs": {"MultiCurrencyEnabled": co["multicurrency"],
                              "HomeCurrency": {"value": co["home_currency"]}},
            "MetaData": {"CreateTime": self.ts(co["info"]["_created"]),
                         "LastUpdatedTime": self.ts(co["info"]["_updated"])}}})

    # -- API: query ------------------------------------------------------------------------------
    @route("GET", API + r"/query")
    def query_get(self, req: Request) -> Response:
        co = self._enter(req)
        text = req.arg("query")
        if not text:
            raise self._fail(missing("query"))
        try:
            return self.ok({"QueryResponse": self.run_query(co, text)})
        except QboFault as err:
            raise self._fail(err) from None

    @route("POST", API + r"/query")
    def query_post(self, req: Request) -> Response:
        co = self._enter(req)
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/text", "text/plain"):
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      "POST /query takes the statement as application/text"))
        try:
            return self.ok({"QueryResponse": self.run_query(co, req.body.decode("utf-8"))})
        except UnicodeDecodeError:
            raise self._fail(QboFault("500", "Unsupported Operation", "The body is not UTF-8")) from None
        except QboFault as err:
            raise self._fail(err) from None

    def run_query(self, co: dict[str, Any], text: str) -> dict[str, Any]:
        q = Query(text)
        entity = next((e for e in QUERYABLE if e.lower() == q.entity_raw.lower()), None)
        if entity is None:
            raise query_invalid(f"Invalid entity name {q.entity_raw}")
        props = QUERYABLE[entity]
        if q.max > QUERY_MAX or q.max < 1:
            raise query_invalid(f"MAXRESULTS: Max allowed value is {QUERY_MAX}")
        if q.start < 1:
            raise query_invalid("STARTPOSITION starts at 1")
        if entity == "CompanyInfo":
            rows = [co["info"]]
        else:
            rows = list(co["entities"][entity].values())
        conditions = []
        filters_active = False
        for prop, op, value in q.conditions:
            spec = props.get(prop.lower())
            if spec is None:
                raise query_invalid(f"property '{prop}' is not queryable")
            path, kind = spec
            if path == "Active":
                filters_active = True
            want = [_coerce(kind, v, prop) for v in value] if op == "in" else _coerce(kind, value, prop)
            if op == "like" and kind != "str":
                raise query_invalid(f"LIKE is not supported on {prop}")
            conditions.append((path, kind, op, want))
        if entity in NAME_LISTS and not filters_active:
            rows = [r for r in rows if r.get("Active", True)]  # hidden unless asked (reference §5)
        rows = [r for r in rows if all(_matches(_record_value(r, path, kind), op, want)
                                       for path, kind, op, want in conditions)]
        rows.sort(key=lambda r: int(r["Id"]))
        for prop, desc in reversed(q.order):
            spec = props.get(prop.lower())
            if spec is None:
                raise query_invalid(f"property '{prop}' is not sortable")
            rows.sort(key=lambda r, p=spec: _sort_key(_record_value(r, *p)), reverse=desc)
        if q.count:
            return {"totalCount": len(rows)}
        page = rows[q.start - 1: q.start - 1 + q.max]
        if not page:
            return {}
        out = [self._info(co) if entity == "CompanyInfo" else self.wire(co, entity, r) for r in page]
        if q.fields is not None:
            wanted = {f.lower() for f in q.fields}
            if "*" not in wanted:
                out = [{"Id": r["Id"], "SyncToken": r.get("SyncToken"), "domain": "QBO", "sparse": True,
                        **{k: v for k, v in r.items() if k.lower() in wanted}} for r in out]
        return {entity: out, "startPosition": q.start, "maxResults": len(out)}

    # -- API: change data capture ---------------------------------------------------------------
    @route("GET", API + r"/cdc")
    def cdc(self, req: Request) -> Response:
        co = self._enter(req)
        try:
            return self.ok({"CDCResponse": [{"QueryResponse": self.run_cdc(co, req.arg("entities"),
                                                                             req.arg("changedSince"))}]})
        except QboFault as err:
            raise self._fail(err) from None

    def run_cdc(self, co: dict[str, Any], entities: str | None, since_text: str | None) -> list[dict[str, Any]]:
        if not entities:
            raise missing("entities")
        if not since_text:
            raise missing("changedSince")
        names = []
        for raw in entities.split(","):
            name = next((e for e in CDC_ENTITIES if e.lower() == raw.strip().lower()), None)
            if name is None:
                raise QboFault("4001", "Invalid query", f"CDC is not supported for entity {raw.strip()}",
                               "entities")
            names.append(name)
        try:
            since = _parse_when(since_text)
        except QboFault:
            raise QboFault("2010", "Request has invalid or unsupported property",
                           f"Invalid changedSince {since_text!r}", "changedSince") from None
        if since < self.now() - CDC_DAYS * 86400:
            raise QboFault("6000", "A business validation error has occurred while processing your request",
                           f"Operation cdc with changedSince date {since_text} which is older than fixed days is "
                           "not supported.", "changedSince")
        found: list[tuple[float, str, dict[str, Any]]] = []
        for name in names:
            for rec in co["entities"][name].values():
                if int(rec["_updated"]) >= since:
                    found.append((rec["_updated"], name, self.wire(co, name, rec)))
            for rec_id, when in co["deleted"].get(name, {}).items():
                if int(when) >= since:
                    found.append((when, name, {"Id": rec_id, "domain": "QBO", "status": "Deleted",
                                               "MetaData": {"LastUpdatedTime": self.ts(when)}}))
        found.sort(key=lambda f: f[0])
        found = found[:CDC_MAX]  # shared across entities, silently cut (reference §6.1)
        out = []
        for name in names:
            rows = [r for _, n, r in found if n == name]
            out.append({name: rows, "startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)}
                       if rows else {})
        return out

    # -- API: batch ----------------------------------------------------------------------------------
    @route("POST", API + r"/batch")
    def batch(self, req: Request) -> Response:
        co = self._enter(req, batch=True)
        replay = self._replay(co, req, limit=36)
        if replay is not None:
            return replay
        body = self._body(req)
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise self._fail(missing("BatchItemRequest"))
        if len(items) > BATCH_MAX:
            raise self._fail(QboFault("1040", "Invalid batch request",
                                      f"Batch size {len(items)} exceeds the maximum of {BATCH_MAX} items.",
                                      "BatchItemRequest"))
        with_rid = req.arg("requestid") is not None
        seen: set[str] = set()
        for item in items:
            bid = str((item or {}).get("bId") or "") if isinstance(item, dict) else ""
            if not bid:
                raise self._fail(missing("bId"))
            if with_rid and len(bid) > 10:
                raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                          "With a requestid, each bId is at most 10 characters.", "bId"))
            if bid in seen:
                raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                          f"Duplicate bId {bid}", "bId"))
            seen.add(bid)
        answers = []
        for item in items:  # serially, in the order given
            answers.append(self._batch_item(co, item))
        answers.sort(key=lambda a: a["bId"])  # order of answers is not promised: match them by bId
        self.persist()
        return self._keep(co, req, self.ok({"BatchItemResponse": answers}))

    def _batch_item(self, co: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        bid = str(item["bId"])
        try:
            extra = set(item) - {"bId", "operation", "optionsData", "Query", *FIELDS}
            if extra:
                raise unsupported(sorted(extra)[0])
            if "Query" in item:
                return {"bId": bid, "QueryResponse": self.run_query(co, str(item["Query"]))}
            entities = [k for k in item if k in FIELDS]
            if len(entities) != 1:
                raise missing("an entity")
            entity = entities[0]
            operation = item.get("operation") or "create"
            if operation not in ("create", "update", "delete", "void"):
                raise QboFault("2010", "Request has invalid or unsupported property",
                               f"Unknown operation {operation}", "operation")
            return {"bId": bid, entity: self._write(co, entity, item[entity], operation)}
        except QboFault as err:
            return {"bId": bid, "Fault": err.fault()}

    # -- the web app (links only) ------------------------------------------------------------------
    @route("GET", r"/app/(?P<page>customerdetail|invoice)")
    def web_app(self, req: Request) -> Response:
        name = self.company()["info"]["CompanyName"] if self.state.get("default_realm") else "QuickBooks"
        what = req.arg("nameId") or req.arg("txnId") or ""
        page = (f"<!doctype html><title>{name} – QuickBooks Online (sandbox)</title>"
                f"<p>{name}: {req.params['page']} {what}</p>")
        return Response(200, page, content_type="text/html")

    # -- test helpers (what a user would do in QuickBooks' own screens) ------------------------------
    def record_payment(self, invoice_id: str, amount: Decimal, date: str, realm: str | None = None) -> str:
        """A customer pays (part of) an invoice: a Payment linked to it; the invoice's Balance drops."""
        with self.lock:
            co = self.company(realm)
            inv = co["entities"]["Invoice"][invoice_id]
            rec = self._write(co, "Payment", {
                "CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TotalAmt": Decimal(amount), "TxnDate": date,
                "PaymentRefNum": f"BACS-{invoice_id}",
                "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]})
            self.persist()
            return rec["Id"]

    def add(self, entity: str, body: dict[str, Any], realm: str | None = None) -> str:
        """Someone creates a record in QuickBooks (same rules as the API); returns its Id."""
        with self.lock:
            rec = self._write(self.company(realm), entity, copy.deepcopy(body))
            self.persist()
            return rec["Id"]

    def user_edit(self, entity: str, record_id: str, realm: str | None = None, **fields: Any) -> dict[str, Any]:
        """Someone edits a record in QuickBooks: a sparse update (SyncToken and LastUpdatedTime move)."""
        with self.lock:
            co = self.company(realm)
            rec = co["entities"][entity][record_id]
            out = self._write(co, entity, {"Id": record_id, "SyncToken": rec["SyncToken"], "sparse": True, **fields})
            self.persist()
            return out

    def user_void(self, entity: str, record_id: str, realm: str | None = None) -> None:
        with self.lock:
            co = self.company(realm)
            rec = co["entities"][entity][record_id]
            self._write(co, entity, {"Id": record_id, "SyncToken": rec["SyncToken"]}, "void")
            self.persist()

    def user_delete(self, entity: str, record_id: str, realm: str | None = None) -> None:
        with self.lock:
            co = self.company(realm)
            rec = co["entities"][entity][record_id]
            self._write(co, entity, {"Id": record_id, "SyncToken": rec["SyncToken"]}, "delete")
            self.persist()

    def add_vendor(self, name: str, realm: str | None = None) -> str:
        with self.lock:
            rid = self._name_record(self.company(realm), "Vendor", name)
            self.persist()
            return rid

    def find(self, entity: str, realm: str | None = None, **where: Any) -> list[dict[str, Any]]:
        """Records whose top-level fields equal ``where`` (tests look things up by name)."""
        co = self.company(realm)
        return [self.wire(co, entity, r) for r in co["entities"][entity].values()
                if all(r.get(k) == v for k, v in where.items())]
