"""Pipedrive imitation: v1 users/me, the *Fields endpoints and the recents change feed."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    ADDRESS_PARTS,
    ENTITY_OF,
    FIELD_TYPES_CREATABLE,
    _dec,
    _err,
    api,
    parse_time,
    v1_time,
    v2_time,
)


class Changes(SandboxPart):
    """V1 users/me, the *Fields endpoints and the recents change feed."""

    # -- v1: users/me, fields, recents --------------------------------------------------------
    @api("GET", "/users/me", cost=2, scopes=("base",), version="v1")
    def users_me(self, req: Request) -> Response:
        company = self.state["company"]
        return self._ok({**self._user(self.state["user"], you=True), "company_id": company["id"],
                         "company_name": company["name"], "company_domain": company["domain"],
                         "company_country": company["country"], "company_industry": company["industry"],
                         "language": {"language_code": "en", "country_code": "GB"}})

    @api("GET", "/users", cost=20, scopes=("users:read",), version="v1")
    def users_list(self, req: Request) -> Response:
        """Every user of the company: one active user a seat, and a colleague who left (deactivated)."""
        me = self.state["user"]
        users = [self._user(me, you=True)]
        for n in range(1, self.seats):
            users.append(self._user({"id": me["id"] + n, "name": f"Sales Rep {n}",
                                     "email": f"rep{n}@crossledger-demo.test"}))
        users.append(self._user({"id": me["id"] + 99, "name": "Former Colleague",
                                 "email": "former@crossledger-demo.test"}, active=False))
        return self._ok(users)

    def _user(self, user: dict[str, Any], *, you: bool = False, active: bool = True) -> dict[str, Any]:
        company = self.state["company"]
        return {
            "id": user["id"], "name": user["name"], "default_currency": company["currency"], "locale": "en_GB",
            "lang": 1, "email": user["email"], "phone": None, "activated": active,
            "last_login": v1_time(v2_time(self.now())), "created": "2024-01-01 00:00:00", "modified": None,
            "has_created_company": you,
            "access": [{"app": "sales", "admin": you, "permission_set_id": "62cc4d7f-4038-4352-abf3-a8c1c822b631"}],
            "active_flag": active, "timezone_name": "Europe/London", "timezone_offset": "+00:00",
            "role_id": 1, "icon_url": None, "is_you": you, "is_deleted": False,
        }

    def _fields_list(self, req: Request, entity: str) -> Response:
        start = self._int_arg(req, "start") or 0
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _err(400, "Limit must be between 1 and 500")
        fields = self.state["fields"][entity]
        page = fields[start:start + limit]
        return self._ok(page, {"start": start, "limit": limit, "more_items_in_collection": start + limit < len(fields)})

    def _fields_create(self, req: Request, entity: str) -> Response:
        body = self._body(req, {"name", "options", "add_visible_flag", "field_type"})
        name, ftype = body.get("name"), body.get("field_type")
        if not isinstance(name, str) or not name.strip():
            raise _err(400, "Field name is required")
        if ftype not in FIELD_TYPES_CREATABLE:
            raise _err(400, "Field type is not valid")
        if ftype in {"enum", "set"} and not body.get("options"):
            raise _err(400, "Options are required for this field type")
        rec = self.add_custom_field(entity, name.strip(), ftype, body.get("options"))
        if body.get("add_visible_flag") is not None:
            rec["add_visible_flag"] = bool(body["add_visible_flag"])
        self.persist()
        return self._ok(rec)

    @api("GET", "/dealFields", cost=20, scopes=("deals:read", "deals:full", "deal-fields:full", "admin"),
         version="v1")
    def deal_fields(self, req: Request) -> Response:
        return self._fields_list(req, "deal")

    @api("POST", "/dealFields", cost=10, scopes=("deal-fields:full", "admin"), version="v1")
    def deal_fields_create(self, req: Request) -> Response:
        return self._fields_create(req, "deal")

    @api("GET", "/organizationFields", cost=20,
         scopes=("contacts:read", "contacts:full", "contact-fields:full", "admin"), version="v1")
    def organization_fields(self, req: Request) -> Response:
        return self._fields_list(req, "organization")

    @api("POST", "/organizationFields", cost=10, scopes=("contact-fields:full", "admin"), version="v1")
    def organization_fields_create(self, req: Request) -> Response:
        return self._fields_create(req, "organization")

    @api("GET", "/personFields", cost=20,
         scopes=("contacts:read", "contacts:full", "contact-fields:full", "admin"), version="v1")
    def person_fields(self, req: Request) -> Response:
        return self._fields_list(req, "person")

    @api("POST", "/personFields", cost=10, scopes=("contact-fields:full", "admin"), version="v1")
    def person_fields_create(self, req: Request) -> Response:
        return self._fields_create(req, "person")

    @api("GET", "/recents", cost=20, scopes=("recents:read", "search:read"), version="v1")
    def recents(self, req: Request) -> Response:
        since_raw = req.arg("since_timestamp")
        if not since_raw:
            raise _err(400, "since_timestamp is required")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", since_raw):
            raise _err(400, "since_timestamp must be in the format YYYY-MM-DD HH:MM:SS")
        since = parse_time(since_raw)
        kinds = [k.strip() for k in (req.arg("items") or "deal,person,organization,product").split(",")]
        start = self._int_arg(req, "start") or 0
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _err(400, "Limit must be between 1 and 500")
        rows: list[tuple[str, dict[str, Any]]] = []
        for kind in kinds:
            store = ENTITY_OF.get(kind)
            if store is None:
                continue
            rows += [(kind, r) for r in self.state[store].values() if parse_time(r["update_time"]) >= since]
        rows.sort(key=lambda kr: (kr[1]["update_time"], kr[0], kr[1]["id"]))
        page = rows[start:start + limit]
        data = [{"item": kind, "id": rec["id"], "data": self._v1(kind, rec)} for kind, rec in page]
        return self._ok(data, {
            "since_timestamp": since_raw,
            "last_timestamp_on_page": v1_time(page[-1][1]["update_time"]) if page else since_raw,
            "pagination": {"start": start, "limit": limit, "more_items_in_collection": start + limit < len(rows)},
        })

    def _v1_custom(self, entity: str, rec: dict[str, Any]) -> dict[str, Any]:
        """v1 puts custom fields at the root; monetary currency in a '<hash>_currency' sibling."""
        out: dict[str, Any] = {}
        for key, value in self._custom_out(entity, rec.get("custom_fields") or {}).items():
            if isinstance(value, dict) and "currency" in value:
                out[key], out[f"{key}_currency"] = value.get("value"), value.get("currency")
            elif isinstance(value, list):
                out[key] = ",".join(str(v) for v in value)
            else:
                out[key] = value
        return out

    def _v1(self, kind: str, rec: dict[str, Any]) -> dict[str, Any]:
        company_id = self.state["company"]["id"]
        owner = self.state["user"]
        v1_add, v1_upd = v1_time(rec.get("add_time")), v1_time(rec.get("update_time"))
        if kind == "person":
            org = self.state["organizations"].get(str(rec.get("org_id")))
            out = {
                "id": rec["id"], "company_id": company_id, "owner_id": rec.get("owner_id"),
                "org_id": rec.get("org_id"), "name": rec["name"], "first_name": rec.get("first_name") or "",
                "last_name": rec.get("last_name"), "active_flag": not rec.get("is_deleted"),
                "phone": rec.get("phones") or [{"value": "", "primary": True}],
                "email": rec.get("emails") or [{"value": "", "primary": True}],
                "first_char": (rec["name"][:1] or "").lower(), "add_time": v1_add, "update_time": v1_upd,
                "visible_to": str(rec.get("visible_to", 3)), "picture_id": None, "label": None,
                "label_ids": rec.get("label_ids") or [], "org_name": org["name"] if org else None,
                "owner_name": owner["name"], "cc_email": None,
            }
            return {**out, **self._v1_custom("person", rec)}
        if kind == "organization":
            addr = rec.get("address") or {}
            out = {
                "id": rec["id"], "company_id": company_id,
                "owner_id": {"id": owner["id"], "name": owner["name"], "email": owner["email"], "has_pic": 0,
                             "pic_hash": None, "active_flag": True, "value": owner["id"]},
                "name": rec["name"], "active_flag": not rec.get("is_deleted"), "picture_id": None,
                "country_code": None, "first_char": (rec["name"][:1] or "").lower(), "add_time": v1_add,
                "update_time": v1_upd, "visible_to": str(rec.get("visible_to", 3)),
                "label_ids": rec.get("label_ids") or [], "owner_name": owner["name"], "cc_email": "",
                "address": addr.get("value"), "address_formatted_address": addr.get("value"),
            }
            for part in ADDRESS_PARTS[1:]:
                out[f"address_{part}"] = addr.get(part)
            return {**out, **self._v1_custom("organization", rec)}
        if kind == "deal":
            stage = self.state["stages"].get(str(rec.get("stage_id"))) or {}
            out = {
                "id": rec["id"], "creator_user_id": owner["id"], "user_id": rec.get("owner_id"),
                "person_id": rec.get("person_id"), "org_id": rec.get("org_id"), "stage_id": rec.get("stage_id"),
                "title": rec["title"], "value": Decimal(rec.get("value") or "0"), "currency": rec["currency"],
                "add_time": v1_add, "update_time": v1_upd, "stage_change_time": v1_time(rec.get("stage_change_time")),
                "active": rec["status"] == "open" and not rec.get("is_deleted"),
                "deleted": bool(rec.get("is_deleted")), "is_archived": bool(rec.get("is_archived")),
                "status": rec["status"], "probability": _dec(rec.get("probability")),
                "lost_reason": rec.get("lost_reason"), "visible_to": str(rec.get("visible_to", 3)),
                "close_time": v1_time(rec.get("close_time")), "pipeline_id": rec.get("pipeline_id"),
                "won_time": v1_time(rec.get("won_time")), "lost_time": v1_time(rec.get("lost_time")),
                "expected_close_date": rec.get("expected_close_date"), "stage_order_nr": stage.get("order_nr"),
                "owner_name": owner["name"], "origin": rec.get("origin"), "origin_id": rec.get("origin_id"),
                "channel": rec.get("channel"), "channel_id": rec.get("channel_id"),
            }
            return {**out, **self._v1_custom("deal", rec)}
        return {"id": rec["id"], "name": rec.get("name"), "code": rec.get("code"),
                "active_flag": not rec.get("is_deleted"), "add_time": v1_add, "update_time": v1_upd}
