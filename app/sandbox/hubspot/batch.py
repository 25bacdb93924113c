"""HubSpot imitation: batch read, create, update and archive (100 inputs, 207 partial results)."""

from __future__ import annotations

from typing import Any

from app.sandbox.base import Request, Response, iso
from app.sandbox.hubspot.common import (
    OBJ,
    _invalid_values,
    api,
)
from app.sandbox.parts import SandboxPart


class Batch(SandboxPart):
    """Batch read, create, update and archive (100 inputs, 207 partial results)."""

    # -- objects: batch -----------------------------------------------------------------------
    @api("POST", OBJ + r"/batch/read", scopes=("crm.objects.{type}.read",))
    def batch_read(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        body = self._body(req)
        inputs = self._batch_inputs(body)
        id_property = self._id_property(otype, body.get("idProperty"))
        archived = self._flag(req, "archived")
        props = [p for p in body.get("properties") or [] if isinstance(p, str)]
        results, missing = [], []
        for item in inputs:
            rec = self._find(otype, str(item.get("id") or ""), id_property, archived=archived)
            if rec is None:
                missing.append(str(item.get("id")))
            elif all(r["id"] != rec["id"] for r in results):
                results.append(self._out(otype, rec, props))
        errors = [self._not_found_error(otype, missing)] if missing else []
        return self._batch_response(results, errors, started)

    @api("POST", OBJ + r"/batch/create", scopes=("crm.objects.{type}.write",))
    def batch_create(self, req: Request) -> Response:
        """All or nothing: one invalid input (or a duplicate email) fails the whole request."""
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        inputs = self._batch_inputs(self._body(req))
        pending: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        prepared = [self._prepare_create(otype, item, pending, problems) for item in inputs]
        if problems:
            raise _invalid_values(problems)
        created = [self._create_one(otype, values, links) for values, links in prepared]
        results = [self._out(otype, rec, list(self._values(otype, rec))) for rec in created]
        return self._batch_response(results, [], started, ok_status=201)

    @api("POST", OBJ + r"/batch/update", scopes=("crm.objects.{type}.write",))
    def batch_update(self, req: Request) -> Response:
        """Unknown IDs come back as a 207 partial result; invalid values fail the whole request."""
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        inputs = self._batch_inputs(self._body(req))
        problems: list[dict[str, Any]] = []
        plan: list[tuple[dict[str, Any], dict[str, Any]]] = []
        missing: list[str] = []
        emails: dict[str, str] = {}
        for item in inputs:
            id_property = self._id_property(otype, item.get("idProperty"))
            rec = self._find(otype, str(item.get("id") or ""), id_property)
            if rec is None:
                missing.append(str(item.get("id")))
                continue
            values, bad = self._clean(otype, item.get("properties"), rec)
            problems += bad
            if otype == "contacts" and values.get("email"):
                existing = self._email_owner(values["email"], skip=rec["id"])
                key = values["email"].casefold()
                if existing is None and key in emails and emails[key] != rec["id"]:
                    existing = emails[key]
                if existing:
                    raise self._conflict(existing)
                emails[key] = rec["id"]
            plan.append((rec, values))
        if problems:
            raise _invalid_values(problems)
        results = []
        for rec, values in plan:
            self._update_one(otype, rec, values)
            results.append(self._out(otype, rec, list(self._values(otype, rec))))
        errors = [self._not_found_error(otype, missing)] if missing else []
        return self._batch_response(results, errors, started)

    @api("POST", OBJ + r"/batch/archive", scopes=("crm.objects.{type}.write",))
    def batch_archive(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        for item in self._batch_inputs(self._body(req)):
            rec = self._get(otype, str(item.get("id") or ""))
            if rec is not None:
                self._archive(otype, rec)
        return Response(204)
