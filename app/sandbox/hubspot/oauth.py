"""HubSpot imitation: OAuth (authorize, token, token info, refresh-token deletion) and HubSpot's 401 bodies."""

from __future__ import annotations

import uuid
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.hubspot.common import (
    _correlation,
    hs_error,
)
from app.sandbox.parts import SandboxPart


class OAuth(SandboxPart):
    """OAuth (authorize, token, token info, refresh-token deletion) and HubSpot's 401 bodies."""

    # -- oauth --------------------------------------------------------------------------------
    @route("GET", r"/oauth/authorize")
    def oauth_authorize(self, req: Request) -> Response:
        return self._authorize(req)

    @route("GET", r"/oauth/(?P<hub>\d+)/authorize")
    def oauth_authorize_hub(self, req: Request) -> Response:
        return self._authorize(req)

    def _authorize(self, req: Request) -> Response:
        """Auto-approve; the granted scopes are ``scope`` plus ``optional_scope`` (space-separated)."""
        resp = self.authorize_redirect(req)
        location = resp.headers.get("Location", "")
        code = dict(
            part.split("=", 1) for part in location.split("?", 1)[-1].split("&") if "=" in part).get("code")
        if code and code in self.state["oauth"]["codes"]:
            scopes = (req.arg("scope") or "").split() + (req.arg("optional_scope") or "").split()
            self.state["oauth"]["codes"][code]["scope"] = " ".join(dict.fromkeys(scopes))
            self.persist()
        return resp

    @route("POST", r"/oauth/(?:v1|v3|2026-03)/token")
    def oauth_token(self, req: Request) -> Response:
        form = req.form()
        if not form.get("client_id"):
            raise self.token_error(400, "invalid_client", "missing or unknown client id")
        if not form.get("client_secret"):
            raise self._oauth_error("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
        return self.token_endpoint(req)

    def private_app_token(self) -> str:
        """A private app's access token for this portal, as its Auth tab shows it (``pat-na1-…``): Bearer,
        never expires, no refresh token (what a tester pastes into "Use an access token")."""
        with self.lock:
            token = f"pat-na1-{uuid.uuid4()}"
            self.state["oauth"]["access"][token] = {
                "client_id": "private-app", "scope": " ".join(["oauth", *self.app_scopes.split()]),
                "expires": self.now() + 100 * 365 * 86400, "private_app": True}
            self.persist()
            return token

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        code = {"invalid_client": "BAD_CLIENT_ID", "unsupported_grant_type": "BAD_GRANT_TYPE"}.get(error)
        if code is None:
            text = description.lower()
            code = ("BAD_REDIRECT_URI" if "redirect" in text else "BAD_REFRESH_TOKEN" if "refresh" in text
                    else "BAD_AUTH_CODE")
        return self._oauth_error(code, error, description or error)

    @staticmethod
    def _oauth_error(code: str, error: str, message: str) -> HttpError:
        """HubSpot's OAuth errors keep their ``status`` code and add the OAuth ``error`` fields."""
        return HttpError(400, {"status": code, "message": message, "correlationId": _correlation(),
                               "error": error, "error_description": message})

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        portal = self.state["portal"]
        return {"hub_id": portal["portalId"], "user_id": portal["user_id"], "scopes": self._scopes(grant)}

    def _scopes(self, grant: dict[str, Any]) -> list[str]:
        requested = (grant.get("scope") or "").split()
        return list(dict.fromkeys(["oauth", *(requested or self.app_scopes.split())]))  # oauth is implicit

    def _token_info(self, token: str, record: dict[str, Any]) -> dict[str, Any]:
        portal = self.state["portal"]
        return {"token": token, "user": portal["user"], "hub_domain": portal["hub_domain"],
                "scopes": self._scopes(record), "hub_id": portal["portalId"], "app_id": self.app_id,
                "expires_in": max(0, int(record["expires"] - self.now())), "user_id": portal["user_id"],
                "token_type": "access"}

    @route("GET", r"/oauth/v1/access-tokens/(?P<token>[^/]+)")
    def oauth_access_token_info(self, req: Request) -> Response:
        record = self.state["oauth"]["access"].get(req.params["token"])
        if not record or record["expires"] < self.now():
            raise hs_error(404, "Token not found", "OBJECT_NOT_FOUND")
        return Response(200, self._token_info(req.params["token"], record))

    @route("POST", r"/oauth/(?:v3|2026-03)/token/introspect")
    def oauth_introspect(self, req: Request) -> Response:
        form = req.form()
        if not form.get("client_id") or not form.get("client_secret"):
            raise self._oauth_error("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
        token = form.get("token", "")
        record = self.state["oauth"]["access"].get(token)
        if not record or record["expires"] < self.now():
            return Response(200, {"active": False})
        return Response(200, {**self._token_info(token, record), "active": True, "client_id": record["client_id"],
                              "is_private_distribution": False, "token_use": "access_token"})

    @route("GET", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)")
    def oauth_refresh_info(self, req: Request) -> Response:
        record = self.state["oauth"]["refresh"].get(req.params["token"])
        if not record or record.get("revoked"):
            raise hs_error(404, "Token not found", "OBJECT_NOT_FOUND")
        portal = self.state["portal"]
        return Response(200, {"token": req.params["token"], "user": portal["user"],
                              "hub_domain": portal["hub_domain"], "scopes": self._scopes(record),
                              "hub_id": portal["portalId"], "client_id": record["client_id"],
                              "user_id": portal["user_id"], "token_type": "refresh"})

    @route("DELETE", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)")
    def oauth_refresh_delete(self, req: Request) -> Response:
        self.revoke_refresh(req.params["token"])
        self.persist()
        return Response(204)

    def unauthorized(self, why: str) -> HttpError:
        if why == "expired":
            return hs_error(401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION")
        return hs_error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                             "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                             "oauth-overview", "INVALID_AUTHENTICATION")

    def not_found_body(self, req: Request) -> Any:
        return {"status": "error", "message": f"Unable to find a route for {req.method} {req.path}",
                "correlationId": _correlation(), "category": "OBJECT_NOT_FOUND"}
