"""Zoho CRM imitation: record rendering and validated writes (insert, update, upsert, delete)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import (
    CURRENCIES,
    DATE_RE,
    DEFAULT_LENGTH,
    DISPLAY_FIELD,
    EMAIL_RE,
    MODULE_IDS,
    NUMERIC,
    TRIGGERS,
    _invalid,
    _item_error,
    _Reject,
    parse_time,
    zerr,
    zoho_time,
)


class Writing(SandboxPart):
    """Record rendering and validated writes (insert, update, upsert, delete)."""

    # -- record rendering ---------------------------------------------------------------------
    def _display(self, module: str, rid: str | None) -> str | None:
        rec = self.state["records"].get(module, {}).get(str(rid)) if rid else None
        if rec is None:
            return None
        value = rec.get(DISPLAY_FIELD[module])
        return str(value) if value is not None else None

    def _user(self, uid: str | None, *, coql: bool = False) -> dict[str, Any] | None:
        if not uid:
            return None
        user = self.state["user"]
        if coql:  # COQL names users but gives other lookups by id only
            return {"name": user["name"], "id": uid}
        return {"name": user["name"], "id": uid, "email": user["email"]}

    def _value(self, module: str, f: dict[str, Any], raw: Any, *, coql: bool = False) -> Any:
        dtype = f["data_type"]
        if raw is None:
            return [] if dtype == "subform" else None
        if dtype == "datetime":
            return zoho_time(raw)
        if dtype in NUMERIC:
            return Decimal(str(raw))
        if dtype == "integer":
            return int(raw)
        if dtype == "ownerlookup":
            return self._user(raw, coql=coql)
        if dtype == "lookup":
            return {"id": raw} if coql else {"name": self._display(f["lookup"], raw), "id": raw}
        if f.get("stage"):
            stage = self.state["stages"].get(raw)
            return stage["display_value"] if stage else None
        if f.get("pipeline"):
            pipe = next((p for p in self.state["pipelines"] if p["id"] == raw), None)
            return pipe["display_value"] if pipe else None
        if dtype == "subform":
            sub = f["subform"]
            return [{"id": row["id"], **{sf["api_name"]: self._value(sub, sf, row.get(sf["api_name"]))
                                         for sf in self._fields(sub)}} for row in raw]
        return raw

    def render(self, module: str, rec: dict[str, Any], cols: list[str] | None = None) -> dict[str, Any]:
        """A record as the REST API prints it: the asked fields (all when None) and its id."""
        out: dict[str, Any] = {}
        for f in self._fields(module):
            if cols is None or f["api_name"] in cols:
                out[f["api_name"]] = self._value(module, f, rec.get(f["api_name"]))
        out["id"] = rec["id"]
        return out

    # -- writing --------------------------------------------------------------------------------
    def _convert(self, module: str, f: dict[str, Any], value: Any, path: str) -> Any:
        """A JSON value for field ``f`` -> its stored form; raises _Reject with Zoho's error."""
        api, dtype = f["api_name"], f["data_type"]
        if value is None or value == "" or (dtype == "multiselectpicklist" and value == []):
            return None
        if dtype in ("text", "textarea", "phone", "website", "autonumber", "email", "bigint"):
            if dtype == "bigint" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise _Reject(_invalid(api, path, "string"))
            limit = int(f.get("length") or DEFAULT_LENGTH.get(dtype, 255))
            if len(value) > limit:
                raise _Reject(_invalid(api, path, maximum_length=str(limit)))
            if dtype == "email" and not EMAIL_RE.match(value):
                raise _Reject(_invalid(api, path, "email"))
            return value
        if dtype == "picklist":
            if not isinstance(value, str):
                raise _Reject(_invalid(api, path, "string"))
            if f.get("stage"):
                stage = self._stage_by_value(value)
                if stage is None:
                    raise _Reject(_invalid(api, path))
                return stage["id"]
            if f.get("pipeline"):
                pipe = self._pipeline_by_value(value)
                if pipe is None:
                    raise _Reject(_invalid(api, path))
                return pipe["id"]
            if f.get("currency_list") and value not in CURRENCIES:
                raise _Reject(_invalid(api, path))
            return value
        if dtype == "multiselectpicklist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _Reject(_invalid(api, path, "jsonarray"))
            return value
        if dtype in NUMERIC:
            if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                raise _Reject(_invalid(api, path, dtype))
            number = Decimal(value)
            if dtype == "currency":
                number = number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            elif f.get("decimal_place") is not None:
                number = number.quantize(Decimal(1).scaleb(-int(f["decimal_place"])), rounding=ROUND_HALF_UP)
            return str(number)
        if dtype == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Reject(_invalid(api, path, "integer"))
            return value
        if dtype == "boolean":
            if not isinstance(value, bool):
                raise _Reject(_invalid(api, path, "boolean"))
            return value
        if dtype == "date":
            if not isinstance(value, str) or not DATE_RE.match(value):
                raise _Reject(_invalid(api, path, "date"))
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise _Reject(_invalid(api, path, "date")) from None
            return value
        if dtype == "datetime":
            moment = parse_time(value) if isinstance(value, str) else None
            if moment is None:
                raise _Reject(_invalid(api, path, "datetime"))
            return int(moment)
        if dtype in ("lookup", "ownerlookup"):
            rid = value.get("id") if isinstance(value, dict) else value if isinstance(value, str) else None
            if not isinstance(rid, str) or not rid:
                raise _Reject(_invalid(api, path, "jsonobject"))
            if dtype == "ownerlookup":
                if rid != self.state["user"]["id"]:
                    raise _Reject(_invalid(api, path))
            elif rid not in self.state["records"][f["lookup"]]:
                raise _Reject(_invalid(api, path))
            return rid
        return value

    def _apply(self, module: str, current: dict[str, Any] | None, data: dict[str, Any], index: int,
               batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Validate one record of a write and return its new stored form (not yet saved)."""
        rec = json.loads(json.dumps(current)) if current else {}
        path = f"$.data[{index}]"
        for key, value in data.items():
            if key == "id" or key.startswith("$"):
                continue
            f = self._field(module, key)
            if f is None or f.get("read_only"):
                continue  # Zoho ignores fields it does not know and fields nobody may write
            if f["data_type"] == "subform":
                rec[key] = self._subform(module, f, (current or {}).get(key) or [], value, f"{path}.{key}")
            else:
                rec[key] = self._convert(module, f, value, f"{path}.{key}")
        if module == "Deals" and "Stage" in data and "Probability" not in data:
            rec["Probability"] = None  # a new stage brings its own probability
        for f in self._fields(module):
            if f.get("mandatory") and rec.get(f["api_name"]) in (None, "") and not (
                    f.get("pipeline") and current is None):
                raise _Reject(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                          {"api_name": f["api_name"], "json_path": f"{path}.{f['api_name']}"}))
        self._check_unique(module, rec, current, path, batch, None if current is None else set(data))
        return rec

    def _subform(self, module: str, f: dict[str, Any], rows: list[dict[str, Any]], value: Any,
                 path: str) -> list[dict[str, Any]]:
        """Rows with an id are updated, rows without one added, ``_delete`` removes, omitted rows go."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise _Reject(_invalid(f["api_name"], path, "jsonarray"))
        sub = f["subform"]
        by_id = {r["id"]: r for r in rows}
        out = []
        now = int(self.now())
        for n, item in enumerate(value):
            rpath = f"{path}[{n}]"
            if not isinstance(item, dict):
                raise _Reject(_invalid(f["api_name"], rpath, "jsonobject"))
            if item.get("id") is not None:
                row = by_id.get(str(item["id"]))
                if row is None:
                    raise _Reject(_invalid("id", f"{rpath}.id"))
                if "_delete" in item:
                    continue
                row = dict(row)
            else:
                row = {"id": self.new_id(), "Created_Time": now}
            for key, val in item.items():
                sf = self._field(sub, key)
                if key in ("id", "_delete") or sf is None or sf.get("read_only"):
                    continue
                row[key] = self._convert(sub, sf, val, f"{rpath}.{key}")
            row["Modified_Time"] = now
            out.append(row)
        return out

    def _check_unique(self, module: str, rec: dict[str, Any], current: dict[str, Any] | None, path: str,
                      batch: list[dict[str, Any]], written: set[str] | None) -> None:
        """A create checks every unique field; an update only the ones it writes."""
        for f in self._fields(module):
            if not f.get("unique") or (written is not None and f["api_name"] not in written):
                continue
            value = rec.get(f["api_name"])
            if value in (None, ""):
                continue
            key = str(value).casefold()
            for other in [*self.state["records"][module].values(), *batch]:
                if other.get("id") == rec.get("id") or (current and other.get("id") == current.get("id")):
                    continue
                if str(other.get(f["api_name"]) or "").casefold() == key:
                    raise _Reject(_item_error("DUPLICATE_DATA", "duplicate data", {
                        "api_name": f["api_name"], "json_path": f"{path}.{f['api_name']}",
                        "duplicate_record": {"id": other["id"],
                                             "module": {"api_name": module, "id": MODULE_IDS[module]},
                                             "Owner": {"name": self.state["user"]["name"],
                                                       "id": self.state["user"]["id"]}}}))

    def _derive(self, module: str, rec: dict[str, Any], before: dict[str, Any] | None) -> None:
        """What Zoho computes on save: full name, stage probability, exchange rate, line totals."""
        if module == "Contacts":
            rec["Full_Name"] = " ".join(p for p in (rec.get("First_Name"), rec.get("Last_Name")) if p) or None
        if module == "Deals":
            if not rec.get("Pipeline"):
                rec["Pipeline"] = next(p["id"] for p in self.state["pipelines"] if p["default"])
            stage = self.state["stages"].get(rec.get("Stage") or "")
            if stage and rec.get("Probability") is None:
                rec["Probability"] = stage["probability"]
            if rec.get("Amount") is not None and rec.get("Probability") is not None:
                rec["Expected_Revenue"] = str((Decimal(rec["Amount"]) * rec["Probability"] / 100).quantize(
                    Decimal("0.01"), rounding=ROUND_HALF_UP))
            for row in rec.get("Line_Items") or []:
                qty = Decimal(row.get("Quantity") or 0)
                price = Decimal(row.get("Unit_Price") or 0)
                disc = Decimal(row.get("Discount") or 0)
                gross = qty * price
                row["Line_Total"] = str((gross - gross * disc / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
                row["Parent_Id"] = rec["id"]
        if "Currency" in {f["api_name"] for f in self._fields(module)}:
            rec.setdefault("Currency", self.state["org"]["currency"])
            if before is None or before.get("Currency") != rec.get("Currency") or not rec.get("Exchange_Rate"):
                rec["Exchange_Rate"] = str(CURRENCIES.get(rec["Currency"] or "EUR", Decimal(1)))

    def _success(self, rec: dict[str, Any], message: str, **extra: Any) -> dict[str, Any]:
        user = {"name": self.state["user"]["name"], "id": self.state["user"]["id"]}
        return {"code": "SUCCESS", **extra, "details": {
            "Modified_Time": zoho_time(rec["Modified_Time"]), "Modified_By": user,
            "Created_Time": zoho_time(rec["Created_Time"]), "id": rec["id"], "Created_By": user},
            "message": message, "status": "success"}

    def _save(self, module: str, rec: dict[str, Any], before: dict[str, Any] | None) -> None:
        now = int(self.now())
        user = self.state["user"]["id"]
        if before is None:
            rec["id"] = rec.get("id") or self.new_id()
            rec.setdefault("Owner", user)
            rec["Created_Time"], rec["Created_By"] = now, user
        rec["Modified_Time"], rec["Modified_By"] = now, user
        self._derive(module, rec, before)
        self.state["records"][module][rec["id"]] = rec

    def _write_payload(self, req: Request) -> tuple[list[Any], dict[str, Any]]:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not body["data"]:
            raise zerr(400, "INVALID_DATA", "invalid data",
                       {"api_name": "data", "json_path": "$.data", "expected_data_type": "jsonarray"})
        if len(body["data"]) > 100:
            raise zerr(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": 100})
        trigger = body.get("trigger")
        if trigger is not None and (not isinstance(trigger, list) or not set(trigger) <= TRIGGERS):
            raise zerr(400, "INVALID_DATA", "invalid data",
                       {"api_name": "trigger", "json_path": "$.trigger", "expected_data_type": "jsonarray"})
        return body["data"], body

    def _write_response(self, results: list[dict[str, Any]], ok_status: int) -> Response:
        good = sum(1 for r in results if r.get("status") == "success")
        status = ok_status if good == len(results) else 400 if good == 0 else 207
        self.persist()
        return self._json(status, {"data": results})

    def _insert(self, module: str, items: list[Any], *, upsert_fields: list[str] | None = None) -> list[dict]:
        results: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                results.append(_invalid("data", f"$.data[{n}]", "jsonobject"))
                continue
            try:
                current = None
                extra: dict[str, Any] = {}
                if upsert_fields is not None:
                    current, matched = self._upsert_match(module, item, upsert_fields)
                    extra = {"action": "update" if current else "insert"}
                    if matched:
                        extra["duplicate_field"] = matched
                rec = self._apply(module, current, item, n, batch)
            except _Reject as rej:
                results.append(rej.error)
                continue
            self._save(module, rec, current)
            batch.append(rec)
            results.append(self._success(rec, "record updated" if current else "record added", **extra))
        return results

    def _upsert_match(self, module: str, item: dict[str, Any],
                      check: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        if item.get("id"):
            rec = self.state["records"][module].get(str(item["id"]))
            return (rec, None) if rec else (None, None)
        for api in check:
            value = item.get(api)
            if value in (None, ""):
                continue
            for rec in self.state["records"][module].values():
                if str(rec.get(api) or "").casefold() == str(value).casefold():
                    return rec, api
        return None, None

    def _update(self, module: str, items: list[Any], path_id: str | None = None) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                results.append(_invalid("data", f"$.data[{n}]", "jsonobject"))
                continue
            rid = path_id if path_id is not None else item.get("id")
            if not rid:
                results.append(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                           {"api_name": "id", "json_path": f"$.data[{n}].id"}))
                continue
            current = self.state["records"][module].get(str(rid))
            if current is None:
                results.append(_item_error("INVALID_DATA", "the id given seems to be invalid",
                                           {"api_name": "id", "json_path": f"$.data[{n}].id"}))
                continue
            try:
                rec = self._apply(module, current, item, n, [])
            except _Reject as rej:
                results.append(rej.error)
                continue
            self._save(module, rec, current)
            results.append(self._success(rec, "record updated"))
        return results

    def _delete(self, module: str, rid: str) -> dict[str, Any] | None:
        rec = self.state["records"][module].pop(rid, None)
        if rec is None:
            return None
        self.state["deleted"][module].append({
            "id": rid, "display_name": self._display_of(module, rec), "deleted_time": int(self.now()),
            "deleted_by": self.state["user"]["id"], "created_by": rec.get("Created_By") or self.state["user"]["id"]})
        return rec

    def _display_of(self, module: str, rec: dict[str, Any]) -> str:
        return str(rec.get(DISPLAY_FIELD[module]) or "")
