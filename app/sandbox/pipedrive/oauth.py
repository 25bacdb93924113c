"""Pipedrive imitation: OAuth (authorize, token with rotating refresh tokens)."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    ERROR_INFO,
)


class OAuth(SandboxPart):
    """OAuth (authorize, token with rotating refresh tokens)."""

    # -- oauth ------------------------------------------------------------------------------
    @route("GET", r"/oauth/authorize")
    def oauth_authorize(self, req: Request) -> Response:
        return self.authorize_redirect(req)

    @route("POST", r"/oauth/token")
    def oauth_token(self, req: Request) -> Response:
        auth = req.header("authorization") or ""
        form = req.form()
        secret = None
        if auth.lower().startswith("basic "):
            try:
                secret = base64.b64decode(auth[6:]).decode().partition(":")[2]
            except ValueError:
                secret = None
        else:
            secret = form.get("client_secret")
        if not secret:
            raise self.token_error(401, "invalid_client", "client is invalid")
        return self.token_endpoint(req)

    def api_token(self) -> str:
        """The user's personal API token (Settings → Personal preferences → API): 40 hex characters that
        never expire; sent as ``x-api-token`` (or the legacy ``api_token`` parameter)."""
        with self.lock:
            token = secrets.token_hex(20)
            self.state["oauth"]["access"][token] = {"client_id": "api-token", "scope": self.app_scopes,
                                                    "expires": self.now() + 100 * 365 * 86400, "api_token": True}
            self.persist()
            return token

    def authenticate(self, req: Request, scheme: str = "Bearer") -> dict[str, Any]:
        """OAuth's Bearer token, or a personal API token in ``x-api-token`` or ``?api_token=``."""
        given = req.header("x-api-token") or req.arg("api_token")
        if not given:
            return super().authenticate(req, scheme)
        record = self.state["oauth"]["access"].get(given)
        if not record or not record.get("api_token"):
            raise self.unauthorized("invalid")
        req.token = record | {"token": given}
        return record

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        messages = {"invalid_client": "Invalid client: client is invalid",
                    "unsupported_grant_type": "Unsupported grant type: grant_type is invalid"}
        message = messages.get(error)
        if message is None:
            if "refresh" in description:
                message = "Invalid grant: refresh_token is invalid"
            elif "expired" in description:
                message = "Invalid grant: authorization_code has expired"
            else:
                message = f"Invalid grant: {description or 'authorization_code is invalid'}"
        return HttpError(status, {"success": False, "error": error, "message": message})

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        return {"token_type": "Bearer", "scope": self.app_scopes, "api_domain": self.public_url}

    def unauthorized(self, why: str) -> HttpError:
        return HttpError(401, {"success": False, "error": "unauthorized access", "errorCode": 401,
                               "error_info": ERROR_INFO})

    def not_found_body(self, req: Request) -> Any:
        return {"success": False, "error": "Unknown method .", "error_info": ERROR_INFO, "data": None,
                "additional_data": None}
