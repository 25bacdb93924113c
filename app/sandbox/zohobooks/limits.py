"""Zoho Books' gate and limits: token, organisation, 100 a minute and a daily cap by plan, scopes."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from email.utils import formatdate
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.zohobooks.oauth import ZohoBooksOAuth
from app.sandbox.zohobooks.shapes import DAILY_CAPS, zerr


class ZohoBooksLimits(ZohoBooksOAuth):
    """Who may call, and how often."""

    # -- the API gate -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        resp = super().handle(req)
        resp.headers.setdefault("Date", formatdate(self.now(), usegmt=True))
        return resp

    def _gate(self, req: Request, module: str, *, org_required: bool = True) -> str:
        """Auth, organisation, per-minute and daily limits, then scope: in Zoho's order."""
        record = self.authenticate(req, "Zoho-oauthtoken")
        org = req.arg("organization_id")
        if org_required:
            if not org or org not in self.state["orgs"]:
                raise zerr(400, 6041, f"This user is not associated with the CompanyID/CompanyName:{org or ''}.")
            limit, window = self.rate_limit
            if self.check_rate(f"org:{org}", limit, window) is not None:
                raise zerr(429, 45, "You have made too many requests per minute for this organization. "
                                    "Please try again after some time.")
            self._count_daily(org)
        op = {"GET": "READ", "POST": "CREATE", "PUT": "UPDATE", "DELETE": "DELETE"}[req.method]
        granted = set(re.split(r"[,\s]+", record.get("scope") or ""))
        if not granted & {f"ZohoBooks.{module}.{op}", f"ZohoBooks.{module}.ALL"}:
            raise self.unauthorized("scope")
        return org or ""  # (only the organisation-less routes, which ignore it, get "")

    def daily_cap(self, org: str) -> int:
        plan = (self.state["orgs"][org].get("plan_name") or "free").lower()
        return int(DAILY_CAPS.get(plan, 1000) * self.daily_scale)

    def _count_daily(self, org: str) -> None:
        today = self.today(org)
        usage = self.state["usage"].get(org)
        if not usage or usage["date"] != today:
            usage = self.state["usage"][org] = {"date": today, "count": 0}
        if usage["count"] >= self.daily_cap(org):
            raise zerr(429, 45, "You have reached the maximum number of API requests allowed per day for your "
                                "organization. Please try again tomorrow.")
        usage["count"] += 1

    def set_daily_usage(self, count: int, org: str | None = None) -> None:
        """Test helper: pretend ``count`` calls were already made today."""
        org = org or self.state["default_org"]
        self.state["usage"][org] = {"date": self.today(org), "count": count}

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.daily_scale *= factor

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        """JSON body (numbers as Decimal), or the legacy ``JSONString`` form field."""
        raw: bytes | str = req.body
        ctype = (req.header("content-type") or "").lower()
        if "x-www-form-urlencoded" in ctype:
            raw = req.form().get("JSONString", "")
        try:
            body = json.loads(raw or b"{}", parse_float=Decimal)
        except ValueError:
            raise zerr(400, 4, "Invalid value passed for JSONString") from None
        if not isinstance(body, dict):
            raise zerr(400, 4, "Invalid value passed for JSONString")
        return body

