"""Every request the Zoho CRM connector sends and every answer the sandbox gives, checked against
our own OpenAPI document of the Zoho CRM v8 API (tests/specs/zoho-crm/zoho-crm-v8.openapi.yaml), written
from Zoho's public developer documentation (www.zoho.com/crm/developer/docs/api/v8/; SOURCES.md beside it
names the page behind each part). Zoho's own OpenAPI files (zoho/crm-oas) state no licence, so they are
not copied.

How the spec is read:
- An object that lists its properties is closed (unless the spec says ``additionalProperties``), so a
  wrong field name fails. ``Record`` is open in the spec; record keys are therefore checked against
  the module's field metadata (itself validated against ``fields.json``), values against the field's
  ``data_type``.
- Requests ignore ``required`` (as Zoho's own files needed: they reuse response schemas for bodies).
- Responses may carry ``null`` for a property that is a ``$ref`` to an object (Zoho prints null for
  absent sub-objects); scalars must match their ``nullable``.
- The record operations list one ``200`` answer that holds both results and errors; Zoho's "Insert
  records" and "Update records" pages give 201 (created), 207 (mixed) and 400 (all failed) with the same
  bodies, so those are checked against the ``200`` schema. 204 and 304 have no body. Statuses the spec
  does not list (400 for a request, 401, 429, ...) are checked against Zoho's common error shape
  ({code, details, message, status: "error"}, the "Status codes" page), as are ``TOO_MANY_REQUESTS`` and
  ``DISCRETE_PAGINATION_LIMIT_EXCEEDED`` answers.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.connectors.base import FieldInfo, RecordWrite
from app.connectors.zohocrm import DELETED_EVERY
from app.sandbox.base import Request, Response
from tests.support import in_process

SPEC_DIR = Path(__file__).resolve().parent / "specs" / "zoho-crm"
SPEC_FILES = ("zoho-crm-v8.openapi.yaml",)
EXTRA_CODES = {"TOO_MANY_REQUESTS", "DISCRETE_PAGINATION_LIMIT_EXCEEDED"}
ERROR_BODY = {"type": "object", "required": ["code", "details", "message", "status"],
              "properties": {"code": {"type": "string"}, "details": {"type": "object"},
                             "message": {"type": "string"}, "status": {"const": "error"}},
              "additionalProperties": False}
RECORD_OPS = {"/crm/v8/{module_api_name}", "/crm/v8/{module_api_name}/{id}", "/crm/v8/{module_api_name}/upsert",
              "/crm/v8/{module_api_name}/deleted", "/crm/v8/{module_api_name}/search"}


@functools.cache
def spec(name: str) -> dict[str, Any]:
    with open(SPEC_DIR / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _target(base: str, ref: str) -> tuple[str, str]:
    """A $ref seen in file ``base`` -> (file, JSON pointer)."""
    file, _, pointer = ref.partition("#")
    return (file[2:] if file.startswith("./") else file) or base, pointer


def _pointer(file: str, pointer: str) -> Any:
    node: Any = spec(file)
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class Converter:
    """OpenAPI 3.0 schemas (across files) -> one JSON Schema 2020-12 document with $defs."""

    def __init__(self, response: bool) -> None:
        self.response = response
        self.defs: dict[str, Any] = {}

    def ref(self, file: str, ref: str) -> dict[str, Any]:
        tfile, pointer = _target(file, ref)
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{tfile}{pointer}")
        if key not in self.defs:
            self.defs[key] = {}
            self.defs[key] = self.convert(tfile, _pointer(tfile, pointer))
        return {"$ref": f"#/$defs/{key}"}

    def convert(self, file: str, node: Any) -> dict[str, Any]:
        if not isinstance(node, dict):
            return {}
        if "$ref" in node:
            return self.ref(file, node["$ref"])
        out: dict[str, Any] = {}
        nullable = bool(node.get("nullable"))
        for key in ("oneOf", "anyOf", "allOf"):
            if key in node:  # oneOf read as anyOf: the specs' alternatives overlap (Syntax_/Query_Exception)
                out["allOf" if key == "allOf" else "anyOf"] = [self.convert(file, sub) for sub in node[key]]
        kind = node.get("type")
        if kind:
            out["type"] = [kind, "null"] if nullable else kind
        if "enum" in node:
            out["enum"] = list(node["enum"]) + ([None] if nullable else [])
        if "maximum" in node:
            out["maximum"] = node["maximum"]
        if "maxLength" in node:
            out["maxLength"] = node["maxLength"]
        if "required" in node and self.response:
            out["required"] = node["required"]
        if "properties" in node:
            props = {}
            for name, sub in node["properties"].items():
                converted = self.convert(file, sub)
                if self.response and isinstance(sub, dict) and "$ref" in sub:
                    converted = {"anyOf": [converted, {"type": "null"}]}
                props[name] = converted
            out["properties"] = props
            extra = node.get("additionalProperties")
            if extra is True:
                out["additionalProperties"] = True
            elif isinstance(extra, dict):
                out["additionalProperties"] = self.convert(file, extra)
            else:
                out["additionalProperties"] = False
        elif isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = self.convert(file, node["additionalProperties"])
        if "items" in node:
            out["items"] = self.convert(file, node["items"])
        if nullable and any(k in out for k in ("oneOf", "anyOf")) and "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
        return out

    def document(self, file: str, node: Any) -> dict[str, Any]:
        root = self.convert(file, node)
        return {**root, "$defs": self.defs}


@functools.cache
def _operations() -> list[tuple[re.Pattern[str], str, str]]:
    """(path regex, template, file) over every spec file, literal paths before templated ones."""
    ops = []
    for order, name in enumerate(SPEC_FILES):
        for template in spec(name).get("paths") or {}:
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "/?$")
            ops.append((template.count("{"), order, pattern, template, name))
    ops.sort(key=lambda o: (o[0], o[1], -len(o[3])))
    return [(p, t, n) for _, _, p, t, n in ops]


def operation(method: str, path: str) -> tuple[str, str, dict[str, Any]] | None:
    for pattern, template, name in _operations():
        if pattern.match(path):
            op = spec(name)["paths"][template].get(method.lower())
            if op:
                return name, template, op
    return None


def _params(file: str, op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for p in op.get("parameters", []):
        if "$ref" in p:
            tfile, pointer = _target(file, p["$ref"])
            p = _pointer(tfile, pointer)
        out[p["name"]] = p
    return out


def _check_param(value: str, schema: dict[str, Any], name: str) -> list[str]:
    kind = schema.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return [f"query {name}={value!r} is not an integer"]
    if kind == "boolean" and value not in ("true", "false"):
        return [f"query {name}={value!r} is not a boolean"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"query {name}={value!r} not in {schema['enum']}"]
    return []


def _report(prefix: str, schema: dict[str, Any], instance: Any) -> list[str]:
    """Validation errors, each named by its deepest cause (the alternative that came closest)."""
    out = []
    for error in Draft202012Validator(schema).iter_errors(instance):
        while error.context:
            error = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.context or [])))
        out.append(f"{prefix}: {error.json_path}: {error.message[:200]}")
    return out


def validate_request(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                     body: bytes) -> list[str]:
    found = operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    file, template, op = found
    errors = []
    params = _params(file, op)
    for name, values in query.items():
        p = params.get(name)
        if p is None or p.get("in") != "query":
            errors.append(f"{method} {template}: unknown query parameter {name!r}")
            continue
        for value in values:
            errors += _check_param(value, p.get("schema") or {}, name)
    for name, p in params.items():
        if p.get("in") == "query" and p.get("required") and name not in query:
            errors.append(f"{method} {template}: required query parameter {name!r} missing")
        if p.get("in") == "header" and name.lower() in headers and (p.get("schema") or {}).get("format") == \
                "date-time" and not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d|Z)$",
                                             headers[name.lower()]):
            errors.append(f"{method} {template}: header {name} is not an ISO 8601 date-time")
    if body:
        request_body = op.get("requestBody") or {}
        if "$ref" in request_body:
            tfile, pointer = _target(file, request_body["$ref"])
            request_body = _pointer(tfile, pointer)
        content = (request_body.get("content") or {}).get("application/json")
        if content is None:
            errors.append(f"{method} {template}: the operation takes no JSON body")
        else:
            schema = Converter(response=False).document(file, content["schema"])
            instance = json.loads(body, parse_float=Decimal)
            errors += _report(f"{method} {template} body", schema, instance)
    return errors


def _response_schema(file: str, op: dict[str, Any], status: int, instance: Any) -> dict[str, Any] | None:
    responses = op.get("responses") or {}
    answer = responses.get(str(status))
    if answer is None and isinstance(instance, dict) and instance.get("code") in EXTRA_CODES:
        return ERROR_BODY
    if answer is None and status in (201, 207, 400) and "200" in responses:
        answer = responses["200"]
    if answer is None:
        return ERROR_BODY if status >= 400 else None
    if "$ref" in answer:
        tfile, pointer = _target(file, answer["$ref"])
        answer = _pointer(tfile, pointer)
    content = (answer.get("content") or {}).get("application/json")
    if content is None or "schema" not in content:
        return {"const": None}
    return Converter(response=True).document(file, content["schema"])


def validate_response(method: str, path: str, status: int, body: bytes) -> list[str]:
    found = operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    file, template, op = found
    if status in (204, 304):
        return [] if not body else [f"{method} {template} -> {status} must have no body"]
    instance = json.loads(body, parse_float=Decimal) if body else None
    schema = _response_schema(file, op, status, instance)
    if schema is None:
        return [f"{method} {template}: status {status} is not one the spec gives ({list(op['responses'])})"]
    return _report(f"{method} {template} -> {status}", schema, instance)


# -- record keys and values against the module's fields ----------------------------------------------

def _value_errors(where: str, f: dict[str, Any], value: Any) -> list[str]:
    if value is None:
        return []
    dtype = f["data_type"]
    ok = {
        "currency": lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
        "percent": lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "lookup": lambda v: isinstance(v, dict) and isinstance(v.get("id"), str),
        "ownerlookup": lambda v: isinstance(v, dict) and isinstance(v.get("id"), str),
        "date": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v),
        "datetime": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", v),
        "subform": lambda v: isinstance(v, list),
        "multiselectpicklist": lambda v: isinstance(v, list),
    }.get(dtype, lambda v: isinstance(v, str))
    return [] if ok(value) else [f"{where}: {value!r} is not a {dtype}"]


def record_errors(sandbox: Any, module: str, record: dict[str, Any], where: str, *, coql: bool = False) -> list[str]:
    fields = {f["api_name"]: f for f in sandbox.state["fields"][module]}
    errors = []
    for key, value in record.items():
        if key == "id" or (module == "Line_Items" and key == "_delete"):
            continue
        if coql and "." in key:
            base, _, sub = key.partition(".")
            target = fields.get(base, {}).get("lookup")
            sub_fields = {f["api_name"]: f for f in sandbox.state["fields"].get(target, [])} if target else {}
            if sub != "id" and sub not in sub_fields:
                errors.append(f"{where}: {module} has no column {key!r}")
            continue
        f = fields.get(key)
        if f is None:
            errors.append(f"{where}: {module} has no field {key!r}")
            continue
        errors += _value_errors(f"{where}.{key}", f, value)
        if f["data_type"] == "subform" and isinstance(value, list):
            for n, row in enumerate(value):
                errors += record_errors(sandbox, f["subform"], row, f"{where}.{key}[{n}]")
    return errors


def _module_of(path: str) -> str | None:
    m = re.match(r"^/crm/v8/(Accounts|Contacts|Deals|Products)(/|$)", path)
    return m.group(1) if m else None


def exchange_record_errors(sandbox: Any, req: Request, resp: Response) -> list[str]:
    """Record bodies: request data of writes, response data of reads, COQL rows."""
    errors = []
    module = _module_of(req.path)
    if module and req.method in ("POST", "PUT") and req.body:
        for n, rec in enumerate(json.loads(req.body, parse_float=Decimal).get("data") or []):
            errors += record_errors(sandbox, module, rec, f"{req.method} {req.path} data[{n}]")
    body = resp.encode()
    if not body or resp.status >= 300:
        return errors
    payload = json.loads(body, parse_float=Decimal)
    if module and req.method == "GET" and not req.path.endswith("/deleted"):
        for n, rec in enumerate(payload.get("data") or []):
            errors += record_errors(sandbox, module, rec, f"GET {req.path} data[{n}]")
    if req.path == "/crm/v8/coql":
        query = json.loads(req.body)["select_query"]
        coql_module = re.search(r"\bfrom\s+(\w+)", query, re.I).group(1)
        for n, rec in enumerate(payload.get("data") or []):
            errors += record_errors(sandbox, coql_module, rec, f"COQL data[{n}]", coql=True)
    return errors


class Recorder:
    """An exchange hook keeping every API request/response of a run."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.seen: list[tuple[Request, Response]] = []

    def __call__(self, req: Request, resp: Response) -> None:
        if req.path.startswith("/crm/"):
            self.seen.append((req, resp))

    def errors(self) -> list[str]:
        out = []
        for req, resp in self.seen:
            out += validate_request(req.method, req.path, req.query, req.headers, req.body)
            out += validate_response(req.method, req.path, resp.status, resp.encode())
            out += exchange_record_errors(self.sandbox, req, resp)
        return out


# -- the recorded run -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run() -> tuple[Recorder, Any]:
    """One connector session touching every operation the connector uses, plus the sandbox's other routes."""
    c = in_process("zohocrm", "demo")
    rec = Recorder(c.sandbox)
    c.sandbox.exchange_hooks.append(rec)
    k, sb, api = c.connector, c.sandbox, c.connector.api
    k.company_name()
    for otype in ("company", "person", "deal"):
        k.list_fields(otype)
    mapping = k.default_mapping()
    companies = k.read_records("company", None)
    people = k.read_records("person", None)
    deals = k.read_deals(None)
    some = [r.id for r in companies.records[:3]]
    sb.advance(2)
    ok = k.update_records([
        RecordWrite("u1", "company", some[0], {"Account_Name": "Renamed GmbH", mapping["company"]["tax_id"]:
                                               "DE123456789", "Billing_City": "Köln"}),
        RecordWrite("u2", "person", people.records[0].id, {"Email": "new.address@example.com", "Phone": "+49 30 1"}),
        RecordWrite("c1", "company", None, {"Account_Name": "Brand New Company Ltd", "Billing_Street": "1 High St",
                                            "Billing_Country": "United Kingdom", "Currency": "GBP"}),
        RecordWrite("c2", "person", None, {"First_Name": "Nina", "Last_Name": "New", "Email": "nina@example.com",
                                           "Account_Name": some[1]}),
    ])
    assert all(r.ok for r in ok), [r.error for r in ok]
    dup = k.update_records([RecordWrite("d1", "company", None, {"Account_Name": "renamed gmbh"}),
                            RecordWrite("d2", "company", "4876876000009999999", {"Phone": "1"})])
    assert [type(r.error).__name__ for r in dup] == ["Conflict", "NotFound"]
    fields = k.ensure_deal_fields([FieldInfo("crossledger_invoice_number", "Invoice number"),
                                   FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
                                   FieldInfo("crossledger_last_payment", "Last payment date", "date")])
    won = next(d for d in deals.records if d.won)
    out = k.update_deals([RecordWrite("w1", "deal", won.id, {fields["crossledger_invoice_number"]: "INV-7",
                                                              fields["crossledger_amount_paid"]: "120.50",
                                                              fields["crossledger_last_payment"]: "2026-03-01"})])
    assert all(r.ok for r in out), [r.error for r in out]
    sb.delete("Contacts", people.records[5].id)
    sb.advance(DELETED_EVERY + 1)
    again = k.read_records("company", companies.cursor)
    k.read_records("company", again.cursor)  # nothing changed: COQL answers 204
    k.read_records("person", people.cursor)
    k.read_deals(deals.cursor)
    k.get_records("company", some)
    # The sandbox's other routes, as a client of the real API would call them.
    h = {"If-Modified-Since": "2020-01-01T00:00:00+00:00"}
    first = api.request("GET", "/crm/v8/Accounts", params={"fields": "Account_Name,Phone", "per_page": 100,
                                                           "sort_by": "Modified_Time", "sort_order": "asc"},
                        headers=h).json()
    api.request("GET", "/crm/v8/Accounts", params={"fields": "Account_Name", "per_page": 100,
                                                   "page_token": first["info"]["next_page_token"]})
    api.request("GET", "/crm/v8/Accounts", params={"fields": "Account_Name"},
                headers={"If-Modified-Since": "2100-01-01T00:00:00+00:00"})  # 304
    api.request("GET", "/crm/v8/Accounts", params={"per_page": 200})  # 400: fields is mandatory
    api.request("GET", "/crm/v8/Contacts", params={"fields": "Email", "per_page": 200, "page": 11})  # beyond 2,000
    api.request("GET", "/crm/v8/Contacts/search", params={"email": "nina@example.com"})
    api.request("GET", "/crm/v8/Accounts/search", params={"criteria": "(Account_Name:starts_with:Brand)"})
    api.request("POST", "/crm/v8/Contacts/upsert", json_body={
        "data": [{"Last_Name": "Upserted", "Email": "nina@example.com"}], "duplicate_check_fields": ["Email"]})
    api.request("DELETE", "/crm/v8/Accounts", params={"ids": f"{ok[2].id},4876876000009999998"})
    api.request("GET", "/crm/v8/Accounts/deleted", params={"type": "recycle"})
    twin = api.request("POST", "/crm/v8/Accounts", json_body={"data": [{"Account_Name": "Merge Me Ltd"}]}
                       ).json()["data"][0]["details"]["id"]
    api.request("POST", f"/crm/v8/Accounts/{some[0]}/actions/merge",
                json_body={"merge": [{"data": [{"id": twin, "_fields": [{"api_name": "Phone"}]}]}]})
    api.request("GET", f"/crm/v8/Accounts/{some[0]}/actions/merge")
    api.request("POST", f"/crm/v8/Accounts/{some[0]}/actions/merge", json_body={"merge": [{"data": []}]})  # 400
    k.record_fates("company", [some[0], twin], {twin: "Merge Me Ltd"})
    api.request("POST", "/crm/v8/coql", json_body={"select_query": "select Deal_Name from Deals"})  # no where
    api.request("POST", "/crm/v8/coql", json_body={
        "select_query": "select Last_Name, Account_Name.Account_Name from Contacts where Account_Name is not null "
                        "order by Last_Name desc limit 0, 5"})
    layout = api.request("GET", "/crm/v8/settings/layouts", params={"module": "Deals"}).json()["layouts"][0]["id"]
    pipes = api.request("GET", "/crm/v8/settings/pipeline", params={"layout_id": layout}).json()["pipeline"]
    api.request("PUT", f"/crm/v8/settings/pipeline/{pipes[0]['id']}", params={"layout_id": layout},
                json_body={"pipeline": [{"maps": [{"id": pipes[0]["maps"][0]["id"], "display_value": "Qualified"}]}]})
    return rec, c


def test_every_exchange_conforms_to_the_spec(run):
    rec, _ = run
    seen = {(req.method, operation(req.method, req.path)[1]) for req, _ in rec.seen}
    for needed in [("GET", "/crm/v8/org"), ("GET", "/crm/v8/settings/fields"), ("POST", "/crm/v8/settings/fields"),
                   ("POST", "/crm/v8/coql"), ("POST", "/crm/v8/{module_api_name}"),
                   ("PUT", "/crm/v8/{module_api_name}"), ("GET", "/crm/v8/{module_api_name}"),
                   ("GET", "/crm/v8/{module_api_name}/deleted"), ("GET", "/crm/v8/{module_api_name}/search"),
                   ("POST", "/crm/v8/{module_api_name}/upsert"), ("DELETE", "/crm/v8/{module_api_name}"),
                   ("GET", "/crm/v8/settings/layouts"), ("GET", "/crm/v8/settings/pipeline"),
                   ("PUT", "/crm/v8/settings/pipeline/{id}"),
                   ("POST", "/crm/v8/{module_api_name}/{id}/actions/merge"),
                   ("GET", "/crm/v8/{module_api_name}/{id}/actions/merge")]:
        assert needed in seen, needed
    statuses = {resp.status for _, resp in rec.seen}
    assert {200, 201, 204, 207, 304, 400} <= statuses
    errors = rec.errors()
    assert errors == [], "\n".join(errors[:30])


def test_validator_fails_on_a_wrong_field_name_in_a_request(run):
    rec, c = run
    req = next(r for r, _ in rec.seen if r.method == "PUT" and r.path == "/crm/v8/Deals")
    assert validate_request(req.method, req.path, req.query, req.headers, req.body) == []
    body = json.loads(req.body)
    body["triggers"] = []  # the envelope: 'trigger' is the field
    errors = validate_request(req.method, req.path, req.query, req.headers, json.dumps(body).encode())
    assert errors and "triggers" in errors[0]
    body = json.loads(req.body)
    body["data"][0]["Deal_Nmae"] = "typo"  # a record field
    broken = Request("PUT", req.path, {}, {}, json.dumps(body).encode())
    errors = exchange_record_errors(c.sandbox, broken, Response(200, None))
    assert errors and "Deal_Nmae" in errors[0]
    assert validate_request("GET", "/crm/v8/Deals", {"perpage": ["200"]}, {}, b"")
    assert validate_request("POST", "/crm/v8/coql", {}, {}, b'{"query": "select id from Deals where id > 0"}')


def test_validator_fails_on_a_wrong_field_name_in_a_response(run):
    rec, c = run
    req, resp = next((r, s) for r, s in rec.seen if r.method == "GET" and r.path == "/crm/v8/Accounts"
                     and s.status == 200)
    body = json.loads(resp.encode(), parse_float=Decimal)
    assert validate_response(req.method, req.path, resp.status, resp.encode()) == []
    broken = copy.deepcopy(body)
    broken["info"]["more_record"] = broken["info"].pop("more_records")
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken, default=str).encode())
    broken = copy.deepcopy(body)
    broken["info"]["per_page"] = "200"
    assert validate_response(req.method, req.path, resp.status, json.dumps(broken, default=str).encode())
    req, resp = next((r, s) for r, s in rec.seen if r.path == "/crm/v8/coql" and s.status == 200)
    rows = json.loads(resp.encode(), parse_float=Decimal)
    rows["data"][0]["Acount_Name"] = rows["data"][0].pop("Account_Name", None)
    errors = exchange_record_errors(c.sandbox, req, Response(200, json.dumps(rows, default=str).encode()))
    assert errors and "Acount_Name" in " ".join(errors)
    req, resp = next((r, s) for r, s in rec.seen if r.path == "/crm/v8/settings/fields" and r.method == "GET")
    fields = json.loads(resp.encode())
    fields["fields"][0]["apiname"] = fields["fields"][0].pop("api_name")
    assert validate_response("GET", req.path, 200, json.dumps(fields).encode())
    req, resp = next((r, s) for r, s in rec.seen if r.method == "POST" and r.path == "/crm/v8/Accounts")
    result = json.loads(resp.encode())
    result["data"][0]["details"]["record_id"] = result["data"][0]["details"].pop("id")
    assert validate_response("POST", req.path, resp.status, json.dumps(result).encode())


def test_stage_metadata_and_money_follow_the_spec(run):
    rec, _ = run
    _, resp = next((r, s) for r, s in rec.seen if r.path == "/crm/v8/settings/fields"
                   and r.query.get("module") == ["Deals"] and r.method == "GET")
    stage = next(f for f in json.loads(resp.encode())["fields"] if f["api_name"] == "Stage")
    assert {v["forecast_type"] for v in stage["pick_list_values"]} == {"Open", "Closed Won", "Closed Lost"}
    put = next(r for r, _ in rec.seen if r.method == "PUT" and r.path == "/crm/v8/Deals")
    assert re.search(rb'"Amount_paid":120\.50[,}]', put.body)  # an exact JSON number, not a string or float
    assert json.loads(put.body)["trigger"] == []
    deal_page = next(s for r, s in rec.seen if r.method == "GET" and r.path == "/crm/v8/Deals")
    assert re.search(rb'"Unit_Price":\d+(\.\d+)?[,}]', deal_page.encode())
