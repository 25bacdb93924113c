"""HubSpot imitation: associations between records (primary company, labels) and the v4 routes."""

from __future__ import annotations

import json
from typing import Any

from app.sandbox.base import Request, Response, iso
from app.sandbox.hubspot.common import (
    ASSOC_BATCH,
    ASSOC_OBJ,
    ASSOC_PAGE_MAX,
    ASSOC_READ_MAX,
    ASSOC_TYPES,
    DEFAULT_TYPE,
    INVERSE,
    PRIMARY_TYPE,
    TYPE_IDS,
    _bad_request,
    api,
    hs_error,
)
from app.sandbox.parts import SandboxPart


class Associations(SandboxPart):
    """Associations between records (primary company, labels) and the v4 routes."""

    # -- associations -----------------------------------------------------------------------
    def _links(self, otype: str, rid: str, to_type: str) -> dict[str, list[int]]:
        found = self.state["assoc"].get(f"{otype}:{rid}", {})
        out = {}
        for key, types in found.items():
            t, _, i = key.partition(":")
            if t == to_type and self._get(to_type, i) is not None:
                out[i] = types
        return out

    def _linked(self, otype: str, rid: str, to_type: str) -> list[str]:
        return sorted(self._links(otype, rid, to_type), key=int)

    def _primary(self, otype: str, rid: str, to_type: str) -> str | None:
        primary = PRIMARY_TYPE.get((otype, to_type))
        return next((i for i, t in self._links(otype, rid, to_type).items() if primary in t), None)

    def _associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int], *,
                   touch: bool = True) -> None:
        """Link both directions; a new primary company replaces the old one (which stays unlabeled)."""
        if (from_type, to_type) in (("companies", "contacts"), ("companies", "deals"), ("line_items", "deals")):
            from_type, from_id, to_type, to_id = to_type, to_id, from_type, from_id
            type_ids = [INVERSE[t] for t in type_ids]
        before = self._watch(from_type, from_id, to_type, to_id)
        primary = PRIMARY_TYPE.get((from_type, to_type))
        if primary in type_ids:
            for other, types in self._links(from_type, from_id, to_type).items():
                if other != to_id and primary in types:
                    self._set_types(from_type, from_id, to_type, other,
                                    [t for t in types if t != primary] or [DEFAULT_TYPE[(from_type, to_type)]])
        current = self.state["assoc"].get(f"{from_type}:{from_id}", {}).get(f"{to_type}:{to_id}", [])
        self._set_types(from_type, from_id, to_type, to_id, sorted(set(current) | set(type_ids)))
        self._after_link(from_type, from_id, to_type, to_id, before, touch)

    def _set_types(self, from_type: str, from_id: str, to_type: str, to_id: str, types: list[int]) -> None:
        assoc = self.state["assoc"]
        assoc.setdefault(f"{from_type}:{from_id}", {})[f"{to_type}:{to_id}"] = types
        assoc.setdefault(f"{to_type}:{to_id}", {})[f"{from_type}:{from_id}"] = sorted(INVERSE[t] for t in types)

    def _dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str, *, touch: bool = True) -> None:
        before = self._watch(from_type, from_id, to_type, to_id)
        self.state["assoc"].get(f"{from_type}:{from_id}", {}).pop(f"{to_type}:{to_id}", None)
        self.state["assoc"].get(f"{to_type}:{to_id}", {}).pop(f"{from_type}:{from_id}", None)
        self._after_link(from_type, from_id, to_type, to_id, before, touch)

    def _watch(self, from_type: str, from_id: str, to_type: str, to_id: str) -> str | None:
        """The contact's primary company before a link change (None when no contact is involved)."""
        contact = {from_type: from_id, to_type: to_id}.get("contacts")
        if contact is None or {from_type, to_type} != {"contacts", "companies"}:
            return None
        return self._primary("contacts", contact, "companies") or ""

    def _after_link(self, from_type: str, from_id: str, to_type: str, to_id: str, before: str | None,
                    touch: bool) -> None:
        """A contact's primary company is its ``associatedcompanyid``; a deal's amount follows its lines."""
        ids = {from_type: from_id, to_type: to_id}
        if before is not None:
            rec = self.state["objects"]["contacts"].get(ids["contacts"])
            if rec and touch and (self._primary("contacts", rec["id"], "companies") or "") != before:
                self._touch("contacts", rec)
        if {from_type, to_type} == {"deals", "line_items"}:
            self._recalc_deal(ids["deals"], touch=touch)

    # -- associations v4 ------------------------------------------------------------------------
    def _assoc_pair(self, req: Request, from_key: str = "from", to_key: str = "to") -> tuple[str, str]:
        from_type, to_type = self._type_name(req.params[from_key]), self._type_name(req.params[to_key])
        if from_type is None or to_type is None:
            raise _bad_request(f"Unable to infer object type from: {req.params[from_key]}/{req.params[to_key]}")
        if (from_type, to_type) not in DEFAULT_TYPE:
            raise _bad_request(f"{from_type} cannot be associated with {to_type}")
        return from_type, to_type

    @staticmethod
    def _specs(types: list[int]) -> list[dict[str, Any]]:
        return [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": ASSOC_TYPES[t][3]} for t in types]

    @api("GET", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/(?P<to>[\w-]+)",
         scopes=("crm.objects.{type}.read",))
    def assoc_list(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        if self._get(from_type, req.params["id"]) is None:
            raise hs_error(404, f"No {from_type} with ID {req.params['id']} exists", "OBJECT_NOT_FOUND")
        rid = self._resolve(from_type, req.params["id"])
        try:
            limit = min(int(req.arg("limit") or ASSOC_PAGE_MAX), ASSOC_PAGE_MAX)
            start = int(req.arg("after") or 0)
        except ValueError as exc:
            raise _bad_request("limit and after must be numbers") from exc
        rows = sorted(self._links(from_type, rid, to_type).items(), key=lambda kv: int(kv[0]))
        page = rows[start:start + limit]
        body: dict[str, Any] = {"results": [{"toObjectId": int(i), "associationTypes": self._specs(t)}
                                            for i, t in page]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, body)

    @api("PUT", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/default/(?P<to>[\w-]+)/(?P<to_id>\d+)",
         scopes=("crm.objects.{type}.write",))
    def assoc_put_default(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        results = self._link_default(from_type, req.params["id"], to_type, req.params["to_id"])
        return self._batch_response(results, [], started)

    def _link_default(self, from_type: str, from_id: str, to_type: str, to_id: str) -> list[dict[str, Any]]:
        """Default (unlabeled) association; a contact or deal without a primary company gets this one."""
        a, b = self._get(from_type, from_id), self._get(to_type, to_id)
        if a is None or b is None:
            missing = from_id if a is None else to_id
            raise hs_error(404, f"No {from_type if a is None else to_type} with ID {missing} exists",
                           "OBJECT_NOT_FOUND", context={"id": [missing]})
        types = [DEFAULT_TYPE[(from_type, to_type)]]
        primary = PRIMARY_TYPE.get((from_type, to_type))
        if primary and self._primary(from_type, a["id"], to_type) is None:
            types.append(primary)
        self._associate(from_type, a["id"], to_type, b["id"], types)
        return [{"from": {"id": a["id"]}, "to": {"id": b["id"]},
                 "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t}}
                for t in types]

    @api("PUT", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/(?P<to>[\w-]+)/(?P<to_id>\d+)",
         scopes=("crm.objects.{type}.write",))
    def assoc_put(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        specs = json.loads(req.body or b"[]")
        types = self._check_specs(from_type, to_type, specs)
        a, b = self._get(from_type, req.params["id"]), self._get(to_type, req.params["to_id"])
        if a is None or b is None:
            raise hs_error(404, "Object not found", "OBJECT_NOT_FOUND")
        self._associate(from_type, a["id"], to_type, b["id"], types)
        links = self._links(from_type, a["id"], to_type)[b["id"]]
        return Response(200, {"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": int(a["id"]),
                              "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": int(b["id"]),
                              "labels": [ASSOC_TYPES[t][3] for t in links if ASSOC_TYPES[t][3]]})

    @staticmethod
    def _check_specs(from_type: str, to_type: str, specs: Any) -> list[int]:
        if not isinstance(specs, list) or not specs:
            raise _bad_request("Association types are required")
        types = []
        for spec in specs:
            type_id = (spec or {}).get("associationTypeId")
            known = ASSOC_TYPES.get(type_id) if isinstance(type_id, int) else None
            if not known or known[:2] != (from_type, to_type):
                raise _bad_request(f"{type_id} is not a valid association type from {from_type} to {to_type}")
            types.append(type_id)
        return types

    @api("DELETE", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/(?P<to>[\w-]+)/(?P<to_id>\d+)",
         scopes=("crm.objects.{type}.write",))
    def assoc_delete(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        self._dissociate(from_type, self._resolve(from_type, req.params["id"]), to_type,
                         self._resolve(to_type, req.params["to_id"]))
        return Response(204)

    @api("POST", ASSOC_BATCH + r"/read", scopes=("crm.objects.{type}.read",))
    def assoc_batch_read(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        inputs = (self._body(req)).get("inputs")
        if not isinstance(inputs, list) or len(inputs) > ASSOC_READ_MAX:
            raise _bad_request(f"Batch input must be a list of at most {ASSOC_READ_MAX} inputs")
        results, missing = [], []
        for item in inputs:
            rid = str((item or {}).get("id") or "")
            if self._get(from_type, rid) is None:
                missing.append(rid)
                continue
            links = sorted(self._links(from_type, self._resolve(from_type, rid), to_type).items(),
                           key=lambda kv: int(kv[0]))
            if not links:
                missing.append(rid)  # HubSpot reports records without associations as errors
                continue
            start = int((item or {}).get("after") or 0)
            page = links[start:start + ASSOC_PAGE_MAX]
            row: dict[str, Any] = {"from": {"id": rid},
                                   "to": [{"toObjectId": int(i), "associationTypes": self._specs(t)} for i, t in page]}
            if start + ASSOC_PAGE_MAX < len(links):
                row["paging"] = {"next": {"after": str(start + ASSOC_PAGE_MAX)}}
            results.append(row)
        errors = []
        if missing:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": f"No {to_type} is associated with {from_type} {', '.join(missing)}",
                           "context": {"fromObjectId": missing}, "errors": [], "links": {}})
        return self._batch_response(results, errors, started)

    @api("POST", ASSOC_BATCH + r"/associate/default", scopes=("crm.objects.{type}.write",))
    def assoc_batch_default(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        results = []
        for item in self._batch_inputs(self._body(req)):
            results += self._link_default(from_type, str(((item or {}).get("from") or {}).get("id") or ""),
                                          to_type, str(((item or {}).get("to") or {}).get("id") or ""))
        return self._batch_response(results, [], started)

    @api("POST", ASSOC_BATCH + r"/create", scopes=("crm.objects.{type}.write",))
    def assoc_batch_create(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        results = []
        for item in self._batch_inputs(self._body(req)):
            types = self._check_specs(from_type, to_type, (item or {}).get("types"))
            a = self._get(from_type, str(((item or {}).get("from") or {}).get("id") or ""))
            b = self._get(to_type, str(((item or {}).get("to") or {}).get("id") or ""))
            if a is None or b is None:
                raise hs_error(404, "Object not found", "OBJECT_NOT_FOUND")
            self._associate(from_type, a["id"], to_type, b["id"], types)
            links = self._links(from_type, a["id"], to_type)[b["id"]]
            results.append({"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": int(a["id"]),
                            "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": int(b["id"]),
                            "labels": [ASSOC_TYPES[t][3] for t in links if ASSOC_TYPES[t][3]]})
        return self._batch_response(results, [], started, ok_status=201)

    @api("POST", ASSOC_BATCH + r"/archive", scopes=("crm.objects.{type}.write",))
    def assoc_batch_archive(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        for item in self._batch_inputs(self._body(req)):
            rid = self._resolve(from_type, str(((item or {}).get("from") or {}).get("id") or ""))
            for target in (item or {}).get("to") or []:
                self._dissociate(from_type, rid, to_type, self._resolve(to_type, str((target or {}).get("id"))))
        return Response(204)
