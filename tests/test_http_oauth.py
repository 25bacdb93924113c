"""The shared HTTP layer and OAuth flow, against a minimal sandbox over real HTTP."""

from __future__ import annotations

import threading

import httpx
import pytest

from app.connectors.errors import AuthExpired, RateLimited, ServerError, TransportError
from app.connectors.http import ApiClient, RateLimiter, redact
from app.connectors.oauth import (
    ConsentDenied,
    LoopbackListener,
    OAuthConfig,
    PortInUse,
    StateMismatch,
    check_callback,
    follow_redirects_opener,
    refresh_tokens,
    run_flow,
    tokens_from,
)
from app.connectors.tokens import MemoryTokenStore
from app.sandbox.base import Fault, Request, Response, SandboxApp, route
from app.sandbox.server import InProcessTransport, serve
from tests.support import no_sleep


class Echo(SandboxApp):
    provider = "echo"
    access_ttl = 1800

    @route("GET", r"/authorize")
    def authorize(self, req: Request) -> Response:
        return self.authorize_redirect(req)

    @route("POST", r"/token")
    def token(self, req: Request) -> Response:
        return self.token_endpoint(req)

    @route("GET", r"/things")
    def things(self, req: Request) -> Response:
        self.authenticate(req)
        return Response(200, {"things": [1, 2, 3]})


def config(url: str) -> OAuthConfig:
    return OAuthConfig("Echo", f"{url}/authorize", f"{url}/token", "client-1", client_secret="s3cret")


def test_full_oauth_flow_over_loopback_with_pkce_and_state():
    app = Echo()
    server = serve(app)
    try:
        result = run_flow(config(server.url), follow_redirects_opener, timeout=10)
        assert result.token_body["access_token"].startswith("echo-at-")
        assert "refresh_token" in result.token_body
    finally:
        server.stop()


def test_wrong_state_and_denied_consent_have_their_own_messages():
    with pytest.raises(StateMismatch):
        check_callback({"code": "c", "state": "other"}, "mine", "Echo")
    with pytest.raises(ConsentDenied) as denied:
        check_callback({"error": "access_denied", "state": "mine"}, "mine", "Echo")
    assert "Allow" in denied.value.message


def test_loopback_listener_binds_loopback_only_and_takes_one_callback():
    listener = LoopbackListener()
    assert listener._server.server_address[0] == "127.0.0.1"
    got = {}

    def call():
        got["first"] = httpx.get(listener.redirect_uri + "?code=abc&state=s").status_code

    t = threading.Thread(target=call)
    t.start()
    params = listener.wait(5)
    t.join()
    assert params == {"code": "abc", "state": "s"} and got["first"] == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(listener.redirect_uri + "?code=second", timeout=1)


def test_a_busy_port_is_reported_plainly():
    first = LoopbackListener()
    try:
        with pytest.raises(PortInUse):
            LoopbackListener(port=first.port)
    finally:
        first.close()


def _client(app: SandboxApp, tokens: MemoryTokenStore, **kw) -> ApiClient:
    cfg = config(app.public_url)
    transport = InProcessTransport(app)
    return ApiClient(provider="Echo", connection_id="c", base_url=app.public_url, tokens=tokens,
                     refresh=lambda t: refresh_tokens(cfg, t, transport), limiter=RateLimiter(100, 1, sleep=no_sleep),
                     transport=transport, sleep=no_sleep, **kw)


def test_expired_access_token_is_refreshed_and_saved_before_use():
    app = Echo()
    tokens = MemoryTokenStore()
    tokens.save("c", tokens_from(app.grant_tokens("client-1")))
    api = _client(app, tokens)
    first = tokens.load("c").access_token
    app.advance(1801)
    assert api.json("GET", "/things") == {"things": [1, 2, 3]}
    assert tokens.load("c").access_token != first


def test_429_and_500_are_retried_then_succeed():
    app = Echo()
    tokens = MemoryTokenStore()
    tokens.save("c", tokens_from(app.grant_tokens("client-1")))
    app.faults += [Fault("429", nth=1, match="GET /things"), Fault("500", nth=2, match="GET /things")]
    api = _client(app, tokens)
    assert api.json("GET", "/things") == {"things": [1, 2, 3]}
    assert [s for _, p, s in app.request_log if p == "/things"] == [429, 500, 200]


def test_persistent_429_becomes_a_typed_error():
    app = Echo()
    tokens = MemoryTokenStore()
    tokens.save("c", tokens_from(app.grant_tokens("client-1")))
    app.faults.append(Fault("429", nth=1, every=1, match="GET /things", retry_after=5))
    with pytest.raises(RateLimited) as info:
        _client(app, tokens, max_retries=2).json("GET", "/things")
    assert info.value.retry_after == 5


def test_a_write_whose_outcome_is_unknown_is_not_blindly_retried():
    app = Echo()
    tokens = MemoryTokenStore()
    tokens.save("c", tokens_from(app.grant_tokens("client-1")))
    app.faults.append(Fault("reset_after_commit", nth=1, match="POST /things"))
    with pytest.raises(TransportError):
        _client(app, tokens).request("POST", "/things", json_body={})


def test_dead_refresh_token_asks_for_a_reconnect():
    app = Echo()
    tokens = MemoryTokenStore()
    saved = tokens_from(app.grant_tokens("client-1"))
    tokens.save("c", saved)
    app.revoke_refresh(saved.refresh_token)
    app.advance(1801)
    with pytest.raises(AuthExpired):
        _client(app, tokens).json("GET", "/things")


def test_an_outage_at_the_token_endpoint_is_not_a_dead_sign_in():
    app = Echo()
    tokens = MemoryTokenStore()
    saved = tokens_from(app.grant_tokens("client-1"))
    tokens.save("c", saved)
    app.advance(1801)
    app.faults.append(Fault("500", nth=1, every=1, match="POST /token"))
    with pytest.raises(ServerError) as info:
        _client(app, tokens).json("GET", "/things")
    assert not isinstance(info.value, AuthExpired)
    assert "tries again on the next sync" in str(info.value)
    assert tokens.load("c").refresh_token == saved.refresh_token  # nothing lost: the next sync renews it
    app.faults.clear()
    assert _client(app, tokens).json("GET", "/things") == {"things": [1, 2, 3]}


def test_a_throttled_renewal_is_a_rate_limit_with_its_wait():
    app = Echo()
    tokens = MemoryTokenStore()
    tokens.save("c", tokens_from(app.grant_tokens("client-1")))
    app.advance(1801)
    app.faults.append(Fault("429", nth=1, every=1, match="POST /token", retry_after=7))
    with pytest.raises(RateLimited) as info:
        _client(app, tokens).json("GET", "/things")
    assert info.value.retry_after == 7


def test_redaction_removes_tokens_from_log_lines():
    line = redact('Authorization: Bearer abc.def {"access_token": "xyz", "refresh_token":"r1"} code=123&x=1')
    assert "abc.def" not in line and "xyz" not in line and "r1" not in line and "123" not in line
