"""Salesforce imitation: the REST gate (sessions, the rolling daily allocation, Sforce-Limit-Info)."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    API_VERSIONS,
    INNER,
    _errors,
    _fail,
    dumps,
)


class Limits(SandboxPart):
    """The REST gate (sessions, the rolling daily allocation, Sforce-Limit-Info)."""

    # -- the REST wrapper --------------------------------------------------------------------
    def not_found_body(self, req: Request) -> Any:
        return _errors("NOT_FOUND", "The requested resource does not exist")

    def _prune_usage(self) -> None:
        current = int(self.now() // 3600)
        self.state["usage"] = {h: n for h, n in self.state["usage"].items() if int(h) > current - 24}

    api_scale = 1.0  # --limits-scale: the daily allocation as a multiple of the edition's

    def scale_limits(self, factor: float) -> None:
        """Every limit by ``factor``: Salesforce's only one is the rolling daily allocation."""
        super().scale_limits(factor)
        self.api_scale *= factor

    def _limit_info(self) -> str:
        used, maximum = self.api_usage()
        return f"api-usage={used}/{maximum}"

    def _serve(self, req: Request, fn: Callable) -> Response:
        inner = req.headers.get(INNER) == self._inner_key
        try:
            if req.params.get("version") not in API_VERSIONS:
                raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
            if not inner:
                self.authenticate(req)
                used, maximum = self.api_usage()
                if used >= maximum:
                    raise _fail(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                hour = str(int(self.now() // 3600))
                self.state["usage"][hour] = self.state["usage"].get(hour, 0) + 1
            self._expire_recycle_bin()
            resp = fn(self, req)
        except HttpError as err:
            resp = err.response
        if inner:
            return resp
        if resp.body is not None and not isinstance(resp.body, bytes | str):
            resp.body = dumps(resp.body)
        resp.headers.setdefault("Sforce-Limit-Info", self._limit_info())
        resp.headers.setdefault("Date", email.utils.formatdate(self.now(), usegmt=True))
        return resp

    def _base(self, req: Request) -> str:
        return f"/services/data/v{req.params['version']}"

    def _body(self, req: Request) -> Any:
        if not req.body:
            return None
        try:
            return json.loads(req.body, parse_float=Decimal)
        except ValueError as exc:
            raise _fail(400, "JSON_PARSER_ERROR", f"Unexpected character: was expecting a JSON value ({exc})") \
                from exc
