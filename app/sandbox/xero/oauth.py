"""Xero's identity service and the /connections a sign-in reaches."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route
from app.sandbox.xero.limits import XeroLimits
from app.sandbox.xero.shapes import API, FULL_SCOPE, NOT_FOUND_TEXT, XeroResponse, msdate, not_found, problem


class XeroOAuth(XeroLimits):
    """Authorize (PKCE), tokens that rotate, revocation, connections and the organisation."""

    # -- oauth --------------------------------------------------------------------------------
    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        scope = " ".join((grant.get("scope") or "").split())
        extra: dict[str, Any] = {"token_type": "Bearer", "scope": scope}
        if "openid" in scope.split():
            claims = {"iss": self.public_url, "aud": grant.get("client_id"), "sub": grant.get("family", ""),
                      "exp": int(self.now()) + 300}
            part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            extra["id_token"] = f"eyJhbGciOiJSUzI1NiJ9.{part}.c2FuZGJveA"
        return extra

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        """Xero's identity service answers ``{"error": "..."}`` with HTTP 400, and nothing more."""
        return HttpError(400, {"error": error})

    def unauthorized(self, why: str) -> HttpError:
        when = dt.datetime.fromtimestamp(self.now(), dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        detail = f"TokenExpired: token expired at {when}" if why == "expired" else "AuthenticationUnsuccessful"
        return HttpError(401, problem(401, "Unauthorized", detail),
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def not_found_body(self, req: Request) -> Any:
        return NOT_FOUND_TEXT

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = FULL_SCOPE) -> dict[str, Any]:
        return super().grant_tokens(client_id, scope)

    def _issue(self, family: dict[str, Any], *, new_refresh: bool) -> dict[str, Any]:
        """No refresh token without offline_access; every token remembers its sign-in (for revocation)."""
        offline = "offline_access" in (family.get("scope") or "").split()
        fam = family.get("family") or str(uuid.uuid4())
        body = super()._issue({**family, "family": fam}, new_refresh=new_refresh and offline)
        oauth = self.state["oauth"]
        oauth["access"][body["access_token"]]["family"] = fam
        if body.get("refresh_token"):
            oauth["refresh"][body["refresh_token"]]["family"] = fam
        return body

    @route("GET", r"/identity/connect/authorize")
    def authorize(self, req: Request) -> Response:
        """Approves at once. A PKCE app must send an S256 code challenge."""
        if req.arg("response_type") != "code":
            raise HttpError(400, {"error": "unsupported_response_type"})
        if not req.arg("code_challenge") or req.arg("code_challenge_method") != "S256":
            raise HttpError(400, {"error": "invalid_request"})
        return self.authorize_redirect(req)

    @route("POST", r"/connect/token")
    def token(self, req: Request) -> Response:
        """A web app authenticates with Basic; an "Auth code with PKCE" app sends only its client_id and the
        verifier. Rotation: using a new refresh token kills the one it replaced."""
        form = req.form()
        basic = (req.header("authorization") or "").lower().startswith("basic ")
        if form.get("grant_type") == "authorization_code" and not basic:
            grant = self.state["oauth"]["codes"].get(form.get("code", ""))
            if grant is not None and not grant.get("challenge"):  # only a PKCE app goes without its secret
                raise self.token_error(400, "invalid_client")
        old = form.get("refresh_token") if form.get("grant_type") == "refresh_token" else None
        resp = self.token_endpoint(req)
        if old and isinstance(resp.body, dict) and resp.body.get("refresh_token"):
            refresh = self.state["oauth"]["refresh"]
            refresh[resp.body["refresh_token"]]["parent"] = old
            parent = refresh.get(refresh[old].get("parent") or "")
            if parent is not None:
                parent["revoked"] = True
            self.persist()
        return resp

    @route("POST", r"/connect/revocation")
    def revoke(self, req: Request) -> Response:
        """Revoking a refresh token ends its whole sign-in: every token of that family dies."""
        form = req.form()
        if not self.client_from(req, form):
            raise self.token_error(400, "invalid_client")
        oauth = self.state["oauth"]
        record = oauth["refresh"].get(form.get("token", "")) or oauth["access"].get(form.get("token", ""))
        if record is not None:
            fam = record.get("family")
            for rec in oauth["refresh"].values():
                if rec.get("family") == fam:
                    rec["revoked"] = True
            for token in [t for t, rec in oauth["access"].items() if rec.get("family") == fam]:
                oauth["access"].pop(token)
            self.persist()
        return Response(200, b"")

    # -- organisation & connections -------------------------------------------------------------
    @route("GET", r"(?i:/connections)")
    def list_connections(self, req: Request) -> Response:
        self.authenticate(req)
        self._count([("appminute", "app", self.app_minute_limit, 60.0)])
        self._tl.limits = {"X-AppMinLimit-Remaining": self._remaining("app", self.app_minute_limit, 60.0)}
        event = (req.arg("authEventId") or "").lower()
        rows = [self._connection_out(t) for t in self.state["tenants"].values()
                if t["connected"] and (not event or t["authEventId"] == event)]
        return Response(200, rows)

    @staticmethod
    def _iso7(epoch: float) -> str:
        """/connections dates: ISO with seven fraction digits and no zone (UTC)."""
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"

    def _connection_out(self, t: dict[str, Any]) -> dict[str, Any]:
        return {"id": t["connectionId"], "authEventId": t["authEventId"], "tenantId": t["tenantId"],
                "tenantType": t["tenantType"], "tenantName": t["tenantName"],
                "createdDateUtc": self._iso7(t["created"]), "updatedDateUtc": self._iso7(t["updated"])}

    @route("DELETE", r"(?i:/connections/(?P<id>[0-9a-f-]+))")
    def delete_connection(self, req: Request) -> Response:
        self.authenticate(req)
        tenant = next((t for t in self.state["tenants"].values()
                       if t["connectionId"] == req.params["id"].lower() and t["connected"]), None)
        if tenant is None:
            raise not_found()
        tenant["connected"] = False
        self.persist()
        return Response(204, b"")

    @route("GET", rf"(?i:{API}/Organisation)")
    def organisation(self, req: Request) -> Response:
        tenant = self._gate(req, "settings")
        org = {k: v for k, v in tenant["org"].items() if not k.startswith("_")}
        org.update({"Name": tenant["tenantName"], "CreatedDateUTC": msdate(int(tenant["org"]["_created"] * 1000),
                                                                            offset=False),
                    "Addresses": [], "Phones": [], "ExternalLinks": [], "PaymentTerms": {}})
        return XeroResponse(200, self.envelope("Organisations", [org]))

