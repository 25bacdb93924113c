"""Pipedrive imitation: the token budget (daily and burst), 429 answers and the API gate."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    _err,
)


class Limits(SandboxPart):
    """The token budget (daily and burst), 429 answers and the API gate."""

    # -- limits and the api wrapper ---------------------------------------------------------
    def _serve_api(self, req: Request, fn: Callable, cost: int, scopes: tuple[str, ...], search: bool) -> Response:
        self.authenticate(req)
        key = req.token["token"] if req.token else "anon"
        granted = set(self.app_scopes.split(","))
        if scopes and not granted & set(scopes):
            raise _err(403, "Scope and URL mismatch")
        budget = self.state["budget"]
        now = self.now()
        today = dt.datetime.fromtimestamp(now, tz=dt.UTC).date()
        if budget.get("day") != today.isoformat():
            budget.update(day=today.isoformat(), used=0)
        if budget["used"] + cost > self.daily_budget:
            midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp()
            raise self._too_many(max(1, math.ceil(midnight - now)))
        wait = self.check_rate(f"burst:{key}", self.burst_limit, self.burst_window)
        if wait is None and search:
            wait = self.check_rate(f"search:{key}", self.search_limit, self.burst_window)
        if wait is not None:
            raise self._too_many(max(1, math.ceil(wait)))
        budget["used"] += cost
        try:
            resp = fn(self, req)
        except HttpError as err:
            resp = err.response
        resp.headers.update(self._limit_headers(key))
        return resp

    def _limit_headers(self, key: str) -> dict[str, str]:
        stamps = self._windows[f"burst:{key}:{self.burst_window}"]
        reset = self.burst_window - (self.now() - stamps[0]) if stamps else self.burst_window
        return {"x-ratelimit-limit": str(self.burst_limit),
                "x-ratelimit-remaining": str(max(0, self.burst_limit - len(stamps))),
                "x-ratelimit-reset": str(max(1, math.ceil(reset)))}

    def _too_many(self, retry_after: int) -> HttpError:
        return _err(429, "Request over limit", headers={
            "Retry-After": str(retry_after), "x-ratelimit-limit": str(self.burst_limit),
            "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(retry_after)})

    def scale_limits(self, factor: float) -> None:
        """Every limit by ``factor``: the daily token budget, the 2-second burst and search windows."""
        super().scale_limits(factor)
        self.base_tokens = max(1, int(self.base_tokens * factor))
        self.burst_limit = max(1, int(self.burst_limit * factor))
        self.search_limit = max(1, int(self.search_limit * factor))

    def tokens_used_today(self) -> int:
        return int(self.state["budget"]["used"])
