"""Zoho CRM imitation: metadata and the settings routes (fields, layouts, pipelines, org)."""

from __future__ import annotations

from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import (
    API,
    CREATABLE_TYPES,
    CURRENCIES,
    DEFAULT_LENGTH,
    DISPLAY_FIELD,
    FORECAST_CATEGORY_IDS,
    JSON_TYPE,
    MODULE_IDS,
    MODULE_LABEL,
    MODULES,
    NUMERIC,
    PROFILE_ID,
    ROLE_ID,
    SINGULAR_LABEL,
    SUBFORM_MODULES,
    TEXTUAL,
    UI_TYPE,
    USER_TYPES,
    _api_name,
    _f,
    _invalid,
    _item_error,
    zerr,
    zoho_time,
)


class Settings(SandboxPart):
    """Metadata and the settings routes (fields, layouts, pipelines, org)."""

    # -- metadata ---------------------------------------------------------------------------
    def _fields(self, module: str) -> list[dict[str, Any]]:
        return self.state["fields"][module]

    def _field(self, module: str, api: str) -> dict[str, Any] | None:
        return next((f for f in self._fields(module) if f["api_name"] == api), None)

    def _stage_by_value(self, value: str) -> dict[str, Any] | None:
        for stage in self.state["stages"].values():
            if value in (stage["display_value"], stage["actual_value"]):
                return stage
        return None

    def _pipeline_by_value(self, value: str) -> dict[str, Any] | None:
        return next((p for p in self.state["pipelines"] if value in (p["display_value"], p["actual_value"])), None)

    def _picklist(self, module: str, f: dict[str, Any]) -> list[dict[str, Any]]:
        if f.get("stage"):
            out = []
            for stage in sorted(self.state["stages"].values(), key=lambda s: s["sequence_number"]):
                cat = stage["forecast_category"]
                out.append({"display_value": stage["display_value"], "actual_value": stage["actual_value"],
                            "sequence_number": stage["sequence_number"], "id": stage["id"], "colour_code": None,
                            "type": "used", "forecast_type": stage["forecast_type"],
                            "probability": stage["probability"],
                            "forecast_category": {"name": cat, "id": FORECAST_CATEGORY_IDS[cat]}})
            return out
        if f.get("pipeline"):
            values = [(p["display_value"], p["actual_value"], p["id"]) for p in self.state["pipelines"]]
        elif f.get("currency_list"):
            values = [(c, c, f"{f['id']}{n}") for n, c in enumerate(CURRENCIES)]
        else:
            values = [(v, v, f"{f['id']}{n}") for n, v in enumerate(f.get("values") or [])]
        return [{"display_value": d, "actual_value": a, "sequence_number": n, "id": i, "colour_code": None,
                 "type": "used"} for n, (d, a, i) in enumerate(values, 1)]

    def _field_json(self, module: str, f: dict[str, Any], seq: int) -> dict[str, Any]:
        """A field as GET settings/fields prints it: every property the spec marks required."""
        dtype = f["data_type"]
        ro = bool(f.get("read_only"))
        custom = bool(f.get("custom"))
        lookup = None
        if f.get("lookup"):
            target = f["lookup"]
            lookup = {"display_label": MODULE_LABEL[target], "api_name": None, "id": None,
                      "module": {"api_name": target, "id": MODULE_IDS[target]},
                      "revalidate_filter_during_edit": False, "query_details": {}, "show_fields": []}
        if dtype == "ownerlookup":
            lookup = {"display_label": "Users", "api_name": None, "id": None,
                      "module": {"api_name": "users", "id": None}, "revalidate_filter_during_edit": False,
                      "query_details": {}, "show_fields": []}
        layout = self.state["layouts"][module]
        return {
            "associated_module": None, "data_type": dtype,
            "operation_type": {"web_update": not ro, "api_create": not ro, "web_create": not ro,
                               "api_update": not ro},
            "system_mandatory": bool(f.get("mandatory")), "webhook": True, "blueprint_supported": False,
            "virtual_field": False, "field_read_only": ro, "customizable_properties": [], "read_only": ro,
            "custom_field": custom, "businesscard_supported": True, "filterable": dtype != "subform",
            "visible": True, "available_in_user_layout": True,
            "display_field": f["api_name"] == DISPLAY_FIELD.get(module),
            "pick_list_values_sorted_lexically": False, "sortable": dtype not in ("subform", "textarea"),
            "layout_associations": [{"api_name": "Standard", "name": layout["name"], "id": layout["id"]}],
            "separator": False, "searchable": dtype in TEXTUAL, "enable_colour_code": False, "mass_update": not ro,
            "json_type": JSON_TYPE.get(dtype, "string"), "created_source": "crm" if custom else "default",
            "type": "used", "display_label": f["field_label"],
            "column_name": f"CUSTOMFIELD{seq}" if custom else f["api_name"].upper().replace("_", ""),
            "api_name": f["api_name"], "display_type": -1, "ui_type": UI_TYPE.get(dtype, 1),
            "colour_code_enabled_by_system": False, "length": int(f.get("length") or DEFAULT_LENGTH.get(dtype, 255)),
            "decimal_place": f.get("decimal_place", 2 if dtype == "currency" else None),
            "quick_sequence_number": str(seq),
            "email_parser": {"fields_update_supported": False, "record_operations_supported": False},
            "rollup_summary": None, "refer_from_field": None,
            "created_time": zoho_time(f["created"]) if custom else None, "modified_time": None,
            "show_type": 7, "category": 0, "id": f["id"], "multi_module_lookup": None, "sharing_properties": None,
            "currency": {"rounding_option": "normal", "precision": 2} if dtype == "currency" else None,
            "file_upolad_optionlist": [], "lookup": lookup,
            "profiles": [{"name": "Administrator", "id": PROFILE_ID,
                          "permission_type": "read_only" if ro else "read_write"}],
            "view_type": {"view": True, "edit": not ro, "quick_create": bool(f.get("mandatory")), "create": not ro},
            "unique": {"casesensitive": "false"} if f.get("unique") else None, "sub_module": None,
            "subform": {"module": f["subform"], "id": MODULE_IDS[f["subform"]]} if f.get("subform") else None,
            "external": None,
            "formula": {"return_type": dtype, "expression": f["formula"]} if f.get("formula") else None,
            "convert_mapping": None, "multiselectlookup": None, "multiuserlookup": None, "autonumber": None,
            "auto_number": None,
            "pick_list_values": self._picklist(module, f) if dtype in ("picklist", "multiselectpicklist") else [],
            "crypt": None, "tooltip": None, "history_tracking": None, "association_details": None,
            "allowed_modules": [], "additional_column": None, "field_label": f["field_label"],
            "common.picklist": None, "hipaa_compliance_enabled": False, "hipaa_compliance": None,
            "_update_existing_records": False, "number_separator": dtype in NUMERIC or dtype == "integer",
            "textarea": {"type": "large"} if dtype == "textarea" else None, "static_field": False,
        }

    # -- routes: settings and org ----------------------------------------------------------------
    def _settings_module(self, req: Request) -> str:
        name = req.arg("module")
        if not name:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param_name": "module"})
        for known in (*MODULES, *SUBFORM_MODULES):
            if known.lower() == name.lower():
                return known
        raise zerr(400, "INVALID_MODULE", "the module name given seems to be invalid", {"api_name": "module"})

    @route("GET", API + r"/settings/fields")
    def get_fields(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.fields.ALL", "ZohoCRM.settings.fields.READ"))
        module = self._settings_module(req)
        self._spend(1)
        kind = req.arg("type") or "all"
        if kind not in ("all", "used", "unused"):
            raise zerr(400, "INVALID_DATA", "invalid data",
                       {"api_name": "type", "json_path": "$.type", "expected_data_type": "string"})
        fields = [] if kind == "unused" else self._fields(module)
        if not fields:
            return Response(204, b"")
        return self._json(200, {"fields": [self._field_json(module, f, n) for n, f in enumerate(fields, 1)]})

    @route("POST", API + r"/settings/fields")
    def create_fields(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.fields.ALL",
                              "ZohoCRM.settings.fields.CREATE"))
        module = self._settings_module(req)
        body = self._body(req)
        items = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise zerr(400, "MANDATORY_NOT_FOUND", "required field not found",
                       {"api_name": "fields", "json_path": "$.fields"})
        self._spend(1)
        results: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            path = f"$.fields[{n}]"
            label = item.get("field_label") if isinstance(item, dict) else None
            dtype = item.get("data_type") if isinstance(item, dict) else None
            if not label:
                results.append(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                           {"api_name": "field_label", "json_path": f"{path}.field_label"}))
                continue
            if not dtype:
                results.append(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                           {"api_name": "data_type", "json_path": f"{path}.data_type"}))
                continue
            if dtype not in CREATABLE_TYPES:
                results.append(_invalid("data_type", f"{path}.data_type", "string"))
                continue
            if any(f["field_label"].casefold() == str(label).casefold() for f in self._fields(module)):
                results.append(_item_error("INVALID_DATA", "field label already exists",
                                           {"api_name": "field_label", "json_path": f"{path}.field_label"}))
                continue
            if sum(1 for f in self._fields(module) if f.get("custom")) >= 300:
                results.append(_item_error("LIMIT_EXCEEDED", "custom field limit exceeded",
                                           {"limit": 300, "limit_due_to": [{"api_name": "field_label",
                                                                            "json_path": f"{path}.field_label"}]}))
                continue
            api = base = _api_name(str(label))
            taken = {f["api_name"].casefold() for f in self._fields(module)}
            suffix = 1
            while api.casefold() in taken:
                suffix += 1
                api = f"{base}{suffix}"
            length = item.get("length")
            field = _f(api, str(label), dtype, custom=True, id=self.new_id(), created=int(self.now()))
            if isinstance(length, int) and not isinstance(length, bool):
                field["length"] = length
            if dtype in ("double", "currency", "percent") and isinstance(item.get("decimal_place"), int):
                field["decimal_place"] = item["decimal_place"]
            if dtype in ("picklist", "multiselectpicklist"):
                field["values"] = [str(v.get("actual_value") or v.get("display_value")) for v in
                                   item.get("pick_list_values") or [] if isinstance(v, dict)]
            self._fields(module).append(field)
            results.append({"code": "SUCCESS", "details": {"id": field["id"]}, "message": "field created",
                            "status": "success"})
        self.persist()
        failed = [r for r in results if r["status"] == "error"]
        return self._json(400 if failed and len(failed) == len(results) else 201, {"fields": results})

    @route("GET", API + r"/settings/layouts")
    def get_layouts(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.layouts.ALL",
                              "ZohoCRM.settings.layouts.READ"))
        module = self._settings_module(req)
        self._spend(1)
        layout = self.state["layouts"][module]
        org_created = zoho_time(self.state["org"]["created"])
        user = {"name": self.state["user"]["name"], "id": self.state["user"]["id"]}
        return self._json(200, {"layouts": [{
            "display_type": -1, "api_name": "Standard", "has_more_profiles": False, "created_time": org_created,
            "modified_time": org_created, "visible": True, "source": "crm", "id": layout["id"],
            "name": layout["name"], "display_label": layout["name"], "mode": "primary",
            "subform_properties": {"pinned_column": False}, "status": "active", "show_business_card": True,
            "generated_type": "default", "created_for": None, "convert_mapping": None, "modified_by": user,
            "profiles": [{"default": True, "name": "Administrator", "id": PROFILE_ID,
                          "_default_view": {"name": "Standard", "id": layout["id"], "type": "layout"}}],
            "created_by": user, "sections": [],
            "actions_allowed": {"edit": True, "rename": True, "clone": True, "downgrade": False, "delete": False,
                                "deactivate": False, "set_layout_permissions": True}}]})

    def _pipeline_json(self, pipe: dict[str, Any]) -> dict[str, Any]:
        maps = []
        for seq, sid in enumerate(pipe["maps"], 1):
            stage = self.state["stages"][sid]
            cat = stage["forecast_category"]
            maps.append({"display_value": stage["display_value"], "sequence_number": seq,
                         "forecast_category": {"name": cat, "id": FORECAST_CATEGORY_IDS[cat]},
                         "actual_value": stage["actual_value"], "id": sid, "forecast_type": stage["forecast_type"]})
        return {"display_value": pipe["display_value"], "default": pipe["default"], "maps": maps,
                "actual_value": pipe["actual_value"], "id": pipe["id"], "child_available": False}

    def _layout_param(self, req: Request) -> None:
        layout_id = req.arg("layout_id")
        if not layout_id:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "layout_id"})
        if layout_id != self.state["layouts"]["Deals"]["id"]:
            raise zerr(400, "INVALID_DATA", "invalid data", {"resource_path_index": 0})

    @route("GET", API + r"/settings/pipeline")
    def get_pipelines(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.pipeline.ALL",
                              "ZohoCRM.settings.pipeline.READ"))
        self._layout_param(req)
        self._spend(1)
        return self._json(200, {"pipeline": [self._pipeline_json(p) for p in self.state["pipelines"]]})

    @route("PUT", API + r"/settings/pipeline/(?P<id>\d+)")
    def update_pipeline(self, req: Request) -> Response:
        """Rename the pipeline or its stages (maps with an id), or change a stage's forecast type."""
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.pipeline.ALL",
                              "ZohoCRM.settings.pipeline.UPDATE"))
        self._layout_param(req)
        pipe = next((p for p in self.state["pipelines"] if p["id"] == req.params["id"]), None)
        if pipe is None:
            raise zerr(400, "INVALID_DATA", "invalid data", {"resource_path_index": 1})
        body = self._body(req)
        items = body.get("pipeline") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            raise zerr(400, "MANDATORY_NOT_FOUND", "required field not found",
                       {"api_name": "pipeline", "json_path": "$.pipeline"})
        self._spend(1)
        item = items[0]
        for n, m in enumerate(item.get("maps") or []):
            stage = self.state["stages"].get(str(m.get("id"))) if isinstance(m, dict) else None
            if stage is None or stage["id"] not in pipe["maps"]:
                return self._json(400, {"pipeline": [{"status": "error", "code": "INVALID_DATA",
                                                      "message": "invalid data", "details": {
                                                          "api_name": "id", "json_path": f"$.pipeline[0].maps[{n}].id",
                                                          "expected_data_type": "bigint"}}]})
            for key in ("display_value", "forecast_type"):
                if isinstance(m.get(key), str) and m[key]:
                    stage[key] = m[key]
        if isinstance(item.get("display_value"), str) and item["display_value"]:
            pipe["display_value"] = item["display_value"]
        self.persist()
        return self._json(200, {"pipeline": [{"code": "SUCCESS", "message": "pipeline updated",
                                              "status": "success", "details": {"id": pipe["id"]}}]})

    @route("GET", API + r"/org")
    def get_org(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.org.ALL", "ZohoCRM.org.READ", "ZohoCRM.settings.ALL"))
        self._spend(1)
        org = self.state["org"]
        user = self.state["user"]
        return self._json(200, {"org": [{
            "country": org["country"], "photo_id": None, "city": "Berlin", "description": None, "mc_status": True,
            "gapps_enabled": False, "translation_enabled": False, "street": "Friedrichstraße 68",
            "domain_name": org["domain_name"], "alias": None, "currency": org["currency"], "id": org["id"],
            "state": "BE", "fax": None, "zip": "10117", "employee_count": "12",
            "website": "crossledger-demo.test", "currency_symbol": "€", "mobile": None, "currency_locale": "de_DE",
            "primary_zuid": "71534221", "zia_portal_id": None, "time_zone": org["time_zone"], "zgid": org["id"],
            "country_code": org["country_code"], "deletable_org_account": False,
            "license_details": {"paid_expiry": zoho_time(self.now() + 200 * 86400),
                                "users_license_purchased": self.users, "trial_type": None, "trial_expiry": None,
                                "paid": self.edition != "free", "paid_type": self.edition,
                                "trial_action": "none"},
            "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
            "phone": "+49 30 9018 2000", "company_name": org["company_name"], "privacy_settings": False,
            "primary_email": user["email"], "iso_code": org["currency"], "hipaa_compliance_enabled": False,
            "lite_users_enabled": False, "max_per_page": 200, "ezgid": "d9c6b1a7e0f4", "call_icon": "",
            "oauth_presence": True, "zia_zgid": 0, "checkin_preferences": {"restricted_event_types": None},
            "type": "Production", "created_time": zoho_time(org["created"])}]})

    # -- routes: users and modules --------------------------------------------------------------
    @route("GET", API + r"/users")
    def get_users(self, req: Request) -> Response:
        """The org's users; ``type=CurrentUser`` is the one the token belongs to (here the only user)."""
        self._authorize(req, ("ZohoCRM.users.ALL", "ZohoCRM.users.READ"))
        kind = req.arg("type") or "AllUsers"
        if kind not in USER_TYPES:
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "type"})
        self._spend(1)
        if kind in ("DeactiveUsers", "NotConfirmedUsers"):
            return Response(204, b"")  # the demo org's only user is active and confirmed
        per_page = max(1, min(self._int_param(req, "per_page", 200), 200))
        return self._json(200, {"users": [self._user_json()], "info": {"per_page": per_page, "count": 1,
                                                                        "page": 1, "more_records": False}})

    @route("GET", API + r"/users/(?P<id>\d+)")
    def get_user(self, req: Request) -> Response:
        self._authorize(req, ("ZohoCRM.users.ALL", "ZohoCRM.users.READ"))
        self._spend(1)
        if req.params["id"] != self.state["user"]["id"]:
            raise zerr(400, "INVALID_DATA", "the id given seems to be invalid", {"resource_path_index": 1})
        return self._json(200, {"users": [self._user_json()]})

    def _user_json(self) -> dict[str, Any]:
        user, org = self.state["user"], self.state["org"]
        first, _, last = user["name"].partition(" ")
        created = zoho_time(org["created"])
        me = {"name": user["name"], "id": user["id"]}
        return {
            "id": user["id"], "zuid": org["id"][:4] + user["id"][-4:], "first_name": first, "last_name": last,
            "full_name": user["name"], "email": user["email"], "alias": None, "status": "active", "confirm": True,
            "category": "regular_user", "role": {"name": "CEO", "id": ROLE_ID},
            "profile": {"name": "Administrator", "id": PROFILE_ID}, "country": org["country_code"],
            "country_locale": "de_DE", "locale": "en_GB", "language": "en_GB", "time_zone": org["time_zone"],
            "offset": 3600000, "date_format": "MMM d, yyyy", "time_format": "HH:mm", "decimal_separator": "Comma",
            "number_separator": "Space", "name_format__s": "Salutation,First Name,Last Name",
            "sort_order_preference__s": "First Name,Last Name", "Currency": org["currency"], "phone": None,
            "mobile": None, "fax": None, "website": None, "street": None, "city": None, "state": None, "zip": None,
            "dob": None, "signature": None, "Isonline": True, "microsoft": False, "personal_account": False,
            "sandboxDeveloper": False, "default_tab_group": "0", "created_time": created, "created_by": me,
            "Modified_Time": created, "Modified_By": {**me, "first_name": first, "last_name": last},
            "Reporting_To": None, "status_reason__s": None}

    @route("GET", API + r"/settings/modules")
    def get_modules(self, req: Request) -> Response:
        """The modules the API can reach, as the module list summarises them (detail is in fields/layouts)."""
        self._authorize(req, ("ZohoCRM.settings.ALL", "ZohoCRM.settings.modules.ALL",
                              "ZohoCRM.settings.modules.READ"))
        status = req.arg("status")
        if status is not None and status not in ("visible", "scheduled_for_deletion", "user_hidden",
                                                 "system_hidden"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "status"})
        self._spend(1)
        if status not in (None, "visible"):
            return Response(204, b"")
        user = self.state["user"]
        org_created = zoho_time(self.state["org"]["created"])
        modules = []
        for seq, module in enumerate(MODULES, 1):
            label = MODULE_LABEL[module]
            shown = next((f["id"] for f in self._fields(module) if f["api_name"] == DISPLAY_FIELD[module]), None)
            modules.append({
                "id": MODULE_IDS[module], "api_name": module, "module_name": module, "plural_label": label,
                "singular_label": SINGULAR_LABEL[module], "sequence_number": seq, "status": "visible",
                "visibility": 1, "visible": True, "api_supported": True, "generated_type": "default",
                "creatable": True, "editable": True, "deletable": True, "viewable": True,
                "convertable": False, "quick_create": True, "show_as_tab": True, "presence_sub_menu": False,
                "sub_menu_available": False, "has_more_profiles": False, "common.search_supported": True,
                "feeds_required": False, "triggers_supported": True, "filter_supported": True,
                "isBlueprintSupported": True, "kanban_view_supported": True, "kanban_view": False,
                "chart_view_supported": True, "chart_view": False, "emailTemplate_support": module != "Products",
                "email_parser_supported": False, "inventory_template_supported": False,
                "webform_supported": module != "Products", "scoring_supported": module != "Products",
                "recycle_bin_on_delete": True, "track_current_data": True, "zia_view": False,
                "business_card_field_limit": 5, "per_page": 200, "profile_count": 1, "description": None,
                "web_link": None, "parent_module": {}, "activity_badge": "Disabled",
                "display_field": {"api_name": DISPLAY_FIELD[module], "id": shown},
                "lookup_field_properties": {"fields": [{"sequence_number": 1, "api_name": DISPLAY_FIELD[module],
                                                        "id": shown}]},
                "related_lists": [], "related_list_properties": {"sort_by": None, "fields": [], "sort_order": None},
                "custom_view": None, "default_mapping_fields": [],
                # The list answers these empty: a module's fields and layouts are read from
                # /settings/fields and /settings/layouts.
                "fields": [], "layouts": [], "layout_associations": [],
                "profiles": [{"name": "Administrator", "id": PROFILE_ID}],
                "modified_time": org_created, "modified_by": {"name": user["name"], "id": user["id"]},
                "arguments": [], "$properties": [], "$on_demand_properties": [], "$field_states": [],
                "business_card_fields": [], "search_layout_fields": [], "filter_status": True})
        return self._json(200, {"modules": modules})
