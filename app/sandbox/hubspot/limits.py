"""HubSpot imitation: the API gate (scopes, the 10-second and search rate limits, 429 bodies) and request parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from app.sandbox.base import Request, Response, iso
from app.sandbox.hubspot.common import (
    ALIASES,
    BATCH_MAX,
    SINGULAR,
    _bad_request,
    hs_error,
)
from app.sandbox.parts import SandboxPart


class Limits(SandboxPart):
    """The API gate (scopes, the 10-second and search rate limits, 429 bodies) and request parsing."""

    # -- the API wrapper ----------------------------------------------------------------------
    def _serve_api(self, req: Request, fn: Callable, scopes: tuple[str, ...], search: bool) -> Response:
        record = self.authenticate(req)
        otype = self._type_arg(req)
        granted = set(self._scopes(record))
        wanted = [s.format(type=otype or "") for s in scopes]
        if wanted and not granted & set(wanted):
            raise hs_error(403, "This app hasn't been granted all required scopes to make this call. Read more "
                                "about required scopes here: https://developers.hubspot.com/scopes.",
                           "MISSING_SCOPES",
                           errors=[{"message": "One or more of the following scopes are required.",
                                    "context": {"requiredGranularScopes": wanted}}],
                           links={"scopes": "https://developers.hubspot.com/scopes"})
        portal = self.state["portal"]["portalId"]
        group = f"publicapi:oauth:{self.app_id}:{portal}"
        headers: dict[str, str] = {}
        if search:
            limit, window = self.search_rate
            if self.check_rate(f"search:{portal}", limit, window) is not None:
                raise hs_error(429, "You have reached your secondly limit.", "RATE_LIMITS", errorType="RATE_LIMIT",
                               policyName="SECONDLY", groupName=f"publicapi:search:{portal}")
        elif self.rate_limit:
            limit, window = self.rate_limit
            if self.check_rate(group, limit, window) is not None:
                raise hs_error(429, "You have reached your ten_secondly_rolling limit.", "RATE_LIMITS",
                               errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING", groupName=group,
                               headers=self._limit_headers(group, limit, window))
            headers = self._limit_headers(group, limit, window)
        resp = fn(self, req)
        resp.headers.update(headers)
        if req.method != "GET":
            self.persist()
        return resp

    def scale_limits(self, factor: float) -> None:
        """Every limit by ``factor``: the 10-second window and search's 5 a second."""
        super().scale_limits(factor)
        self.search_rate = (max(1, int(self.search_rate[0] * factor)), self.search_rate[1])

    def _limit_headers(self, group: str, limit: int, window: float) -> dict[str, str]:
        used = len(self._windows.get(f"{group}:{window}", ()))
        return {"X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, limit - used))}

    @staticmethod
    def _type_name(raw: str | None) -> str | None:
        if raw is None:
            return None
        return ALIASES.get(raw.lower())

    def _type_arg(self, req: Request) -> str | None:
        raw = req.params.get("type") or req.params.get("from")
        if raw is None:
            return None
        otype = self._type_name(raw)
        if otype is None:
            raise _bad_request(f"Unable to infer object type from: {raw}")
        return otype

    @staticmethod
    def _csv(req: Request, name: str) -> list[str]:
        out: list[str] = []
        for value in req.query.get(name, []):
            out += [v.strip() for v in value.split(",") if v.strip()]
        return out

    @staticmethod
    def _flag(req: Request, name: str) -> bool:
        return (req.arg(name) or "false").lower() == "true"

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError as exc:
            raise _bad_request("Invalid input JSON on line 1: the body could not be parsed.") from exc
        if not isinstance(body, dict):
            raise _bad_request("Invalid input JSON: expected an object.")
        return body

    def _batch_inputs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise _bad_request("Invalid input: 'inputs' must be a list of objects.")
        if len(inputs) > BATCH_MAX:
            raise _bad_request(f"Batch input cannot exceed {BATCH_MAX} inputs; {len(inputs)} were sent.",
                               context={"size": [str(len(inputs))]})
        return inputs

    def _batch_response(self, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str, *,
                        ok_status: int = 200) -> Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": iso(self.now())}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response(207, body)
        return Response(ok_status, body)

    @staticmethod
    def _not_found_error(otype: str, ids: list[str]) -> dict[str, Any]:
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {SINGULAR[otype].upper()} objects, they may be deleted or not "
                           "exist. Check that ids are valid.",
                "context": {"ids": ids}, "errors": [], "links": {}}
