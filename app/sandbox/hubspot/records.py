"""HubSpot imitation: records (stored values, calculated values, validation, merges) and the v3 object routes."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.hubspot.common import (
    ASSOC_TYPES,
    DEFAULT_PROPERTIES,
    DEFAULT_TYPE,
    EMAIL_RE,
    LIST_MAX,
    OBJ,
    PRIMARY_TYPE,
    _bad_request,
    _invalid_values,
    _now_iso,
    _num,
    api,
    hs_error,
    parse_instant,
)
from app.sandbox.parts import SandboxPart


class Records(SandboxPart):
    """Records (stored values, calculated values, validation, merges) and the v3 object routes."""

    # -- records ------------------------------------------------------------------------------
    def _stamp(self) -> int:
        """Milliseconds, strictly increasing across writes, as HubSpot's modification times are ordered."""
        ms = max(int(self.now() * 1000), self.state.get("last_ms", 0) + 1)
        self.state["last_ms"] = ms
        return ms

    def _insert(self, otype: str, props: dict[str, Any], when: int) -> str:
        start = {"contacts": 101, "companies": 9_800_001, "deals": 21_000_001, "line_items": 3_400_000_001,
                 "products": 1_640_001}[otype]
        rid = str(self.next_id(otype, start))
        rec = {"id": rid, "p": {}, "c": when, "u": when, "archived": False, "archivedAt": None}
        for key, value in props.items():
            self._set(rec, key, value)
        self.state["objects"][otype][rid] = rec
        self._after_write(otype, rec, touch=False)
        self._reindex(otype, rid)
        return rid

    @staticmethod
    def _set(rec: dict[str, Any], key: str, value: str | None) -> None:
        if value is None or value == "":
            rec["p"].pop(key, None)
        else:
            rec["p"][key] = value

    def _touch(self, otype: str, rec: dict[str, Any]) -> None:
        rec["u"] = self._stamp()
        self._reindex(otype, rec["id"])

    def _after_write(self, otype: str, rec: dict[str, Any], *, touch: bool = True) -> None:
        """Calculated values HubSpot keeps up to date: line item net price, the deal amount from its lines."""
        if otype == "line_items":
            qty = Decimal(rec["p"].get("quantity") or "1")
            price = Decimal(rec["p"].get("price") or "0")
            pct = Decimal(rec["p"].get("hs_discount_percentage") or "0")
            unit_discount = Decimal(rec["p"].get("discount") or "0")
            gross = qty * price
            net = gross - gross * pct / 100 - unit_discount * qty
            rec["p"]["amount"] = _num(net.quantize(Decimal("0.01")))
            for deal_id in self._linked("line_items", rec["id"], "deals"):
                self._recalc_deal(deal_id, touch=touch)

    def _recalc_deal(self, deal_id: str, *, touch: bool = True) -> None:
        deal = self.state["objects"]["deals"].get(deal_id)
        if deal is None or deal["archived"]:
            return
        lines = [self.state["objects"]["line_items"].get(i) for i in self._linked("deals", deal_id, "line_items")]
        lines = [x for x in lines if x and not x["archived"]]
        if not lines:
            return
        total = _num(sum((Decimal(x["p"].get("amount") or "0") for x in lines), Decimal(0)))
        if deal["p"].get("amount") != total:
            deal["p"]["amount"] = total
            if touch:
                self._touch("deals", deal)

    def _archive(self, otype: str, rec: dict[str, Any]) -> None:
        if rec["archived"]:
            return
        rec["archived"] = True
        rec["archivedAt"] = self._stamp()
        self._reindex(otype, rec["id"])
        if otype == "line_items":
            for deal_id in self._linked("line_items", rec["id"], "deals"):
                self._recalc_deal(deal_id)

    def _merge(self, otype: str, primary: str, loser: str) -> dict[str, Any]:
        objects = self.state["objects"][otype]
        keep, gone = objects.get(primary), objects.get(loser)
        if keep is None or gone is None or keep["archived"] or gone["archived"] or primary == loser:
            raise hs_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           context={"id": [primary if keep is None else loser]})
        for key, value in gone["p"].items():
            keep["p"].setdefault(key, value)
        merged = [x for x in (keep["p"].get("hs_merged_object_ids") or "").split(";") if x]
        merged += [loser] + [x for x in (gone["p"].get("hs_merged_object_ids") or "").split(";") if x]
        keep["p"]["hs_merged_object_ids"] = ";".join(merged)
        if otype == "contacts" and gone["p"].get("email"):
            extra = [x for x in (keep["p"].get("hs_additional_emails") or "").split(";") if x]
            keep["p"]["hs_additional_emails"] = ";".join([*extra, gone["p"]["email"]])
            keep["p"]["email"] = keep["p"].get("email") or gone["p"]["email"]
        for key in list(self.state["assoc"].get(f"{otype}:{loser}", {})):
            to_type, to_id = key.split(":")
            types = self.state["assoc"][f"{otype}:{loser}"][key]
            self._dissociate(otype, loser, to_type, to_id)
            self._associate(otype, primary, to_type, to_id,
                            [t for t in types if t not in PRIMARY_TYPE.values()] or [DEFAULT_TYPE[(otype, to_type)]])
        del objects[loser]
        self.state["merged"][otype][loser] = primary
        self._reindex(otype, loser)
        self._touch(otype, keep)
        return keep

    def _resolve(self, otype: str, rid: str) -> str:
        """A merged-away ID answers with the surviving record, as HubSpot does."""
        seen = 0
        while rid in self.state["merged"][otype] and seen < 50:
            rid, seen = self.state["merged"][otype][rid], seen + 1
        return rid

    def _get(self, otype: str, rid: str, *, archived: bool = False) -> dict[str, Any] | None:
        rec = self.state["objects"][otype].get(self._resolve(otype, str(rid)))
        if rec is None or rec["archived"] != archived:
            return None
        return rec

    def _stage(self, pipeline: str | None, stage: str | None) -> dict[str, Any] | None:
        for pipe in self.state["pipelines"]["deals"]:
            if pipe["id"] == pipeline:
                return next((s for s in pipe["stages"] if s["id"] == stage), None)
        return None

    def _values(self, otype: str, rec: dict[str, Any]) -> dict[str, str | None]:
        """Every property value as HubSpot prints it: strings, calculated ones included."""
        out: dict[str, str | None] = dict(rec["p"])
        out["hs_object_id"] = rec["id"]
        out["createdate"] = _now_iso(rec["c"])
        out["hs_lastmodifieddate"] = _now_iso(rec["u"])
        if otype == "contacts":
            out["lastmodifieddate"] = out["hs_lastmodifieddate"]
            primary = self._primary("contacts", rec["id"], "companies")
            if primary:
                out["associatedcompanyid"] = primary
        if otype == "deals":
            stage = self._stage(rec["p"].get("pipeline"), rec["p"].get("dealstage"))
            if stage:
                closed = stage["metadata"].get("isClosed") == "true"
                prob = Decimal(stage["metadata"].get("probability") or "0")
                out["hs_is_closed"] = "true" if closed else "false"
                out["hs_is_closed_won"] = "true" if closed and prob == 1 else "false"
                out["hs_is_closed_lost"] = "true" if closed and prob == 0 else "false"
                out["hs_deal_stage_probability"] = stage["metadata"].get("probability")
        return out

    def _out(self, otype: str, rec: dict[str, Any], props: Iterable[str] | None, *,
             associations: list[str] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
        values = values if values is not None else self._values(otype, rec)
        defs = self.state["properties"][otype]
        names = list(props) if props else list(DEFAULT_PROPERTIES[otype])
        body: dict[str, Any] = {
            "id": rec["id"],
            "properties": {n: values.get(n) for n in names if n in defs or n in values},
            "createdAt": _now_iso(rec["c"]),
            "updatedAt": _now_iso(rec["u"]),
            "archived": bool(rec["archived"]),
        }
        if rec["archived"]:
            body["archivedAt"] = _now_iso(rec["archivedAt"])
        if associations:
            assoc: dict[str, Any] = {}
            for to_type in associations:
                rows = []
                for to_id, types in self._links(otype, rec["id"], to_type).items():
                    rows += [{"id": to_id, "type": ASSOC_TYPES[t][2]} for t in types if t in ASSOC_TYPES]
                if rows:
                    assoc[to_type] = {"results": rows}
            if assoc:
                body["associations"] = assoc
        return body

    # -- property validation ------------------------------------------------------------------
    def _clean(self, otype: str, props: Any, current: dict[str, Any] | None) -> tuple[dict[str, str | None],
                                                                                      list[dict[str, Any]]]:
        """Writable values as HubSpot stores them, or the problems it reports."""
        if not isinstance(props, dict):
            return {}, [{"isValid": False, "message": "properties must be an object", "error": "INVALID_INPUT",
                         "name": "properties"}]
        defs = self.state["properties"][otype]
        out: dict[str, str | None] = {}
        problems: list[dict[str, Any]] = []

        def bad(name: str, code: str, message: str) -> None:
            problems.append({"isValid": False, "message": message, "error": code, "name": name})

        for name, raw in props.items():
            d = defs.get(name)
            if d is None or d.get("archived"):
                bad(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                continue
            if d["modificationMetadata"]["readOnlyValue"]:
                bad(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                continue
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                out[name] = None
                continue
            value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
            kind = d["type"]
            if kind == "number":
                try:
                    number = Decimal(value.strip())
                    if not number.is_finite():
                        raise InvalidOperation
                except InvalidOperation:
                    bad(name, "INVALID_DECIMAL", f"{value} was not a valid number.")
                    continue
                if name in ("price", "quantity") and otype == "line_items" and number < 0:
                    bad(name, "INVALID_DECIMAL", f"{value} must not be negative.")
                    continue
                out[name] = _num(number)
            elif kind in ("date", "datetime"):
                ms = parse_instant(value)
                if ms is None:
                    bad(name, "INVALID_DATE", f"{value} is not a valid {kind}.")
                    continue
                if kind == "date":
                    if ms % 86_400_000:
                        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
                        bad(name, "INVALID_DATE", f"{value} is at {moment.strftime('%H:%M:%S')}."
                                                  f"{moment.microsecond // 1000:03d} UTC, not midnight!")
                        continue
                    out[name] = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()
                else:
                    out[name] = _now_iso(ms)
            elif kind == "bool":
                if value.lower() not in ("true", "false"):
                    bad(name, "INVALID_OPTION", f"{value} was not one of the allowed options: [true, false]")
                    continue
                out[name] = value.lower()
            elif kind == "enumeration" and name not in ("dealstage", "pipeline"):
                allowed = {o["value"] for o in d["options"]}
                parts = value.split(";") if d["fieldType"] == "checkbox" else [value]
                wrong = [p for p in parts if p not in allowed]
                if wrong:
                    bad(name, "INVALID_OPTION", f"{wrong[0]} was not one of the allowed options: "
                                                f"[{', '.join(sorted(allowed))}]")
                    continue
                out[name] = value
            else:
                out[name] = value
        if otype == "contacts" and out.get("email") and not EMAIL_RE.match(out["email"] or ""):
            bad("email", "INVALID_EMAIL", f"Email address {out['email']} is invalid")
        if otype == "deals" and ("dealstage" in out or "pipeline" in out):
            cur = (current or {}).get("p", {})
            pipeline = out.get("pipeline", cur.get("pipeline")) or "default"
            stage = out.get("dealstage", cur.get("dealstage"))
            if not any(p["id"] == pipeline for p in self.state["pipelines"]["deals"]):
                bad("pipeline", "INVALID_OPTION", f"{pipeline} was not one of the allowed options")
            elif stage and self._stage(pipeline, stage) is None:
                bad("dealstage", "INVALID_OPTION",
                    f"{stage} was not one of the allowed options for pipeline {pipeline}")
            elif "pipeline" not in out and current is None:
                out["pipeline"] = pipeline
        if otype == "line_items" and out.get("hs_product_id"):
            product = self._get("products", out["hs_product_id"] or "")
            if product is None:
                bad("hs_product_id", "INVALID_OBJECT_ID", f"Product {out['hs_product_id']} does not exist")
        return out, problems

    def _email_owner(self, email: str | None, skip: str | None = None) -> str | None:
        if not email:
            return None
        key = email.casefold()
        for rec in self.state["objects"]["contacts"].values():
            if rec["id"] != skip and not rec["archived"] and (rec["p"].get("email") or "").casefold() == key:
                return rec["id"]
        return None

    @staticmethod
    def _conflict(existing: str) -> HttpError:
        return hs_error(409, f"Contact already exists. Existing ID: {existing}", "CONFLICT")

    def _prepare_create(self, otype: str, item: dict[str, Any], pending: dict[str, str],
                        problems: list[dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, str, list[int]]]]:
        values, bad = self._clean(otype, item.get("properties"), None)
        problems += bad
        if otype == "contacts" and values.get("email"):
            if values["email"].casefold() in pending:
                raise _bad_request(f"Duplicate input for email {values['email']}: each contact in a batch needs "
                                   "its own email address", context={"email": [values["email"]]})
            existing = self._email_owner(values["email"])
            if existing:
                raise self._conflict(existing)
            pending[values["email"].casefold()] = "new"
        links = []
        for assoc in item.get("associations") or []:
            to_id = str(((assoc or {}).get("to") or {}).get("id") or "")
            for spec in (assoc or {}).get("types") or []:
                type_id = spec.get("associationTypeId")
                known = ASSOC_TYPES.get(type_id) if isinstance(type_id, int) else None
                if not known or known[0] != otype:
                    raise _bad_request(f"{type_id} is not a valid association type id from {otype}")
                if self._get(known[1], to_id) is None:
                    raise hs_error(400, f"No {known[1][:-1] if known[1] != 'companies' else 'company'} with ID "
                                        f"{to_id} exists", "VALIDATION_ERROR", context={"id": [to_id]})
                links.append((known[1], to_id, [type_id]))
        if otype == "line_items" and values.get("hs_product_id"):
            product = self._get("products", values["hs_product_id"] or "")
            if product:  # a line item copies name, price and SKU from its product
                for key in ("name", "price", "hs_sku", "description"):
                    if values.get(key) is None and product["p"].get(key):
                        values[key] = product["p"][key]
        return values, links

    def _create_one(self, otype: str, values: dict[str, Any], links: list[tuple[str, str, list[int]]]) -> dict:
        rid = self._insert(otype, {k: v for k, v in values.items() if v is not None}, self._stamp())
        for to_type, to_id, types in links:
            self._associate(otype, rid, to_type, self._resolve(to_type, to_id), types, touch=False)
        return self.state["objects"][otype][rid]

    def _update_one(self, otype: str, rec: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            self._set(rec, key, value)
        self._touch(otype, rec)
        self._after_write(otype, rec)

    def _id_property(self, otype: str, name: str | None) -> str | None:
        if not name or name == "hs_object_id":
            return None
        d = self.state["properties"][otype].get(name)
        if name == "email" and otype == "contacts":
            return name
        if d is None or not d.get("hasUniqueValue"):
            raise _bad_request(f"{name} is not a unique property and cannot be used as an idProperty")
        return name

    def _find(self, otype: str, rid: str, id_property: str | None, *, archived: bool = False) -> dict | None:
        if id_property is None:
            return self._get(otype, rid, archived=archived)
        for rec in self.state["objects"][otype].values():
            if rec["archived"] == archived and (rec["p"].get(id_property) or "").casefold() == rid.casefold():
                return rec
        return None

    # -- objects: basic -----------------------------------------------------------------------
    @api("GET", OBJ, scopes=("crm.objects.{type}.read",))
    def objects_list(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        archived = self._flag(req, "archived")
        try:
            limit = min(max(int(req.arg("limit") or 10), 1), LIST_MAX)
        except ValueError as exc:
            raise _bad_request("limit must be a number") from exc
        start = 0
        if req.arg("after"):
            try:
                start = int(base64.b64decode(req.arg("after") + "==").decode())
            except ValueError as exc:
                raise _bad_request("Invalid 'after' paging cursor") from exc
        rows = sorted((r for r in self.state["objects"][otype].values()
                       if r["archived"] == archived and int(r["id"]) >= start), key=lambda r: int(r["id"]))
        page, more = rows[:limit], len(rows) > limit
        props, assoc = self._csv(req, "properties"), self._assoc_types(req)
        body: dict[str, Any] = {"results": [self._out(otype, r, props, associations=assoc) for r in page]}
        if more:
            after = base64.b64encode(rows[limit]["id"].encode()).decode().rstrip("=")
            body["paging"] = {"next": {"after": after, "link": f"{self.public_url}{req.path}?after={after}"}}
        return Response(200, body)

    def _assoc_types(self, req: Request) -> list[str]:
        out = []
        for raw in self._csv(req, "associations"):
            name = self._type_name(raw)
            if name:
                out.append(name)
        return out

    @api("GET", OBJ + r"/(?P<id>[^/]+)", scopes=("crm.objects.{type}.read",))
    def objects_get(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        rec = self._find(otype, req.params["id"], self._id_property(otype, req.arg("idProperty")),
                         archived=self._flag(req, "archived"))
        if rec is None:
            raise hs_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           context={"id": [req.params["id"]]})
        return Response(200, self._out(otype, rec, self._csv(req, "properties"), associations=self._assoc_types(req)))

    @api("POST", OBJ, scopes=("crm.objects.{type}.write",))
    def objects_create(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        problems: list[dict[str, Any]] = []
        values, links = self._prepare_create(otype, self._body(req), {}, problems)
        if problems:
            raise _invalid_values(problems)
        rec = self._create_one(otype, values, links)
        return Response(201, self._out(otype, rec, list(self._values(otype, rec))))

    @api("PATCH", OBJ + r"/(?P<id>[^/]+)", scopes=("crm.objects.{type}.write",))
    def objects_update(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        rec = self._find(otype, req.params["id"], self._id_property(otype, req.arg("idProperty")))
        if rec is None:
            raise hs_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           context={"id": [req.params["id"]]})
        values, problems = self._clean(otype, self._body(req).get("properties"), rec)
        if problems:
            raise _invalid_values(problems)
        if otype == "contacts" and values.get("email"):
            existing = self._email_owner(values["email"], skip=rec["id"])
            if existing:
                raise self._conflict(existing)
        self._update_one(otype, rec, values)
        return Response(200, self._out(otype, rec, list(self._values(otype, rec))))

    @api("DELETE", OBJ + r"/(?P<id>[^/]+)", scopes=("crm.objects.{type}.write",))
    def objects_archive(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        rec = self._get(otype, req.params["id"])
        if rec is not None:
            self._archive(otype, rec)
        return Response(204)

    @api("POST", OBJ + r"/merge", scopes=("crm.objects.{type}.write",))
    def objects_merge(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        if otype not in ("contacts", "companies", "deals"):
            raise _bad_request(f"Merging {otype} is not supported")
        body = self._body(req)
        keep = self._merge(otype, str(body.get("primaryObjectId") or ""), str(body.get("objectIdToMerge") or ""))
        return Response(200, self._out(otype, keep, None))
