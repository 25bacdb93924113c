"""Every request and response of a Zoho Books run, checked against the published shapes.

The only machine-readable spec is the third-party ballerina OpenAPI sketch
(../shared/specs/zoho-books/ballerina-zoho.books-openapi.yaml). It covers contacts and invoices and has
known faults, corrected here as errata (each one backed by ../shared/reference/zoho-books.md):

1. ``$ref: '#/schemas/X'`` points nowhere; the schemas live under ``#/components/schemas/X``.
2. Ids are typed ``integer``; Zoho ids are long digit *strings*.
3. ``Contact`` and ``Invoice`` (single-record envelopes) hold ``contact: [ContactInfo]`` (an array, and
   for invoices under the wrong key); Zoho sends one object under ``contact`` / ``invoice``.
4. ``outstanding_receivable_amount`` is typed ``integer``; it is an amount (a number).
5. Create requests reuse the response envelope as their body schema; a body is the record's fields.
6. The spec's servers/paths are ``https://books.zoho.com/api/v3``; the current host is
   ``{api_domain}/books/v3`` (same resources), and creates answer 201, not 200.

Its schemas allow any extra property, so a misspelt field would pass. Each schema is therefore closed
(``additionalProperties: false``) over the spec's fields plus the fields the reference documents.
Endpoints the spec lacks (items, customer payments, organisations, settings, OAuth) are checked
against the reference's shapes.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from app.connectors.base import CustomerWrite, InvoiceWrite, ItemWrite
from app.connectors.zohobooks import json_dumps
from app.domain.models import Invoice, InvoiceLine, Item, Party
from app.sandbox.server import InProcessTransport
from tests.support import in_process

SPEC_PATH = (Path(__file__).resolve().parents[2] / "shared" / "specs" / "zoho-books"
             / "ballerina-zoho.books-openapi.yaml")
SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
URI = "urn:crossledger:zoho-books"

ID = {"type": "string", "pattern": r"^\d+$"}
OPT_ID = {"type": "string", "pattern": r"^\d*$"}  # "" where a reference is empty (no tax, no item)
NUM = {"type": "number"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
TS = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$"}  # -0700: no colon
DATE = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\d$"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def envelope(**payload: Any) -> dict[str, Any]:
    return closed({"code": {"const": 0}, "message": STR, **payload}, ("code", "message", *payload))


# -- the spec, with its errata applied ------------------------------------------------------------------
def _fix_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/schemas/", "#/components/schemas/") if k == "$ref" else _fix_refs(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_refs(v) for v in node]
    return node


def spec_schemas() -> dict[str, Any]:
    schemas = _fix_refs(copy.deepcopy(SPEC["components"]["schemas"]))  # erratum 1
    for schema in schemas.values():
        for name, prop in (schema.get("properties") or {}).items():
            if name.endswith("_id") and prop.get("type") == "integer":
                schema["properties"][name] = dict(ID)  # erratum 2
    schemas["ContactInfo"]["properties"]["outstanding_receivable_amount"] = dict(NUM)  # erratum 4
    return schemas


def build_schemas() -> dict[str, Any]:
    spec = spec_schemas()
    page_context = closed({**spec["ContactList"]["properties"]["page_context"]["properties"],
                           **spec["InvoiceList"]["properties"]["page_context"]["properties"],
                           "search_criteria": array(closed({"column_name": STR, "search_text": STR,
                                                            "comparator": STR}))},
                          ("page", "per_page", "has_more_page"))
    address = closed(dict.fromkeys(("attention", "address", "street2", "city", "state", "state_code", "zip",
                                    "country", "phone", "fax"), STR))
    person_fields = {"contact_person_id": ID, "salutation": STR, "first_name": STR, "last_name": STR, "email": STR,
                     "phone": STR, "mobile": STR, "designation": STR, "department": STR,
                     "is_primary_contact": BOOL, "enable_portal": BOOL}
    contact_info = closed({**spec["ContactInfo"]["properties"], "customer_name": STR,
                           "customer_sub_type": {"enum": ["business", "individual"]}},
                          ("contact_id", "contact_name", "last_modified_time"))
    for key in ("created_time", "last_modified_time"):
        contact_info["properties"][key] = TS
    contact_detail = copy.deepcopy(contact_info)
    contact_detail["properties"].update({
        "contact_number": STR, "website": STR, "notes": STR, "language_code": STR, "vat_reg_no": STR,
        "tax_reg_no": STR, "gst_no": STR, "billing_address": ref("Address"), "shipping_address": ref("Address"),
        "contact_persons": array(closed(person_fields, ("contact_person_id",))),
    })
    invoice_info = closed({**spec["InvoiceInfo"]["properties"], "reference_number": STR, "date": DATE,
                           "due_date": DATE, "currency_id": ID, "currency_code": STR, "exchange_rate": NUM,
                           "total": NUM, "balance": NUM, "created_time": TS, "last_modified_time": TS},
                          ("invoice_id", "customer_id", "status", "total", "balance"))
    invoice_info["properties"]["status"] = {"enum": ["draft", "sent", "viewed", "overdue", "partially_paid", "paid",
                                                     "void", "unpaid", "pending_approval", "approved"]}
    line_item = closed({"line_item_id": ID, "item_id": OPT_ID, "name": STR, "description": STR, "item_order": INT,
                        "rate": NUM, "quantity": NUM, "unit": STR, "discount": {"type": ["number", "string"]},
                        "discount_amount": NUM, "tax_id": OPT_ID, "tax_name": STR, "tax_percentage": NUM,
                        "item_total": NUM}, ("line_item_id", "rate", "quantity", "item_total"))
    invoice_detail = copy.deepcopy(invoice_info)
    invoice_detail["properties"].update({
        "payment_terms": INT, "payment_terms_label": STR, "is_inclusive_tax": BOOL, "discount_type": STR,
        "is_discount_before_tax": BOOL, "line_items": array(line_item), "sub_total": NUM, "tax_total": NUM,
        "taxes": array(closed({"tax_name": STR, "tax_amount": NUM})), "payment_made": NUM, "credits_applied": NUM,
        "write_off_amount": NUM, "price_precision": INT, "notes": STR, "terms": STR, "invoice_url": STR,
    })
    item = closed({"item_id": ID, "name": STR, "item_name": STR, "status": {"enum": ["active", "inactive"]},
                   "description": STR, "rate": NUM, "unit": STR, "sku": STR,
                   "product_type": {"enum": ["goods", "service", "digital_service"]}, "item_type": STR,
                   "tax_id": OPT_ID, "tax_name": STR, "tax_percentage": NUM, "created_time": TS,
                   "last_modified_time": TS}, ("item_id", "name", "rate"))
    payment_summary = closed({"payment_id": ID, "payment_number": STR, "invoice_numbers": STR, "date": DATE,
                              "payment_mode": STR, "amount": NUM, "bcy_amount": NUM, "unused_amount": NUM,
                              "reference_number": STR, "description": STR, "customer_id": ID, "customer_name": STR,
                              "currency_code": STR, "created_time": TS, "last_modified_time": TS},
                             ("payment_id", "amount", "customer_id", "last_modified_time"))
    payment_detail = copy.deepcopy(payment_summary)
    for key in ("invoice_numbers", "bcy_amount"):
        del payment_detail["properties"][key]
    payment_detail["properties"].update({
        "exchange_rate": NUM, "bank_charges": NUM,
        "invoices": array(closed({"invoice_payment_id": ID, "invoice_id": ID, "invoice_number": STR, "date": DATE,
                                  "total": NUM, "balance_amount": NUM, "amount_applied": NUM},
                                 ("invoice_id", "amount_applied")))})
    organization = closed({"organization_id": ID, "name": STR, "contact_name": STR, "email": STR,
                           "is_default_org": BOOL, "plan_type": INT, "plan_name": STR, "currency_id": ID,
                           "currency_code": STR, "currency_symbol": STR, "price_precision": INT, "time_zone": STR,
                           "language_code": STR, "date_format": STR, "field_separator": STR,
                           "fiscal_year_start_month": INT, "country": STR, "is_org_active": BOOL,
                           "account_created_date": DATE, "user_role": STR, "user_status": STR},
                          ("organization_id", "name"))
    currency = closed({"currency_id": ID, "currency_code": STR, "currency_name": STR, "currency_symbol": STR,
                       "price_precision": INT, "currency_format": STR, "is_base_currency": BOOL,
                       "exchange_rate": NUM}, ("currency_id", "currency_code"))
    tax = closed({"tax_id": ID, "tax_name": STR, "tax_percentage": NUM, "tax_type": STR, "is_default_tax": BOOL,
                  "is_editable": BOOL}, ("tax_id", "tax_percentage"))
    invoice_payment = closed({"payment_id": ID, "payment_number": STR, "invoice_id": ID, "invoice_payment_id": ID,
                              "payment_mode": STR, "description": STR, "date": DATE, "reference_number": STR,
                              "exchange_rate": NUM, "amount": NUM, "bank_charges": NUM}, ("payment_id", "amount"))
    write_address = closed(dict.fromkeys(address["properties"], STR))
    requests = {
        "ContactRequest": closed({
            "contact_name": STR, "company_name": STR, "contact_type": {"enum": ["customer", "vendor"]},
            "customer_sub_type": {"enum": ["business", "individual"]}, "contact_number": STR, "currency_id": ID,
            "payment_terms": INT, "payment_terms_label": STR, "vat_reg_no": STR, "tax_reg_no": STR, "gst_no": STR,
            "website": STR, "notes": STR, "language_code": STR, "billing_address": write_address,
            "shipping_address": write_address,
            "contact_persons": array(closed({k: v for k, v in person_fields.items() if k != "enable_portal"})),
        }),
        "InvoiceRequest": closed({
            "customer_id": ID, "invoice_number": STR, "reference_number": STR, "date": DATE, "due_date": DATE,
            "payment_terms": INT, "is_inclusive_tax": BOOL, "discount_type": {"enum": ["item_level", "entity_level"]},
            "notes": STR, "terms": STR,
            "line_items": array(closed({"line_item_id": ID, "item_id": ID, "name": STR, "description": STR,
                                        "rate": NUM, "quantity": NUM, "unit": STR,
                                        "discount": {"type": ["number", "string"], "pattern": r"^\d+(\.\d+)?%$"},
                                        "tax_id": ID}, ("quantity", "rate"))),
        }, ("customer_id", "line_items")),
        "ItemRequest": closed({"name": STR, "rate": NUM, "description": STR, "sku": STR, "unit": STR,
                               "product_type": {"enum": ["goods", "service", "digital_service"]},
                               "item_type": {"enum": ["sales", "purchases", "sales_and_purchases", "inventory"]},
                               "tax_id": ID}, ("name", "rate")),
        "PaymentRequest": closed({"customer_id": ID, "payment_mode": STR, "amount": NUM, "date": DATE,
                                  "reference_number": STR, "description": STR, "account_id": ID,
                                  "invoices": array(closed({"invoice_id": ID, "amount_applied": NUM},
                                                           ("invoice_id", "amount_applied")))},
                                 ("customer_id", "amount")),
    }
    return {
        # spec-backed (errata applied, closed over spec + reference fields)
        "ContactInfo": contact_info, "ContactDetail": contact_detail, "Address": address,
        "ContactList": envelope(contacts=array(ref("ContactInfo")), page_context=ref("PageContext")),
        "Contact": envelope(contact=ref("ContactDetail")),  # erratum 3
        "InvoiceInfo": invoice_info, "InvoiceDetail": invoice_detail,
        "InvoiceList": envelope(invoices=array(ref("InvoiceInfo")), page_context=ref("PageContext")),
        "Invoice": envelope(invoice=ref("InvoiceDetail")),  # erratum 3
        "SuccessOperation": closed({"code": {"const": 0}, "message": STR}, ("code", "message")),
        "Errors": closed({"code": {"type": "integer", "minimum": 1}, "message": STR}, ("code", "message")),
        "PageContext": page_context,
        # reference-backed
        "ItemList": envelope(items=array(item), page_context=ref("PageContext")),
        "Item": envelope(item=item),
        "CustomerPaymentList": envelope(customerpayments=array(payment_summary), page_context=ref("PageContext")),
        "CustomerPayment": envelope(payment=payment_detail),
        "InvoicePayments": envelope(payments=array(invoice_payment)),
        "OrganizationList": envelope(organizations=array(organization)),
        "Organization": envelope(organization=organization),
        "Currencies": envelope(currencies=array(currency)),
        "Taxes": envelope(taxes=array(tax)),
        "TokenResponse": closed({"access_token": STR, "refresh_token": STR, "api_domain": STR,
                                 "token_type": {"const": "Bearer"}, "expires_in": {"const": 3600}, "scope": STR},
                                ("access_token", "api_domain", "token_type", "expires_in")),
        "TokenError": closed({"error": STR, "error_description": STR}, ("error",)),
        "Revoked": closed({"status": {"const": "success"}}, ("status",)),
        **requests,
    }


SCHEMAS = build_schemas()
REGISTRY = Registry().with_resource(URI, Resource(contents={"components": {"schemas": SCHEMAS}},
                                                  specification=DRAFT7))


def validator(name: str) -> Draft7Validator:
    return Draft7Validator({"$ref": f"{URI}#/components/schemas/{name}"}, registry=REGISTRY)


def problems(name: str, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(instance)]


# -- which schema answers which exchange ------------------------------------------------------------------
ERRATA_NAMES = {"Contact": "Contact", "ContactList": "ContactList", "Invoice": "Invoice", "InvoiceList": "InvoiceList",
                "SuccessOperation": "SuccessOperation"}


def spec_operation(method: str, path: str) -> tuple[str, str] | None:
    """(operationId, response schema) of the spec operation for a /books/v3 request (erratum 6)."""
    spec_path = path.replace("/books/v3/", "/api/v3/", 1)
    for template, ops in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, spec_path) and method.lower() in ops:
            op = ops[method.lower()]
            responses = op["responses"]
            response = responses.get(200) or responses.get("200")
            schema_ref = response["content"]["application/json"]["schema"]["$ref"]
            return op["operationId"], ERRATA_NAMES[schema_ref.rsplit("/", 1)[-1]]
    return None


REFERENCE_ROUTES = [  # (method, path regex, response schema, request schema)
    ("GET", r"/books/v3/organizations", "OrganizationList", None),
    ("GET", r"/books/v3/organizations/\d+", "Organization", None),
    ("GET", r"/books/v3/settings/currencies", "Currencies", None),
    ("GET", r"/books/v3/settings/taxes", "Taxes", None),
    ("POST", r"/books/v3/contacts/\d+/(active|inactive)", "SuccessOperation", None),
    ("GET", r"/books/v3/items", "ItemList", None),
    ("POST", r"/books/v3/items", "Item", "ItemRequest"),
    ("GET", r"/books/v3/items/\d+", "Item", None),
    ("POST", r"/books/v3/invoices/\d+/status/\w+", "SuccessOperation", None),
    ("GET", r"/books/v3/invoices/\d+/payments", "InvoicePayments", None),
    ("GET", r"/books/v3/customerpayments", "CustomerPaymentList", None),
    ("POST", r"/books/v3/customerpayments", "CustomerPayment", "PaymentRequest"),
    ("GET", r"/books/v3/customerpayments/\d+", "CustomerPayment", None),
    ("DELETE", r"/books/v3/customerpayments/\d+", "SuccessOperation", None),
    ("POST", r"/oauth/v2/token", "TokenResponse", None),
    ("POST", r"/oauth/v2/token/revoke", "Revoked", None),
]
SPEC_REQUESTS = {"addContact": "ContactRequest", "updateContact": "ContactRequest", "addInvoice": "InvoiceRequest",
                 "updateInvoice": "InvoiceRequest"}  # erratum 5


def check(req: Any, resp: Any) -> tuple[str | None, list[str]]:
    """Validate one exchange; returns (the spec operation it used, or None) and the problems found."""
    found: list[str] = []
    body = json.loads(resp.encode()) if resp.encode() else None
    op = spec_operation(req.method, req.path) if req.path.startswith("/books/v3/") else None
    route = next((r for r in REFERENCE_ROUTES if r[0] == req.method and re.fullmatch(r[1], req.path)), None)
    if op is None and route is None:
        return None, [f"{req.method} {req.path}: no schema for this endpoint"]
    if req.path.startswith("/books/v3/") and not req.path.startswith("/books/v3/organizations"):
        org = req.query.get("organization_id", [""])[0]
        if not re.fullmatch(r"\d+", org) and resp.status < 400:
            found.append("organization_id missing from the query")
    if req.path.startswith("/oauth/"):
        name = route[2] if "access_token" in (body or {}) or "status" in (body or {}) else "TokenError"
    elif resp.status >= 400:
        name = "Errors"
    else:
        name = op[1] if op else route[2]
    found += [f"response {name}: {p}" for p in problems(name, body)]
    request_schema = SPEC_REQUESTS.get(op[0]) if op else route[3]
    if request_schema and req.body:
        found += [f"request {request_schema}: {p}" for p in problems(request_schema, json.loads(req.body))]
    if op and resp.status < 400:
        expected = 201 if req.method == "POST" else 200  # erratum 6: creates answer 201
        if resp.status != expected:
            found.append(f"status {resp.status}, expected {expected}")
    return op[0] if op else None, [f"{req.method} {req.path}: {p}" for p in found]


# -- the run ------------------------------------------------------------------------------------------
def party(name: str, **kw: Any) -> Party:
    return Party(kind=kw.pop("kind", "company"), name=name, **kw)


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    """A run that touches every endpoint the connector uses, plus the error paths, all captured."""
    c = in_process("zohobooks", "demo")
    captured: list[tuple[Any, Any]] = []
    c.sandbox.exchange_hooks.append(lambda req, resp: captured.append((req, resp)))
    k, sb, org = c.connector, c.sandbox, c.conn.tenant_id

    def raw(method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        token = c.tokens.load(c.conn.id).access_token
        with httpx.Client(transport=InProcessTransport(sb), base_url=c.conn.base_url) as http:
            return http.request(method, path, params={"organization_id": org, **params},
                                headers={"Authorization": f"Zoho-oauthtoken {token}"},
                                content=json_dumps(body).encode() if body is not None else None)

    k.list_tenants()
    k.company_name()
    customers = k.read_customers(None)
    made = k.create_customers([
        CustomerWrite("a", party("Conformance Co Ltd", email="ap@conformance.example", phone="+44 113 496 0000",
                                 address_line1="1 Park Row", address_line2="Floor 2", city="Leeds",
                                 postal_code="LS1 5AB", country="GB", tax_id="GB123456789", currency="USD")),
        CustomerWrite("b", party("Ada Lovelace", kind="person", email="ada@example.org")),
        CustomerWrite("dup", party(customers.records[0].raw_name)),
    ])
    k.update_customers([CustomerWrite("u", made[0].record.party.with_fields({"city": "York"}), id=made[0].id)])
    k.find_customers(name="Ada Lovelace", email="ada@example.org")
    k.set_customer_active(made[1].id, False)
    k.set_customer_active(made[1].id, True)
    items = k.read_items(None)
    new_item = k.create_items([ItemWrite("i", Item(None, "Conformance audit", "CONF-1", Decimal("99.50"),
                                                   description="One audit"))])[0]
    tax = next(t for t in sb.state["books"][org]["taxes"] if t["tax_percentage"] == "20")["tax_id"]
    by_sku = {i.sku: i.id for i in items.records}
    invoice = Invoice(None, made[0].id, "USD", (
        InvoiceLine("Audit", Decimal("2"), Decimal("99.50"), Decimal("10"), new_item.id, tax),
        InvoiceLine("Seats", Decimal("3"), Decimal("19.99"), Decimal(0), by_sku["LIC-SEAT"]),
    ), reference="CRM deal 1", issue_date=dt.date(2026, 4, 1), due_date=dt.date(2026, 5, 1), status="awaiting_payment")
    created = k.create_invoices([InvoiceWrite("inv", invoice)])[0]
    draft = k.create_invoices([InvoiceWrite("inv2", replace(invoice, reference="CRM deal 2", status=None))])[0]
    k.update_invoices([InvoiceWrite("upd", replace(draft.record, lines=draft.record.lines[:1]))])
    k.find_invoices("CRM deal 1")
    raw("POST", "/books/v3/customerpayments", {"customer_id": made[0].id, "payment_mode": "banktransfer",
                                               "amount": Decimal("150.00"), "date": "2026-04-10",
                                               "reference_number": "BACS-1",
                                               "invoices": [{"invoice_id": created.id,
                                                             "amount_applied": Decimal("150.00")}]})
    k.read_invoices(None)
    k.read_payments(None)
    raw("GET", f"/books/v3/invoices/{created.id}/payments")
    raw("GET", f"/books/v3/invoices/{created.id}")
    raw("GET", f"/books/v3/items/{new_item.id}")
    raw("GET", "/books/v3/settings/taxes")
    raw("POST", f"/books/v3/invoices/{draft.id}/status/void")
    raw("DELETE", f"/books/v3/invoices/{draft.id}")
    gone = k.create_customers([CustomerWrite("gone", party("Short Lived Ltd"))])[0]
    raw("DELETE", f"/books/v3/contacts/{gone.id}")
    # Error paths: Zoho's {code, message} bodies.
    raw("GET", "/books/v3/contacts/460000000000000")
    raw("GET", "/books/v3/contacts", organization_id="")
    raw("POST", "/books/v3/invoices", {"customer_id": made[0].id, "line_items": []})
    # OAuth: a refresh an hour later, then a revoke.
    sb.advance(3601)
    k.company_name()
    raw("POST", "/oauth/v2/token/revoke", token="1000.unknown")
    return {"captured": captured, "connected": c}


def test_every_exchange_matches_the_spec_or_the_reference(run):
    failures: list[str] = []
    used: set[str] = set()
    for req, resp in run["captured"]:
        op, found = check(req, resp)
        failures += found
        if op:
            used.add(op)
    assert failures == []
    # The spec's contact and invoice operations were all exercised (and validated) in the run.
    spec_ops = {op["operationId"] for ops in SPEC["paths"].values() for op in ops.values()}
    assert used == spec_ops
    statuses = {resp.status for _, resp in run["captured"]}
    assert {200, 201, 400, 404} <= statuses


def test_the_run_saw_error_bodies_in_zohos_shape(run):
    errors = [json.loads(resp.encode()) for req, resp in run["captured"]
              if resp.status >= 400 and req.path.startswith("/books/")]
    codes = {e["code"] for e in errors}
    assert {1001, 1002, 6041, 4} <= codes
    assert all(set(e) == {"code", "message"} for e in errors)


def _captured(run, method: str, pattern: str) -> tuple[Any, Any]:
    return next((req, resp) for req, resp in run["captured"]
                if req.method == method and re.fullmatch(pattern, req.path) and resp.status < 300)


def test_the_validator_fails_on_a_wrong_field_name(run):
    _, resp = _captured(run, "GET", r"/books/v3/contacts/\d+")
    good = json.loads(resp.encode())
    assert problems("Contact", good) == []
    bad = copy.deepcopy(good)
    bad["contact"]["contactName"] = bad["contact"].pop("contact_name")
    found = problems("Contact", bad)
    assert any("contactName" in p for p in found) and any("contact_name" in p for p in found)
    nested = copy.deepcopy(good)
    nested["contact"]["billing_address"]["postcode"] = nested["contact"]["billing_address"].pop("zip")
    assert any("postcode" in p for p in problems("Contact", nested))
    req, _ = _captured(run, "POST", r"/books/v3/invoices")
    sent = json.loads(req.body)
    assert problems("InvoiceRequest", sent) == []
    sent["lineItems"] = sent.pop("line_items")
    assert any("lineItems" in p for p in problems("InvoiceRequest", sent))


def test_the_spec_as_published_would_not_have_caught_it(run):
    """Why the errata and the closing exist: the raw sketch accepts a misspelling and rejects real ids."""
    raw_doc = {"components": {"schemas": _fix_refs(copy.deepcopy(SPEC["components"]["schemas"]))}}
    registry = Registry().with_resource(URI, Resource(contents=raw_doc, specification=DRAFT7))
    loose = Draft7Validator({"$ref": f"{URI}#/components/schemas/ContactInfo"}, registry=registry)
    _, resp = _captured(run, "GET", r"/books/v3/contacts/\d+")
    contact = json.loads(resp.encode())["contact"]
    misspelt = {**{k: v for k, v in contact.items() if k != "contact_name"}, "contactName": "x"}
    assert not any("contactName" in e.message for e in loose.iter_errors(misspelt))
    assert any(e.path and e.path[0] == "contact_id" for e in loose.iter_errors(contact))  # integer ids
    assert problems("ContactDetail", contact) == []


def test_amounts_are_json_numbers_on_the_wire(run):
    _, resp = _captured(run, "GET", r"/books/v3/invoices/\d+")
    text = resp.encode().decode()
    assert re.search(r'"total":\d+\.\d{2}[,}]', text) and '"total":"' not in text
    req, _ = _captured(run, "POST", r"/books/v3/invoices")
    assert re.search(r'"rate":99\.50[,}]', req.body.decode())
