"""Salesforce imitation: sObject Collections (200 records, allOrNone) and Composite (25 subrequests)."""

from __future__ import annotations

import copy
import re
import urllib.parse
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    COLLECTION_MAX,
    COMPOSITE_MAX,
    COMPOSITE_QUERIES_MAX,
    INNER,
    READ_ONLY_OBJECTS,
    RETRIEVE_MAX,
    TYPE_OF_PREFIX,
    RecordError,
    _errors,
    _fail,
    _Halted,
    _Num,
    api,
    dumps,
    norm_id,
)


class Batch(SandboxPart):
    """SObject Collections (200 records, allOrNone) and Composite (25 subrequests)."""

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
