"""HubSpot imitation: the properties API, deal pipelines and account details."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import Request, Response, iso
from app.sandbox.hubspot.common import (
    FIELD_TYPES,
    NAME_RE,
    PIPES,
    PROPERTY_TYPES,
    PROPS,
    _bad_request,
    _now_iso,
    api,
    hs_error,
)
from app.sandbox.parts import SandboxPart


class Schema(SandboxPart):
    """The properties API, deal pipelines and account details."""

    # -- properties ---------------------------------------------------------------------------
    @api("GET", PROPS, scopes=("crm.schemas.{type}.read", "crm.objects.{type}.read"))
    def properties_list(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        archived = self._flag(req, "archived")
        rows = [p for p in self.state["properties"][otype].values() if bool(p.get("archived")) == archived]
        return Response(200, {"results": rows})

    @api("GET", PROPS + r"/(?P<name>[a-z][\w]*)", scopes=("crm.schemas.{type}.read", "crm.objects.{type}.read"))
    def properties_get(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        prop = self.state["properties"][otype].get(req.params["name"])
        if prop is None or prop.get("archived"):
            raise hs_error(404, f"Unable to find property {req.params['name']} for {otype}", "OBJECT_NOT_FOUND")
        return Response(200, prop)

    def _new_property(self, otype: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_request("A property definition must be an object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise _bad_request(f"Missing required fields: {', '.join(missing)}")
        name = str(body["name"])
        if not NAME_RE.match(name) or name.startswith("hs_"):
            raise _bad_request(f"{name} is not a valid property name: use lowercase letters, digits and "
                               "underscores, starting with a letter; the hs_ prefix is reserved")
        if body["type"] not in PROPERTY_TYPES or body["fieldType"] not in FIELD_TYPES:
            raise _bad_request(f"Invalid type/fieldType {body['type']}/{body['fieldType']}")
        if body["type"] == "enumeration" and not body.get("options"):
            raise _bad_request("Enumeration properties need options")
        existing = self.state["properties"][otype].get(name)
        if existing is not None and not existing.get("archived"):
            raise hs_error(409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS",
                           context={"name": [name]})
        options = [self._option(str(o.get("label")), str(o.get("value")), int(o.get("displayOrder") or i))
                   for i, o in enumerate(body.get("options") or [])]
        return self._property(otype, name, str(body["label"]), body["type"], body["fieldType"], options,
                              int(body.get("displayOrder") or len(self.state["properties"][otype])), self._stamp(),
                              hubspot_defined=False, description=str(body.get("description") or ""),
                              unique=bool(body.get("hasUniqueValue")), group=str(body["groupName"]))

    @api("POST", PROPS, scopes=("crm.schemas.{type}.write",))
    def properties_create(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        prop = self._new_property(otype, self._body(req))
        self.state["properties"][otype][prop["name"]] = prop
        return Response(201, prop)

    @api("POST", PROPS + r"/batch/create", scopes=("crm.schemas.{type}.write",))
    def properties_batch_create(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        inputs = self._batch_inputs(self._body(req))
        made = [self._new_property(otype, item) for item in inputs]
        if len({p["name"] for p in made}) != len(made):
            raise _bad_request("Duplicate property names in batch input")
        for prop in made:
            self.state["properties"][otype][prop["name"]] = prop
        return self._batch_response(made, [], started, ok_status=201)

    # -- pipelines ----------------------------------------------------------------------------
    def _pipelines(self, req: Request) -> list[dict[str, Any]]:
        otype = self._type_arg(req)
        if otype != "deals":
            return []
        return self.state["pipelines"]["deals"]

    def _pipeline(self, req: Request) -> dict[str, Any]:
        for pipe in self._pipelines(req):
            if pipe["id"] == req.params["pipeline"]:
                return pipe
        raise hs_error(404, f"Unable to find pipeline {req.params['pipeline']}", "OBJECT_NOT_FOUND")

    @api("GET", PIPES, scopes=("crm.objects.{type}.read",))
    def pipelines_list(self, req: Request) -> Response:
        return Response(200, {"results": [p for p in self._pipelines(req) if not p["archived"]]})

    @api("GET", PIPES + r"/(?P<pipeline>[\w-]+)", scopes=("crm.objects.{type}.read",))
    def pipelines_get(self, req: Request) -> Response:
        return Response(200, self._pipeline(req))

    @api("GET", PIPES + r"/(?P<pipeline>[\w-]+)/stages", scopes=("crm.objects.{type}.read",))
    def pipeline_stages(self, req: Request) -> Response:
        return Response(200, {"results": self._pipeline(req)["stages"]})

    @api("PATCH", PIPES + r"/(?P<pipeline>[\w-]+)/stages/(?P<stage>[\w-]+)", scopes=("crm.objects.{type}.write",))
    def pipeline_stage_update(self, req: Request) -> Response:
        pipe = self._pipeline(req)
        stage = next((s for s in pipe["stages"] if s["id"] == req.params["stage"]), None)
        if stage is None:
            raise hs_error(404, f"Unable to find stage {req.params['stage']}", "OBJECT_NOT_FOUND")
        body = self._body(req)
        if "metadata" in body:
            meta = {k: str(v) for k, v in (body.get("metadata") or {}).items()}
            if "probability" in meta:
                try:
                    prob = Decimal(meta["probability"])
                except InvalidOperation as exc:
                    raise _bad_request("probability must be a number") from exc
                if not 0 <= prob <= 1 or (prob * 10) % 1:
                    raise _bad_request("probability must be between 0.0 and 1.0 in steps of 0.1")
            stage["metadata"] = {**stage["metadata"], **meta}
        for key in ("label", "displayOrder"):
            if key in body:
                stage[key] = body[key]
        stage["updatedAt"] = _now_iso(self._stamp())
        return Response(200, stage)

    # -- account ------------------------------------------------------------------------------
    @api("GET", r"/account-info/(?:v3|2026-03)/details", scopes=("oauth",))
    def account_details(self, req: Request) -> Response:
        portal = self.state["portal"]
        keys = ("portalId", "accountType", "timeZone", "companyCurrency", "additionalCurrencies", "utcOffset",
                "utcOffsetMilliseconds", "uiDomain", "dataHostingLocation")
        return Response(200, {k: portal[k] for k in keys})
