"""Connecting a provider account: the OAuth flow (or an access token), then the provider's own follow-up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from app.connectors import errors as cerr
from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.oauth import AccessTokenRefused, FlowResult, follow_redirects_opener, run_flow, tokens_from
from app.connectors.profile import AppRegistration
from app.connectors.tokens import MemoryTokenStore, Tokens, TokenStore


def connect(
    conn: Connection,
    tokens: TokenStore,
    *,
    client_secret: str | None = None,
    open_url: Callable[[str], Any] = follow_redirects_opener,
    timeout: float = 300.0,
    port: int = 0,
    transport: httpx.BaseTransport | None = None,
    cancel: threading.Event | None = None,
    relay_url: str | None = None,
) -> Connection:
    """Run the authorization-code flow for ``conn`` and save its tokens to ``tokens``.

    Fills in what the provider tells us on the way (realm, tenant, instance URL, company name).
    ``relay_url``: the provider's answer comes back through that https page to the listener on ``port``.
    """
    config = registry.oauth_config(conn, client_secret)
    flow = run_flow(config, open_url, timeout=timeout, port=port, transport=transport, cancel=cancel,
                    relay_url=relay_url)
    saved = tokens_from(flow.token_body)
    saved.client_secret = client_secret
    tokens.save(conn.id, saved)
    registry.finish_connect(conn, flow, tokens, transport)
    return conn


def connect_with_app(conn: Connection, tokens: TokenStore, reg: AppRegistration, **kw: Any) -> Connection:
    """Sign in with the distribution profile's app for ``conn.provider`` (the wizard's "Sign in to …" and
    ``crossledger connect`` without --client-id): its client id, its secret only where the provider requires
    one, its registered loopback port, and the relay page when its redirect goes through one. ``kw`` as
    for :func:`connect` (open_url, timeout, transport, cancel)."""
    conn.client_id = reg.client_id
    conn.extra["auth"] = "profile"
    conn.extra["redirect_port"] = reg.port
    relay = reg.relay_url if reg.redirect == "relay" else None
    return connect(conn, tokens, client_secret=reg.client_secret, port=reg.port, relay_url=relay, **kw)


def connect_with_token(conn: Connection, tokens: TokenStore, access_token: str, *,
                       transport: httpx.BaseTransport | None = None) -> Connection:
    """Connect with a token the provider gives one business (a HubSpot private app's access token, a
    Pipedrive personal API token). One read must accept it before it goes to ``tokens``; a token that
    fails it is not saved anywhere."""
    label = registry.info(conn.provider).label
    trial = MemoryTokenStore()  # the read runs against this, never against the keyring
    trial.save(conn.id, Tokens(access_token=access_token.strip(), extra={"kind": "access_token"}))
    try:
        registry.finish_token(conn, trial, transport)
    except (cerr.Unauthorized, cerr.AuthExpired) as exc:
        raise AccessTokenRefused(f"{label} did not accept this access token, so it was not saved.",
                                 provider=conn.provider, status=exc.status) from exc
    except cerr.ConnectorError as exc:
        if exc.status in (401, 403):
            raise AccessTokenRefused(f"{label} did not accept this access token, so it was not saved.",
                                     provider=conn.provider, status=exc.status) from exc
        raise
    saved = trial.load(conn.id)
    assert saved is not None
    tokens.save(conn.id, saved)
    return conn


def connect_with_grant(
    conn: Connection, tokens: TokenStore, token_body: dict[str, Any], callback: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None, client_secret: str | None = None,
) -> Connection:
    """Finish a connection from a token response obtained another way (in-process tests)."""
    saved = tokens_from(token_body)
    saved.client_secret = client_secret
    tokens.save(conn.id, saved)
    registry.finish_connect(conn, FlowResult(token_body, callback or {}), tokens, transport)
    return conn
