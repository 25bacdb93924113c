"""Zoho Books' side of Zoho Accounts OAuth: its scopes and how it refuses a token."""

from __future__ import annotations

from typing import Any

from app.sandbox.base import HttpError, Request
from app.sandbox.zohobooks.core import ZohoBooksCore
from app.sandbox.zohobooks.shapes import FULL_SCOPE, zerr


class ZohoBooksOAuth(ZohoBooksCore):
    """Token refusals and test grants."""

    # -- oauth ------------------------------------------------------------------------------
    def unauthorized(self, why: str) -> HttpError:
        return zerr(401, 57, "You are not authorized to perform this operation")

    def not_found_body(self, req: Request) -> Any:
        return {"code": 5, "message": "Invalid URL Passed"}

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = FULL_SCOPE) -> dict[str, Any]:
        return super().grant_tokens(client_id, scope)

