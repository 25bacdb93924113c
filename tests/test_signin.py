"""Signing in: PKCE and state on every provider, public clients without a secret, the loopback listener's
state checks, the QuickBooks relay page handing the answer to the listener, and access tokens for one
business (checked by one read before they reach the real Secret Service keyring)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.oauth import AccessTokenRefused, LoopbackListener, OAuthError, build_authorize
from app.connectors.tokens import KeyringTokenStore, MemoryTokenStore
from app.ops.connect import connect, connect_with_token
from app.sandbox.base import Request, Response
from app.sandbox.registry import sandbox_class
from app.sandbox.server import RunningServer, serve

ROOT = Path(__file__).resolve().parent.parent
RELAY_PAGE = ROOT / "packaging" / "relay" / "quickbooks.html"
PROVIDERS = ("hubspot", "salesforce", "pipedrive", "zohocrm", "quickbooks", "xero", "zohobooks")
NEEDS_SECRET = ("hubspot", "pipedrive", "zohocrm", "quickbooks", "zohobooks")


@contextlib.contextmanager
def sandbox(provider: str, seed: str = "demo") -> Iterator[RunningServer]:
    app = sandbox_class(provider)()
    app.seed(seed)
    server = serve(app, timeout_delay=1.0)
    try:
        yield server
    finally:
        server.stop()


def token_requests(server: RunningServer) -> list[tuple[dict[str, str], str]]:
    """Every token-endpoint request the sandbox answers: (form, Authorization header)."""
    seen: list[tuple[dict[str, str], str]] = []

    def hook(req: Request, _resp: Response) -> None:
        if req.method == "POST" and "token" in req.path and "introspect" not in req.path:
            seen.append((req.form() | {k: v[0] for k, v in req.query.items()}, req.header("authorization") or ""))

    server.app.exchange_hooks.append(hook)
    return seen


# -- PKCE and state -----------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_authorization_request_carries_state_and_an_s256_challenge(provider):
    conn = Connection("c", provider, "http://127.0.0.1:9", auth_url="http://127.0.0.1:9", client_id="app")
    request = build_authorize(registry.oauth_config(conn, "secret"), "http://127.0.0.1:47615/callback")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
    assert query["state"] == request.state and len(request.state) >= 32
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert request.verifier and 43 <= len(request.verifier) <= 128


def test_the_sandboxes_refuse_an_authorization_without_state_or_with_a_plain_challenge():
    with sandbox("xero", "empty") as server, httpx.Client(base_url=server.url) as http:
        base = {"response_type": "code", "client_id": "x", "redirect_uri": "http://127.0.0.1:1/cb",
                "code_challenge": "a" * 43}
        missing = http.get("/identity/connect/authorize", params={**base, "code_challenge_method": "S256"})
        plain = http.get("/identity/connect/authorize", params={**base, "state": "s", "code_challenge_method": "plain"})
        good = http.get("/identity/connect/authorize", params={**base, "state": "s", "code_challenge_method": "S256"})
    assert missing.status_code == 400 and plain.status_code == 400
    assert good.status_code == 302 and "state=s" in good.headers["location"]


# -- public clients: Xero and Salesforce send no secret ---------------------------------------------------

@pytest.mark.parametrize("provider", ["xero", "salesforce"])
def test_xero_and_salesforce_sign_in_as_public_clients_with_no_secret_sent(provider):
    with sandbox(provider) as server:
        seen = token_requests(server)
        conn = Connection("pub", provider, server.url, auth_url=server.url, client_id="public-app")
        tokens = MemoryTokenStore()
        connect(conn, tokens, client_secret=None, timeout=20)
        assert conn.label and tokens.load("pub").client_secret is None
        assert seen, "no token request was made"
        for form, authorization in seen:
            assert "client_secret" not in form and not authorization  # no secret, in the body or in Basic
            assert form["client_id"] == "public-app"
        assert seen[0][0]["code_verifier"]  # PKCE proves the app instead


@pytest.mark.parametrize("provider", NEEDS_SECRET)
def test_a_secret_less_token_request_is_refused_where_the_provider_requires_a_secret(provider):
    with sandbox(provider) as server:
        conn = Connection("nosecret", provider, server.url, auth_url=server.url, client_id="app")
        tokens = MemoryTokenStore()
        with pytest.raises(OAuthError):
            connect(conn, tokens, client_secret=None, timeout=20)
        assert tokens.load("nosecret") is None
        connect(Connection("ok", provider, server.url, auth_url=server.url, client_id="app"), tokens,
                client_secret="the-apps-secret", timeout=20)
        assert tokens.load("ok") is not None


def test_a_xero_code_got_without_pkce_is_refused_without_the_secret():
    with sandbox("xero", "empty") as server, httpx.Client(base_url=server.url) as http:
        server.app.state["oauth"]["codes"]["no-pkce"] = {"client_id": "x", "redirect_uri": "http://127.0.0.1:1/cb",
                                                         "challenge": None, "scope": "", "expires": 1e12}
        refused = http.post("/connect/token", data={"grant_type": "authorization_code", "code": "no-pkce",
                                                    "client_id": "x", "redirect_uri": "http://127.0.0.1:1/cb"})
    assert refused.status_code == 400 and refused.json() == {"error": "invalid_client"}


# -- the loopback listener: state, and exactly one answer ---------------------------------------------

def test_a_wrong_or_repeated_state_is_refused_and_the_listener_takes_one_answer():
    listener = LoopbackListener(state="12345.right-state")
    url = listener.redirect_uri
    result: dict[str, dict[str, str]] = {}
    waiting = threading.Thread(target=lambda: result.update(params=listener.wait(10)))
    waiting.start()
    with httpx.Client(timeout=5) as http:
        forged = http.get(url, params={"code": "evil", "state": "12345.wrong-state"})
        assert forged.status_code == 400 and "not for Crossledger" in forged.text
        none = http.get(url, params={"code": "evil"})
        assert none.status_code == 400
        assert waiting.is_alive()  # still waiting for the real answer
        good = http.get(url, params={"code": "real", "state": "12345.right-state", "realmId": "9130"})
        assert good.status_code == 200 and "You are connected" in good.text
        waiting.join(5)
        with contextlib.suppress(httpx.HTTPError):  # the listener has closed: a replay finds nobody, or is refused
            again = http.get(url, params={"code": "replayed", "state": "12345.right-state"})
            assert again.status_code != 200
    assert result["params"] == {"code": "real", "state": "12345.right-state", "realmId": "9130"}


# -- the QuickBooks relay page -------------------------------------------------------------------------

NODE = shutil.which("node") or shutil.which("nodejs")


def run_relay_page(page_url: str) -> str | None:
    """What the relay page does in a browser at ``page_url``: the address it sends the browser on to (its
    own script, run by Node with the browser's ``location``), or None when it shows a message instead."""
    assert NODE, "the relay page's test runs its script with Node.js (apt install nodejs)"
    script = RELAY_PAGE.read_text(encoding="utf-8").split("<script>", 1)[1].split("</script>", 1)[0]
    harness = (
        "const shown = {};\n"
        "globalThis.document = {getElementById: (id) => ({set textContent(v) { shown[id] = v; }})};\n"
        f"globalThis.window = {{location: {{search: {json.dumps(_search(page_url))}, "
        "replace: (to) => { console.log('GO ' + to); }}};\n"
        f"{script}\n"
        "if (shown.title) console.log('SHOWN ' + shown.title);\n"
    )
    out = subprocess.run([NODE, "-e", harness], capture_output=True, text=True, timeout=30, check=True).stdout
    for line in out.splitlines():
        if line.startswith("GO "):
            return line[3:]
    return None


def _search(url: str) -> str:
    query = urllib.parse.urlsplit(url).query
    return "?" + query if query else ""


def test_the_relay_page_hands_code_state_and_realm_to_the_listener():
    listener = LoopbackListener(state=None)
    state = f"{listener.port}.Zx9-state"
    listener.state = state
    page = "https://sign-in.example.org/crossledger/quickbooks.html?" + urllib.parse.urlencode(
        {"code": "AB11", "state": state, "realmId": "9130355551234567"})
    target = run_relay_page(page)
    assert target is not None and target.startswith(f"http://127.0.0.1:{listener.port}/callback?")
    with httpx.Client(timeout=5) as http:
        assert http.get(target).status_code == 200
    assert listener.wait(60) == {"code": "AB11", "state": state, "realmId": "9130355551234567"}
    # without a state the page hands nothing on and says so
    assert run_relay_page("https://sign-in.example.org/crossledger/quickbooks.html?code=AB11") is None
    # an error (the person declined) goes to the listener too, with its state
    target = run_relay_page("https://x.test/q.html?error=access_denied&state=47999.x")
    assert target == "http://127.0.0.1:47999/callback?error=access_denied&state=47999.x"


def static_host(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def relay_browser(url: str) -> None:
    """A browser: follows the provider's redirect to the relay page, fetches it, runs its script, goes on."""
    with httpx.Client(timeout=10) as http:
        page_url = http.get(url).headers["location"]  # QuickBooks sends the browser to the relay page
        assert http.get(page_url.split("?", 1)[0]).status_code == 200  # served by a plain static host
        target = run_relay_page(page_url)
        assert target is not None
        http.get(target)


def test_quickbooks_signs_in_through_the_relay_page_on_a_static_host():
    static, host = static_host(RELAY_PAGE.parent)
    try:
        with sandbox("quickbooks") as server:
            seen = token_requests(server)
            conn = Connection("qbo", "quickbooks", server.url, auth_url=server.url, client_id="prod-app")
            tokens = MemoryTokenStore()
            relay = f"{host}/quickbooks.html"
            connect(conn, tokens, client_secret="prod-secret", open_url=relay_browser, port=0, relay_url=relay,
                    timeout=20)
            assert conn.tenant_id and conn.label  # the realmId came through the page
            assert seen[0][0]["redirect_uri"] == relay  # the registered https page, not the loopback address
    finally:
        static.shutdown()
        static.server_close()


# -- access tokens for one business ---------------------------------------------------------------------

@pytest.fixture
def keyring_tokens(secret_service) -> KeyringTokenStore:
    return KeyringTokenStore(service=f"crossledger-test-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_an_access_token_is_checked_by_one_read_then_saved_and_used(provider, keyring_tokens):
    with sandbox(provider) as server:
        token = server.app.private_app_token() if provider == "hubspot" else server.app.api_token()
        seen: list[Request] = []
        server.app.exchange_hooks.append(lambda req, _resp: seen.append(req))
        conn = Connection(f"{provider}-token", provider, server.url, auth_url=server.url)
        connect_with_token(conn, keyring_tokens, f"  {token}\n", transport=None)
        assert conn.label and conn.tenant_id and conn.extra["auth"] == "access_token"
        saved = keyring_tokens.load(conn.id)
        assert saved is not None and saved.access_token == token and saved.refresh_token is None
        connector = registry.make_connector(conn, keyring_tokens)
        try:
            assert connector.company_name()
            assert list(connector.list_fields("company"))
        finally:
            connector.close()
        api = [r for r in seen if "oauth" not in r.path]
        assert api
        if provider == "pipedrive":  # Pipedrive documents x-api-token for a personal API token
            assert all(r.header("x-api-token") == token and not r.header("authorization") for r in api)
        else:  # HubSpot: a private app's token is a Bearer token
            assert all(r.header("authorization") == f"Bearer {token}" for r in api)


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_an_access_token_that_fails_its_first_read_is_not_saved(provider, keyring_tokens):
    with sandbox(provider) as server:
        conn = Connection(f"{provider}-bad", provider, server.url, auth_url=server.url)
        with pytest.raises(AccessTokenRefused) as caught:
            connect_with_token(conn, keyring_tokens, "pat-na1-not-a-real-token")
        assert "did not accept this access token" in caught.value.message
        assert keyring_tokens.load(conn.id) is None
