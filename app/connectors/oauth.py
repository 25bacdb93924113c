"""OAuth 2.0 authorization-code flow for a desktop app: loopback redirect, state, PKCE.

The loopback listener binds 127.0.0.1 only, serves each connection on its own thread with a short
read timeout (an idle or slow connection never holds up the real callback), checks ``state`` before
anything else (an answer without the right state is turned away, never taken as the outcome), takes
exactly one callback and answers with a page that tells the user they can close the tab.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from app.connectors import hosts
from app.connectors.errors import AuthExpired, ConnectorError, RateLimited, ServerError, TransportError
from app.connectors.tls import tls_context, verify_for
from app.connectors.tokens import Tokens

log = logging.getLogger("crossledger.oauth")


class OAuthError(ConnectorError):
    """A failure of the sign-in flow, with a message a user can act on."""


class ConsentDenied(OAuthError):
    pass


class StateMismatch(OAuthError):
    pass


class CallbackTimeout(OAuthError):
    pass


class PortInUse(OAuthError):
    pass


class AccessTokenRefused(OAuthError):
    """An access token the user pasted failed its first read: it is not saved."""


class SignInCancelled(OAuthError):
    """The person stopped waiting for the sign-in (Cancel in the connect wizard)."""


@dataclass(slots=True)
class OAuthConfig:
    provider: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str | None = None
    scopes: tuple[str, ...] = ()
    pkce: bool = True
    secret_in_basic_auth: bool = False
    extra_authorize: dict[str, str] = field(default_factory=dict)
    scope_separator: str = " "
    # Where the code is exchanged when the callback names the server (Zoho's accounts-server).
    token_url_from_callback: Callable[[dict[str, str]], str | None] | None = None


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(48)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass(slots=True)
class AuthRequest:
    url: str
    state: str
    verifier: str | None
    redirect_uri: str


def build_authorize(config: OAuthConfig, redirect_uri: str, state_prefix: str = "") -> AuthRequest:
    """The authorization URL: always ``state`` and a PKCE S256 challenge (``config.pkce``, on for every
    provider: where a provider ignores PKCE its secret still guards the exchange). ``state_prefix`` tells a
    relay page which loopback port to hand the answer to (``<port>.<random>``)."""
    state = state_prefix + secrets.token_urlsafe(24)
    params = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        **config.extra_authorize,
    }
    if config.scopes:
        params["scope"] = config.scope_separator.join(config.scopes)
    verifier = None
    if config.pkce:
        verifier, challenge = pkce_pair()
        params["code_challenge"] = challenge
        params["code_challenge_method"] = "S256"
    sep = "&" if "?" in config.authorize_url else "?"
    return AuthRequest(config.authorize_url + sep + urllib.parse.urlencode(params), state, verifier, redirect_uri)


_DONE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Crossledger</title></head>"
    "<body style='font-family:sans-serif;margin:4em'><h2>{title}</h2><p>{body}</p></body></html>"
)


class LoopbackListener:
    """Waits for exactly one OAuth callback on 127.0.0.1 that carries the expected ``state``."""

    READ_TIMEOUT = 5.0  # seconds a connection may take to send its request

    def __init__(self, port: int = 0, path: str = "/callback", state: str | None = None) -> None:
        self.path = path
        self.state = state  # set before the user is sent to sign in; None takes the first callback
        self.params: dict[str, str] | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = listener.READ_TIMEOUT

            def do_GET(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                if parsed.path != listener.path:
                    self._page(404, "Not found", "This address is not Crossledger's sign-in page.")
                    return
                params = dict(urllib.parse.parse_qsl(parsed.query))
                expected = listener.state
                if expected is not None and not secrets.compare_digest(params.get("state", ""), expected):
                    # not the answer to our request (a forged or stale link): ignored, we keep waiting
                    self._page(400, "This sign-in link is not for Crossledger's current request",
                               "Return to Crossledger and finish the sign-in it started.")
                    return
                with listener._lock:
                    if listener._event.is_set():
                        self._page(404, "Already signed in", "You can close this tab.")
                        return
                    listener.params = params
                ok = "code" in params
                self._page(200, "You are connected" if ok else "The connection was not made",
                           "You can close this tab and return to Crossledger." if ok
                           else "Return to Crossledger to see what happened and try again.")
                listener._event.set()

            def _page(self, status: int, title: str, body: str) -> None:
                page = _DONE_PAGE.format(title=title, body=body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection that timed out or hung up: nothing to report

        try:
            self._server = Server(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise PortInUse(
                f"Crossledger could not listen on port {port} for the sign-in to come back. "
                "Close the program using that port, or let Crossledger pick a free port.",
            ) from exc
        self.port = self._server.server_address[1]
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="oauth-loopback")
        self._thread.start()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def wait(self, timeout: float, cancel: threading.Event | None = None) -> dict[str, str]:
        try:
            deadline = time.monotonic() + timeout
            while not self._event.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                if cancel is not None and cancel.is_set():
                    raise SignInCancelled("The sign-in was cancelled. Start it again when you are ready.")
                if time.monotonic() >= deadline:
                    break
            if self.params is None:
                raise CallbackTimeout(
                    "The sign-in was not completed in time. Start the connection again and finish "
                    "signing in within the browser window that opens."
                )
            return self.params
        finally:
            self.close()

    def close(self) -> None:
        self._event.set()
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()  # stops taking connections; threads already answering finish on their own
        self._server.server_close()


def check_callback(params: dict[str, str], state: str, provider: str) -> str:
    """The code of a callback; the state is checked first, so an error without it is no one's answer."""
    if not secrets.compare_digest(params.get("state", ""), state):
        raise StateMismatch(
            "The sign-in answer did not match the request Crossledger made, so it was ignored. "
            "Start the connection again.",
            provider=provider,
        )
    if params.get("error"):
        if params["error"] in {"access_denied", "consent_required", "user_denied"}:
            raise ConsentDenied(
                f"Access to {provider} was not granted. Connect again and choose Allow to let "
                "Crossledger read and write your records.",
                provider=provider,
            )
        raise OAuthError(
            f"{provider} refused the sign-in ({params.get('error_description') or params['error']}).",
            provider=provider,
        )
    if "code" not in params:
        raise OAuthError(f"{provider} sent no authorization code. Try connecting again.", provider=provider)
    return params["code"]


def _token_request(
    config: OAuthConfig, data: dict[str, str], transport: httpx.BaseTransport | None
) -> dict[str, Any]:
    data = {**data}
    auth = None
    if config.client_secret and config.secret_in_basic_auth:
        auth = (config.client_id, config.client_secret)
    else:
        data["client_id"] = config.client_id
        if config.client_secret:
            data["client_secret"] = config.client_secret
    renewing = data.get("grant_type") == "refresh_token"
    if not hosts.configured_ok(None, config.token_url):  # the secret and refresh token go nowhere else
        raise hosts.UntrustedHost(
            f"Crossledger will not send the {config.provider} sign-in to {config.token_url}: it is not one of "
            f"{config.provider}'s servers. Reconnect {config.provider} to sign in again.",
            provider=config.provider,
        )
    with httpx.Client(transport=transport, timeout=30, **verify_for(transport)) as http:
        try:
            resp = http.post(config.token_url, data=data, auth=auth, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            if renewing:  # a network problem is never a dead sign-in
                raise TransportError(
                    f"Crossledger could not reach {config.provider} to renew its sign-in. It tries again on the "
                    "next sync; check the internet connection if this keeps happening.",
                    provider=config.provider,
                ) from exc
            raise OAuthError(
                f"Crossledger could not reach {config.provider} to finish signing in. "
                "Check the internet connection and try again.",
                provider=config.provider,
            ) from exc
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if renewing and resp.status_code >= 500:  # the provider's outage is not a reason to reconnect
        raise ServerError(
            f"{config.provider} had a problem on its side ({resp.status_code}) while Crossledger renewed the "
            "sign-in. Nothing needs doing: it tries again on the next sync.",
            provider=config.provider,
            status=resp.status_code,
        )
    if (renewing and resp.status_code < 300 and not (isinstance(body, dict) and "access_token" in body)
            and not (isinstance(body, dict) and body.get("error"))):  # Zoho refuses with 200 {"error": ...}
        # A garbled or cut-off answer to a renewal the provider may have committed: the answer is lost.
        raise TransportError(
            f"{config.provider}'s answer to the sign-in renewal arrived damaged. It tries again on the next sync; "
            "check the internet connection if this keeps happening.",
            provider=config.provider,
            status=resp.status_code,
        )
    if renewing and resp.status_code == 429:
        raise RateLimited(
            f"{config.provider} asked Crossledger to slow down while renewing the sign-in. It tries again shortly.",
            retry_after=_retry_after(resp.headers.get("Retry-After")),
            provider=config.provider,
            status=429,
        )
    if resp.status_code >= 400 or "access_token" not in body:
        err = body.get("error", "") if isinstance(body, dict) else ""
        if err in {"invalid_grant", "invalid_token", "invalid_code"} and renewing:
            raise AuthExpired(
                f"The saved sign-in for {config.provider} is no longer valid. Reconnect to continue.",
                provider=config.provider,
                status=resp.status_code,
            )
        raise OAuthError(
            f"{config.provider} did not accept the sign-in ({err or resp.status_code}). Try connecting again.",
            provider=config.provider,
            status=resp.status_code,
        )
    return body


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def tokens_from(body: dict[str, Any], previous: Tokens | None = None, now: float | None = None) -> Tokens:
    now = time.time() if now is None else now
    expires_in = body.get("expires_in")
    refresh = body.get("refresh_token")
    rotated = refresh is not None and (previous is None or refresh != previous.refresh_token)
    extra = {
        k: v for k, v in body.items() if k not in {"access_token", "refresh_token", "expires_in", "token_type"}
    }
    return Tokens(
        access_token=body["access_token"],
        refresh_token=refresh or (previous.refresh_token if previous else None),
        expires_at=now + float(expires_in) if expires_in else None,
        refresh_issued_at=now if rotated or previous is None else previous.refresh_issued_at,
        client_secret=previous.client_secret if previous else None,
        extra={**(previous.extra if previous else {}), **extra},
    )


def exchange_code(
    config: OAuthConfig, req: AuthRequest, code: str, transport: httpx.BaseTransport | None = None
) -> dict[str, Any]:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri}
    if req.verifier:
        data["code_verifier"] = req.verifier
    return _token_request(config, data, transport)


def refresh_tokens(
    config: OAuthConfig, tokens: Tokens, transport: httpx.BaseTransport | None = None
) -> Tokens:
    grant = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token or ""}
    try:
        body = _token_request(config, grant, transport)
    except (TransportError, ServerError) as lost:
        # The answer may be lost after the provider committed a new pair (dropped connection, timeout, a 5xx
        # from a proxy). Providers that rotate refresh tokens accept the same one again within their grace
        # period, so ask once more at once rather than leave the connection holding a token that may be
        # dead by the next sync. A refusal now (invalid_grant) is the only case that asks to reconnect.
        log.info("%s: the sign-in renewal's answer was lost (%s); asking again", config.provider, type(lost).__name__)
        body = _token_request(config, grant, transport)
    new = tokens_from(body, previous=tokens)
    new.client_secret = tokens.client_secret
    return new


@dataclass(slots=True)
class FlowResult:
    token_body: dict[str, Any]
    callback: dict[str, str]


def run_flow(
    config: OAuthConfig,
    open_url: Callable[[str], Any],
    *,
    timeout: float = 300.0,
    port: int = 0,
    transport: httpx.BaseTransport | None = None,
    cancel: threading.Event | None = None,
    relay_url: str | None = None,
) -> FlowResult:
    """The whole flow: listen, send the user to the provider, take the callback, exchange the code.

    ``cancel`` (set from another thread) stops the wait for the callback with SignInCancelled.
    ``relay_url``: the provider sends the browser to this static https page (QuickBooks production allows no
    loopback address), which hands ``code``, ``state`` and ``realmId`` on to the listener on ``port``; the
    state starts with that port so the page knows where. The listener checks the state all the same.
    """
    listener = LoopbackListener(port)
    if relay_url:
        req = build_authorize(config, relay_url, state_prefix=f"{listener.port}.")
    else:
        req = build_authorize(config, listener.redirect_uri)
    listener.state = req.state  # before the browser is sent there: nothing without it is taken
    try:
        open_url(req.url)
    except Exception:
        listener.close()
        raise
    params = listener.wait(timeout, cancel)
    code = check_callback(params, req.state, config.provider)
    if config.token_url_from_callback and (url := config.token_url_from_callback(params)):
        if not hosts.configured_ok(None, url):
            raise hosts.UntrustedHost(f"The sign-in named a server that is not {config.provider}'s ({url}), so "
                                      "it was refused. Connect again.", provider=config.provider)
        config = replace(config, token_url=url)
    return FlowResult(exchange_code(config, req, code, transport), params)


def follow_redirects_opener(url: str) -> None:
    """The 'browser' for sandboxes and tests: follow the authorize redirect over HTTP."""
    with httpx.Client(follow_redirects=True, timeout=30, verify=tls_context()) as http:
        http.get(url)
