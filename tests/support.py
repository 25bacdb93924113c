"""Helpers shared by the tests: sandboxes in-process or over HTTP, connected connectors."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.tokens import MemoryTokenStore, TokenStore
from app.domain.clock import FakeClock
from app.ops.connect import connect, connect_with_grant
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport, serve


def no_sleep(_seconds: float) -> None:
    """Injected instead of time.sleep so retries and rate limits cost no wall time."""


@dataclass
class Connected:
    sandbox: Any
    conn: Connection
    tokens: TokenStore
    connector: Any
    url: str


def in_process(provider: str, seed: str | None = "empty", tokens: TokenStore | None = None,
               **sandbox_kw: Any) -> Connected:
    """A sandbox reached through httpx's WSGI transport, and a connector wired to it (``seed=None``: the
    sandbox keeps what its ``state_file`` holds)."""
    sandbox = sandbox_class(provider)(**sandbox_kw)
    if seed is not None:
        sandbox.seed(seed)
    transport = InProcessTransport(sandbox)
    tokens = tokens or MemoryTokenStore()
    conn = Connection(id=f"{provider}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=sandbox.public_url,
                      auth_url=sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), sandbox.test_callback_params(),
                       transport=transport, client_secret="sandbox-secret")
    # In-process, waiting is moving the sandbox's clock: a Retry-After is honoured at no wall time.
    connector = registry.make_connector(conn, tokens, transport=transport, sleep=sandbox.advance)
    return Connected(sandbox, conn, tokens, connector, sandbox.public_url)


@contextlib.contextmanager
def over_http(provider: str, seed: str = "empty", tokens: TokenStore | None = None,
              **sandbox_kw: Any) -> Iterator[Connected]:
    """A sandbox on a real 127.0.0.1 port, connected through the real OAuth flow."""
    sandbox = sandbox_class(provider)(**sandbox_kw)
    sandbox.seed(seed)
    server = serve(sandbox, timeout_delay=1.0)
    tokens = tokens or MemoryTokenStore()
    conn = Connection(id=f"{provider}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=server.url,
                      auth_url=server.url)
    side: Connected | None = None
    try:
        connect(conn, tokens, client_secret="sandbox-secret", timeout=20)
        side = Connected(sandbox, conn, tokens, registry.make_connector(conn, tokens, sleep=no_sleep), server.url)
        yield side
    finally:
        if side is not None:
            side.connector.close()  # the one it holds now (a test may have swapped it)
        server.stop()


def scheduler_clock() -> FakeClock:
    """A fake clock for a Scheduler: 10:00 UTC tomorrow, so no nightly (02:00), keep-alive (04:30) or
    monthly run falls due in the hours a test moves through, and never behind the computer's clock,
    which APScheduler's executor still reads to tell whether a run is too late."""
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    return FakeClock(dt.datetime.combine(tomorrow, dt.time(10, 0), tzinfo=dt.UTC))
