"""Token safety on every provider: a rotated refresh token reaches the keyring before the new access
token is used; a crash between the provider's refresh and our save leaves a working connection
within the provider's grace rules, or a clear "reconnect"; concurrent refreshes are serialised."""

from __future__ import annotations

import threading

import pytest

from app.connectors import registry
from app.connectors.errors import AuthExpired
from tests.support import in_process

PROVIDERS = sorted(registry.available("crm") + registry.available("accounting"))


def _call(c) -> None:
    """One real API request."""
    if hasattr(c.connector, "read_customers"):
        c.connector.read_customers(None)
    else:
        c.connector.read_records("company", None)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_new_tokens_are_saved_before_they_are_used(provider):
    c = in_process(provider, "demo")
    before = c.tokens.load(c.conn.id)
    seen: list[str] = []
    real_save = c.tokens.save

    def save(cid, tokens):
        seen.append("save")
        real_save(cid, tokens)

    c.tokens.save = save
    c.sandbox.exchange_hooks.append(lambda req, resp: seen.append(
        "use-new" if req.headers.get("authorization", "").endswith(
            getattr(c.tokens.load(c.conn.id), "access_token", "")) and "save" in seen else "request"))
    c.sandbox.advance(c.sandbox.access_ttl + 1)
    _call(c)
    after = c.tokens.load(c.conn.id)
    assert after.access_token != before.access_token
    assert seen.index("save") < seen.index("use-new")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_crash_between_refresh_and_save_keeps_the_connection_or_asks_to_reconnect(provider):
    c = in_process(provider, "demo")
    saved = c.tokens.load(c.conn.id)
    c.connector.api.refresh_fn(saved)  # the provider refreshed (and maybe rotated); we died before saving
    c.sandbox.advance(60)  # restarted a minute later; the access token we kept no longer works
    c.sandbox.expire_all_access_tokens()
    rotates = getattr(c.sandbox, "refresh_rotates", False)
    grace = getattr(c.sandbox, "refresh_grace", 0)
    if not rotates or grace > 0:
        _call(c)  # the old refresh token still works (not rotated, or within the grace period)
        assert c.tokens.load(c.conn.id).access_token != saved.access_token
    else:
        with pytest.raises(AuthExpired) as err:
            _call(c)
        assert "Reconnect" in err.value.message or "reconnect" in err.value.message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_concurrent_refreshes_of_one_connection_make_one_refresh(provider):
    c = in_process(provider, "demo")
    c.sandbox.advance(c.sandbox.access_ttl + 1)
    token_calls = []
    c.sandbox.exchange_hooks.append(lambda req, resp: token_calls.append(1) if "token" in req.path and
                                    req.method == "POST" and "revoke" not in req.path else None)
    stale = c.tokens.load(c.conn.id).access_token
    threads = [threading.Thread(target=c.connector.api.refresh, kwargs={"stale": stale}) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(token_calls) == 1
