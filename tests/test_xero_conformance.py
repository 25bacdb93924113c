"""Every request the Xero connector sends and every answer the sandbox gives, checked against Xero's own
OpenAPI documents (tests/specs/xero/xero_accounting.yaml and xero-identity.yaml, from XeroAPI/Xero-OpenAPI;
sources and licence in tests/specs/xero/SOURCES.md).

The spec leaves objects open, so a misspelt field would pass. Here every object that lists its
properties is closed (``additionalProperties: false``); request bodies may not carry read-only fields;
``/Date(..)/`` fields in answers must have that shape; ids must be GUIDs. Errata, each backed by
Xero's public developer documentation (developer.xero.com/documentation) and by the spec's own examples:

1. Envelopes (Contacts, Invoices, Items, Payments, Organisations) also carry ``Id``, ``Status``,
   ``ProviderName`` and ``DateTimeUTC`` (the example responses of the Accounting API pages; every
   example in the spec has them).
2. Invoices carry ``DateString`` and ``DueDateString`` ("Invoices" page examples; the spec's examples).
3. ``Error.Elements`` are the failing records themselves ("Response codes and errors", validation
   errors; the spec's example for PUT /Contacts 400 is a whole contact), not only the ``Element``
   schema's ids.
4. 401 and 403 answers are problem documents, which the spec does not describe ("Response codes and
   errors").
5. The token answer also names its ``scope`` ("OAuth 2.0 - Standard authorization code flow"); the
   spec's AccessToken lacks it.
The test module loads the big spec once per session (the C YAML loader when present).
"""

from __future__ import annotations

import copy
import functools
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.connectors.base import Connection, CustomerWrite, InvoiceWrite, ItemWrite
from app.connectors.tokens import MemoryTokenStore
from app.domain.lifecycle import CreditNoteWrite
from app.domain.models import Invoice, InvoiceLine, Item, Party
from app.ops.connect import connect
from app.sandbox.base import Request, Response
from app.sandbox.server import serve

SPEC_DIR = Path(__file__).resolve().parent / "specs" / "xero"
URI = "urn:crossledger:xero"
MSDATE = r"^/Date\(-?\d+([+-]\d{4})?\)/$"
RAW_HEADER = "x-crossledger-test"  # set by tests that send malformed requests on purpose
COLLECTIONS = {"contacts": "Contacts", "invoices": "Invoices", "items": "Items", "payments": "Payments",
               "organisation": "Organisations", "creditnotes": "CreditNotes"}
TEXT_ANSWERS = {404, 406, 413, 429}  # plain text answers ("Response codes and errors")


@functools.cache
def spec(name: str) -> dict[str, Any]:
    """Parse a spec once per test session (xero_accounting.yaml is 0.9 MB)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPEC_DIR / name, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)  # a safe loader (C or pure Python)


def _close(node: Any, *, request: bool) -> Any:
    """OpenAPI 3.0 schema -> closed JSON Schema: no unknown fields; in requests, no read-only ones."""
    if isinstance(node, list):
        return [_close(n, request=request) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _close(v, request=request) for k, v in node.items()
           if k not in ("example", "examples", "externalDocs", "description", "x-enum-varnames")}
    props = out.get("properties")
    if isinstance(props, dict):
        if request:
            out["properties"] = props = {k: v for k, v in props.items() if not v.get("readOnly")}
        out.setdefault("additionalProperties", False)
        out.setdefault("type", "object")
    if not request and (node.get("x-is-msdate") or node.get("x-is-msdate-time")):
        out["pattern"] = MSDATE
    if out.get("format") == "uuid" and "$ref" not in out:
        out["type"] = "string"
    return out


STR = {"type": "string"}


@functools.cache
def schemas(request: bool) -> dict[str, Any]:
    """The spec's component schemas, closed, with the errata applied."""
    src = copy.deepcopy(spec("xero_accounting.yaml")["components"]["schemas"])
    out = {name: _close(s, request=request) for name, s in src.items()}
    for name in (*COLLECTIONS.values(), "Allocations"):  # erratum 1
        out[name]["properties"].update({"Id": {"type": "string", "format": "uuid"}, "Status": {"const": "OK"},
                                        "ProviderName": STR, "DateTimeUTC": {"type": "string", "pattern": MSDATE}})
    out["Invoice"]["properties"].update({"DateString": STR, "DueDateString": STR})  # erratum 2
    records = [{"$ref": f"#/components/schemas/{n}"} for n in ("Contact", "Invoice", "Item", "Payment")]
    out["Error"]["properties"]["Elements"]["items"] = {"anyOf": records}  # erratum 3
    out["Error"]["required"] = ["ErrorNumber", "Type", "Message"]
    identity = spec("xero-identity.yaml")["components"]["schemas"]
    out["Connection"] = _close(identity["Connection"], request=request)
    out["Connection"]["required"] = ["id", "tenantId", "tenantType", "tenantName"]
    token = _close(identity["AccessToken"], request=request)
    token["properties"]["scope"] = STR  # erratum 5
    token["required"] = ["access_token", "expires_in", "token_type"]
    out["AccessToken"] = token
    out["RefreshToken"] = _close(identity["RefreshToken"], request=request)
    out["RefreshToken"]["required"] = ["grant_type", "refresh_token"]
    out["CodeExchange"] = {  # the PKCE app's token exchange ("OAuth 2.0 - PKCE flow")
        "type": "object", "additionalProperties": False,
        "required": ["grant_type", "code", "redirect_uri", "code_verifier"],
        "properties": {"grant_type": {"const": "authorization_code"}, "code": STR, "redirect_uri": STR,
                       "code_verifier": {"type": "string", "pattern": r"^[A-Za-z0-9\-._~]{43,128}$"},
                       "client_id": STR, "client_secret": STR}}
    out["OAuthError"] = {"type": "object", "additionalProperties": False, "required": ["error"],
                         "properties": {"error": {"enum": ["invalid_grant", "invalid_client", "invalid_request",
                                                           "unsupported_grant_type", "unsupported_response_type"]}}}
    out["Problem"] = {  # erratum 4
        "type": "object", "additionalProperties": False,
        "required": ["Type", "Title", "Status", "Detail", "Instance", "Extensions"],
        "properties": {"Type": {"type": "null"}, "Title": STR, "Status": {"type": "integer"}, "Detail": STR,
                       "Instance": {"type": "string", "format": "uuid"}, "Extensions": {"type": "object"}}}
    return out


@functools.cache
def validator(name: str, request: bool = False) -> Draft202012Validator:
    doc = {"components": {"schemas": schemas(request)}}
    registry = Registry().with_resource(URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    schema: dict[str, Any] = {"$ref": f"{URI}#/components/schemas/{name}"}
    if name == "Connections":
        schema = {"type": "array", "items": {"$ref": f"{URI}#/components/schemas/Connection"}}
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker(formats=("uuid",)))


def errors(name: str, body: Any, *, request: bool = False) -> list[str]:
    found = sorted(validator(name, request).iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{name}{'(request)' if request else ''} at {'/'.join(map(str, e.absolute_path)) or '.'}: {e.message[:200]}"
            for e in found]


def _resource(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if parts[:2] == ["api.xro", "2.0"] and len(parts) >= 3:
        return parts[2].lower()
    return None


def check_request(req: Request) -> tuple[str | None, list[str]]:
    """The schema a request body must follow, and what is wrong with it."""
    resource = _resource(req.path)
    if req.path == "/connect/token":
        form = dict(urllib.parse.parse_qsl(req.body.decode()))
        name = "RefreshToken" if form.get("grant_type") == "refresh_token" else "CodeExchange"
        basic = (req.header("authorization") or "").lower().startswith("basic ")
        who = [] if basic != bool(form.get("client_id")) else [  # a PKCE app names itself; a web app uses Basic
            f"{name}(request): the client must be named once, by client_id or by Basic auth"]
        return name, errors(name, form, request=True) + who
    if resource is None or req.method not in ("PUT", "POST") or not req.body:
        return None, []
    body = json.loads(req.body, parse_float=Decimal)
    if resource == "payments" and req.path.count("/") > 3:
        return "PaymentDelete", errors("PaymentDelete", body, request=True)
    if resource == "payments" and req.method == "POST" and "Payments" not in body:
        return "Payment", errors("Payment", body, request=True)
    if resource == "creditnotes" and req.path.lower().endswith("/allocations"):
        return "Allocations", errors("Allocations", body, request=True)
    name = COLLECTIONS[resource]
    return name, errors(name, body, request=True)


def _sampled(body: Any, sample: int | None) -> Any:
    """The envelope with its collection cut to the first and last ``sample / 2`` records (long pages)."""
    if not sample or not isinstance(body, dict):
        return body
    out = dict(body)
    for key in COLLECTIONS.values():
        rows = out.get(key)
        if isinstance(rows, list) and len(rows) > sample:
            out[key] = rows[: sample // 2] + rows[-(sample // 2):]
    return out


def check_response(req: Request, resp: Response, sample: int | None = None) -> tuple[str | None, list[str]]:
    """The schema an answer must follow, and what is wrong with it."""
    raw = resp.encode()
    path = req.path.lower()
    if resp.status in (204, 302) or (path == "/connect/revocation" and resp.status == 200):
        return None, [] if not raw else [f"{req.method} {req.path}: a {resp.status} answer has no body"]
    if resp.status in TEXT_ANSWERS:
        problems = [] if raw and not raw.startswith((b"{", b"[")) else [f"{resp.status} should be plain text"]
        if resp.status == 429 and resp.headers.get("X-Rate-Limit-Problem") not in ("minute", "day", "concurrent",
                                                                                     "appminute"):
            problems.append("429 without X-Rate-Limit-Problem")
        return None, problems
    body = json.loads(raw, parse_float=Decimal)
    if resp.status in (401, 403):
        return "Problem", errors("Problem", body)
    if path in ("/connect/token", "/identity/connect/authorize", "/connect/revocation"):
        name = "AccessToken" if resp.status == 200 else "OAuthError"
        return name, errors(name, body)
    if path == "/connections":
        return "Connections", errors("Connections", body)
    resource = _resource(req.path)
    name = "Error" if resp.status == 400 else COLLECTIONS.get(resource or "")
    if resource == "creditnotes" and path.endswith("/allocations") and resp.status == 200:
        name = "Allocations"
    if name is None:
        return None, [f"{req.method} {req.path}: no schema for a {resp.status} answer"]
    return name, errors(name, _sampled(body, sample))


@dataclass
class Recorder:
    """Captures a sandbox's exchanges; faults from the fault plan (the base sandbox's, not Xero's) are skipped.

    ``sample`` bounds how many records of a long page are checked (jsonschema takes ~2 ms a contact).
    """

    sample: int | None = None
    exchanges: list[tuple[Request, Response]] = field(default_factory=list)
    _fired: dict[int, int] = field(default_factory=dict)

    def attach(self, sandbox: Any) -> None:
        def hook(req: Request, resp: Response) -> None:
            fired = sum(f.fired for f in sandbox.faults)
            if fired != self._fired.get(id(sandbox), 0):
                self._fired[id(sandbox)] = fired
                return
            self.exchanges.append((req, resp))

        sandbox.exchange_hooks.append(hook)

    def problems(self) -> tuple[list[str], set[str]]:
        found, covered = [], set()
        for req, resp in self.exchanges:
            if not req.header(RAW_HEADER):
                name, errs = check_request(req)
                found += [f"{req.method} {req.path}: {e}" for e in errs]
                covered |= {f"request:{name}"} if name else set()
            name, errs = check_response(req, resp, self.sample)
            found += [f"{req.method} {req.path} -> {resp.status}: {e}" for e in errs]
            covered |= {f"response:{name}"} if name else set()
        return found, covered


# -- the tests --------------------------------------------------------------------------------------------
@pytest.fixture
def served() -> Iterator[tuple[Any, str, Recorder]]:
    from app.sandbox.xero import XeroSandbox

    sandbox = XeroSandbox()
    sandbox.seed("demo")
    recorder = Recorder()
    recorder.attach(sandbox)
    server = serve(sandbox, timeout_delay=1.0)
    try:
        yield sandbox, server.url, recorder
    finally:
        server.stop()


def test_a_whole_run_conforms_to_the_spec(served):
    """Connect over real OAuth, then read, write (with errors), invoice, pay and refresh: all of it checked."""
    import httpx

    from app.connectors.xero import Connector

    sandbox, url, recorder = served
    tokens = MemoryTokenStore()
    conn = Connection("x1", "xero", url, auth_url=url)
    connect(conn, tokens, client_secret=None, timeout=20)
    connector = Connector(conn, tokens, sleep=lambda s: None)
    try:
        customers = connector.read_customers(None)
        connector.read_customers(customers.cursor)
        made = connector.create_customers([
            CustomerWrite("c1", Party("company", "Conformance Ltd", email="ap@conformance.example", phone="+44 1",
                                      address_line1="1 High St", city="Leeds", country="GB", tax_id="GB123",
                                      currency="GBP")),
            CustomerWrite("c2", Party("person", "Ada Lovelace", email="ada@example.org")),
            CustomerWrite("c3", Party("company", "walk-in customer")),  # a duplicate name: a per-element error
        ])
        assert [r.ok for r in made] == [True, True, False]
        updated = connector.update_customers([CustomerWrite("u1", Party("company", "Conformance Ltd", city="York"),
                                                            id=made[0].id, version=made[0].version)])
        assert updated[0].ok, updated[0].error
        connector.find_customers(name="Conformance Ltd", email="ap@conformance.example")
        connector.get_customers([made[0].id])
        items = connector.create_items([ItemWrite("i1", Item(None, "Conformance widget", "CW-1", Decimal("9.9950")))])
        invoices = connector.create_invoices([InvoiceWrite("v1", Invoice(
            None, made[0].id, "GBP", (InvoiceLine("Widgets", Decimal(3), Decimal("9.995"), Decimal("10"),
                                                  items[0].id, "OUTPUT2"),),
            reference="CRM deal conf", status="awaiting_payment"))])
        assert invoices[0].ok, invoices[0].error
        sandbox.record_payment(invoices[0].id, Decimal("5.00"), "2026-01-05")
        connector.read_items(None)
        connector.read_invoices(None)
        connector.find_invoices("CRM deal conf")
        connector.read_payments(None)
        credit = connector.create_credit_notes([CreditNoteWrite("cn1", made[0].id, "GBP", invoices[0].id,
                                                                Decimal("2.50"), "One widget short")])
        assert credit[0].ok, credit[0].error
        connector.read_credit_notes(None)
        connector.customer_fates([made[0].id])
        connector.list_tenants()
        sandbox.advance(1801)  # the access token dies: a 401, then a refresh with rotation
        connector.read_payments(None)
        token = tokens.load(conn.id).access_token
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                                 RAW_HEADER: "raw"}) as http:
            assert http.get("/api.xro/2.0/Contacts").status_code == 403  # no tenant
            tenant = {"xero-tenant-id": conn.tenant_id}
            assert http.get(f"/api.xro/2.0/Contacts/{'0' * 8}-0000-4000-8000-{'0' * 12}", headers=tenant
                            ).status_code == 404
            bad = http.put("/api.xro/2.0/Contacts", headers=tenant, json={"Contacts": [{"Name": "Walk-in Customer"}]})
            assert bad.status_code == 400
            assert http.get("/api.xro/2.0/Contacts", params={"where": "Name=="}, headers=tenant).status_code == 400
            assert http.post("/connect/token", data={"grant_type": "refresh_token", "client_id": conn.client_id,
                                                     "refresh_token": "nope"}).status_code == 400
    finally:
        connector.close()
    problems, covered = recorder.problems()
    assert problems == []
    assert {"request:Contacts", "request:Items", "request:Invoices", "request:RefreshToken", "request:CodeExchange",
            "response:Contacts", "response:Items", "response:Invoices", "response:Payments", "response:Organisations",
            "response:Error", "response:Problem", "response:Connections", "response:AccessToken",
            "response:OAuthError", "request:CreditNotes", "response:CreditNotes", "request:Allocations",
            "response:Allocations"} <= covered


def test_the_validator_refuses_a_wrong_field_name():
    good = {"Contacts": [{"Name": "Acme Ltd", "EmailAddress": "ap@acme.example",
                          "Addresses": [{"AddressType": "POBOX", "City": "Leeds"}]}]}
    assert errors("Contacts", good, request=True) == []
    misspelt = copy.deepcopy(good)
    misspelt["Contacts"][0]["Email"] = misspelt["Contacts"][0].pop("EmailAddress")
    assert any("'Email' was unexpected" in e for e in errors("Contacts", misspelt, request=True))
    nested = copy.deepcopy(good)
    nested["Contacts"][0]["Addresses"][0]["Town"] = "Leeds"
    assert any("Addresses/0" in e and "Town" in e for e in errors("Contacts", nested, request=True))
    invoice = {"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": "3ff6d40c-af9a-40a3-89ce-3c1556a25591"},
                             "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": Decimal("2.50"),
                                            "DiscountPercent": 5}]}]}
    assert any("DiscountPercent" in e for e in errors("Invoices", invoice, request=True))


def test_the_validator_refuses_read_only_fields_in_requests_and_bad_shapes_in_answers():
    sent = {"Invoices": [{"Type": "ACCREC", "Total": Decimal("12.00")}]}  # Xero computes totals
    assert any("Total" in e for e in errors("Invoices", sent, request=True))
    answer = {"Id": "04e93d48-e72f-4775-b7dd-15a041fab972", "Status": "OK", "ProviderName": "x",
              "DateTimeUTC": "/Date(1551399323399)/",
              "Contacts": [{"ContactID": "not-a-guid", "UpdatedDateUTC": "2026-05-01T10:00:00"}]}
    found = errors("Contacts", answer)
    assert any("ContactID" in e and "uuid" in e for e in found)
    assert any("UpdatedDateUTC" in e for e in found)


def test_the_spec_own_example_trips_the_closed_schema_on_its_typo():
    """The spec's GET /Contacts example carries ``TaxNumbeType`` (sic): closing the schemas catches it."""
    example = spec("xero_accounting.yaml")["paths"]["/Contacts"]["get"]["responses"]["200"]["content"][
        "application/json"]["example"]
    assert any("TaxNumbeType" in e for e in errors("Contacts", example))
