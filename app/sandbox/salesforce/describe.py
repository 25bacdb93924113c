"""Salesforce imitation: schema, API versions, limits, describe and Tooling API custom fields."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    API_VERSIONS,
    CHILD_RELATIONSHIPS,
    CURRENCY_OBJECTS,
    CUSTOM_NAME_RE,
    LABELS,
    NUMBER_TYPES,
    PREFIX,
    READ_ONLY_OBJECTS,
    STANDARD,
    TOOLING_TYPES,
    _f,
    _fail,
    _system,
    _version_label,
    api,
    make_id,
)


class Describe(SandboxPart):
    """Schema, API versions, limits, describe and Tooling API custom fields."""

    # -- schema -----------------------------------------------------------------------------
    def add_custom_field(self, obj: str, api_name: str, label: str, ftype: str, *, length: int | None = None,
                         precision: int | None = None, scale: int | None = None,
                         values: tuple[str, ...] | None = None, visible: bool = True) -> dict[str, Any]:
        """Add a custom field as an admin would in Setup (``visible``: granted to the user's profile)."""
        field = _f(api_name, ftype, label, length=length, precision=precision, scale=scale, values=values)
        field.update(custom=True, id=make_id(PREFIX["CustomField"], self.next_id("CustomField")), profile=visible,
                     defaultedOnCreate=ftype == "boolean")
        self.state["custom_fields"][obj][api_name] = field
        return field

    def remove_custom_field(self, obj: str, api_name: str) -> None:
        """An admin deletes a custom field: its values go with it."""
        with self.lock:
            del self.state["custom_fields"][obj][api_name]
            for rec in self.state["records"][obj].values():
                rec.pop(api_name, None)
            self.persist()

    def _granted(self, obj: str) -> tuple[set[str], set[str]]:
        """Custom fields of ``obj`` the user may read and edit through permission sets."""
        recs = self.state["records"]
        user = self.state["user_id"]
        sets = {a["PermissionSetId"] for a in recs["PermissionSetAssignment"].values()
                if not a["IsDeleted"] and a["AssigneeId"] == user}
        read, edit = set(), set()
        for fp in recs["FieldPermissions"].values():
            if fp["IsDeleted"] or fp["ParentId"] not in sets or fp["SobjectType"] != obj:
                continue
            name = fp["Field"].split(".", 1)[-1]
            if fp.get("PermissionsRead") or fp.get("PermissionsEdit"):
                read.add(name)
            if fp.get("PermissionsEdit"):
                edit.add(name)
        return read, edit

    def fields(self, obj: str, *, all_fields: bool = False) -> OrderedDict[str, dict[str, Any]]:
        """The fields of ``obj`` the API user sees (standard, currency, and custom with FLS)."""
        out: OrderedDict[str, dict[str, Any]] = OrderedDict((f["name"], f) for f in _system())
        for field in STANDARD[obj]:
            out[field["name"]] = field
        if self.state["multicurrency"] and obj in CURRENCY_OBJECTS:
            out["CurrencyIsoCode"] = _f("CurrencyIsoCode", "picklist", "Currency ISO Code", length=3,
                                        create_only=obj in ("PricebookEntry", "OpportunityLineItem"),
                                        ro=obj == "OpportunityLineItem", defaulted=True)
        customs = self.state["custom_fields"].get(obj, {})
        if customs:
            read, edit = self._granted(obj)
            for name, field in customs.items():
                if all_fields or field.get("profile") or name in read:
                    if not (all_fields or field.get("profile") or name in edit):
                        field = {**field, "createable": False, "updateable": False}
                    out[name] = field
        return out

    def _lookup_field(self, obj: str, name: str) -> dict[str, Any] | None:
        fields = self.fields(obj)
        return fields.get(name) or next((f for n, f in fields.items() if n.lower() == name.lower()), None)

    def _sobject(self, name: str) -> str | None:
        return next((o for o in STANDARD if o.lower() == name.lower()), None)

    def _picklist(self, obj: str, field: dict[str, Any]) -> list[dict[str, Any]]:
        if field["name"] == "StageName" and obj == "Opportunity":
            stages = sorted(self.state["records"]["OpportunityStage"].values(), key=lambda s: s["SortOrder"])
            return [{"value": s["ApiName"], "label": s["MasterLabel"], "active": s["IsActive"], "defaultValue": False}
                    for s in stages]
        if field["name"] in ("CurrencyIsoCode", "DefaultCurrencyIsoCode"):
            return [{"value": c, "label": c, "active": True, "defaultValue": False} for c in self.state["currencies"]]
        return [{"value": v, "label": v, "active": True, "defaultValue": False} for v in field.get("values") or ()]

    def standard_pricebook(self) -> str:
        return next(p["Id"] for p in self.state["records"]["Pricebook2"].values() if p["IsStandard"])

    def _stage(self, api_name: str) -> dict[str, Any]:
        return next(s for s in self.state["records"]["OpportunityStage"].values() if s["ApiName"] == api_name)

    # -- versions, limits, describe ---------------------------------------------------------
    @route("GET", r"/services/data")
    def versions(self, req: Request) -> Response:
        return Response(200, [{"label": _version_label(v), "url": f"/services/data/v{v}", "version": v}
                              for v in API_VERSIONS])

    @api("GET", r"/limits")
    def limits(self, req: Request) -> Response:
        used, maximum = self.api_usage()
        return Response(200, {"DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - used)},
                              "ConcurrentSyncLongRunningRequests": {"Max": 25, "Remaining": 25},
                              "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000}})

    def _known(self, name: str) -> str:
        obj = self._sobject(name)
        if obj is None:
            raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    @api("GET", r"/sobjects/(?P<sobject>\w+)/describe")
    def describe(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        fields = []
        for field in self.fields(obj).values():
            item: dict[str, Any] = {
                "name": field["name"], "type": field["type"], "label": field["label"], "nillable": field["nillable"],
                "createable": field["createable"] and obj not in READ_ONLY_OBJECTS,
                "updateable": field["updateable"] and obj not in READ_ONLY_OBJECTS,
                "externalId": field["externalId"], "unique": field["unique"], "custom": field["custom"],
                "length": field["length"], "precision": field["precision"], "scale": field["scale"],
                "referenceTo": field["referenceTo"], "relationshipName": field["relationshipName"],
                "calculated": field["calculated"], "defaultedOnCreate": field["defaultedOnCreate"],
                "picklistValues": self._picklist(obj, field) if field["type"] == "picklist" else []}
            fields.append(item)
        label, plural = LABELS[obj]
        body = {"name": obj, "label": label, "labelPlural": plural, "keyPrefix": PREFIX[obj], "custom": False,
                "createable": obj not in READ_ONLY_OBJECTS, "updateable": obj not in READ_ONLY_OBJECTS,
                "deletable": obj not in READ_ONLY_OBJECTS, "queryable": True, "fields": fields,
                "childRelationships": [{"childSObject": child, "field": fk, "relationshipName": rel}
                                       for rel, (child, fk) in CHILD_RELATIONSHIPS.get(obj, {}).items()]}
        return Response(200, body)

    # -- Tooling: custom fields --------------------------------------------------------------
    @api("POST", r"/tooling/sobjects/CustomField")
    def tooling_custom_field(self, req: Request) -> Response:
        if not self.admin:
            raise _fail(403, "INSUFFICIENT_ACCESS", "insufficient access rights on cross-reference id: you need the "
                                                    "Customize Application permission")
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("FullName"), str) or not isinstance(
                body.get("Metadata"), dict):
            raise _fail(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [FullName, Metadata]",
                        ["FullName", "Metadata"])
        obj_name, _, api_name = body["FullName"].partition(".")
        obj = self._sobject(obj_name)
        meta = body["Metadata"]
        if obj is None or obj in READ_ONLY_OBJECTS:
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", f"Cannot create a field on '{obj_name}'", ["FullName"])
        if not CUSTOM_NAME_RE.match(api_name) or len(api_name) > 43:
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", "Field Name: The API name can only contain underscores "
                                                          "and alphanumeric characters, must begin with a letter, "
                                                          "not end with an underscore, and not contain two "
                                                          "consecutive underscores; it must end in __c",
                        ["FullName"])
        existing = self.state["custom_fields"][obj]
        if any(n.lower() == api_name.lower() for n in existing):
            raise _fail(400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field named {api_name[:-3]} on {obj}.",
                        ["FullName"])
        ftype = TOOLING_TYPES.get(str(meta.get("type")))
        if ftype is None:
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", f"Type: bad value for restricted picklist field: "
                                                          f"{meta.get('type')}", ["Metadata"])
        label = meta.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _fail(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["Metadata"])
        length = meta.get("length")
        if ftype in ("string", "textarea") and (not isinstance(length, int) or not
                                                 0 < length <= (255 if ftype == "string" else 131072)):
            raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", "Length: You must enter a value between 1 and 255",
                        ["Metadata"])
        precision = int(meta.get("precision") or 18) if ftype in NUMBER_TYPES else None
        scale = int(meta.get("scale") if meta.get("scale") is not None else 2) if ftype in NUMBER_TYPES else None
        values = None
        if ftype == "picklist":
            defs = ((meta.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value") or []
            values = tuple(str(v.get("fullName")) for v in defs if isinstance(v, dict) and v.get("fullName"))
            if not values:
                raise _fail(400, "FIELD_INTEGRITY_EXCEPTION", "Values: You must enter at least one value",
                            ["Metadata"])
        if ftype == "email":
            length = 80
        elif ftype in ("phone",):
            length = 40
        field = self.add_custom_field(obj, api_name, label.strip(), ftype, length=length if ftype in (
            "string", "textarea", "email", "phone") else None, precision=precision, scale=scale, values=values,
            visible=False)  # not visible to anyone until field-level security is granted
        field["externalId"] = bool(meta.get("externalId"))
        field["unique"] = bool(meta.get("unique"))
        self.persist()
        return Response(201, {"id": field["id"], "success": True, "errors": []})
