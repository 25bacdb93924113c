"""Salesforce imitation: record storage, rendering, validated writes (duplicate rules) and sObject rows."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    API_VERSIONS,
    CASCADE,
    CURRENCY_OBJECTS,
    DAY,
    DELETED_DAYS,
    EMAIL_RE,
    NO_SUCH_COLUMN_HINT,
    NUMBER_TYPES,
    READ_ONLY_OBJECTS,
    TYPE_OF_PREFIX,
    RecordError,
    _fail,
    _json_kind,
    _Num,
    _num_text,
    api,
    fmt_dt,
    norm_id,
    parse_dt,
)


class Records(SandboxPart):
    """Record storage, rendering, validated writes (duplicate rules) and sObject rows."""

    # -- record plumbing ---------------------------------------------------------------------
    def _stamp(self) -> float:
        """A SystemModstamp strictly after the last one (milliseconds)."""
        now = round(self.now(), 3)
        last = self.state.get("last_stamp", 0.0)
        if now <= last:
            now = round(last + 0.001, 3)
        self.state["last_stamp"] = now
        return now

    def _touch(self, rec: dict[str, Any], when: float) -> None:
        rec["LastModifiedDate"] = rec["SystemModstamp"] = when
        rec["LastModifiedById"] = self.state["user_id"]

    def _soft_delete(self, obj: str, rec: dict[str, Any], when: float, *, cascade: bool = True) -> None:
        if rec["IsDeleted"]:
            return
        rec["IsDeleted"] = True
        rec["_deleted_at"] = when
        self._touch(rec, when)
        self.state["deleted_log"][obj].append({"id": rec["Id"], "deletedDate": when})
        if cascade:
            for child_obj, fk in CASCADE.get(obj, ()):
                for child in list(self.state["records"][child_obj].values()):
                    if child.get(fk) == rec["Id"] and not child["IsDeleted"]:
                        self._soft_delete(child_obj, child, when)
        if obj == "OpportunityLineItem":
            opp = self.state["records"]["Opportunity"].get(rec["OpportunityId"])
            if opp and not opp["IsDeleted"]:
                self._roll_up(opp, when)

    def _expire_recycle_bin(self) -> None:
        """Records stay in the Recycle Bin for 15 days, and the delete log as long."""
        limit = self.now() - DELETED_DAYS * DAY
        for obj, log in self.state["deleted_log"].items():
            if not log or log[0]["deletedDate"] >= limit:
                continue
            recs = self.state["records"][obj]
            for entry in [e for e in log if e["deletedDate"] < limit]:
                rec = recs.get(entry["id"])
                if rec is not None and rec["IsDeleted"]:
                    del recs[entry["id"]]
            self.state["deleted_log"][obj] = [e for e in log if e["deletedDate"] >= limit]

    def _apply_stage(self, rec: dict[str, Any], probability: Any) -> None:
        stage = self._stage(rec["StageName"])
        rec["IsClosed"], rec["IsWon"] = stage["IsClosed"], stage["IsWon"]
        rec["ForecastCategoryName"] = stage["ForecastCategoryName"]
        if probability is None:
            rec["Probability"] = stage["DefaultProbability"]

    @staticmethod
    def _line_totals(line: dict[str, Any]) -> dict[str, Any]:
        """Subtotal and TotalPrice from quantity, sales price and discount (cents, half to even).

        Salesforce computes in doubles, where most half-cents already sit just below .5.
        """
        qty = Decimal(str(line["Quantity"]))
        price = Decimal(str(line["UnitPrice"]))
        disc = Decimal(str(line.get("Discount") or 0))
        subtotal = (qty * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        total = (qty * price - qty * price * disc / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        return {"Subtotal": str(subtotal), "TotalPrice": str(total)}

    def _roll_up(self, opp: dict[str, Any], when: float, *, touch: bool = True) -> None:
        lines = [li for li in self.state["records"]["OpportunityLineItem"].values()
                 if li["OpportunityId"] == opp["Id"] and not li["IsDeleted"]]
        opp["HasOpportunityLineItem"] = bool(lines)
        if lines:
            opp["Amount"] = str(sum((Decimal(li["TotalPrice"]) for li in lines), Decimal(0)))
        if touch:
            self._touch(opp, when)

    # -- rendering ---------------------------------------------------------------------------
    def _attributes(self, obj: str, rid: str, version: str) -> dict[str, str]:
        return {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{rid}"}

    @staticmethod
    def _out(field: dict[str, Any], value: Any) -> Any:
        if value is None:
            return None
        ftype = field["type"]
        if ftype == "datetime":
            return fmt_dt(float(value))
        if ftype in NUMBER_TYPES or ftype == "int":
            return _Num(_num_text(Decimal(str(value)), ftype))
        return value

    def _render(self, obj: str, rec: dict[str, Any], names: Iterable[str], version: str) -> dict[str, Any]:
        fields = self.fields(obj)
        out: dict[str, Any] = {"attributes": self._attributes(obj, rec["Id"], version)}
        for name in names:
            out[name] = self._out(fields[name], rec.get(name))
        return out

    # -- writes ------------------------------------------------------------------------------
    def _parse_fields(self, obj: str, body: Any, *, allow_id: bool = False) -> dict[str, tuple[dict[str, Any], Any]]:
        """Body -> {field: (definition, raw value)}; unknown fields fail the whole request."""
        if not isinstance(body, dict):
            raise _fail(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from non-object value")
        out: dict[str, tuple[dict[str, Any], Any]] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            if key.lower() == "id" and allow_id:
                continue
            field = self._lookup_field(obj, key)
            if field is None:
                raise _fail(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}")
            if value is not None and not self._shape_ok(field, value):
                raise _fail(400, "JSON_PARSER_ERROR",
                            f"Cannot deserialize instance of {field['type']} from {_json_kind(value)} value "
                            f"{value} or request may be missing a required field")
            out[field["name"]] = (field, value)
        return out

    @staticmethod
    def _shape_ok(field: dict[str, Any], value: Any) -> bool:
        ftype = field["type"]
        if ftype == "boolean":
            return isinstance(value, bool)
        if ftype in NUMBER_TYPES or ftype == "int":
            if isinstance(value, bool):
                return False
            if isinstance(value, int | Decimal):
                return ftype != "int" or Decimal(value) == Decimal(value).to_integral_value()
            if isinstance(value, str):
                if value == "":
                    return True
                try:
                    Decimal(value)
                except InvalidOperation:
                    return False
                return True
            return False
        if ftype == "date":
            if not isinstance(value, str):
                return False
            if value == "":
                return True
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return False
            return len(value) == 10
        if ftype == "datetime":
            return isinstance(value, str) and (value == "" or parse_dt(value) is not None)
        return isinstance(value, str | int | Decimal) and not isinstance(value, bool)

    def _coerce(self, obj: str, field: dict[str, Any], value: Any) -> Any:
        """A shape-checked value -> what the state stores; raises RecordError for bad data."""
        name, ftype, label = field["name"], field["type"], field["label"]
        if value is None or value == "":
            return None
        if ftype == "boolean":
            return value
        if ftype in NUMBER_TYPES or ftype == "int":
            number = Decimal(str(value))
            scale = field["scale"]
            if ftype != "int":
                number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
            digits = len(str(abs(int(number))).lstrip("0"))
            if field["precision"] and digits > field["precision"] - scale:
                raise RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                                  f"{label}: value outside of valid range on numeric field: {value}", [name])
            return int(number) if ftype == "int" else str(number)
        if ftype == "date":
            return value
        if ftype == "datetime":
            return parse_dt(value)
        text = str(value).strip()  # Salesforce trims text on save
        if not text:
            return None
        if ftype in ("reference", "id"):
            rid = norm_id(text)
            target = field["referenceTo"][0] if field["referenceTo"] else obj
            if rid is None or TYPE_OF_PREFIX.get(rid[:3]) != target:
                raise RecordError("MALFORMED_ID" if rid is None else "FIELD_INTEGRITY_EXCEPTION",
                                  f"{label}: id value of incorrect type: {text}", [name])
            rec = self.state["records"][target].get(rid)
            if rec is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
            if rec["IsDeleted"]:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [name])
            return rid
        if field["length"] and len(text) > field["length"]:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise RecordError("STRING_TOO_LONG", f"{label}: data value too large: {shown} "
                                                 f"(max length={field['length']})", [name])
        if ftype == "email" and not EMAIL_RE.match(text):
            raise RecordError("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {text}", [name])
        if ftype == "picklist" and (name == "StageName" or name == "CurrencyIsoCode"):
            allowed = [p["value"] for p in self._picklist(obj, field) if p["active"]]
            if text not in allowed:
                raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"{label}: bad value for restricted picklist field: {text}", [name])
        return text

    def _save(self, obj: str, fields: dict[str, tuple[dict[str, Any], Any]], rid: str | None, *,
              allow_duplicates: bool) -> tuple[str, bool]:
        """Validate and store one record; (id, created). Raises RecordError."""
        if obj in READ_ONLY_OBJECTS:
            raise RecordError("INSUFFICIENT_ACCESS_OR_READONLY", f"entity type {obj} does not support insert or "
                                                                 "update")
        creating = rid is None
        current: dict[str, Any] | None = None
        if not creating:
            current = self.state["records"][obj].get(rid or "")
            if current is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            if current["IsDeleted"]:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        locked = [n for n, (f, _) in fields.items() if not (f["createable"] if creating else f["updateable"])]
        if locked:
            verb = "create" if creating else "update"
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to {verb} fields: {', '.join(locked)}. Please check the security settings "
                              "of this field and verify that it is read/write for your profile or permission set.",
                              locked)
        values = {name: self._coerce(obj, f, raw) for name, (f, raw) in fields.items()}
        merged = {**(current or {}), **values}
        all_fields = self.fields(obj)
        missing = [n for n, f in all_fields.items() if f.get("required") and merged.get(n) in (None, "")
                   and (creating or n in values)]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              missing)
        now = self._stamp()
        extra = self._rules(obj, values, merged, current, now)
        self._unique(obj, merged, rid)
        if not allow_duplicates or self.state["duplicate_rules"].get(obj, {}).get("action") == "block":
            self._duplicates(obj, values, merged, rid, allow_duplicates)
        if creating:
            rid = self._new_id(obj)
            defaults: dict[str, Any] = {}
            if self.state["multicurrency"] and obj in CURRENCY_OBJECTS:
                defaults["CurrencyIsoCode"] = self.record("Organization", self.state["org_id"])[
                    "DefaultCurrencyIsoCode"]
            for n, f in all_fields.items():
                if f["type"] == "boolean" and n not in values:
                    defaults[n] = False
            rec = self._put(obj, rid, {**defaults, **values, **extra}, now)
            rec["IsDeleted"] = False
        else:
            assert current is not None
            current.update(values)
            current.update(extra)
            self._touch(current, now)
            rec = current
        self._after_save(obj, rec, now)
        return rec["Id"], creating

    def _rules(self, obj: str, values: dict[str, Any], merged: dict[str, Any], current: dict[str, Any] | None,
               now: float) -> dict[str, Any]:
        """Object logic Salesforce runs on save: stages, price books, line pricing, permissions."""
        extra: dict[str, Any] = {}
        if obj == "Opportunity":
            if current is not None and current.get("HasOpportunityLineItem"):
                if "Amount" in values and values["Amount"] != current.get("Amount"):
                    raise RecordError("FIELD_INTEGRITY_EXCEPTION", "Amount: cannot be changed on an opportunity "
                                                                   "with products", ["Amount"])
                if "CurrencyIsoCode" in values and values["CurrencyIsoCode"] != current.get("CurrencyIsoCode"):
                    raise RecordError("FIELD_INTEGRITY_EXCEPTION", "Currency ISO Code: cannot be changed on an "
                                                                   "opportunity with products", ["CurrencyIsoCode"])
            if "StageName" in values:
                probe = dict(merged)
                self._apply_stage(probe, values.get("Probability"))
                for key in ("IsClosed", "IsWon", "ForecastCategoryName", "Probability"):
                    extra[key] = probe[key]
            if current is None:
                extra.setdefault("HasOpportunityLineItem", False)
        elif obj == "OpportunityLineItem" and current is None:
            extra.update(self._price_line(values, merged))
        elif obj == "OpportunityLineItem":
            if "UnitPrice" in values and "TotalPrice" in values and values["TotalPrice"] is not None:
                raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: TotalPrice (cannot set "
                                                               "both UnitPrice and TotalPrice)", ["TotalPrice"])
            if "TotalPrice" in values and values["TotalPrice"] is not None and "UnitPrice" not in values:
                qty = Decimal(str(merged["Quantity"]))
                extra["UnitPrice"] = str((Decimal(values["TotalPrice"]) / qty).quantize(Decimal("0.01")))
                extra["Discount"] = None
            line = {**merged, **extra}
            extra.update(self._line_totals(line))
        elif obj == "PricebookEntry" and current is None:
            std = self.standard_pricebook()
            if merged["Pricebook2Id"] != std:
                cur = merged.get("CurrencyIsoCode")
                has_std = any(e["Product2Id"] == merged["Product2Id"] and e["Pricebook2Id"] == std
                              and e.get("CurrencyIsoCode") == cur and not e["IsDeleted"]
                              for e in self.state["records"]["PricebookEntry"].values())
                if not has_std:
                    raise RecordError("STANDARD_PRICE_NOT_DEFINED", "Before creating a custom price, create a "
                                                                    "standard price.")
        elif obj == "FieldPermissions":
            sobj, _, fname = str(merged.get("Field") or "").partition(".")
            if sobj != merged.get("SobjectType") or fname not in self.state["custom_fields"].get(sobj, {}):
                raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"Field Name: bad value for restricted picklist field: {merged.get('Field')}",
                                  ["Field"])
            if merged.get("PermissionsEdit") and not merged.get("PermissionsRead"):
                raise RecordError("FIELD_INTEGRITY_EXCEPTION", "Permission Read is required when Edit is "
                                                               "granted", ["PermissionsRead"])
        return extra

    def _price_line(self, values: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
        recs = self.state["records"]
        opp = recs["Opportunity"][merged["OpportunityId"]]
        entry = None
        if merged.get("PricebookEntryId"):
            entry = recs["PricebookEntry"][merged["PricebookEntryId"]]
        elif merged.get("Product2Id"):
            book = opp.get("Pricebook2Id") or self.standard_pricebook()
            entry = next((e for e in recs["PricebookEntry"].values()
                          if e["Product2Id"] == merged["Product2Id"] and e["Pricebook2Id"] == book
                          and e.get("CurrencyIsoCode") == opp.get("CurrencyIsoCode") and not e["IsDeleted"]), None)
        if entry is None:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId, Product2Id "
                                                           "(pricebook entry is required)", ["PricebookEntryId"])
        if not entry["IsActive"]:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId (pricebook "
                                                           "entry is inactive)", ["PricebookEntryId"])
        if opp.get("Pricebook2Id") and opp["Pricebook2Id"] != entry["Pricebook2Id"]:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId (pricebook "
                                                           "entry is in a different pricebook than the one assigned "
                                                           "to the opportunity)", ["PricebookEntryId"])
        if entry.get("CurrencyIsoCode") != opp.get("CurrencyIsoCode"):
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: PricebookEntryId (pricebook "
                                                           "entry currency code does not match opportunity currency "
                                                           "code)", ["PricebookEntryId"])
        unit, total = values.get("UnitPrice"), values.get("TotalPrice")
        if unit is not None and total is not None:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: TotalPrice (cannot set both "
                                                           "UnitPrice and TotalPrice)", ["TotalPrice"])
        if unit is None and total is None:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", "field integrity exception: unknown (must specify either "
                                                           "UnitPrice or TotalPrice)", ["UnitPrice"])
        extra: dict[str, Any] = {"PricebookEntryId": entry["Id"], "Product2Id": entry["Product2Id"],
                                 "ListPrice": entry["UnitPrice"]}
        if self.state["multicurrency"]:
            extra["CurrencyIsoCode"] = opp.get("CurrencyIsoCode")
        if unit is None:
            qty = Decimal(str(merged["Quantity"]))
            extra["UnitPrice"] = str((Decimal(total) / qty).quantize(Decimal("0.01")))
            extra["Discount"] = None
        extra.update(self._line_totals({**merged, **extra}))
        if not opp.get("Pricebook2Id"):
            opp["Pricebook2Id"] = entry["Pricebook2Id"]
        return extra

    def _unique(self, obj: str, merged: dict[str, Any], rid: str | None) -> None:
        keys = {"FieldPermissions": ("ParentId", "Field"), "PermissionSetAssignment": ("PermissionSetId", "AssigneeId"),
                "PermissionSet": ("Name",), "PricebookEntry": ("Pricebook2Id", "Product2Id", "CurrencyIsoCode")}
        fields = keys.get(obj)
        if not fields:
            return
        for rec in self.state["records"][obj].values():
            if rec["Id"] != rid and not rec["IsDeleted"] and all(
                    str(rec.get(f) or "").lower() == str(merged.get(f) or "").lower() for f in fields):
                raise RecordError("DUPLICATE_VALUE", f"duplicate value found: {fields[0]} duplicates value on record "
                                                     f"with id: {rec['Id']}", list(fields[:1]))

    @staticmethod
    def _dup_key(value: Any) -> str:
        return " ".join(str(value or "").split()).casefold()

    def _duplicates(self, obj: str, values: dict[str, Any], merged: dict[str, Any], rid: str | None,
                    allow: bool) -> None:
        rule = self.state["duplicate_rules"].get(obj)
        if not rule or not rule["active"] or (rid is not None and rule["field"] not in values):
            return
        key = self._dup_key(merged.get(rule["field"]))
        if not key:
            return
        matches = [r for r in self.state["records"][obj].values()
                   if r["Id"] != rid and not r["IsDeleted"] and self._dup_key(r.get(rule["field"])) == key]
        if not matches:
            return
        version = API_VERSIONS[-1]
        result = {
            "allowSave": rule["action"] == "alert", "duplicateRule": rule["rule"], "duplicateRuleEntityType": obj,
            "errorMessage": "Use one of these records?",
            "matchResults": [{"entityType": obj, "matchEngine": "FuzzyMatchEngine", "rule": rule["match"],
                              "size": len(matches), "success": True, "errors": [],
                              "matchRecords": [{"matchConfidence": _Num("100.0"), "additionalInformation": [],
                                                "fieldDiffs": [],
                                                "record": {"attributes": self._attributes(obj, m["Id"], version),
                                                           "Id": m["Id"]}} for m in matches]}]}
        raise RecordError("DUPLICATES_DETECTED", "Use one of these records?", [], duplicate=result)

    def _after_save(self, obj: str, rec: dict[str, Any], now: float) -> None:
        if obj == "OpportunityLineItem":
            self._roll_up(self.state["records"]["Opportunity"][rec["OpportunityId"]], now)

    def _allow_duplicates(self, req: Request) -> bool:
        header = req.header("sforce-duplicate-rule-header") or ""
        return bool(re.search(r"allowSave\s*=\s*true", header, re.I))

    # -- sObject rows --------------------------------------------------------------------------
    @api("POST", r"/sobjects/(?P<sobject>\w+)")
    def create(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        fields = self._parse_fields(obj, self._body(req))
        try:
            rid, _ = self._save(obj, fields, None, allow_duplicates=self._allow_duplicates(req))
        except RecordError as err:
            raise HttpError(400, err.api_errors()) from err
        self.persist()
        return Response(201, {"id": rid, "success": True, "errors": []},
                        {"Location": f"{self._base(req)}/sobjects/{obj}/{rid}"})

    def _existing(self, obj: str, raw: str) -> dict[str, Any]:
        rid = norm_id(raw)
        rec = self.state["records"][obj].get(rid or "")
        if rec is None:
            raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
        if rec["IsDeleted"]:
            raise _fail(404, "ENTITY_IS_DELETED", "entity is deleted")
        return rec

    @api("GET", r"/sobjects/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)")
    def retrieve(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        rec = self._existing(obj, req.params["id"])
        names = self._field_names(obj, req.arg("fields"))
        return Response(200, self._render(obj, rec, names, req.params["version"]))

    def _field_names(self, obj: str, spec: str | list[str] | None) -> list[str]:
        if not spec:
            return list(self.fields(obj))
        items = spec if isinstance(spec, list) else spec.split(",")
        out = []
        for item in items:
            field = self._lookup_field(obj, str(item).strip())
            if field is None:
                raise _fail(400, "INVALID_FIELD", f"No such column '{str(item).strip()}' on entity '{obj}'. "
                                                  f"{NO_SUCH_COLUMN_HINT}")
            out.append(field["name"])
        return out

    @api("PATCH", r"/sobjects/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)")
    def update(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        rec = self._existing(obj, req.params["id"])
        fields = self._parse_fields(obj, self._body(req))
        try:
            self._save(obj, fields, rec["Id"], allow_duplicates=self._allow_duplicates(req))
        except RecordError as err:
            raise HttpError(400, err.api_errors()) from err
        self.persist()
        return Response(204, None)

    @api("DELETE", r"/sobjects/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)")
    def delete_row(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        if obj in READ_ONLY_OBJECTS:
            raise _fail(400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
        rec = self._existing(obj, req.params["id"])
        self._soft_delete(obj, rec, self._stamp())
        self.persist()
        return Response(204, None)

    # -- a page for record links --------------------------------------------------------------
    @route("GET", r"/lightning/r/(?P<sobject>\w+)/(?P<id>[a-zA-Z0-9]{15,18})/view")
    def lightning_view(self, req: Request) -> Response:
        obj = self._sobject(req.params["sobject"])
        rec = self.state["records"].get(obj or "", {}).get(norm_id(req.params["id"]) or "")
        if rec is None:
            return Response(404, "<h1>Record not found</h1>", content_type="text/html")
        name = rec.get("Name") or " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p) or rec["Id"]
        name = html.escape(str(name))
        page = (f"<!doctype html><title>{obj}: {name}</title><h1>{obj}</h1><p>{name}</p>"
                f"<p>Id {rec['Id']} in the Crossledger Salesforce sandbox.</p>")
        return Response(200, page, content_type="text/html")
