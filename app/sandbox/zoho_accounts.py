"""Zoho Accounts, the OAuth server Zoho CRM and Zoho Books share (a mixin for their sandboxes).

What both products' sign-ins do, per Zoho's OAuth documentation: the callback names ``location``
and ``accounts-server``; every token answer names ``api_domain``; ``/oauth/v2/token`` takes its
parameters as query string or form; refresh tokens never rotate (a refresh answer carries none);
a bad code or refresh token is answered with HTTP 200 ``{"error": "invalid_code"}``; a refresh
token gives at most 10 access tokens per 10 minutes (then 400 ``Access Denied``); a client holds at
most 20 refresh tokens (the 21st evicts the oldest); ``access_type=online`` gives no refresh token.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from app.sandbox.base import HttpError, Request, Response, SandboxApp, route


class ZohoAccounts(SandboxApp):
    """Mixed in before the product's own class body; the product keeps its API's error shapes."""

    refresh_ttl = None  # refresh tokens live until revoked
    code_ttl = 300  # seconds an authorization code stays good
    refresh_per_token = (10, 600.0)  # access tokens per refresh token per 10 minutes
    refresh_tokens_per_client = 20  # the 21st evicts the oldest

    def callback_extra(self, req: Request) -> dict[str, str]:
        return {"location": "us", "accounts-server": self.public_url}

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        scope = " ".join(p for p in re.split(r"[,\s]+", grant.get("scope") or "") if p)
        return {"api_domain": self.public_url, "token_type": "Bearer", "scope": scope}

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        """Zoho Accounts answers a bad code or refresh token with HTTP 200 and ``{"error": ...}``."""
        zoho = {"invalid_grant": "invalid_code"}.get(error, error)
        if "redirect_uri" in description:
            zoho = "invalid_redirect_uri"
        return HttpError(200, {"error": zoho})

    def returns_same_refresh(self) -> bool:
        return False  # a refresh answer carries no refresh_token at all

    def _issue(self, family: dict[str, Any], *, new_refresh: bool) -> dict[str, Any]:
        body = super()._issue(family, new_refresh=new_refresh)
        oauth = self.state["oauth"]
        if new_refresh:
            parent = body["refresh_token"]
            record = oauth["refresh"][parent]
            record["rt"], record["issued"] = parent, self.now()
            mine = sorted((r.get("issued", 0), t) for t, r in oauth["refresh"].items()
                          if r["client_id"] == family["client_id"] and not r.get("revoked"))
            for _, old in mine[: max(0, len(mine) - self.refresh_tokens_per_client)]:
                self._revoke(old)  # the 21st refresh token silently deletes the oldest
        else:
            parent = family.get("rt")
        oauth["access"][body["access_token"]]["rt"] = parent
        return body

    def _revoke(self, token: str) -> None:
        oauth = self.state["oauth"]
        if token in oauth["refresh"]:
            oauth["refresh"].pop(token)
            for at in [a for a, r in oauth["access"].items() if r.get("rt") == token]:
                oauth["access"].pop(at)
        oauth["access"].pop(token, None)

    @route("GET", r"/oauth/v2/auth")
    def authorize(self, req: Request) -> Response:
        resp = self.authorize_redirect(req)
        code = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)["code"][0]
        grant = self.state["oauth"]["codes"][code]
        grant["access_type"] = req.arg("access_type") or "online"
        grant["expires"] = self.now() + self.code_ttl
        self.persist()
        return resp

    @route("POST", r"/oauth/v2/token")
    def token(self, req: Request) -> Response:
        """Parameters come as query string or form; the client secret is required (a server-based client);
        refresh answers carry no refresh_token."""
        form = {k: v[0] for k, v in req.query.items() if v} | req.form()
        inner = Request(req.method, req.path, {}, req.headers, urllib.parse.urlencode(form).encode())
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code" and not form.get("client_secret"):
            raise self.token_error(200, "invalid_client")  # a server-based client always sends its secret
        offline = True
        if grant_type == "authorization_code":
            pending = self.state["oauth"]["codes"].get(form.get("code", "")) or {}
            offline = pending.get("access_type") == "offline"
        elif grant_type == "refresh_token":
            limit, window = self.refresh_per_token
            if self.check_rate(f"refresh:{form.get('refresh_token', '')}", limit, window) is not None:
                raise HttpError(400, {"error": "Access Denied", "error_description":
                                      "You have made too many requests continuously. Please try again after "
                                      "some time."})
        resp = self.token_endpoint(inner)
        if grant_type == "authorization_code" and not offline and isinstance(resp.body, dict):
            self._revoke(resp.body.pop("refresh_token", ""))  # online access: no refresh token
            self.persist()
        return resp

    @route("POST", r"/oauth/v2/token/revoke")
    def revoke(self, req: Request) -> Response:
        self._revoke(req.arg("token") or req.form().get("token") or "")
        self.persist()
        return Response(200, {"status": "success"})
