"""Zoho CRM imitation: OAuth scopes and the API gate (daily credits, concurrency, 401 bodies)."""

from __future__ import annotations

import email.utils
import json
import re
from decimal import Decimal
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import (
    EDITIONS,
    MODULES,
    SUBFORM_MODULES,
    TOO_MANY,
    dumps,
    zerr,
)


class Limits(SandboxPart):
    """OAuth scopes and the API gate (daily credits, concurrency, 401 bodies)."""

    credit_scale: float  # benchmarks raise the day's credits
    _credit_header: str | None  # X-API-CREDITS-REMAINING for the answer being made

    # -- oauth ------------------------------------------------------------------------------
    def unauthorized(self, why: str) -> HttpError:
        return zerr(401, "INVALID_TOKEN", "invalid oauth token")

    def not_found_body(self, req: Request) -> Any:
        return {"code": "INVALID_URL_PATTERN", "details": {},
                "message": "Please check if the URL trying to access is a correct one", "status": "error"}

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str | None = None) -> dict[str, Any]:
        return super().grant_tokens(client_id, self.full_scope if scope is None else scope)

    # -- the API gate -----------------------------------------------------------------------
    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.credit_scale *= factor

    @property
    def credit_limit(self) -> int:
        base, per_user, cap = EDITIONS[self.edition]
        total = base + per_user * self.users
        if cap is not None:
            total = min(total, cap)
        return int(total * self.credit_scale)

    def handle(self, req: Request) -> Response:
        self._credit_header = None
        resp = super().handle(req)
        resp.headers.setdefault("Date", email.utils.formatdate(self.now(), usegmt=True))
        if self._credit_header is not None:
            resp.headers.setdefault("X-API-CREDITS-REMAINING", self._credit_header)
        return resp

    def _authorize(self, req: Request, scopes: tuple[str, ...], *also: tuple[str, ...]) -> None:
        """Token, then scope: any of ``scopes`` (and any of each ``also`` group) must be granted."""
        if not (req.header("authorization") or "").strip():
            raise zerr(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        record = self.authenticate(req, "Zoho-oauthtoken")
        granted = {s.lower() for s in re.split(r"[,\s]+", record.get("scope") or "") if s}
        for group in (scopes, *also):
            if not granted & {s.lower() for s in group}:
                raise zerr(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")

    def _spend(self, cost: int) -> None:
        """Charge ``cost`` credits against the rolling 24 hours; 429 when they are spent."""
        now = self.now()
        ledger = [e for e in self.state["credits"] if now - e[0] < 86400]
        used = sum(e[1] for e in ledger)
        limit = self.credit_limit
        if used + cost > limit:
            self.state["credits"] = ledger
            self._credit_header = "0"
            raise zerr(429, "TOO_MANY_REQUESTS", TOO_MANY, headers={"X-API-CREDITS-REMAINING": "0"})
        if ledger and int(ledger[-1][0]) // 60 == int(now) // 60:
            ledger[-1][1] += cost
        else:
            ledger.append([now, cost])
        self.state["credits"] = ledger
        used += cost
        if used * 2 >= limit:
            self._credit_header = str(limit - used)

    @staticmethod
    def _module_scopes(module: str, op: str) -> tuple[str, ...]:
        name = (SUBFORM_MODULES.get(module) or module).lower()
        scopes = ["ZohoCRM.modules.ALL", f"ZohoCRM.modules.{name}.ALL", f"ZohoCRM.modules.{name}.{op}"]
        if op == "READ":
            scopes.append("ZohoCRM.modules.READ")
        return tuple(scopes)

    def _module(self, req: Request, name: str | None = None) -> str:
        module = name if name is not None else req.params.get("module", "")
        for known in MODULES:
            if known.lower() == (module or "").lower():
                return known
        raise zerr(400, "INVALID_MODULE", "The module name given seems to be invalid",
                   {"resource_path_index": 0})

    def _json(self, status: int, body: Any) -> Response:
        return Response(status, dumps(body))

    def _body(self, req: Request) -> Any:
        try:
            return json.loads(req.body or b"null", parse_float=Decimal)
        except ValueError:
            raise zerr(400, "INVALID_DATA", "invalid data", {"api_name": "body", "json_path": "$"}) from None
