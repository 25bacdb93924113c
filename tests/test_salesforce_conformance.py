"""Every request the Salesforce connector sends and every answer the sandbox gives, checked against the
REST subset in tests/specs/salesforce (salesforce-rest-subset.openapi.yaml) and the requests of Salesforce's
own Postman collection that the connector uses (tests/specs/salesforce/postman/: their paths and parameters,
and the token fields their scripts read). Sources and licence: tests/specs/salesforce/SOURCES.md.

The subset leaves records open (orgs add fields); here a record of a type the subset describes is
closed: the subset's fields, the common system fields and the standard fields Salesforce's "Object
Reference for the Salesforce Platform" lists for Account, Contact, Opportunity and Product2, plus custom
fields (``__c``) and relationships. Every other object that lists its properties is closed too, so a wrong
field name fails. Composite subrequests and their answers are checked one by one against their own operations.
"""

from __future__ import annotations

import copy
import functools
import glob
import json
import re
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.connectors.base import FieldInfo, RecordWrite
from app.sandbox.base import Request, Response
from app.sandbox.salesforce import SESSION_TTL
from tests.support import in_process

SPEC_DIR = Path(__file__).resolve().parent / "specs" / "salesforce"
POSTMAN_DIR = SPEC_DIR / "postman"
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp", "OwnerId")
MULTICURRENCY = ("CurrencyIsoCode",)  # on every record of a multi-currency org (Object Reference)
# Standard fields the Object Reference lists per object beyond what the subset's schemas list.
REFERENCE_FIELDS = {
    "Account": ("ShippingStreet", "ShippingCity", "ShippingState", "ShippingPostalCode", "ShippingCountry",
                "BillingStateCode", "BillingCountryCode"),
    "Contact": ("MobilePhone", "Title", "MailingStateCode", "MailingCountryCode"),
    "Opportunity": ("ForecastCategoryName",),
    "Product2": ("StockKeepingUnit", "QuantityUnitOfMeasure"),
}
# Parent (lookup) and child relationships the connector reads through SOQL.
RELATIONSHIPS = {
    "Account": ("Owner", "MasterRecord", "Contacts", "Opportunities"),
    "Contact": ("Owner", "Account", "MasterRecord"),
    "Opportunity": ("Owner", "Account", "Pricebook2", "OpportunityLineItems", "OpportunityContactRoles"),
    "OpportunityLineItem": ("Opportunity", "Product2", "PricebookEntry"),
    "PricebookEntry": ("Pricebook2", "Product2"),
}
CHILD_RELATIONSHIPS = {"Contacts", "Opportunities", "OpportunityLineItems", "OpportunityContactRoles"}
# Describe properties the subset leaves out (Salesforce's DescribeSObjectResult and Field).
DESCRIBE_EXTRA = {"label": {"type": "string"}, "labelPlural": {"type": "string"}, "keyPrefix": {"type": "string"},
                  "custom": {"type": "boolean"}, "createable": {"type": "boolean"},
                  "updateable": {"type": "boolean"}, "deletable": {"type": "boolean"},
                  "queryable": {"type": "boolean"},
                  "childRelationships": {"type": "array", "items": {
                      "type": "object", "additionalProperties": False,
                      "properties": {"childSObject": {"type": "string"}, "field": {"type": "string"},
                                     "relationshipName": {"type": "string"}}}}}
FIELD_EXTRA = {"custom": {"type": "boolean"}, "length": {"type": "integer"}, "precision": {"type": "integer"},
               "scale": {"type": "integer"}, "referenceTo": {"type": "array", "items": {"type": "string"}},
               "relationshipName": {"type": ["string", "null"]}, "calculated": {"type": "boolean"},
               "defaultedOnCreate": {"type": "boolean"}}


@functools.cache
def spec() -> dict[str, Any]:
    with open(SPEC_DIR / "salesforce-rest-subset.openapi.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _merged(node: dict[str, Any]) -> dict[str, Any]:
    """allOf parts -> one object, so closing it keeps every part's fields."""
    if "allOf" not in node:
        return node
    props: dict[str, Any] = {}
    for part in node["allOf"]:
        part = _merged(_resolve(part))
        props.update(part.get("properties") or {})
    return {"type": "object", "properties": props}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return {**schema, "type": [*kinds, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def to_schema(node: Any, *, response: bool) -> dict[str, Any]:
    """OpenAPI 3.0 schema -> a closed JSON Schema; records dispatch on attributes.type."""
    if isinstance(node, dict) and node.get("$ref") == "#/components/schemas/Record":
        return {"$ref": "#/$defs/record"}
    node = _merged(_resolve(node))
    if not isinstance(node, dict):
        return {}
    out: dict[str, Any] = {}
    if node.get("type"):
        out["type"] = node["type"]
    if "enum" in node:
        out["enum"] = node["enum"]
    if "required" in node:
        out["required"] = node["required"]
    if "maxItems" in node:
        out["maxItems"] = node["maxItems"]
    if "properties" in node:
        out["properties"] = {k: to_schema(v, response=response) for k, v in node["properties"].items()}
        extra = node.get("additionalProperties")
        out["additionalProperties"] = True if extra is True else to_schema(extra, response=response) \
            if isinstance(extra, dict) else False
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_schema(node["additionalProperties"], response=response)
    if "items" in node:
        out["items"] = to_schema(node["items"], response=response)
    return out


def _record_defs() -> dict[str, Any]:
    """One closed schema per record type the subset describes; other types stay open."""
    schemas = spec()["components"]["schemas"]
    base = _merged(schemas["Record"])["properties"]
    query_result = {"type": ["object", "null"], "additionalProperties": False,
                    "properties": {"totalSize": {"type": "integer"}, "done": {"type": "boolean"},
                                   "nextRecordsUrl": {"type": "string"},
                                   "records": {"type": "array", "items": {"$ref": "#/$defs/record"}}}}
    branches = []
    for name, node in schemas.items():
        if name in ("Record", "Attributes") or "allOf" not in node:
            continue
        props: dict[str, Any] = {}
        for key, value in {**base, **_merged(node)["properties"]}.items():
            props[key] = _nullable(to_schema(value, response=True)) if key != "attributes" else to_schema(
                value, response=True)
        for key in (*SYSTEM_FIELDS, *MULTICURRENCY, *REFERENCE_FIELDS.get(name, ())):
            props.setdefault(key, {"type": ["string", "boolean", "null"]})
        for rel in RELATIONSHIPS.get(name, ()):
            props[rel] = query_result if rel in CHILD_RELATIONSHIPS else {
                "anyOf": [{"type": "null"}, {"$ref": "#/$defs/record"}]}
        closed = {"type": "object", "properties": props, "additionalProperties": False,
                  "patternProperties": {r"__c$": {}, r"__r$": {}}}
        branches.append({"if": {"properties": {"attributes": {"properties": {"type": {"const": name}}}},
                                "required": ["attributes"]}, "then": closed})
    return {"record": {"type": ["object", "null"], "allOf": branches}}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "$defs": _record_defs()})


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    ordered = sorted(spec()["paths"], key=lambda p: (p.count("{"), -len(p)))
    out = []
    for path in ordered:
        pattern = re.sub(r"\{version\}", r"v\\d+\\.\\d", path.rstrip("/"))
        pattern = re.sub(r"\{\w+\}", r"[^/]+", pattern)
        out.append((re.compile("^" + pattern + "/?$"), path))
    return out


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for pattern, template in _templates():
        if pattern.match(path):
            op = spec()["paths"][template].get(method.lower())
            if op:
                return template, op
    return None


def _params(template: str, op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw = [*spec()["paths"][template].get("parameters", []), *op.get("parameters", [])]
    return {p["name"]: p for p in (_resolve(p) for p in raw) if p.get("in") == "query"}


def _with_type(template: str, path: str, body: Any) -> Any:
    """Single-record bodies name their type in the path, not in attributes: add it for the check."""
    single = ("/services/data/{version}/sobjects/{sobject}", "/services/data/{version}/sobjects/{sobject}/{id}")
    m = re.search(r"/sobjects/(\w+)(?:/[A-Za-z0-9]{15,18})?/?$", path)
    if isinstance(body, dict) and "attributes" not in body and m and template in single:
        return {"attributes": {"type": m.group(1)}, **body}
    return body


def validate_request(method: str, path: str, query: dict[str, list[str]], body: bytes | Any,
                     content_type: str = "application/json") -> list[str]:
    found = operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    template, op = found
    errors = []
    params = _params(template, op)
    for name in query:
        if name not in params:
            errors.append(f"{method} {path}: unknown query parameter {name!r}")
    for name, param in params.items():
        if param.get("required") and name not in query:
            errors.append(f"{method} {path}: required query parameter {name!r} missing")
    if body in (b"", None):
        return errors
    content = (_resolve(op.get("requestBody")) or {}).get("content") or {}
    if "form" in content_type:
        form = dict(urllib.parse.parse_qsl(body.decode() if isinstance(body, bytes) else body))
        schema = content.get("application/x-www-form-urlencoded", {}).get("schema")
        if schema is None:
            return [*errors, f"{method} {path}: the operation takes no form body"]
        instance: Any = form
    else:
        schema = (content.get("application/json") or {}).get("schema")
        if schema is None:
            return [*errors, f"{method} {path}: the operation takes no JSON body"]
        instance = json.loads(body, parse_float=Decimal) if isinstance(body, bytes) else body
        instance = _with_type(template, path, instance)
    validator = _validator(to_schema(schema, response=False))
    errors += [f"{method} {path} body: {e.json_path}: {e.message}" for e in validator.iter_errors(instance)]
    if template.endswith("/composite") and isinstance(instance, dict):
        for sub in instance.get("compositeRequest") or []:
            parts = urllib.parse.urlsplit(sub["url"])
            errors += validate_request(sub["method"], parts.path,
                                       urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                                       sub.get("body"))
    return errors


def _describe_schema(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    schema["properties"].update(DESCRIBE_EXTRA)
    schema["properties"]["fields"]["items"]["properties"].update(FIELD_EXTRA)
    return schema


def validate_response(method: str, path: str, status: int, body: bytes | Any, *, request_body: Any = None
                      ) -> list[str]:
    found = operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    template, op = found
    instance = json.loads(body, parse_float=Decimal) if isinstance(body, bytes) and body else \
        (None if isinstance(body, bytes) else body)
    answer = (op.get("responses") or {}).get(str(status))
    if answer is None:
        if status >= 400:
            answer = spec()["components"]["responses"]["Errors"]
            if template.startswith("/services/oauth2"):
                answer = op["responses"]["400"]
        else:
            return [f"{method} {path}: status {status} is not one the spec gives ({list(op['responses'])})"]
    content = (_resolve(answer).get("content") or {}).get("application/json")
    if content is None or "schema" not in content:
        return [] if instance in (None, b"") else [f"{method} {path} -> {status}: a body where the spec has none"]
    schema = to_schema(content["schema"], response=True)
    if template.endswith("/describe"):
        schema = _describe_schema(schema)
    errors = [f"{method} {path} -> {status}: {e.json_path}: {e.message}"
              for e in _validator(schema).iter_errors(instance)]
    if template.endswith("/composite") and status == 200 and isinstance(request_body, dict):
        for sub, res in zip(request_body.get("compositeRequest") or [], instance.get("compositeResponse") or [],
                            strict=True):
            parts = urllib.parse.urlsplit(sub["url"])
            errors += validate_response(sub["method"], parts.path, res["httpStatusCode"], res["body"])
    return errors


@functools.cache
def postman_paths() -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every request in Salesforce's Postman collection."""
    out = []
    for name in glob.glob(str(POSTMAN_DIR / "**" / "*.json"), recursive=True):
        with open(name, encoding="utf-8") as fh:
            item = json.load(fh)
        if not isinstance(item, dict) or "url" not in item or "method" not in item:
            continue
        path = re.sub(r"^(\{\{\w+\}\})+", "", item["url"].split("?")[0]).rstrip("/")
        segments = [re.sub(r"\\\{\\\{\w+\\\}\\\}|<\w+>", "[^/]+", re.escape(seg)) for seg in path.split("/")]
        out.append((item["method"], re.compile("^" + "/".join(segments) + "/?$")))
    return out


def in_postman(path: str) -> bool:
    return any(p.match(path) for _, p in postman_paths())


class Recorder:
    """An exchange hook keeping every API and token request/response of a run."""

    def __init__(self) -> None:
        self.seen: list[tuple[Request, Response]] = []

    def __call__(self, req: Request, resp: Response) -> None:
        if req.path.startswith(("/services/data", "/services/oauth2/token")):
            self.seen.append((req, resp))

    def errors(self) -> list[str]:
        out = []
        for req, resp in self.seen:
            ctype = req.header("content-type") or "application/json"
            out += validate_request(req.method, req.path, req.query, req.body, ctype)
            body = json.loads(req.body, parse_float=Decimal) if req.body and "json" in ctype else None
            out += validate_response(req.method, req.path, resp.status, resp.encode(), request_body=body)
        return out


# -- tests -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run() -> tuple[Recorder, Any]:
    """One connector session touching every operation the connector uses, recorded."""
    c = in_process("salesforce", "demo")
    rec = Recorder()
    c.sandbox.exchange_hooks.append(rec)
    k, sb = c.connector, c.sandbox
    k.company_name()
    for otype in ("company", "person", "deal"):
        k.list_fields(otype)
    k.default_mapping()
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deals = k.read_deals(None)
    sb.advance(5)
    accounts, contacts = sb.ids("Account"), sb.ids("Contact")
    results = k.update_records([
        RecordWrite("u1", "company", accounts[0], {"Name": "Renamed Ltd", "Tax_Id__c": "GB123456789",
                                                   "BillingCity": "York"}),
        RecordWrite("u2", "person", contacts[2], {"Email": "new.address@example.com", "Phone": "+44 20 7946 0000"}),
        RecordWrite("c1", "company", None, {"Name": "Brand New Company Ltd", "BillingStreet": "1 High Street",
                                            "BillingCountry": "United Kingdom"}),
        RecordWrite("c2", "person", None, {"LastName": "New", "FirstName": "Nina", "Email": "nina@example.com",
                                           "AccountId": accounts[0]}),
    ])
    assert all(r.ok for r in results), [r.error for r in results]
    dup = k.update_records([RecordWrite("c3", "company", None, {"Name": "Renamed Ltd"})])
    assert dup[0].error.existing_id == accounts[0]
    bad = k.update_records([RecordWrite("e1", "company", "0015g0000009999AAA", {"Name": "Ghost"}),
                            RecordWrite("e2", "company", accounts[2], {"Tax_Id__c": "X" * 300})])
    assert [type(r.error).__name__ for r in bad] == ["NotFound", "ValidationRejected"]
    fields = k.ensure_deal_fields([FieldInfo("crossledger_invoice_number", "Invoice number"),
                                   FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
                                   FieldInfo("crossledger_last_payment", "Last payment date", "date")])
    won = next(d for d in deals.records if d.won)
    out = k.update_deals([RecordWrite("d1", "deal", won.id, {fields["crossledger_invoice_number"]: "INV-7",
                                                               fields["crossledger_amount_paid"]: Decimal("120.50"),
                                                               fields["crossledger_last_payment"]: "2026-03-01"})])
    assert all(r.ok for r in out), [r.error for r in out]
    sb.delete("Contact", contacts[7])
    sb.purge("Account", accounts[9])
    for _ in range(3):
        sb.advance(120)
        for otype in ("company", "person"):
            cursors[otype] = k.read_records(otype, cursors[otype]).cursor
    k.read_deals(deals.cursor)
    k.get_records("company", accounts[:3])
    k.record_fates("company", [accounts[0], accounts[9]])
    k.record_fates("person", [contacts[7], contacts[0]])
    sb.advance(SESSION_TTL + 1)  # the session ends: a 401, the refresh grant, the call again
    assert k.company_name()
    assert [s.status for r, s in rec.seen[-3:]] == [401, 200, 200]
    return rec, c


def test_every_exchange_conforms_to_the_spec(run):
    rec, _ = run
    used = {(req.method, operation(req.method, req.path)[0]) for req, _ in rec.seen}
    for needed in [("GET", "/services/data/{version}/query"), ("GET", "/services/data/{version}/queryAll"),
                   ("GET", "/services/data/{version}/sobjects/{sobject}/describe"),
                   ("POST", "/services/data/{version}/composite"),
                   ("POST", "/services/data/{version}/composite/sobjects"),
                   ("PATCH", "/services/data/{version}/composite/sobjects"),
                   ("POST", "/services/data/{version}/composite/sobjects/{sobject}"),
                   ("POST", "/services/data/{version}/sobjects/{sobject}"),
                   ("POST", "/services/data/{version}/tooling/sobjects/CustomField")]:
        assert needed in used, needed
    subs = {operation(s["method"], urllib.parse.urlsplit(s["url"]).path)[0]
            for req, _ in rec.seen if req.path.endswith("/composite")
            for s in json.loads(req.body)["compositeRequest"]}
    assert "/services/data/{version}/sobjects/{sobject}/deleted/" in subs
    errors = rec.errors()
    assert errors == [], "\n".join(errors[:20])


def test_every_request_path_is_one_of_salesforces_postman_requests(run):
    rec, _ = run
    paths = {req.path for req, _ in rec.seen}
    paths |= {urllib.parse.urlsplit(s["url"]).path for req, _ in rec.seen if req.path.endswith("/composite")
              for s in json.loads(req.body)["compositeRequest"]}
    # The Query request documents nextRecordsUrl (/query/<locator>) in its description, not as a request.
    missing = sorted(p for p in paths if not in_postman(p) and not re.search(r"/query/[\w-]+$", p))
    assert missing == []
    assert not in_postman("/services/data/v64.0/queryEverything")


def test_token_answers_carry_what_salesforces_postman_scripts_read():
    c = in_process("salesforce", "demo")
    with open(POSTMAN_DIR / "auth" / "web_server_flow_2.json", encoding="utf-8") as fh:
        script = json.load(fh)["tests"]
    read = set(re.findall(r"jsonData\.(\w+)", script))
    assert read == {"id", "access_token", "refresh_token", "instance_url"}
    body = c.sandbox.grant_tokens("crossledger-desktop")
    assert read <= set(body)
    org, user = body["id"].split("/")[-2:]  # the script splits the identity URL the same way
    assert (org, user) == (c.sandbox.state["org_id"], c.sandbox.state["user_id"])
    assert validate_response("POST", "/services/oauth2/token", 200, json.dumps(body).encode()) == []
    assert validate_response("POST", "/services/oauth2/token", 200,
                             json.dumps({**body, "expires_in": 7200}).encode())  # Salesforce never sends it
    with open(POSTMAN_DIR / "auth" / "web_server_flow_1.json", encoding="utf-8") as fh:
        keys = {q["key"] for q in json.load(fh)["queryParams"]}
    assert keys <= {"response_type", "client_id", "redirect_uri", "scope"}


def test_validator_fails_on_a_wrong_field_name_in_a_request(run):
    rec, _ = run
    req = next(r for r, _ in rec.seen if r.method == "PATCH" and r.path.endswith("/composite/sobjects"))
    assert validate_request(req.method, req.path, req.query, req.body) == []
    body = json.loads(req.body, parse_float=Decimal)
    account = next(r for r in body["records"] if r["attributes"]["type"] == "Account")
    account["BillingTown"] = account.pop("BillingCity")
    errors = validate_request(req.method, req.path, req.query, json.dumps(body, default=str).encode())
    assert errors and "BillingTown" in " ".join(errors)
    body = json.loads(req.body, parse_float=Decimal)
    body["allOrNothing"] = body.pop("allOrNone")
    assert validate_request(req.method, req.path, req.query, json.dumps(body, default=str).encode())
    assert validate_request("GET", "/services/data/v64.0/query", {"soql": ["SELECT Id FROM Account"]}, b"")
    assert validate_request("GET", "/services/data/v64.0/sobjects/Account/deleted/", {"start": ["x"]}, b"")


def test_validator_fails_on_a_wrong_field_name_in_a_response(run):
    rec, _ = run
    req, resp = next((r, s) for r, s in rec.seen if r.path.endswith("/query") and b'"Account"' in s.encode()
                     and b"BillingCity" in s.encode())
    assert validate_response(req.method, req.path, resp.status, resp.encode()) == []
    body = json.loads(resp.encode(), parse_float=Decimal)
    broken = copy.deepcopy(body)
    broken["records"][0]["BillingTown"] = broken["records"][0].pop("BillingCity")
    errors = validate_response(req.method, req.path, resp.status, json.dumps(broken, default=str).encode())
    assert errors and "BillingTown" in " ".join(errors)
    broken = copy.deepcopy(body)
    broken["nextRecordUrl"] = "/services/data/v64.0/query/01g-2000"
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken, default=str).encode())
    broken = copy.deepcopy(body)
    broken["records"][0]["IsDeleted"] = "no"
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken, default=str).encode())
    # Custom fields pass; an error body with a misspelt key does not.
    broken = copy.deepcopy(body)
    broken["records"][0]["Anything_New__c"] = "x"
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken, default=str).encode()) == []
    assert validate_response("GET", req.path, 400, json.dumps([{"message": "m", "errorcode": "X"}]).encode())


def test_money_travels_as_exact_json_numbers(run):
    rec, _ = run
    lines = next(s for r, s in rec.seen if r.path.endswith("/composite") and b"OpportunityLineItems" in s.encode())
    text = lines.encode().decode()
    assert re.search(r'"UnitPrice":\s*\d+(\.\d+)?[,}]', text) and re.search(r'"Amount":\s*\d+\.\d+[,}]', text)
    body = json.loads(text, parse_float=Decimal)
    deals = body["compositeResponse"][0]["body"].get("records", [])
    prices = [li["UnitPrice"] for d in deals for li in (d["OpportunityLineItems"] or {"records": []})["records"]]
    assert Decimal("333.33") in prices or Decimal("19.99") in prices or Decimal("249.5") in prices
    patch = next(r for r, _ in rec.seen if r.method == "PATCH" and b"120.5" in r.body)
    assert b'"120.5"' not in patch.body and b"120.5" in patch.body
