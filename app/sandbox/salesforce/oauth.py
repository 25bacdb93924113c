"""Salesforce imitation: the OAuth web-server flow, sessions, revocation and introspection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    _errors,
)


class OAuth(SandboxPart):
    """The OAuth web-server flow, sessions, revocation and introspection."""

    # -- oauth ------------------------------------------------------------------------------
    @route("GET", r"/services/oauth2/authorize")
    def oauth_authorize(self, req: Request) -> Response:
        if req.arg("response_type") != "code":
            raise self.token_error(400, "unsupported_response_type", "response type not supported")
        return self.authorize_redirect(req)

    @route("POST", r"/services/oauth2/token")
    def oauth_token(self, req: Request) -> Response:
        form = req.form()
        if not form.get("client_id"):
            raise self.token_error(400, "invalid_client_id", "client identifier invalid")
        grant = form.get("grant_type")
        if grant == "authorization_code" and not form.get("client_secret"):
            code = self.state["oauth"]["codes"].get(form.get("code", ""))
            if code is not None and not code.get("challenge"):
                # A public client proves itself with PKCE; without it the secret is required.
                raise self.token_error(400, "invalid_client", "invalid client credentials")
        self._signing_secret = form.get("client_secret")
        try:
            return self.token_endpoint(req)
        finally:
            self._signing_secret = None

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        text = {"code invalid or expired": "authentication failure",
                "redirect_uri mismatch": "redirect_uri must match configuration",
                "code_verifier does not match": "invalid code verifier",
                "refresh token invalid": "expired access/refresh token",
                "refresh token expired": "expired access/refresh token",
                "refresh token has been rotated": "expired access/refresh token",
                "client authentication failed": "client identifier invalid"}.get(description, description)
        if error == "unsupported_grant_type" and not text:
            text = "grant type not supported"
        if error == "invalid_client" and description == "client authentication failed":
            error = "invalid_client_id"
        return HttpError(400, {"error": error, "error_description": text or error})

    def returns_same_refresh(self) -> bool:
        return False  # a refresh answer carries a refresh token only when rotation is on

    def _issue(self, family: dict[str, Any], *, new_refresh: bool) -> dict[str, Any]:
        """Salesforce's token shape: org-prefixed tokens, no expires_in, identity URL and signature."""
        raw = super()._issue(family, new_refresh=new_refresh)
        oauth = self.state["oauth"]
        record = oauth["access"].pop(raw["access_token"])
        access = f"{self.state['org_id'][:15]}!AQ0AQ{secrets.token_urlsafe(72)}"
        fam = family.get("family")
        refresh = None
        if new_refresh:
            rrec = oauth["refresh"].pop(raw["refresh_token"])
            refresh = "5Aep861" + secrets.token_urlsafe(63)
            rrec["family"] = fam = refresh
            oauth["refresh"][refresh] = rrec
        record["family"] = fam
        oauth["access"][access] = record
        body: dict[str, Any] = {"access_token": access}
        if refresh:
            body["refresh_token"] = refresh
        for key in ("signature", "scope", "instance_url", "id", "token_type", "issued_at"):
            body[key] = raw[key]
        return body

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        issued = str(int(self.now() * 1000))
        identity = f"{self.public_url}/id/{self.state['org_id']}/{self.state['user_id']}"
        key = (self._signing_secret or self.consumer_secret).encode()
        signature = base64.b64encode(hmac.new(key, (identity + issued).encode(), hashlib.sha256).digest()).decode()
        scope = " ".join(sorted(set((grant.get("scope") or "api refresh_token").split()), reverse=True))
        return {"signature": signature, "scope": scope, "instance_url": self.public_url, "id": identity,
                "token_type": "Bearer", "issued_at": issued}

    def authenticate(self, req: Request, scheme: str = "Bearer") -> dict[str, Any]:
        record = super().authenticate(req, scheme)
        now = self.now()
        if record["expires"] - now < self.access_ttl / 2:  # activity past half-time extends the session
            record["expires"] = now + self.access_ttl
        return record

    def unauthorized(self, why: str) -> HttpError:
        return HttpError(401, _errors("INVALID_SESSION_ID", "Session expired or invalid"),
                         {"WWW-Authenticate": "Token"})

    @route("POST", r"/services/oauth2/revoke")
    def oauth_revoke(self, req: Request) -> Response:
        token = req.form().get("token") or req.arg("token") or ""
        oauth = self.state["oauth"]
        if token in oauth["refresh"]:
            oauth["refresh"][token]["revoked"] = True
            fam = oauth["refresh"][token].get("family")
            for at in [a for a, rec in oauth["access"].items() if fam and rec.get("family") == fam]:
                del oauth["access"][at]
        elif token in oauth["access"]:
            del oauth["access"][token]
        else:
            raise HttpError(400, {"error": "invalid_token", "error_description": "invalid token"})
        self.persist()
        return Response(200, b"", content_type="text/plain")

    @route("POST", r"/services/oauth2/introspect")
    def oauth_introspect(self, req: Request) -> Response:
        form = req.form()
        if not self.client_from(req, form):
            raise HttpError(401, {"error": "invalid_client", "error_description": "client identifier invalid"})
        token = form.get("token", "")
        oauth = self.state["oauth"]
        now = self.now()
        user = self.record("User", self.state["user_id"])
        if token in oauth["access"] and oauth["access"][token]["expires"] >= now:
            rec = oauth["access"][token]
            body = {"active": True, "scope": rec.get("scope") or "api refresh_token", "client_id": rec["client_id"],
                    "username": user["Username"], "sub": f"{self.public_url}/id/{self.state['org_id']}/{user['Id']}",
                    "token_type": "access_token", "exp": int(rec["expires"]),
                    "iat": int(rec["expires"] - self.access_ttl), "nbf": int(rec["expires"] - self.access_ttl)}
        elif token in oauth["refresh"] and not oauth["refresh"][token].get("revoked"):
            body = {"active": True, "scope": oauth["refresh"][token].get("scope") or "api refresh_token",
                    "client_id": oauth["refresh"][token]["client_id"], "username": user["Username"],
                    "sub": f"{self.public_url}/id/{self.state['org_id']}/{user['Id']}", "token_type": "refresh_token"}
        else:
            body = {"active": False}
        return Response(200, body)
