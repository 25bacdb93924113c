"""A small WSGI framework the provider imitations share.

Each sandbox keeps its whole state in one JSON-able dict (persisted to a file when asked),
issues and checks OAuth tokens the way its provider does, enforces the provider's rate
limits, and can be told to misbehave through a fault plan.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from app.domain import files


class DropConnection(Exception):
    """Close the connection without an answer (after the handler committed, if it ran)."""


class SimulatedTimeout(Exception):
    """Answer nothing for long enough that the client gives up."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    token: dict[str, Any] | None = None  # the access-token record, once authenticated

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, {"error": "invalid JSON body"}) from exc

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace")))


@dataclass(slots=True)
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, default=str).encode()


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.response = Response(status, body, headers or {})


def route(method: str, pattern: str) -> Callable:
    """Mark a SandboxApp method as the handler of METHOD and a path regex."""

    def mark(fn: Callable) -> Callable:
        fn.__dict__.setdefault("_routes", []).append((method.upper(), pattern))
        return fn

    return mark


@dataclass(slots=True)
class Fault:
    """Fail the ``nth`` request (1-based, counted among requests matching ``match``)."""

    kind: str  # "500" | "429" | "timeout" | "reset_after_commit" | "malformed" | "truncated" | "expire_token"
    nth: int = 1
    match: str = ".*"  # regex on "METHOD /path"
    retry_after: int = 1
    every: int | None = None  # repeat every N matching requests after nth
    seen: int = 0
    fired: int = 0


class SandboxApp:
    """Base of every provider imitation. Subclasses add routes and state."""

    provider = "sandbox"
    access_ttl = 3600
    refresh_ttl: int | None = None
    refresh_rotates = False
    refresh_grace = 0  # seconds an old refresh token stays valid after rotation
    rate_limit: tuple[int, float] | None = None  # (requests, window seconds) per token
    pkce_supported = True

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.state_file = state_file
        self.public_url = "http://sandbox.test"  # set by serve(); used in instance_url / api_domain
        self._clock = clock
        self._offset = 0.0
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.request_log: list[tuple[str, str, int]] = []
        self.exchange_hooks: list[Callable[[Request, Response], None]] = []
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._routes: list[tuple[str, re.Pattern[str], Callable]] = []
        for name in dir(type(self)):
            fn = getattr(type(self), name, None)
            for method, pattern in getattr(fn, "_routes", ()):
                self._routes.append((method, re.compile(pattern + r"/?$"), getattr(self, name)))
        self.state: dict[str, Any] = {}
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as fh:
                self.state = json.load(fh)
        if not self.state:
            self.state = self.empty_state()
        self.state.setdefault("oauth", {"codes": {}, "access": {}, "refresh": {}})

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {}

    def seed(self, kind: str = "demo") -> None:
        """Fill the sandbox with data: 'empty' or 'demo' (provider modules override)."""

    def reseed(self, kind: str, empty: Callable[[], Any], demo: Callable[[], Any]) -> None:
        """Start the data again (sign-ins are kept) with ``empty()`` or ``demo()``, as ``kind`` says."""
        with self.lock:
            oauth = self.state.get("oauth")
            self.state = self.empty_state()
            self.state["oauth"] = oauth or {"codes": {}, "access": {}, "refresh": {}}
            if kind == "empty":
                empty()
            elif kind == "demo":
                demo()
            else:
                raise ValueError(f"unknown seed {kind!r}: use 'empty' or 'demo'")
            self.persist()

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move this sandbox's clock forward (tests of expiry and daily caps)."""
        self._offset += seconds

    def next_id(self, kind: str, start: int = 1) -> int:
        counters = self.state.setdefault("counters", {})
        counters[kind] = counters.get(kind, start - 1) + 1
        return counters[kind]

    def persist(self) -> None:
        if not self.state_file:
            return
        files.write_text(self.state_file, json.dumps(self.state, default=str), durable=False)

    # -- oauth ------------------------------------------------------------------------------
    def authorize_redirect(self, req: Request) -> Response:
        """Approve at once and send the browser back to the loopback URI with code and state."""
        redirect_uri = req.arg("redirect_uri")
        client_id = req.arg("client_id")
        if not redirect_uri or not client_id:
            raise HttpError(400, {"error": "invalid_request", "error_description": "client_id and redirect_uri"})
        host = urllib.parse.urlparse(redirect_uri).hostname
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise HttpError(400, {"error": "invalid_request", "error_description": "redirect_uri not allowed"})
        if not req.arg("state"):  # every provider imitated here expects a state to guard the callback
            raise HttpError(400, {"error": "invalid_request", "error_description": "state is required"})
        challenge = req.arg("code_challenge") if self.pkce_supported else None  # others ignore PKCE
        if challenge and req.arg("code_challenge_method") != "S256":
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "code_challenge_method must be S256"})
        code = secrets.token_urlsafe(24)
        self.state["oauth"]["codes"][code] = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "challenge": challenge,
            "scope": req.arg("scope") or "",
            "expires": self.now() + 300,
        }
        params = {"code": code, **({"state": req.arg("state")} if req.arg("state") else {})}
        params.update(self.callback_extra(req))
        sep = "&" if "?" in redirect_uri else "?"
        self.persist()
        return Response(302, b"", {"Location": redirect_uri + sep + urllib.parse.urlencode(params)})

    def callback_extra(self, req: Request) -> dict[str, str]:
        """Extra parameters the provider adds to the callback (QBO realmId, Zoho location)."""
        return {}

    def test_callback_params(self) -> dict[str, str]:
        """What the OAuth callback would carry besides code and state (for connect_with_grant)."""
        return self.callback_extra(Request("GET", "/", {}, {}, b""))

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        """Extra fields in the token response (Salesforce instance_url, Zoho api_domain)."""
        return {}

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        body = {"error": error}
        if description:
            body["error_description"] = description
        return HttpError(status, body)

    def client_from(self, req: Request, form: dict[str, str]) -> str | None:
        auth = req.header("authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                return None
        return form.get("client_id")

    def token_endpoint(self, req: Request) -> Response:
        form = req.form()
        client_id = self.client_from(req, form)
        if not client_id:
            raise self.token_error(401, "invalid_client", "client authentication failed")
        grant_type = form.get("grant_type")
        oauth = self.state["oauth"]
        now = self.now()
        if grant_type == "authorization_code":
            grant = oauth["codes"].pop(form.get("code", ""), None)
            if not grant or grant["expires"] < now or grant["client_id"] != client_id:
                raise self.token_error(400, "invalid_grant", "code invalid or expired")
            if grant["redirect_uri"] != form.get("redirect_uri"):
                raise self.token_error(400, "invalid_grant", "redirect_uri mismatch")
            if grant.get("challenge"):
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                if digest.decode() != grant["challenge"]:
                    raise self.token_error(400, "invalid_grant", "code_verifier does not match")
            family = {"client_id": client_id, "scope": grant["scope"]}
            body = self._issue(family, new_refresh=True)
        elif grant_type == "refresh_token":
            rt = form.get("refresh_token", "")
            record = oauth["refresh"].get(rt)
            if not record or record["client_id"] != client_id:
                raise self.token_error(400, "invalid_grant", "refresh token invalid")
            if record.get("revoked") or (record.get("expires") and record["expires"] < now):
                raise self.token_error(400, "invalid_grant", "refresh token expired")
            superseded = record.get("superseded_at")
            if record.get("dead") or (superseded is not None and (
                    self.refresh_grace == 0 or now > superseded + self.refresh_grace)):
                raise self.token_error(400, "invalid_grant", "refresh token has been rotated")
            if self.refresh_rotates:
                body = self._rotate(rt, record, now)
            else:
                body = self._issue(record, new_refresh=False)
                body["refresh_token"] = rt if self.returns_same_refresh() else None
                if body["refresh_token"] is None:
                    del body["refresh_token"]
        else:
            raise self.token_error(400, "unsupported_grant_type")
        self.persist()
        return Response(200, body, {"Cache-Control": "no-store"})

    def returns_same_refresh(self) -> bool:
        return True

    def _rotate(self, rt: str, record: dict[str, Any], now: float) -> dict[str, Any]:
        """A new pair for ``record``. Within the grace period the previous refresh token may be sent again
        (its answer was lost): the pair it was exchanged for before is withdrawn, so one live pair remains.
        Once the new refresh token is used, its predecessor is dead even inside the grace period."""
        oauth = self.state["oauth"]
        record.setdefault("superseded_at", now)
        lost = oauth["refresh"].get(record.get("successor") or "")
        if lost is not None:
            lost["revoked"] = True
        parent = oauth["refresh"].get(record.get("predecessor") or "")
        if parent is not None:
            parent["dead"] = True
        body = self._issue(record, new_refresh=True)
        new_rt = body.get("refresh_token")
        if new_rt in oauth["refresh"]:
            record["successor"] = new_rt
            oauth["refresh"][new_rt]["predecessor"] = rt
        return body

    def _issue(self, family: dict[str, Any], *, new_refresh: bool) -> dict[str, Any]:
        now = self.now()
        access = f"{self.provider}-at-{secrets.token_urlsafe(24)}"
        self.state["oauth"]["access"][access] = {
            "client_id": family["client_id"],
            "scope": family.get("scope", ""),
            "expires": now + self.access_ttl,
        }
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": self.access_ttl}
        if new_refresh:
            refresh = f"{self.provider}-rt-{secrets.token_urlsafe(24)}"
            self.state["oauth"]["refresh"][refresh] = {
                "client_id": family["client_id"],
                "scope": family.get("scope", ""),
                "expires": now + self.refresh_ttl if self.refresh_ttl else None,
            }
            body["refresh_token"] = refresh
        body.update(self.token_extra(family))
        return body

    def grant_tokens(self, client_id: str = "crossledger-test", scope: str = "") -> dict[str, Any]:
        """Issue a token set without the browser dance (in-process tests)."""
        with self.lock:
            body = self._issue({"client_id": client_id, "scope": scope}, new_refresh=True)
            self.persist()
            return body

    def revoke_refresh(self, refresh_token: str) -> None:
        rec = self.state["oauth"]["refresh"].get(refresh_token)
        if rec:
            rec["revoked"] = True

    def authenticate(self, req: Request, scheme: str = "Bearer") -> dict[str, Any]:
        auth = req.header("authorization") or ""
        token = auth[len(scheme) + 1 :] if auth.lower().startswith(scheme.lower() + " ") else ""
        record = self.state["oauth"]["access"].get(token)
        if not record:
            raise self.unauthorized("invalid")
        if record["expires"] < self.now():
            raise self.unauthorized("expired")
        req.token = record | {"token": token}
        return record

    def unauthorized(self, why: str) -> HttpError:
        return HttpError(401, {"error": "unauthorized", "reason": why})

    def expire_all_access_tokens(self) -> None:
        for rec in self.state["oauth"]["access"].values():
            rec["expires"] = 0

    # -- limits -----------------------------------------------------------------------------
    def check_rate(self, key: str, limit: int, window: float) -> float | None:
        """Record one request against (key, window); the wait in seconds when over the limit."""
        now = self.now()
        stamps = self._windows[f"{key}:{window}"]
        while stamps and now - stamps[0] >= window:
            stamps.popleft()
        if len(stamps) >= limit:
            return max(0.0, window - (now - stamps[0]))
        stamps.append(now)
        return None

    def scale_limits(self, factor: float) -> None:
        """Raise every rate limit by ``factor`` (benchmarks)."""
        if self.rate_limit:
            self.rate_limit = (int(self.rate_limit[0] * factor), self.rate_limit[1])

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        for method, pattern, handler in self._routes:
            if method != req.method:
                continue
            m = pattern.match(req.path)
            if m:
                req.params = m.groupdict()
                return handler(req)
        raise HttpError(404, self.not_found_body(req))

    def not_found_body(self, req: Request) -> Any:
        return {"error": "not_found", "message": f"No route for {req.method} {req.path}"}

    def _fault_for(self, req: Request) -> Fault | None:
        """Count this request against every matching fault; the first one due fires."""
        label = f"{req.method} {req.path}"
        chosen = None
        for fault in self.faults:
            if not re.search(fault.match, label):
                continue
            fault.seen += 1
            due = fault.seen == fault.nth or (
                fault.every is not None and fault.seen > fault.nth and (fault.seen - fault.nth) % fault.every == 0
            )
            if due and chosen is None:
                fault.fired += 1
                chosen = fault
        return chosen

    def handle(self, req: Request) -> Response:
        with self.lock:
            fault = self._fault_for(req)
            if fault and fault.kind == "500":
                resp = Response(500, {"error": "internal", "message": "simulated failure"})
            elif fault and fault.kind == "429":
                resp = Response(429, {"error": "rate_limited"}, {"Retry-After": str(fault.retry_after)})
            elif fault and fault.kind == "timeout":
                raise SimulatedTimeout()
            else:
                if fault and fault.kind == "expire_token":
                    self.expire_all_access_tokens()
                try:
                    resp = self.dispatch(req)
                except HttpError as err:
                    resp = err.response
                if fault and fault.kind == "reset_after_commit":
                    self.persist()
                    raise DropConnection()
                if fault and fault.kind == "malformed":
                    resp = Response(resp.status, b"{not json", resp.headers)
                if fault and fault.kind == "truncated":
                    resp = Response(resp.status, resp.encode()[: max(1, len(resp.encode()) // 2)], resp.headers)
            self.request_log.append((req.method, req.path, resp.status))
            for hook in self.exchange_hooks:
                hook(req, resp)
            return resp

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        path = environ.get("PATH_INFO", "/")
        if isinstance(path, str):
            path = path.encode("latin-1").decode("utf-8", "replace")
        req = Request(
            method=environ["REQUEST_METHOD"].upper(),
            path=path,
            query=urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
        )
        resp = self.handle(req)
        payload = resp.encode()
        hdrs = [("Content-Length", str(len(payload)))]
        if payload and "Content-Type" not in resp.headers:
            charset = "; charset=utf-8" if "json" in resp.content_type else ""
            hdrs.append(("Content-Type", resp.content_type + charset))
        hdrs += list(resp.headers.items())
        start_response(f"{resp.status} {HTTPStatus(resp.status).phrase}", hdrs)
        return [payload]


def iso(ts: float) -> str:
    """UTC ISO 8601 with milliseconds and Z, the shape most providers use."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
