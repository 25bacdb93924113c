"""Every request the Pipedrive connector sends and every answer the sandbox gives, checked against
our own OpenAPI documents of the Pipedrive API (tests/specs/pipedrive/: v2 for records, v1 for users/me,
*Fields and recents), written from Pipedrive's public API reference (developers.pipedrive.com/docs/api/v1;
SOURCES.md beside them names the section behind each part). Pipedrive's own OpenAPI files state no
licence, so they are not copied; ours carry each operation's token cost and OAuth scopes as the reference
gives them.

The specs leave objects open; here an object that lists its properties is closed, so a wrong field
name fails. Responses may carry null where the spec forgets ``nullable`` (Pipedrive prints nulls for
empty values throughout its own examples); requests may not.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from app.connectors.base import FieldInfo, RecordWrite
from app.connectors.pipedrive_tokens import token_cost
from app.sandbox import pipedrive as sandbox_module
from app.sandbox.base import Request, Response
from app.sandbox.server import InProcessTransport
from tests.support import in_process

SPEC_DIR = Path(__file__).resolve().parent / "specs" / "pipedrive"
V1_EXTRA = {r"^[0-9a-f]{40}(_[a-z_0-9]+)?$": {}}  # v1 bodies put custom fields at the root, keyed by hash


@functools.cache
def spec(version: str) -> dict[str, Any]:
    """Parse a spec once per test session."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPEC_DIR / f"pipedrive-{version}.openapi.yaml", encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)  # a safe loader (C or pure Python)


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _merge_all_of(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """allOf of object parts -> one object, so closing it does not reject the other parts' fields."""
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    props: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[str] = list(merged.get("required") or [])
    for part in node["allOf"]:
        part = _resolve(doc, part)
        if "allOf" in part:
            part = _merge_all_of(doc, part)
        props.update(part.get("properties") or {})
        required += part.get("required") or []
        for key in ("type", "additionalProperties", "nullable"):
            if key in part and key not in merged:
                merged[key] = part[key]
    if props:
        merged["properties"] = props
        merged.setdefault("type", "object")
    if required:
        merged["required"] = sorted(set(required))
    return merged


def to_schema(doc: dict[str, Any], node: Any, *, response: bool, v1: bool) -> dict[str, Any]:
    """OpenAPI 3.0 schema -> a closed JSON Schema (2020-12)."""
    node = _resolve(doc, node)
    if not isinstance(node, dict):
        return {}
    if "allOf" in node:
        node = _merge_all_of(doc, node)
    nullable = bool(node.get("nullable")) or response
    out: dict[str, Any] = {}
    for key in ("anyOf", "oneOf"):
        if key in node:
            out["anyOf"] = [to_schema(doc, sub, response=response, v1=v1) for sub in node[key]]
    kind = node.get("type")
    if kind:
        out["type"] = [kind, "null"] if nullable else kind
    if "enum" in node:
        out["enum"] = list(node["enum"]) + ([None] if nullable else [])
    if "required" in node:
        out["required"] = node["required"]
    if "properties" in node:
        out["properties"] = {k: to_schema(doc, v, response=response, v1=v1) for k, v in node["properties"].items()}
        extra = node.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            out["additionalProperties"] = True if extra is True else to_schema(doc, extra, response=response, v1=v1)
        else:
            out["additionalProperties"] = False
            if v1:
                out["patternProperties"] = V1_EXTRA
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_schema(doc, node["additionalProperties"], response=response, v1=v1)
    if "items" in node:
        out["items"] = to_schema(doc, node["items"], response=response, v1=v1)
    if nullable and "anyOf" in out:
        out["anyOf"].append({"type": "null"})
    return out


@functools.cache
def _templates(version: str) -> list[tuple[re.Pattern[str], str]]:
    paths = spec(version)["paths"]
    ordered = sorted(paths, key=lambda p: (p.count("{"), -len(p)))
    return [(re.compile("^" + re.sub(r"\{\w+\}", r"[^/]+", p) + "/?$"), p) for p in ordered]


def operation(method: str, path: str) -> tuple[str, str, dict[str, Any]] | None:
    """(version, spec path, operation) for a request path of the sandbox, or None (OAuth endpoints)."""
    for prefix, version in (("/api/v2", "v2"), ("/api/v1", "v1"), ("/v1", "v1")):
        if path.startswith(prefix + "/"):
            rest = path[len(prefix):]
            for pattern, template in _templates(version):
                if pattern.match(rest):
                    op = spec(version)["paths"][template].get(method.lower())
                    return (version, template, op) if op else None
            return None
    return None


def _check_param(value: str, schema: dict[str, Any], name: str) -> list[str]:
    kind = schema.get("type")
    values = value.split(",") if kind == "array" else [value]
    item_kind = (schema.get("items") or {}).get("type") if kind == "array" else kind
    errors = []
    for v in values:
        if item_kind == "integer" and not re.fullmatch(r"-?\d+", v):
            errors.append(f"query {name}={value!r} is not an integer")
        if item_kind == "boolean" and v not in {"true", "false"}:
            errors.append(f"query {name}={value!r} is not a boolean")
        if "enum" in schema and v not in schema["enum"]:
            errors.append(f"query {name}={value!r} not in {schema['enum']}")
    return errors


def validate_request(method: str, path: str, query: dict[str, list[str]], body: bytes) -> list[str]:
    found = operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    version, _, op = found
    doc = spec(version)
    errors = []
    params = {p["name"]: p for p in (_resolve(doc, p) for p in op.get("parameters", [])) if p.get("in") == "query"}
    for name, values in query.items():
        if name not in params:
            errors.append(f"{method} {path}: unknown query parameter {name!r}")
            continue
        for value in values:
            errors += _check_param(value, params[name].get("schema") or {}, name)
    for name, param in params.items():
        if param.get("required") and name not in query:
            errors.append(f"{method} {path}: required query parameter {name!r} missing")
    if body:
        content = ((_resolve(doc, op.get("requestBody")) or {}).get("content") or {}).get("application/json")
        if content is None:
            errors.append(f"{method} {path}: the operation takes no JSON body")
        else:
            schema = to_schema(doc, content["schema"], response=False, v1=version == "v1")
            instance = json.loads(body, parse_float=Decimal)
            errors += [f"{method} {path} body: {e.json_path}: {e.message}"
                       for e in Draft202012Validator(schema).iter_errors(instance)]
    return errors


ERROR_BODY = {"type": "object", "required": ["success", "error"],
              "properties": {"success": {"const": False}, "error": {"type": "string"},
                             "error_info": {"type": "string"}, "errorCode": {"type": "integer"},
                             "code": {"type": "string"}, "data": {"type": "null"},
                             "additional_data": {"type": "null"}},
              "additionalProperties": False}


def validate_response(method: str, path: str, status: int, body: bytes) -> list[str]:
    found = operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    version, _, op = found
    doc = spec(version)
    instance = json.loads(body, parse_float=Decimal) if body else None
    answer = (op.get("responses") or {}).get(str(status))
    if answer is None:
        if status >= 400:
            return [f"{method} {path} -> {status}: {e.message}"
                    for e in Draft202012Validator(ERROR_BODY).iter_errors(instance)]
        return [f"{method} {path}: status {status} is not one the spec gives ({list(op['responses'])})"]
    content = (_resolve(doc, answer).get("content") or {}).get("application/json")
    if content is None or "schema" not in content:
        return []
    schema = to_schema(doc, content["schema"], response=True, v1=version == "v1")
    return [f"{method} {path} -> {status}: {e.json_path}: {e.message}"
            for e in Draft202012Validator(schema).iter_errors(instance)]


class Recorder:
    """An exchange hook keeping every API request/response of a run."""

    def __init__(self) -> None:
        self.seen: list[tuple[Request, Response]] = []

    def __call__(self, req: Request, resp: Response) -> None:
        if req.path.startswith(("/api/", "/v1/")):
            self.seen.append((req, resp))

    def errors(self) -> list[str]:
        out = []
        for req, resp in self.seen:
            out += validate_request(req.method, req.path, req.query, req.body)
            out += validate_response(req.method, req.path, resp.status, resp.encode())
        return out


# -- tests -------------------------------------------------------------------------------------

def test_sandbox_routes_cost_and_scopes_match_the_spec():
    assert len(sandbox_module.OPERATIONS) >= 30
    for (version, method, path), (cost, scopes) in sandbox_module.OPERATIONS.items():
        op = spec(version)["paths"][path][method.lower()]
        assert op["x-token-cost"] == cost, (method, path)
        spec_scopes = next(s["oauth2"] for s in op["security"] if "oauth2" in s)
        assert set(spec_scopes) == set(scopes), (method, path)


@pytest.fixture(scope="module")
def run() -> tuple[Recorder, Any]:
    """One connector session touching every operation the connector uses, recorded."""
    c = in_process("pipedrive", "demo")
    rec = Recorder()
    c.sandbox.exchange_hooks.append(rec)
    k = c.connector
    sb = c.sandbox
    k.company_name()
    assert k.active_seats() == sb.seats  # the deactivated colleague is not a seat
    for otype in ("company", "person"):
        k.list_fields(otype)
    mapping = k.default_mapping()
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deals = k.read_deals(None)
    tax = mapping["company"]["tax_id"]
    sb.advance(2)
    results = k.update_records([
        RecordWrite("u1", "company", "1", {"name": "Renamed Ltd", tax: "GB123456789", "address_locality": "York"}),
        RecordWrite("u2", "person", "3", {"email": "new.address@example.com", "phone": "+44 20 7946 0000"}),
        RecordWrite("c1", "company", None, {"name": "Brand New Company Ltd", "address_street": "1 High Street",
                                            "address_country": "United Kingdom"}),
        RecordWrite("c2", "person", None, {"name": "Nina New", "email": "nina@example.com", "org_id": "1"}),
    ])
    assert all(r.ok for r in results), [r.error for r in results]
    dup = k.update_records([RecordWrite("c3", "company", None, {"name": "Renamed Ltd"}),
                            RecordWrite("c4", "person", None, {"name": "N", "email": "NINA@example.com"})])
    assert [r.error.existing_id for r in dup] == [results[0].id, results[3].id]
    bad = k.update_records([RecordWrite("e1", "company", "99999", {"name": "Ghost"}),
                            RecordWrite("e2", "company", "2", {tax: "X" * 300})])
    assert [r.error.status for r in bad] == [404, 400]
    fields = k.ensure_deal_fields([FieldInfo("crossledger_invoice_number", "Invoice number"),
                                   FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
                                   FieldInfo("crossledger_last_payment", "Last payment date", "date")])
    won = next(d for d in deals.records if d.won)
    out = k.update_deals([RecordWrite("d1", "deal", won.id, {fields["crossledger_invoice_number"]: "INV-7",
                                                               fields["crossledger_amount_paid"]: "120.50",
                                                               fields["crossledger_last_payment"]: "2026-03-01"}),
                          RecordWrite("d2", "deal", deals.records[0].id, {"status": "won"})])
    assert all(r.ok for r in out), [r.error for r in out]
    sb.delete("persons", 7)
    sb.edit("deals", deals.records[1].id, is_archived=True)
    for otype in ("company", "person"):
        k.read_records(otype, cursors[otype])
    k.read_deals(deals.cursor)
    k.get_records("company", ["1", "2"])
    # Merging (done by a person, or the year simulation, through the API; the connector reads the outcome).
    token = c.tokens.load(c.conn.id).access_token
    with httpx.Client(transport=InProcessTransport(sb), base_url=c.conn.base_url) as http:
        merged = http.put("/v1/organizations/2/merge", json={"merge_with_id": 1},
                          headers={"Authorization": f"Bearer {token}"})
    assert merged.status_code == 200
    k.record_fates("company", ["1", "2"], {"2": "Granite Brewing Ltd"})
    return rec, c


def test_every_exchange_conforms_to_the_spec(run):
    rec, _ = run
    paths = {(req.method, operation(req.method, req.path)[1]) for req, _ in rec.seen}
    for needed in [("GET", "/persons"), ("GET", "/organizations"), ("GET", "/deals"), ("GET", "/deals/archived"),
                   ("GET", "/deals/products"), ("GET", "/products"), ("PATCH", "/organizations/{id}"),
                   ("PATCH", "/persons/{id}"), ("POST", "/organizations"), ("POST", "/persons"),
                   ("GET", "/persons/search"), ("GET", "/organizations/search"), ("PATCH", "/deals/{id}"),
                   ("GET", "/recents"), ("GET", "/users/me"), ("GET", "/users"), ("GET", "/dealFields"),
                   ("POST", "/dealFields"),                   ("GET", "/organizationFields"), ("GET", "/personFields")]:
        assert needed in paths, needed
    errors = rec.errors()
    assert errors == [], "\n".join(errors[:20])


def test_the_connector_prices_every_request_as_the_spec_does(run):
    """The shared budget books each call at its x-token-cost, so today's count is the company's own."""
    rec, _ = run
    priced = 0
    for req, _resp in rec.seen:
        found = operation(req.method, req.path)
        if found is None:  # OAuth
            continue
        priced += 1
        assert token_cost(req.method, req.path) == found[2]["x-token-cost"], (req.method, req.path)
    assert priced > 30


def test_validator_fails_on_a_wrong_field_name_in_a_request(run):
    rec, _ = run
    req = next(r for r, _ in rec.seen if r.method == "PATCH" and "/deals/" in r.path)
    assert validate_request(req.method, req.path, req.query, req.body) == []
    body = json.loads(req.body)
    body["titel"] = "typo"
    errors = validate_request(req.method, req.path, req.query, json.dumps(body).encode())
    assert errors and "titel" in errors[0]
    assert validate_request("GET", "/api/v2/deals", {"updatedSince": ["2026-01-01T00:00:00Z"]}, b"")


def test_validator_fails_on_a_wrong_field_name_in_a_response(run):
    rec, _ = run
    req, resp = next((r, s) for r, s in rec.seen if r.method == "GET" and r.path == "/api/v2/persons")
    body = json.loads(resp.encode())
    assert validate_response(req.method, req.path, resp.status, resp.encode()) == []
    broken = copy.deepcopy(body)
    broken["data"][0]["email"] = broken["data"][0].pop("emails")  # the v1 name in a v2 answer
    errors = validate_response(req.method, req.path, resp.status, json.dumps(broken).encode())
    assert errors and "email" in " ".join(errors)
    broken = copy.deepcopy(body)
    broken["additional_data"]["nextCursor"] = broken["additional_data"].pop("next_cursor")
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken).encode())
    broken = copy.deepcopy(body)
    broken["data"][0]["emails"] = "not-an-array"
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken).encode())


def test_money_is_sent_as_exact_json_numbers(run):
    rec, _ = run
    line = next(s for r, s in rec.seen if r.path == "/api/v2/deals/products")
    text = line.encode().decode()
    assert re.search(r'"item_price":\s*\d+(\.\d+)?[,}]', text)  # a number, not a string
    body = json.loads(text, parse_float=Decimal)
    prices = [d["item_price"] for d in body["data"]]
    assert Decimal("333.33") in prices or Decimal("19.99") in prices or Decimal("249.5") in prices
    patch = next(r for r, _ in rec.seen if r.method == "PATCH" and "/deals/" in r.path and b"120.5" in r.body)
    assert json.loads(patch.body, parse_float=Decimal)["custom_fields"]
    assert b'"120.5"' not in patch.body
