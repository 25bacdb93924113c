"""Xero's gate and limits: token, tenant, scope; 5 in flight, 60 a minute, 5,000 a day per organisation."""

from __future__ import annotations

import math
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.xero.core import XeroCore
from app.sandbox.xero.shapes import RATE_BODY, SCOPES, XeroResponse, problem


class XeroLimits(XeroCore):
    """Who may call, and how often."""

    # -- gate: auth, tenant, scope, limits ---------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Count requests in flight per organisation before queueing for the state lock: the sixth at
        once is refused, as Xero refuses it."""
        tid = (req.header("xero-tenant-id") or "").lower()
        if not (tid and req.path.lower().startswith("/api.xro/")):
            return super().handle(req)
        with self._flight:
            busy = self._in_flight[tid] >= self.concurrent_limit
            if not busy:
                self._in_flight[tid] += 1
                self._flight.notify_all()
        if busy:
            resp = self._limited("concurrent", None)
            self.request_log.append((req.method, req.path, resp.status))
            for hook in self.exchange_hooks:
                hook(req, resp)
            return resp
        try:
            return super().handle(req)
        finally:
            with self._flight:
                self._in_flight[tid] -= 1
                self._flight.notify_all()

    def wait_in_flight(self, tenant_id: str, count: int, timeout: float = 5.0) -> bool:
        """Test helper: block until ``count`` requests for the tenant are in flight."""
        with self._flight:
            return self._flight.wait_for(lambda: self._in_flight[tenant_id.lower()] >= count, timeout)

    def dispatch(self, req: Request) -> Response:
        """JSON only when asked for; every answer gets the remaining-limit headers and Decimal numbers."""
        self._tl.limits = None
        api = req.path.lower().startswith("/api.xro/") or req.path.lower().startswith("/connections")
        try:
            if api and "application/json" not in (req.header("accept") or "").lower():
                resp = Response(406, "This sandbox answers JSON only: send Accept: application/json "
                                     "(Xero answers XML without it).", content_type="text/plain")
            else:
                resp = super().dispatch(req)
        except HttpError as err:
            resp = err.response
        if type(resp) is Response and isinstance(resp.body, dict | list):
            resp = XeroResponse(resp.status, resp.body, resp.headers, resp.content_type)
        if self._tl.limits:
            resp.headers.update(self._tl.limits)
        return resp

    def _limited(self, problem_kind: str, wait: float | None) -> Response:
        headers = {"X-Rate-Limit-Problem": problem_kind}
        if wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return Response(429, RATE_BODY, headers, content_type="text/plain")

    def _peek(self, key: str, limit: int, window: float) -> float | None:
        """The wait if ``key`` is over ``limit`` in ``window`` (nothing recorded)."""
        stamps = self._windows[f"{key}:{window}"]
        now = self.now()
        while stamps and now - stamps[0] >= window:
            stamps.popleft()
        return max(0.0, window - (now - stamps[0])) if len(stamps) >= limit else None

    def _count(self, checks: list[tuple[str, str, int, float]]) -> None:
        """Refuse with the first limit that is used up; otherwise count the call against every one."""
        for kind, key, limit, window in checks:
            wait = self._peek(key, limit, window)
            if wait is not None:
                err = HttpError(429, None)
                err.response = self._limited(kind, wait)
                raise err
        for _, key, limit, window in checks:
            self.check_rate(key, limit, window)

    def _remaining(self, key: str, limit: int, window: float) -> str:
        return str(max(0, limit - len(self._windows[f"{key}:{window}"])))

    def _gate(self, req: Request, resource: str) -> dict[str, Any]:
        """Token, organisation, scope, then the limits: the tenant the request is for."""
        record = self.authenticate(req)
        tid = (req.header("xero-tenant-id") or "").strip().lower()
        tenant = self.state["tenants"].get(tid)
        if tenant is None or not tenant["connected"] or tenant["tenantType"] != "ORGANISATION":
            raise HttpError(403, problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        granted = set((record.get("scope") or "").split())
        write, read = SCOPES[resource]
        if not granted & (write if req.method != "GET" else write | read):
            raise HttpError(403, problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        try:
            self._count([("day", f"day:{tid}", self.day_limit, 86400.0),
                         ("minute", f"min:{tid}", self.minute_limit, 60.0),
                         ("appminute", "app", self.app_minute_limit, 60.0)])
        finally:
            self._tl.limits = {"X-DayLimit-Remaining": self._remaining(f"day:{tid}", self.day_limit, 86400.0),
                               "X-MinLimit-Remaining": self._remaining(f"min:{tid}", self.minute_limit, 60.0),
                               "X-AppMinLimit-Remaining": self._remaining("app", self.app_minute_limit, 60.0)}
        return tenant

    def set_daily_usage(self, count: int, tenant_id: str | None = None) -> None:
        """Test helper: pretend ``count`` calls were made in the last moments."""
        tid = (tenant_id or self.default_tenant).lower()
        stamps = self._windows[f"day:{tid}:86400.0"]
        stamps.clear()
        stamps.extend([self.now()] * count)

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.minute_limit = int(self.minute_limit * factor)
        self.day_limit = int(self.day_limit * factor)
        self.app_minute_limit = int(self.app_minute_limit * factor)
        self.concurrent_limit = max(self.concurrent_limit, int(self.concurrent_limit * factor))

