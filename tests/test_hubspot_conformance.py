"""Every request the HubSpot connector sends and every answer the sandbox gives, checked against the
OpenAPI documents in tests/specs/hubspot/ (contacts, companies, deals, line items, products,
associations v4, properties, pipelines; OAuth from the project's own summary of HubSpot's docs;
sources and licence in tests/specs/hubspot/SOURCES.md).

Each object that lists its properties is closed here (``additionalProperties: false`` unless the spec
says otherwise), so a misspelt field fails. Known faults of the specs, corrected as errata, each backed
by HubSpot's public developer documentation (developers.hubspot.com/docs):

1. ``PublicObjectSearchRequest.sorts`` is typed as strings; the API takes ``{propertyName, direction}``
   objects ("CRM search", section "Sort search results"; HubSpot's own SDK issues hubspot-api-nodejs
   #14 and #559).
2. The ``Error`` schema omits ``status`` ("error"), which every error body carries ("Error handling"),
   and the 429 fields ``errorType``, ``policyName`` and ``groupName`` ("API usage guidelines and limits").
3. The OAuth ``Error`` omits the standard ``error``/``error_description`` HubSpot sends beside its own
   ``status`` code ("Manage OAuth tokens"; they are what an OAuth client keys on).
4. ``GET /account-info/v3/details`` has no spec in the folder; its fields are those of the "Account
   information" API reference page.
5. The Ballerina copies move the object prefix into ``servers`` (SOURCES.md); paths are prefixed back.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.connectors import hubspot as hs
from app.connectors import oauth
from app.connectors.base import FieldInfo, RecordWrite
from app.connectors.errors import AuthExpired
from app.sandbox.base import Request, Response
from app.sandbox.server import InProcessTransport
from tests.support import in_process

SPEC_DIR = Path(__file__).resolve().parent / "specs" / "hubspot"
OBJECT_SPECS = {"contacts": "crm-objects-contacts-v3.openapi.json",
                "companies": "crm-objects-companies-v3.openapi.json",
                "deals": "crm-objects-deals-v3.openapi.json",
                "line_items": "crm-objects-line-items-v3.openapi.json",
                "products": "crm-objects-products-v3.openapi.json"}
SORT = {"type": "object", "required": ["propertyName"],
        "properties": {"propertyName": {"type": "string"},
                       "direction": {"type": "string", "enum": ["ASCENDING", "DESCENDING"]}}}
ACCOUNT_DETAILS = {
    "type": "object",
    "required": ["portalId", "accountType", "timeZone", "companyCurrency", "additionalCurrencies", "utcOffset",
                 "utcOffsetMilliseconds", "uiDomain", "dataHostingLocation"],
    "properties": {"portalId": {"type": "integer"}, "accountType": {"type": "string"},
                   "timeZone": {"type": "string"}, "companyCurrency": {"type": "string"},
                   "additionalCurrencies": {"type": "array", "items": {"type": "string"}},
                   "utcOffset": {"type": "string"}, "utcOffsetMilliseconds": {"type": "integer"},
                   "uiDomain": {"type": "string"}, "dataHostingLocation": {"type": "string"}},
}


@functools.cache
def spec(name: str) -> dict[str, Any]:
    with open(SPEC_DIR / name, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) if name.endswith(".yaml") else json.load(fh)
    schemas = doc.get("components", {}).get("schemas", {})
    if "PublicObjectSearchRequest" in schemas:  # erratum 1
        schemas["PublicObjectSearchRequest"]["properties"]["sorts"]["items"] = SORT
    if "Error" in schemas:  # errata 2 and 3
        extra = {"status": {"type": "string"}, "errorType": {"type": "string"}, "policyName": {"type": "string"},
                 "groupName": {"type": "string"}}
        if name.startswith("oauth"):
            extra = {"error": {"type": "string"}, "error_description": {"type": "string"}}
        schemas["Error"].setdefault("properties", {}).update(extra)
    return doc


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def to_schema(doc: dict[str, Any], node: Any) -> dict[str, Any]:
    """OpenAPI 3.0 schema -> closed JSON Schema 2020-12 (allOf merged; nullable honoured)."""
    node = _resolve(doc, node)
    if not isinstance(node, dict):
        return {}
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = _resolve(doc, part)
            merged["properties"].update(part.get("properties") or {})
            merged["required"] += part.get("required") or []
        node = merged
    out: dict[str, Any] = {}
    nullable = bool(node.get("nullable"))
    if node.get("type"):
        out["type"] = [node["type"], "null"] if nullable else node["type"]
    if "enum" in node:
        out["enum"] = list(node["enum"]) + ([None] if nullable else [])
    if node.get("required"):
        out["required"] = list(node["required"])
    if "properties" in node:
        out["properties"] = {k: to_schema(doc, v) for k, v in node["properties"].items()}
        extra = node.get("additionalProperties")
        out["additionalProperties"] = to_schema(doc, extra) if isinstance(extra, dict) else bool(extra)
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_schema(doc, node["additionalProperties"])
    if "items" in node:
        out["items"] = to_schema(doc, node["items"])
    return out


@functools.cache
def _templates(name: str) -> list[tuple[re.Pattern[str], str]]:
    paths = spec(name)["paths"]
    ordered = sorted(paths, key=lambda p: (p.count("{"), -len(p)))
    return [(re.compile("^" + re.sub(r"\{\w+\}", r"[^/]+", p.rstrip("/")) + "/?$"), p) for p in ordered]


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """(spec file, operation) for a sandbox request path; None for what no spec covers."""
    m = re.match(r"^/crm/v3/objects/(\w+)(/.*)?$", path)
    if m:
        name = OBJECT_SPECS[m.group(1)]
        rest = ("/companies" if m.group(1) == "companies" else "") + (m.group(2) or "/")
    elif path.startswith("/crm/v4/"):
        name, rest = "crm-associations-v4.openapi.yaml", path[len("/crm/v4"):]
    elif path.startswith("/crm/v3/properties/"):
        name, rest = "crm-properties-v3.openapi.json", path[len("/crm/v3/properties"):]
    elif path.startswith("/crm/v3/pipelines/"):
        name, rest = "crm-pipelines-v3.openapi.json", path[len("/crm/v3/pipelines"):]
    elif path.startswith("/oauth/") and path != "/oauth/authorize":
        name, rest = "oauth-v1-v3.openapi.yaml", path
    else:
        return None
    for pattern, template in _templates(name):
        if pattern.match(rest.rstrip("/") or "/") or (rest == "/" and template == "/"):
            op = spec(name)["paths"][template].get(method.lower())
            if op is not None:
                return name, op
    return None


def _content_schema(doc: dict[str, Any], holder: dict[str, Any]) -> dict[str, Any] | None:
    holder = _resolve(doc, holder)
    content = (holder or {}).get("content") or {}
    for media in ("application/json", "application/x-www-form-urlencoded", "*/*"):
        if media in content:
            return to_schema(doc, content[media]["schema"])
    return None


def check(req: Request, resp: Response) -> list[str]:
    """Problems with one exchange (empty when it conforms)."""
    where = f"{req.method} {req.path} -> {resp.status}"
    if req.path.startswith("/account-info/"):
        body = json.loads(resp.encode())
        return [f"{where}: {e.message}" for e in Draft202012Validator(ACCOUNT_DETAILS).iter_errors(body)]
    found = operation(req.method, req.path)
    if found is None:
        return [] if req.path == "/oauth/authorize" else [f"{where}: no operation in the specs"]
    name, op = found
    doc = spec(name)
    problems: list[str] = []
    if req.body and "requestBody" in op:
        schema = _content_schema(doc, op["requestBody"])
        form = "x-www-form-urlencoded" in (req.headers.get("content-type") or "")
        body = req.form() if form else json.loads(req.body)
        if schema is not None:
            problems += [f"{where} request: {e.message} at {list(e.absolute_path)}"
                         for e in Draft202012Validator(schema).iter_errors(body)]
    holder = op["responses"].get(str(resp.status)) or op["responses"].get("default")
    if holder is None:
        return [*problems, f"{where}: status not in the spec ({sorted(op['responses'])})"]
    schema = _content_schema(doc, holder)
    payload = resp.encode()
    if schema is None:
        if payload:
            problems.append(f"{where}: the spec says no body")
        return problems
    body = json.loads(payload)
    problems += [f"{where} response: {e.message} at {list(e.absolute_path)}"
                 for e in Draft202012Validator(schema).iter_errors(body)]
    return problems


def _run_everything() -> list[tuple[Request, Response]]:
    """A connector session touching every endpoint it uses, and a few the sandbox offers besides."""
    c = in_process("hubspot", "demo")
    seen: list[tuple[Request, Response]] = []
    c.sandbox.exchange_hooks.append(lambda req, resp: seen.append((req, copy.deepcopy(resp))))
    k = c.connector
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deals = k.read_deals(None)
    companies = list(c.sandbox.state["objects"]["companies"])
    contacts = list(c.sandbox.state["objects"]["contacts"])
    c.sandbox.edit("companies", companies[0], city="Leeds")
    c.sandbox.archive("companies", companies[1])
    c.sandbox.merge("contacts", contacts[0], contacts[1])
    k.read_records("company", cursors["company"])
    k.read_records("person", cursors["person"])
    k.get_records("person", contacts[2:5])
    k.record_fates("person", [contacts[0], contacts[1], "1"])  # a merged-away id, an unknown one
    k.record_fates("company", [companies[0], companies[1]])  # an archived one
    k.update_records([
        RecordWrite("a", "company", companies[2], {"city": "York", "numberofemployees": Decimal("40")}),
        RecordWrite("b", "company", "1", {"city": "Nowhere"}),
        RecordWrite("c", "person", None, {"firstname": "Ada", "email": "ada@example.org"}),
        RecordWrite("d", "person", None, {"firstname": "Dup", "email": "ada@example.org"}),
        RecordWrite("e", "person", contacts[3], {"no_such_property": "x"}),
    ])
    k.list_fields("company")
    mapping = k.ensure_deal_fields([FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
                                    FieldInfo("crossledger_last_payment", "Last payment date", "date"),
                                    FieldInfo("crossledger_paid", "Paid", "bool")])
    deal = next(iter(c.sandbox.state["objects"]["deals"]))
    k.update_deals([RecordWrite("x", "deal", deal, {mapping["crossledger_amount_paid"]: Decimal("10.5"),
                                                    mapping["crossledger_last_payment"]: dt.date(2026, 5, 1)})])
    k.read_deals(deals.cursor)
    k.company_name()
    k.account_details(fresh=True)
    config = hs.oauth_config(c.conn, "sandbox-secret")
    transport = InProcessTransport(c.sandbox)
    oauth.refresh_tokens(config, c.tokens.load(c.conn.id), transport)
    with pytest.raises(AuthExpired):
        oauth.refresh_tokens(config, oauth.Tokens("x", "bad-refresh"), transport)
    token = c.tokens.load(c.conn.id).access_token
    import httpx

    with httpx.Client(transport=transport, base_url=c.url, headers={"Authorization": f"Bearer {token}"}) as http:
        http.get(f"/crm/v3/objects/contacts/{contacts[2]}", params={"associations": "companies"})
        http.get(f"/crm/v4/objects/contacts/{contacts[2]}/associations/companies")
        http.put(f"/crm/v4/objects/contacts/{contacts[2]}/associations/default/companies/{companies[3]}")
        http.post("/crm/v4/associations/deals/companies/batch/read", json={"inputs": [{"id": deal}, {"id": "7"}]})
        http.post("/crm/v3/objects/deals/search", json={
            "filterGroups": [{"filters": [{"propertyName": "amount", "operator": "GT", "value": "1000"}]}],
            "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}], "properties": ["amount"],
            "limit": 5})
        http.get("/crm/v3/pipelines/deals/default")
        http.get("/crm/v3/properties/companies/tax_id")
        http.post("/crm/v3/properties/companies", json={"name": "tax_id", "label": "Tax", "type": "string",
                                                         "fieldType": "text", "groupName": "companyinformation"})
        http.get(f"/oauth/v1/access-tokens/{token}")
        http.get("/crm/v3/objects/contacts", headers={"Authorization": "Bearer nope"})
    return seen


@functools.cache
def _exchanges() -> tuple[tuple[Request, Response], ...]:
    return tuple(_run_everything())


def test_every_exchange_conforms_to_the_specs():
    exchanges = _exchanges()
    problems = [p for req, resp in exchanges for p in check(req, resp)]
    assert problems == []
    hit = {(req.method, re.sub(r"/\d+(?=/|$)", "/{id}", req.path), resp.status) for req, resp in exchanges}
    for expected in [("POST", "/crm/v3/objects/companies/search", 200),
                     ("GET", "/crm/v3/objects/contacts", 200),
                     ("POST", "/crm/v3/objects/contacts/batch/read", 200),
                     ("POST", "/crm/v3/objects/companies/batch/update", 207),
                     ("POST", "/crm/v3/objects/contacts/batch/create", 201),
                     ("POST", "/crm/v3/objects/contacts/batch/create", 409),
                     ("POST", "/crm/v3/objects/contacts/batch/update", 400),
                     ("POST", "/crm/v4/associations/contacts/companies/batch/read", 207),
                     ("POST", "/crm/v4/associations/deals/line_items/batch/read", 200),
                     ("POST", "/crm/v3/objects/line_items/batch/read", 200),
                     ("GET", "/crm/v3/pipelines/deals", 200),
                     ("POST", "/crm/v3/properties/deals/batch/create", 201),
                     ("POST", "/crm/v3/properties/companies", 409),
                     ("POST", "/oauth/v3/token", 200),
                     ("POST", "/oauth/v3/token", 400),
                     ("POST", "/oauth/v3/token/introspect", 200),
                     ("GET", "/crm/v3/objects/contacts", 401)]:
        assert expected in hit, expected


def _find(method: str, path_pattern: str, *status: int) -> tuple[Request, Response]:
    """The first such exchange whose answer holds at least one result."""
    return next((req, resp) for req, resp in _exchanges()
                if req.method == method and re.fullmatch(path_pattern, req.path) and resp.status in status
                and json.loads(resp.encode()).get("results"))


def _with_body(req: Request, body: Any) -> Request:
    return Request(req.method, req.path, req.query, req.headers, json.dumps(body).encode())


def test_the_validator_catches_a_wrong_field_name_in_a_request():
    req, resp = _find("POST", r"/crm/v3/objects/companies/batch/update", 207)
    assert check(req, resp) == []
    body = json.loads(req.body)
    body["inputs"][0]["propertys"] = body["inputs"][0].pop("properties")
    problems = check(_with_body(req, body), resp)
    assert any("propertys" in p for p in problems) and any("'properties' is a required property" in p
                                                           for p in problems)
    req, resp = _find("POST", r"/crm/v3/objects/companies/search", 200)
    body = json.loads(req.body)
    body["sorts"] = [{"property": "hs_lastmodifieddate", "direction": "DESCENDING"}]
    assert check(_with_body(req, body), resp)


def test_the_validator_catches_a_wrong_field_name_or_type_in_a_response():
    req, resp = _find("POST", r"/crm/v3/objects/companies/search", 200)
    body = json.loads(resp.encode())
    body["results"][0]["created_at"] = body["results"][0].pop("createdAt")
    problems = check(req, Response(200, body))
    assert any("created_at" in p for p in problems) and any("createdAt" in p for p in problems)
    body = json.loads(resp.encode())
    body["results"][0]["properties"]["hs_lastmodifieddate"] = 1746090000000  # a number: HubSpot prints strings
    assert check(req, Response(200, body))
    req, resp = _find("POST", r"/crm/v4/associations/contacts/companies/batch/read", 200, 207)
    assert check(req, resp) == []
    body = json.loads(resp.encode())
    body["results"][0]["to"][0]["toObjectId"] = str(body["results"][0]["to"][0]["toObjectId"])  # v4 IDs are numbers
    assert check(req, Response(resp.status, body))
