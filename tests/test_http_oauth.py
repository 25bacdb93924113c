"""The shared HTTP layer and OAuth flow, against a minimal sandbox over real HTTP."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from app.connectors import hosts, registry
from app.connectors.base import Connection
from app.connectors.errors import AuthExpired, RateLimited, ServerError, TransportError
from app.connectors.http import ApiClient, RateLimiter, redact
from app.connectors.oauth import (
    ConsentDenied,
    FlowResult,
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
    params = listener.wait(60)
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


def test_an_answer_checked_whole_on_arrival_is_not_parsed_a_second_time(monkeypatch):
    import json

    app = Echo()
    tokens = MemoryTokenStore()
    tokens.save("c", tokens_from(app.grant_tokens("client-1")))
    api = _client(app, tokens)
    resp = api.request("GET", "/things")  # a read: parsed on arrival, to ask again if it came garbled
    parsed: list[bytes] = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda data, **kw: parsed.append(data) or real(data, **kw))
    assert api.body(resp) == {"things": [1, 2, 3]}
    assert parsed == []  # the connector gets that parse, not another
    assert api.body(resp) == {"things": [1, 2, 3]} and len(parsed) == 1  # asked again: a fresh copy


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


# -- where sign-ins may go: a fixed list of each provider's hosts -----------------------------------------
def _finish_zoho(module, callback: dict, token_body: dict, **conn_kw) -> Connection:
    """finish_connect with a callback and token answer as given; the org lookup then stops (no tokens)."""
    defaults = {"base_url": "https://www.zohoapis.com", "auth_url": "https://accounts.zoho.com"}
    conn = Connection(id="z", provider=module.PROVIDER.name, **{**defaults, **conn_kw})
    with pytest.raises(AuthExpired):
        module.finish_connect(conn, FlowResult(token_body, callback), MemoryTokenStore(),
                              httpx.MockTransport(lambda r: httpx.Response(599)))
    return conn


@pytest.mark.parametrize("provider", ["zohobooks", "zohocrm"])
@pytest.mark.parametrize("dc", hosts.ZOHO_DCS)
def test_every_zoho_data_centre_is_taken_from_the_sign_in(provider, dc):
    conn = _finish_zoho(registry.module(provider), {"accounts-server": f"https://accounts.zoho.{dc}"},
                        {"api_domain": f"https://www.zohoapis.{dc}"})
    assert (conn.base_url, conn.auth_url) == (f"https://www.zohoapis.{dc}", f"https://accounts.zoho.{dc}")


@pytest.mark.parametrize("provider", ["zohobooks", "zohocrm"])
@pytest.mark.parametrize("server", ["https://evil.example", "http://accounts.zoho.eu", "https://accounts.zoho.eu.evil.example",
                                    "https://evil.example/accounts.zoho.com", "http://127.0.0.1:9",
                                    "https://accounts.zoho.evil", "javascript:alert(1)"])
def test_a_foreign_accounts_server_from_the_callback_is_never_used(provider, server):
    conn = _finish_zoho(registry.module(provider), {"accounts-server": server}, {"api_domain": server})
    assert (conn.base_url, conn.auth_url) == ("https://www.zohoapis.com", "https://accounts.zoho.com")


def test_a_sandbox_the_user_configured_may_name_itself_but_no_other_loopback_server():
    mod = registry.module("zohobooks")
    mine = "http://127.0.0.1:8765"
    conn = _finish_zoho(mod, {"accounts-server": mine}, {"api_domain": mine}, base_url=mine, auth_url=mine)
    assert (conn.base_url, conn.auth_url) == (mine, mine)
    conn = _finish_zoho(mod, {"accounts-server": "http://127.0.0.1:9999"}, {"api_domain": "http://localhost:1"},
                        base_url=mine, auth_url=mine)
    assert (conn.base_url, conn.auth_url) == (mine, mine)


@pytest.mark.parametrize(("provider", "field"), [("salesforce", "instance_url"), ("pipedrive", "api_domain")])
def test_an_api_host_outside_the_providers_refuses_the_sign_in(provider, field):
    info = registry.info(provider)
    conn = Connection(id="x", provider=provider, base_url=info.default_base_url, auth_url=info.default_auth_url)
    with pytest.raises(hosts.UntrustedHost) as refused:
        registry.finish_connect(conn, FlowResult({field: "https://evil.example"}, {}), MemoryTokenStore(),
                                httpx.MockTransport(lambda r: httpx.Response(599)))
    assert "evil.example" in refused.value.message and conn.base_url == info.default_base_url


@pytest.mark.parametrize("provider", sorted(hosts.ALLOWED))
def test_configured_addresses_must_be_the_providers_own_or_a_local_sandbox(provider):
    info = registry.info(provider)
    for ok in (info.default_base_url, "http://127.0.0.1:8765", "http://localhost:8000", "http://sandbox.test"):
        conn = Connection(id="x", provider=provider, base_url=ok, auth_url=ok)
        registry.make_connector(conn, MemoryTokenStore()).close()
        assert registry.oauth_config(conn, "s").token_url
    for bad in ("https://evil.example", "http://" + info.default_base_url.removeprefix("https://"),
                info.default_base_url + ".evil.example", "https://10.0.0.5"):
        conn = Connection(id="x", provider=provider, base_url=bad, auth_url=bad)
        with pytest.raises(hosts.UntrustedHost):
            registry.make_connector(conn, MemoryTokenStore())
        with pytest.raises(hosts.UntrustedHost):
            registry.oauth_config(conn, "s")


def test_a_refresh_never_sends_the_secret_to_a_foreign_token_host():
    sent = []
    transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200, json={"access_token": "x"}))
    cfg = OAuthConfig("Zoho Books", "https://evil.example/oauth/v2/auth", "https://evil.example/oauth/v2/token",
                      "client-1", client_secret="s3cret")
    with pytest.raises(hosts.UntrustedHost):
        refresh_tokens(cfg, tokens_from({"access_token": "a", "refresh_token": "r"}), transport)
    assert sent == []


# -- the loopback listener ---------------------------------------------------------------------------------
def test_an_idle_connection_does_not_hold_up_the_real_callback():
    listener = LoopbackListener(state="right")
    idle = socket.create_connection(("127.0.0.1", listener.port))  # connects, never sends a byte
    slow = socket.create_connection(("127.0.0.1", listener.port))
    slow.sendall(b"GET /callback?code=forged&state=right HTTP/1.1\r\n")  # half a request, then silence
    got = {}

    def call():
        got["status"] = httpx.get(listener.redirect_uri + "?code=abc&state=right", timeout=2).status_code

    t = threading.Thread(target=call)
    started = time.monotonic()
    t.start()
    try:
        params = listener.wait(LoopbackListener.READ_TIMEOUT)
    finally:
        t.join()
        idle.close()
        slow.close()
    assert params == {"code": "abc", "state": "right"} and got["status"] == 200
    assert time.monotonic() - started < LoopbackListener.READ_TIMEOUT  # answered beside the idle ones


def test_a_forged_error_without_the_state_is_ignored_and_the_sign_in_goes_on():
    listener = LoopbackListener(state="right")
    forged = [httpx.get(listener.redirect_uri + q, timeout=2).status_code
              for q in ("?error=access_denied", "?error=access_denied&state=wrong", "?code=evil&state=")]
    assert forged == [400, 400, 400]
    assert not listener._event.is_set()  # still waiting for the real answer

    t = threading.Thread(target=lambda: httpx.get(listener.redirect_uri + "?code=abc&state=right", timeout=2))
    t.start()
    params = listener.wait(60)
    t.join()
    assert params["code"] == "abc"


def test_the_state_is_checked_before_the_error():
    with pytest.raises(StateMismatch):
        check_callback({"error": "access_denied"}, "mine", "Echo")
    with pytest.raises(StateMismatch):
        check_callback({"error": "access_denied", "state": "other"}, "mine", "Echo")


def test_a_full_flow_ignores_a_forged_denial_sent_before_the_real_callback():
    app = Echo()
    server = serve(app)
    try:
        def browser(url: str) -> None:
            redirect = httpx.URL(url).params["redirect_uri"]
            assert httpx.get(redirect + "?error=access_denied", timeout=2).status_code == 400  # an attacker first
            follow_redirects_opener(url)

        result = run_flow(config(server.url), browser, timeout=10)
        assert result.token_body["access_token"].startswith("echo-at-")
    finally:
        server.stop()
