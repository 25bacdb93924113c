"""Every request and response of a QuickBooks Online run, checked against Intuit's own schemas.

The official machine-readable spec is the set of XSDs in tests/specs/quickbooks/xsd/ (Finance.xsd,
IntuitBaseTypes.xsd, IntuitNamesTypes.xsd, IntuitRestServiceDef.xsd, Report.xsd; sources and licence in
tests/specs/quickbooks/SOURCES.md). QBO's JSON mirrors them one to one: elements and XML attributes become
keys, repeated elements become arrays, a ``ReferenceType`` (simple content) becomes ``{"value", "name", "type"}``, an
element in the ``IntuitObject`` substitution group appears under its own name (``Customer``, ``Invoice``).

``xsd_schema()`` turns the XSDs into one JSON Schema with a definition per complex type. Every object is
closed (``additionalProperties: false``), so a misspelt field fails; simple types keep their JSON type
(ids and codes are strings, amounts numbers, dates and times ISO text). Errata, from Intuit's public
developer documentation (developer.intuit.com, QuickBooks Online accounting API):

1. Authentication faults arrive with lower-case ``fault``/``error``/``message``/``detail`` keys (the
   401 example of "Error codes" under "Troubleshooting"): checked against the XSD Fault with its keys
   lower-cased.
2. OAuth answers are not in the XSDs: checked against the shapes of Intuit's SDK fixtures in
   tests/specs/quickbooks/samples/oauth/ (success and error token responses).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from app.connectors.base import CustomerWrite, InvoiceWrite, ItemWrite
from app.connectors.quickbooks import json_dumps
from app.domain.lifecycle import CreditNoteWrite
from app.domain.models import Invoice, InvoiceLine, Item, Party
from app.sandbox.base import Fault, Request, Response
from app.sandbox.server import InProcessTransport
from tests.support import in_process, over_http

SPECS = Path(__file__).resolve().parent / "specs" / "quickbooks"
XSD_DIR = SPECS / "xsd"
XSD_FILES = ("IntuitBaseTypes.xsd", "IntuitNamesTypes.xsd", "Finance.xsd", "Report.xsd", "IntuitRestServiceDef.xsd")
XS = "{http://www.w3.org/2001/XMLSchema}"

DATE = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\d$"}
DATETIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"}
XS_TYPES: dict[str, dict[str, Any]] = {
    **dict.fromkeys(("string", "normalizedString", "token", "anyURI", "ID", "IDREF", "base64Binary",  # noqa: RUF024 - read-only
                     "hexBinary", "time", "duration", "gYear", "language", "NMTOKEN", "QName"), {"type": "string"}),
    **dict.fromkeys(("decimal", "double", "float"), {"type": "number"}),  # noqa: RUF024
    **dict.fromkeys(("int", "integer", "long", "short", "byte", "positiveInteger", "nonNegativeInteger",  # noqa: RUF024
                     "negativeInteger", "nonPositiveInteger", "unsignedInt", "unsignedLong", "unsignedShort",
                     "unsignedByte"), {"type": "integer"}),
    "boolean": {"type": "boolean"},
    "date": DATE,
    "dateTime": DATETIME,
    "anyType": {},
}


# -- the XSDs as one JSON Schema ---------------------------------------------------------------------
class XsdToJsonSchema:
    """Complex types -> closed JSON objects; simple types -> JSON types and enums."""

    def __init__(self, directory: Path) -> None:
        self.complex: dict[str, ET.Element] = {}
        self.simple: dict[str, ET.Element] = {}
        self.elements: dict[str, ET.Element] = {}
        self.groups: dict[str, list[str]] = {}
        for name in XSD_FILES:
            for node in ET.parse(directory / name).getroot():
                key = node.get("name")
                if node.tag == XS + "complexType":
                    self.complex[key] = node
                elif node.tag == XS + "simpleType":
                    self.simple[key] = node
                elif node.tag == XS + "element":
                    self.elements[key] = node
                    head = node.get("substitutionGroup")
                    if head:
                        self.groups.setdefault(head, []).append(key)
        self.defs: dict[str, Any] = {}

    def schema(self) -> dict[str, Any]:
        for name in self.complex:
            self.ref(name)
        return {"$defs": self.defs}

    def simple_type(self, name: str) -> dict[str, Any]:
        local = name.split(":", 1)[1] if name.startswith("xs:") else name
        if name.startswith("xs:"):
            return dict(XS_TYPES[local])
        node = self.simple[name]
        restriction = node.find(XS + "restriction")
        if restriction is None:
            return {}  # list / union: not used by the entities we exchange
        base = self.simple_type(restriction.get("base"))
        values = [e.get("value") for e in restriction.findall(XS + "enumeration")]
        if values:
            base["enum"] = values
        return base

    def type_schema(self, name: str | None) -> dict[str, Any]:
        if name is None:
            return {}
        if name in self.complex:
            return self.ref(name)
        return self.simple_type(name)

    def ref(self, name: str) -> dict[str, Any]:
        if name not in self.defs:
            self.defs[name] = {}  # placeholder against recursion
            props: dict[str, Any] = {}
            open_ = self._collect(self.complex[name], props)
            self.defs[name] = {"type": "object", "properties": props}
            if not open_:
                self.defs[name]["additionalProperties"] = False
        return {"$ref": f"#/$defs/{name}"}

    def _collect(self, node: ET.Element, props: dict[str, Any]) -> bool:
        """Fill ``props`` from a type's content model; True when it admits anything (xs:any)."""
        open_ = False
        for child in node:
            tag = child.tag[len(XS):]
            if tag in ("sequence", "choice", "all", "complexContent", "simpleContent"):
                open_ |= self._collect(child, props)
            elif tag == "any":
                open_ = True
            elif tag == "attribute":
                props[child.get("name")] = self.type_schema(child.get("type") or "xs:string")
            elif tag == "element":
                many = child.get("maxOccurs") not in (None, "1")
                if child.get("ref"):
                    ref = child.get("ref")
                    members = self.groups.get(ref) or [ref]
                    for member in members:
                        schema = self.type_schema(self.elements[member].get("type"))
                        props[member] = {"type": "array", "items": schema} if many else schema
                else:
                    schema = self.type_schema(child.get("type"))
                    props[child.get("name")] = {"type": "array", "items": schema} if many else schema
            elif tag in ("extension", "restriction"):
                base = child.get("base")
                if base in self.complex:
                    open_ |= self._collect(self.complex[base], props)
                elif base:
                    props["value"] = self.simple_type(base)  # simple content: the text is "value"
                open_ |= self._collect(child, props)
        return open_


@cache
def xsd_schema() -> dict[str, Any]:
    return XsdToJsonSchema(XSD_DIR).schema()


def validator(type_name: str) -> Draft202012Validator:
    return _validator(type_name)


@cache
def _validator(type_name: str) -> Draft202012Validator:
    schema = {**xsd_schema(), "$ref": f"#/$defs/{type_name}"}
    return Draft202012Validator(schema)


def lower_keys(node: Any) -> Any:
    """Erratum 1: the XSD Fault with QBO's observed lower-case keys."""
    if isinstance(node, dict):
        return {(k.lower() if k in ("Fault", "Error", "Message", "Detail") else k): lower_keys(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [lower_keys(v) for v in node]
    return node


@cache
def auth_fault_validator() -> Draft202012Validator:
    defs = copy.deepcopy(xsd_schema()["$defs"])
    error = lower_keys(defs["Error"])
    fault = lower_keys(defs["Fault"])
    fault["properties"]["type"] = {"type": "string"}
    defs["LowerError"], defs["LowerFault"] = error, fault
    fault["properties"]["error"]["items"] = {"$ref": "#/$defs/LowerError"}
    return Draft202012Validator({"$defs": defs, "type": "object", "additionalProperties": False,
                                 "required": ["fault", "time"],
                                 "properties": {"fault": {"$ref": "#/$defs/LowerFault"}, "time": DATETIME}})


def _sample_shape(*names: str) -> dict[str, Any]:
    """Erratum 2: a closed object over the keys (and JSON types) of Intuit's SDK fixtures."""
    props: dict[str, Any] = {}
    required: set[str] | None = None
    for name in names:
        sample = json.loads((SPECS / "samples" / "oauth" / name).read_text(encoding="utf-8"))
        for key, value in sample.items():
            props[key] = {"type": "integer" if isinstance(value, int) else "string"}
        required = set(sample) if required is None else required & set(sample)
    required = (required or set()) - {"id_token"}  # only with the OpenID scopes (Intuit's "OpenID Connect" page)
    return {"type": "object", "properties": props, "required": sorted(required),
            "additionalProperties": False}


TOKEN_OK = Draft202012Validator(_sample_shape("dotnet-sdk-test-success_token_response.json",
                                              "oauth-jsclient-test-refreshResponse.json"))
TOKEN_ERROR = Draft202012Validator(_sample_shape("dotnet-sdk-test-failure_token_response.json",
                                                 "oauth-jsclient-test-errorResponse-body.json"))


INJECTED = ({"error": "rate_limited"}, {"error": "internal", "message": "simulated failure"})

# -- capturing a run ------------------------------------------------------------------------------
ENTITY_PATHS = {"customer": "Customer", "item": "Item", "invoice": "Invoice", "payment": "Payment",
                "creditmemo": "CreditMemo"}


class Capture:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.problems: list[str] = []

    def __call__(self, req: Request, resp: Response) -> None:
        label = f"{req.method} {req.path}"
        self.seen.append((req.method, req.path, resp.status))
        body = resp.encode()
        out = json.loads(body, parse_float=Decimal) if body and resp.content_type == "application/json" else None
        if req.path.endswith("/oauth2/v1/tokens/bearer"):
            self._check(label + " (token answer)", TOKEN_OK if resp.status == 200 else TOKEN_ERROR, out)
            return
        if not req.path.startswith("/v3/company/"):
            return
        if out in INJECTED:
            return  # the shared fault plan's own bodies, not QBO's (see the report)
        # Requests: entity bodies and batches.
        tail = req.path.rsplit("/", 1)[-1]
        if req.method == "POST" and tail in ENTITY_PATHS:
            self._check(label + " (request)", validator(ENTITY_PATHS[tail]), json.loads(req.body, parse_float=Decimal))
        elif req.method == "POST" and tail == "batch":
            self._check(label + " (request)", validator("IntuitBatchRequest"),
                        json.loads(req.body, parse_float=Decimal))
        # Responses.
        if resp.status == 401:
            self._check(label + " (401)", auth_fault_validator(), out)
        else:
            self._check(label + " (response)", validator("IntuitResponse"), out)
            if resp.status >= 400:
                assert "Fault" in out, f"{label}: an error without a Fault"

    def _check(self, label: str, check: Draft202012Validator, instance: Any) -> None:
        for error in check.iter_errors(instance):
            self.problems.append(f"{label}: {'/'.join(map(str, error.absolute_path))}: {error.message[:300]}")


def raw(c, method: str, path: str, *, params=None, body=None, token: str | None = None, text: str | None = None):
    token = token or c.tokens.load(c.conn.id).access_token
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    content = None
    if body is not None:
        content, headers["Content-Type"] = json_dumps(body).encode(), "application/json"
    elif text is not None:
        content, headers["Content-Type"] = text.encode(), "application/text"
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.conn.base_url) as http:
        return http.request(method, f"/v3/company/{c.conn.tenant_id}{path}", params=params, headers=headers,
                            content=content)


# -- the converter itself -------------------------------------------------------------------------
def test_the_converter_reads_the_xsd_field_names_and_types():
    defs = xsd_schema()["$defs"]
    customer = defs["Customer"]["properties"]
    assert {"DisplayName", "PrimaryEmailAddr", "BillAddr", "PrimaryTaxIdentifier", "CurrencyRef", "SyncToken",
            "MetaData", "sparse", "domain", "Active"} <= set(customer)
    assert defs["Customer"]["additionalProperties"] is False
    assert defs["ReferenceType"]["properties"].keys() == {"value", "name", "type"}
    assert defs["Line"]["properties"]["LineNum"] == {"type": "integer"}
    assert defs["Invoice"]["properties"]["Line"]["type"] == "array"
    assert defs["Error"]["properties"]["code"] == {"type": "string"}
    assert "Customer" in defs["QueryResponse"]["properties"] and \
        defs["QueryResponse"]["properties"]["Customer"]["type"] == "array"
    assert defs["IntuitResponse"]["properties"]["Invoice"] == {"$ref": "#/$defs/Invoice"}
    assert "Voided" in defs["Invoice"]["properties"]["status"]["enum"]


def test_the_validator_fails_on_a_wrong_field_name_a_wrong_type_and_a_wrong_enum():
    check = validator("Customer")
    good = {"DisplayName": "Acme Ltd", "PrimaryEmailAddr": {"Address": "ap@acme.example"},
            "BillAddr": {"Line1": "1 High St", "City": "London", "Country": "GB"}, "CurrencyRef": {"value": "GBP"},
            "PrimaryTaxIdentifier": "GB123456789", "Active": True}
    assert list(check.iter_errors(good)) == []
    for wrong in ({**good, "DisplayNme": "Acme"}, {**good, "PrimaryEmailAddr": {"Adress": "x@y.z"}},
                  {**good, "TaxNumber": "GB1"}, {**good, "BillAddr": {"Street": "1 High St"}}):
        with pytest.raises(ValidationError, match="Additional properties"):
            check.validate(wrong)
    with pytest.raises(ValidationError):
        check.validate({**good, "Active": "true"})
    with pytest.raises(ValidationError):
        validator("Invoice").validate({"Line": [{"DetailType": "SalesLine", "Amount": 1}]})
    response = validator("IntuitResponse")
    fault = {"Fault": {"Error": [{"Message": "Stale Object Error", "Detail": "d", "code": "5010"}],
                       "type": "ValidationFault"}, "time": "2026-05-12T03:50:00.000-07:00"}
    response.validate(fault)
    with pytest.raises(ValidationError):
        response.validate({**fault, "Fault": {"Error": [{"Message": "m", "code": 5010}], "type": "ValidationFault"}})
    with pytest.raises(ValidationError):
        response.validate({**fault, "Fault": {"Errors": [], "type": "ValidationFault"}})
    with pytest.raises(ValidationError):
        response.validate({"Customer": {"Id": 58, "DisplayName": "Acme"}, "time": fault["time"]})  # ids are strings
    with pytest.raises(ValidationError):
        response.validate({"Invoice": {"Id": "1", "TxnDate": "12/05/2026"}, "time": fault["time"]})


def test_a_capture_of_a_wrong_body_is_reported():
    cap = Capture()
    req = Request("POST", "/v3/company/1/customer", {}, {}, json.dumps({"DisplayName": "A", "Emial": "x"}).encode())
    resp = Response(200, {"Customer": {"Id": "1", "DisplayName": "A", "Balanse": 0}, "time": "2026-01-01T00:00:00Z"})
    cap(req, resp)
    assert any("Emial" in p for p in cap.problems) and any("Balanse" in p for p in cap.problems)


# -- a whole run -------------------------------------------------------------------------------------
def test_a_full_run_speaks_the_xsd_shapes_end_to_end():
    c = in_process("quickbooks", "demo")
    cap = Capture()
    c.sandbox.exchange_hooks.append(cap)
    acct = c.connector
    acct.company_name()
    acct.preferences()
    customers = acct.read_customers(None)
    items = acct.read_items(None)
    acct.read_invoices(None)
    acct.read_payments(None)
    made = acct.create_customers([
        CustomerWrite("k1", Party("company", "Conformance Ltd", email="ap@conformance.example", phone="+44 20 1",
                                  address_line1="1 High St", address_line2="Floor 2", city="London",
                                  postal_code="EC1A 1AA", country="GB", tax_id="GB980780684", currency="GBP")),
        CustomerWrite("k2", Party("person", "Ada O'Neil", email="ada@example.org")),
        CustomerWrite("k3", Party("company", customers.records[0].raw_name or "")),  # 6240 inside a batch
    ])
    assert made[0].ok and made[1].ok and not made[2].ok
    [upd] = acct.update_customers([CustomerWrite("u1", made[0].record.party.with_fields({"city": "Leeds"}),
                                                 id=made[0].id, version=made[0].version)])
    assert upd.ok
    stale = acct.update_customers([CustomerWrite("u2", made[0].record.party.with_fields({"city": "York"}),
                                                 id=made[0].id, version=made[0].version)])
    assert not stale[0].ok
    acct.find_customers(name="Ada O'Neil", email="ada@example.org")
    acct.get_customers([made[0].id, made[1].id])
    [item] = acct.create_items([ItemWrite("i1", Item(None, "Conformance kit", "CONF-1", Decimal("12.34")))])
    sku = {i.sku: i.id for i in items.records}
    inv = Invoice(None, made[0].id, "GBP", (
        InvoiceLine("Consulting", Decimal(3), Decimal("125.00"), Decimal("12.5"), sku["CONS-HR"]),
        InvoiceLine("Kit", Decimal(2), Decimal("12.34"), Decimal(0), item.id)),
        reference="CRM deal conformance", issue_date=dt.date(2026, 5, 1), due_date=dt.date(2026, 5, 31))
    [created] = acct.create_invoices([InvoiceWrite("v1", inv)])
    assert created.ok, created.error
    same = Invoice(None, made[1].id, "USD", (InvoiceLine("Seat", Decimal(10), Decimal("19.99"), Decimal(10),
                                                         sku["LIC-SEAT"]),), reference="CRM deal uniform")
    [uniform] = acct.create_invoices([InvoiceWrite("v2", same)])
    assert uniform.ok, uniform.error
    c.sandbox.record_payment(created.id, Decimal("100.00"), "2026-05-10")
    c.sandbox.user_void("Invoice", uniform.id)
    acct.read_invoices(customers.cursor)
    acct.read_payments(customers.cursor)
    acct.read_credit_memos(None)
    [credit] = acct.create_credit_notes([CreditNoteWrite("cn1", made[0].id, "GBP", created.id, Decimal("25.00"),
                                                         "One hour less")])
    assert credit.ok, credit.error
    acct.read_credit_notes(None)
    acct.customer_fates([made[0].id, made[1].id])
    acct.deactivate_customer(made[1].id)
    acct.reactivate_customer(made[1].id)
    acct.find_invoices("CRM deal conformance")
    # Raw corners: query answers of every shape, a batch with a query item, errors.
    raw(c, "GET", "/query", params={"query": "select count(*) from Customer"})
    raw(c, "GET", "/query", params={"query": "select * from Customer where DisplayName = 'Nobody'"})
    raw(c, "POST", "/query", text="select DisplayName from Customer MAXRESULTS 2")
    raw(c, "GET", "/query", params={"query": "select * from Customer where Foo = 'x'"})
    raw(c, "GET", "/query", params={"query": "select * from CompanyInfo"})
    raw(c, "GET", "/item/1")
    raw(c, "GET", "/account/1")
    raw(c, "GET", "/customer/99999")
    raw(c, "POST", "/batch", body={"BatchItemRequest": [{"bId": "q1", "Query": "select * from Item MAXRESULTS 1"},
                                                        {"bId": "d1", "operation": "delete",
                                                         "Invoice": {"Id": created.id, "SyncToken": "0"}}]})
    raw(c, "POST", "/creditmemo", body={"CustomerRef": {"value": made[0].id}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": Decimal("50.00"),
         "SalesItemLineDetail": {"ItemRef": {"value": item.id}, "Qty": 1, "UnitPrice": Decimal("50.00")}}]})
    raw(c, "GET", "/cdc", params={"entities": "Customer", "changedSince": "2000-01-01T00:00:00Z"})
    raw(c, "GET", "/companyinfo/" + c.conn.tenant_id, token="nope")
    assert cap.problems == []
    seen = {(m, re.sub(r"/\d+$", "/{id}", p.replace(c.conn.tenant_id, "{realm}")), s) for m, p, s in cap.seen}
    for expected in [("POST", "/v3/company/{realm}/batch", 200), ("GET", "/v3/company/{realm}/cdc", 200),
                     ("GET", "/v3/company/{realm}/query", 200), ("GET", "/v3/company/{realm}/query", 400),
                     ("GET", "/v3/company/{realm}/companyinfo/{realm}", 401),
                     ("GET", "/v3/company/{realm}/cdc", 400),
                     ("GET", "/v3/company/{realm}/customer/{id}", 400)]:
        assert expected in seen, expected


def test_oauth_and_a_throttled_run_over_http_also_conform():
    with over_http("quickbooks", "empty") as c:
        cap = Capture()
        c.sandbox.exchange_hooks.append(cap)
        c.sandbox.faults.append(Fault("429", nth=1, match="POST .*/batch"))
        c.sandbox.advance(3601)  # the access token died: a refresh (rotating) goes through the token endpoint
        res = c.connector.create_customers([CustomerWrite("h1", Party("company", "Over HTTP Ltd"))])
        assert res[0].ok, res[0].error
        with httpx.Client() as http:
            bad = http.post(f"{c.url}/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token",
                                                                       "refresh_token": "nope"},
                            auth=(c.conn.client_id, "sandbox-secret"))
        assert bad.status_code == 400
        assert cap.problems == []
        assert ("POST", "/oauth2/v1/tokens/bearer", 200) in cap.seen
