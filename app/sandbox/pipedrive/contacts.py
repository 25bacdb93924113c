"""Pipedrive imitation: v2 persons and organizations (cursor paging, search)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    CONTACTS_FULL,
    CONTACTS_READ,
    ORG_KEYS,
    PERSON_KEYS,
    _address_in,
    _contact_list,
    _err,
    _int_value,
    _invalid,
    _score,
    api,
    v2_time,
)


class Contacts(SandboxPart):
    """V2 persons and organizations (cursor paging, search)."""

    # -- v2: persons ------------------------------------------------------------------------
    @api("GET", "/persons", cost=10, scopes=CONTACTS_READ)
    def persons_list(self, req: Request) -> Response:
        rows = [r for r in self.state["persons"].values() if not r.get("is_deleted")]
        ids, org_id = self._ids_filter(req), self._int_arg(req, "org_id")
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        if org_id is not None:
            rows = [r for r in rows if r.get("org_id") == org_id]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=self._person_out)

    @api("GET", "/persons/{id}", cost=1, scopes=CONTACTS_READ)
    def persons_get(self, req: Request) -> Response:
        return self._ok(self._person_out(self._record("persons", req)))

    def _person_record(self, pid: int, body: dict[str, Any], when: str) -> dict[str, Any]:
        rec = {"id": pid, "name": "", "first_name": "", "last_name": "", "owner_id": self.state["user"]["id"],
               "org_id": None, "add_time": when, "update_time": when, "emails": [], "phones": [],
               "is_deleted": False, "visible_to": 3, "label_ids": [], "picture_id": None, "postal_address": None,
               "notes": None, "im": [], "birthday": None, "job_title": None, "custom_fields": {}}
        self._apply_person(rec, body)
        return rec

    def _apply_person(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("name: must be a non-empty string")
                first, _, last = value.strip().partition(" ")
                rec.update(name=value.strip(), first_name=first, last_name=last)
            elif key in {"emails", "phones", "im"}:
                rec[key] = _contact_list(key, value)
            elif key == "postal_address":
                rec[key] = _address_in(key, value)
            elif key == "org_id":
                if value is not None and not self._live("organizations", value):
                    raise _err(400, "Organization not found", "ERR_INVALID_INPUT")
                rec[key] = value
            elif key == "custom_fields":
                rec[key] = self._custom_in("person", value, rec.get("custom_fields") or {})
            elif key in {"owner_id", "visible_to"}:
                rec[key] = _int_value(key, value)
            else:
                rec[key] = value

    def _live(self, kind: str, record_id: Any) -> bool:
        rec = self.state[kind].get(str(record_id))
        return bool(rec) and not rec.get("is_deleted")

    @api("POST", "/persons", cost=5, scopes=CONTACTS_FULL)
    def persons_create(self, req: Request) -> Response:
        body = self._body(req, PERSON_KEYS)
        if not body.get("name"):
            raise _invalid("name: Parameter 'name' is required")
        pid = self.next_id("person")
        rec = self._person_record(pid, body, v2_time(self.now()))
        self.state["persons"][str(pid)] = rec
        self.persist()
        return self._ok(self._person_out(rec))

    @api("PATCH", "/persons/{id}", cost=5, scopes=CONTACTS_FULL)
    def persons_update(self, req: Request) -> Response:
        rec = self._record("persons", req)
        body = self._body(req, PERSON_KEYS - {"add_time"})
        updated = json.loads(json.dumps(rec))
        self._apply_person(updated, body)
        updated["update_time"] = v2_time(self.now())
        rec.clear()
        rec.update(updated)
        self.persist()
        return self._ok(self._person_out(rec))

    @api("DELETE", "/persons/{id}", cost=3, scopes=CONTACTS_FULL)
    def persons_delete(self, req: Request) -> Response:
        rec = self._record("persons", req)
        self._mark_deleted("persons", rec)
        self.persist()
        return self._ok({"id": rec["id"]})

    @api("GET", "/persons/search", cost=20, scopes=("contacts:read", "contacts:full", "search:read"), search=True)
    def persons_search(self, req: Request) -> Response:
        term, exact, fields = self._search_args(req, {"custom_fields", "email", "notes", "phone", "name"})
        org_filter = self._int_arg(req, "organization_id")
        items = []
        for rec in self.state["persons"].values():
            if rec.get("is_deleted") or (org_filter is not None and rec.get("org_id") != org_filter):
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(rec["name"])
            if "email" in fields:
                values += [e["value"] for e in rec.get("emails") or []]
            if "phone" in fields:
                values += [p["value"] for p in rec.get("phones") or []]
            if "notes" in fields and rec.get("notes"):
                values.append(rec["notes"])
            if "custom_fields" in fields:
                values += self._searchable_custom("person", rec)
            score = _score(term, values, exact)
            if score:
                org = self.state["organizations"].get(str(rec.get("org_id")))
                items.append({"result_score": Decimal(str(score)), "item": {
                    "id": rec["id"], "type": "person", "name": rec["name"],
                    "phones": [p["value"] for p in rec.get("phones") or []],
                    "emails": [e["value"] for e in rec.get("emails") or []],
                    "visible_to": rec.get("visible_to", 3), "owner": {"id": rec.get("owner_id")},
                    "organization": {"id": org["id"], "name": org["name"]} if org else None,
                    "custom_fields": self._searchable_custom("person", rec), "notes": []}})
        return self._search_page(req, items)

    def _search_args(self, req: Request, allowed: set[str]) -> tuple[str, bool, set[str]]:
        term = (req.arg("term") or "").strip()
        exact = (req.arg("exact_match") or "").lower() == "true"
        if len(term) < (1 if exact else 2):
            raise _err(400, "Search term must be at least 2 characters long (1 when exact_match is set)")
        fields = {f.strip() for f in (req.arg("fields") or ",".join(allowed)).split(",") if f.strip()}
        if not fields <= allowed:
            raise _invalid(f"fields: must be one of {', '.join(sorted(allowed))}")
        return term, exact, fields

    def _searchable_custom(self, entity: str, rec: dict[str, Any]) -> list[str]:
        defs = self._custom_defs(entity)
        out = []
        for key, value in (rec.get("custom_fields") or {}).items():
            field = defs.get(key)
            if field and field["field_type"] in {"address", "varchar", "text", "varchar_auto", "double", "monetary",
                                                 "phone"} and value is not None:
                out.append(str(value["value"] if isinstance(value, dict) else value))
        return out

    def _search_page(self, req: Request, items: list[dict[str, Any]]) -> Response:
        items.sort(key=lambda i: (-i["result_score"], i["item"]["id"]))
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _invalid("limit: must be less than or equal to 500")
        cursor = req.arg("cursor")
        start = 0
        if cursor:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _invalid("cursor: invalid cursor") from exc
        page = items[start:start + limit]
        next_cursor = None
        if start + limit < len(items):
            next_cursor = base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode()
        return self._ok({"items": page}, {"next_cursor": next_cursor})

    # -- v2: organizations ------------------------------------------------------------------
    @api("GET", "/organizations", cost=10, scopes=CONTACTS_READ)
    def organizations_list(self, req: Request) -> Response:
        rows = [r for r in self.state["organizations"].values() if not r.get("is_deleted")]
        ids = self._ids_filter(req)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=self._org_out)

    @api("GET", "/organizations/{id}", cost=1, scopes=CONTACTS_READ)
    def organizations_get(self, req: Request) -> Response:
        return self._ok(self._org_out(self._record("organizations", req)))

    def _apply_org(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("name: must be a non-empty string")
                rec["name"] = value.strip()
            elif key == "address":
                rec[key] = _address_in(key, value)
            elif key == "custom_fields":
                rec[key] = self._custom_in("organization", value, rec.get("custom_fields") or {})
            elif key in {"owner_id", "visible_to", "industry", "annual_revenue", "employee_count"}:
                rec[key] = _int_value(key, value)
            else:
                rec[key] = value

    @api("POST", "/organizations", cost=5, scopes=CONTACTS_FULL)
    def organizations_create(self, req: Request) -> Response:
        body = self._body(req, ORG_KEYS)
        if not body.get("name"):
            raise _invalid("name: Parameter 'name' is required")
        oid = self.next_id("organization")
        when = v2_time(self.now())
        rec = {"id": oid, "name": "", "owner_id": self.state["user"]["id"], "add_time": when, "update_time": when,
               "is_deleted": False, "visible_to": 3, "address": None, "label_ids": [], "website": None,
               "linkedin": None, "industry": None, "annual_revenue": None, "employee_count": None,
               "custom_fields": {}}
        self._apply_org(rec, body)
        self.state["organizations"][str(oid)] = rec
        self.persist()
        return self._ok(self._org_out(rec))

    @api("PATCH", "/organizations/{id}", cost=5, scopes=CONTACTS_FULL)
    def organizations_update(self, req: Request) -> Response:
        rec = self._record("organizations", req)
        body = self._body(req, ORG_KEYS - {"add_time"})
        updated = json.loads(json.dumps(rec))
        self._apply_org(updated, body)
        updated["update_time"] = v2_time(self.now())
        rec.clear()
        rec.update(updated)
        self.persist()
        return self._ok(self._org_out(rec))

    @api("DELETE", "/organizations/{id}", cost=3, scopes=CONTACTS_FULL)
    def organizations_delete(self, req: Request) -> Response:
        rec = self._record("organizations", req)
        self._mark_deleted("organizations", rec)
        self.persist()
        return self._ok({"id": rec["id"]})

    @api("GET", "/organizations/search", cost=20, scopes=("contacts:read", "contacts:full", "search:read"),
         search=True)
    def organizations_search(self, req: Request) -> Response:
        term, exact, fields = self._search_args(req, {"address", "custom_fields", "notes", "name"})
        items = []
        for rec in self.state["organizations"].values():
            if rec.get("is_deleted"):
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(rec["name"])
            if "address" in fields and (rec.get("address") or {}).get("value"):
                values.append(rec["address"]["value"])
            if "custom_fields" in fields:
                values += self._searchable_custom("organization", rec)
            score = _score(term, values, exact)
            if score:
                items.append({"result_score": Decimal(str(score)), "item": {
                    "id": rec["id"], "type": "organization", "name": rec["name"],
                    "address": (rec.get("address") or {}).get("value"), "visible_to": rec.get("visible_to", 3),
                    "owner": {"id": rec.get("owner_id")},
                    "custom_fields": self._searchable_custom("organization", rec), "notes": []}})
        return self._search_page(req, items)
