"""Intuit's OAuth server: authorize with realmId, tokens with a client secret, revocation."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.quickbooks.limits import QboLimits
from app.sandbox.quickbooks.schema import SCOPE


class QboOAuth(QboLimits):
    """Intuit's OAuth endpoints and authentication faults."""

    # -- oauth ------------------------------------------------------------------------------
    def callback_extra(self, req: Request) -> dict[str, str]:
        """``realmId`` only comes with the accounting (or payment) scope."""
        scope = req.arg("scope")
        if scope is not None and SCOPE not in scope.split() and "com.intuit.quickbooks.payment" not in scope:
            return {}
        return {"realmId": self.state.get("default_realm") or ""}

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        return {"x_refresh_token_expires_in": self.refresh_ttl}

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        """Intuit's bodies: ``{"error": "invalid_grant", "error_description": "Token invalid"}``."""
        if error == "invalid_grant":
            description = ("Token has been expired or revoked." if "expired" in description or "rotated" in description
                           else "Token invalid")
        elif error == "invalid_client":
            description = "Client authentication failed"
        body = {"error": error, **({"error_description": description} if description else {})}
        return HttpError(status, body, {"intuit_tid": str(uuid.uuid4())})

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = SCOPE) -> dict[str, Any]:
        return super().grant_tokens(client_id, scope)

    @route("GET", r"/connect/oauth2")
    def authorize(self, req: Request) -> Response:
        if req.arg("response_type") != "code":
            raise HttpError(400, {"error": "unsupported_response_type"})
        if not (req.arg("scope") or "").strip():
            raise HttpError(400, {"error": "invalid_scope"})
        return self.authorize_redirect(req)

    @route("POST", r"/oauth2/v1/tokens/bearer")
    def token(self, req: Request) -> Response:
        """Intuit requires the client secret (Basic or form); there is no public-client flow."""
        form = req.form()
        auth = req.header("authorization") or ""
        has_secret = bool(form.get("client_secret"))
        if auth.lower().startswith("basic "):
            import base64

            try:
                has_secret = bool(base64.b64decode(auth[6:]).decode().split(":", 1)[1])
            except (ValueError, IndexError):
                has_secret = False
        if not has_secret:
            raise self.token_error(401, "invalid_client")
        resp = self.token_endpoint(req)
        resp.headers["intuit_tid"] = str(uuid.uuid4())
        return resp

    @route("POST", r"/v2/oauth2/tokens/revoke")
    def revoke(self, req: Request) -> Response:
        """Revoking a refresh token disconnects the app; an access token is simply killed."""
        try:
            token = (json.loads(req.body or b"{}") or {}).get("token", "")
        except ValueError:
            token = ""
        oauth = self.state["oauth"]
        if token in oauth["refresh"]:
            oauth["refresh"][token]["revoked"] = True
            client = oauth["refresh"][token]["client_id"]
            for rec in oauth["access"].values():
                if rec["client_id"] == client:
                    rec["expires"] = 0
        elif token in oauth["access"]:
            oauth["access"][token]["expires"] = 0
        else:
            raise HttpError(400, {"error": "invalid_request"})
        self.persist()
        return Response(200, b"")

    def unauthorized(self, why: str) -> HttpError:
        """QBO's authentication faults use lower-case keys (reference §13, observed)."""
        detail = "Token expired" if why == "expired" else "Token invalid"
        return HttpError(401, {"fault": {"error": [{
            "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "detail": detail, "code": "3200"}], "type": "AUTHENTICATION"}, "time": self.stamp()},
            {"WWW-Authenticate": 'Bearer realm="Intuit"'})

