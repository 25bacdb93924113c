"""A sign-in renewal whose answer is lost (the connection drops after the provider committed the new pair).

Providers that rotate refresh tokens leave the app holding the old one. Where the provider documents a
grace period for the previous refresh token (Xero: 30 minutes; QuickBooks: a short while), Crossledger
asks again at once with the same token and keeps working; only a definite refusal asks the user to
reconnect. Over real HTTP on 127.0.0.1, with the sandbox's fault injection and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from app.connectors.errors import AuthExpired, TransportError
from app.connectors.tokens import MemoryTokenStore, Tokens
from app.sandbox.base import Fault
from tests.support import over_http

TOKEN_CALL = r"(?i)^POST .*token"  # the token endpoint of every provider (after the sign-in itself)
RECONNECT = "is no longer valid. Reconnect to continue."


class CountingStore(MemoryTokenStore):
    """Counts every token set saved, so a test can tell how many pairs ended up stored."""

    def __init__(self) -> None:
        super().__init__()
        self.saves: list[Tokens] = []

    def save(self, connection_id: str, tokens: Tokens) -> None:
        self.saves.append(tokens)
        super().save(connection_id, tokens)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def api_call(side: Any) -> Any:
    """One ordinary authenticated call to the provider's API."""
    return side.connector.company_name()


def live_refresh_tokens(sandbox: Any) -> list[str]:
    """Refresh tokens the provider would still accept right now."""
    now, grace = sandbox.now(), sandbox.refresh_grace
    return [rt for rt, rec in sandbox.state["oauth"]["refresh"].items()
            if not rec.get("revoked") and not rec.get("dead")
            and ("superseded_at" not in rec or (grace and now <= rec["superseded_at"] + grace))]


@pytest.mark.parametrize(("provider", "kind"), [("xero", "reset_after_commit"), ("quickbooks", "reset_after_commit"),
                                              ("xero", "malformed"), ("quickbooks", "truncated")])
def test_lost_renewal_answer_is_asked_again_at_once_and_one_new_pair_is_stored(provider, kind):
    """The connection drops after the commit, or the committed answer arrives garbled or cut off."""
    tokens = CountingStore()
    with over_http(provider, "demo", tokens=tokens, clock=Clock()) as side:
        api_call(side)
        before = tokens.load(side.conn.id)
        saves_before = len(tokens.saves)
        side.sandbox.faults.append(Fault(kind, nth=1, match=TOKEN_CALL))
        side.sandbox.expire_all_access_tokens()  # the next call has to renew the sign-in

        assert api_call(side)  # works without the user reconnecting

        assert side.sandbox.faults[0].fired == 1  # the renewal's answer really was lost
        token_calls = [r for r in side.sandbox.request_log if "token" in r[1].lower() and r[0] == "POST"]
        assert [s for _, _, s in token_calls[-2:]] == [200, 200]  # committed-and-lost, then asked again
        assert len(tokens.saves) == saves_before + 1  # exactly one new pair stored
        after = tokens.load(side.conn.id)
        assert after.refresh_token != before.refresh_token
        # The provider holds one live pair for the connection: the stored one. The pair whose answer was lost
        # is withdrawn; the old refresh token is inside its grace period only until the new one is used.
        assert after.refresh_token in live_refresh_tokens(side.sandbox)
        assert [rt for rt in live_refresh_tokens(side.sandbox) if rt != before.refresh_token] == [after.refresh_token]
        assert api_call(side)


def test_renewal_lost_twice_is_retried_at_the_next_sync_within_xeros_grace():
    tokens = CountingStore()
    clock = Clock()
    with over_http("xero", "demo", tokens=tokens, clock=clock) as side:
        api_call(side)
        before = tokens.load(side.conn.id)
        side.sandbox.faults.append(Fault("reset_after_commit", nth=1, every=1, match=TOKEN_CALL))
        side.sandbox.expire_all_access_tokens()
        with pytest.raises(TransportError) as lost:
            api_call(side)
        assert "tries again on the next sync" in str(lost.value)
        assert tokens.load(side.conn.id).refresh_token == before.refresh_token  # nothing half-stored
        side.sandbox.faults.clear()
        clock.t += 20 * 60  # the next sync, 20 minutes later: inside Xero's 30-minute grace
        assert api_call(side)
        assert tokens.load(side.conn.id).refresh_token in live_refresh_tokens(side.sandbox)


def test_beyond_the_grace_period_the_user_is_asked_to_reconnect():
    tokens = CountingStore()
    clock = Clock()
    with over_http("xero", "demo", tokens=tokens, clock=clock) as side:
        api_call(side)
        side.sandbox.faults.append(Fault("reset_after_commit", nth=1, every=1, match=TOKEN_CALL))
        side.sandbox.expire_all_access_tokens()
        with pytest.raises(TransportError):
            api_call(side)
        side.sandbox.faults.clear()
        clock.t += 31 * 60  # past Xero's 30 minutes: the old refresh token is dead
        with pytest.raises(AuthExpired) as refused:
            api_call(side)
        assert RECONNECT in str(refused.value)


def test_pipedrive_documents_no_grace_so_a_lost_answer_asks_to_reconnect():
    """Pipedrive documents that an already-exchanged refresh token is refused (reference: pipedrive.md):
    the immediate second ask is refused, and the user is told to reconnect with the usual words."""
    tokens = CountingStore()
    with over_http("pipedrive", "demo", tokens=tokens, clock=Clock()) as side:
        api_call(side)
        before = tokens.load(side.conn.id)
        side.sandbox.faults.append(Fault("reset_after_commit", nth=1, match=TOKEN_CALL))
        side.sandbox.expire_all_access_tokens()
        with pytest.raises(AuthExpired) as refused:
            api_call(side)
        assert RECONNECT in str(refused.value)
        assert tokens.load(side.conn.id).refresh_token == before.refresh_token
