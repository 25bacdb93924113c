"""Connecting a provider account: the OAuth flow, then the provider's own follow-up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.oauth import FlowResult, follow_redirects_opener, run_flow, tokens_from
from app.connectors.tokens import TokenStore


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
) -> Connection:
    """Run the authorization-code flow for ``conn`` and save its tokens to ``tokens``.

    Fills in what the provider tells us on the way (realm, tenant, instance URL, company name).
    """
    config = registry.oauth_config(conn, client_secret)
    flow = run_flow(config, open_url, timeout=timeout, port=port, transport=transport, cancel=cancel)
    saved = tokens_from(flow.token_body)
    saved.client_secret = client_secret
    tokens.save(conn.id, saved)
    registry.finish_connect(conn, flow, tokens, transport)
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
