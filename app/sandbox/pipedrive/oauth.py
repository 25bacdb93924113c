"""Pipedrive imitation: OAuth (authorize, token with rotating refresh tokens)."""

from __future__ import annotations

import base64
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
