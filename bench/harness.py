"""Sandboxes in-process, connectors wired to them, and a call ledger per connector method.

Every connector call the engine makes is attributed to the outermost public method it went
through (``read_records:company``, ``create_customers``...), counting the requests the provider's
sandbox received meanwhile, from its own request log (not the client's tally: sign-in renewals,
retries and anything sent around the client count too). That gives reads per object type and write
calls without parsing each provider's URLs.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.tokens import MemoryTokenStore
from app.ops.connect import connect_with_grant
from app.sandbox import demo_data
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport
from app.store.db import Store
from app.store.models import Workspace
from app.sync.engine import SyncEngine

READ_PREFIXES = ("read_", "get_", "find_", "list_")
WRITE_PREFIXES = ("create_", "update_", "set_")


@dataclass
class CallLog:
    """HTTP requests per connector method (and object type, for ``read_records``)."""

    requests: Counter = field(default_factory=Counter)
    depth: int = 0
    throttled: int = 0  # answers of 429 (the connector waits and sends again: those are counted too)
    expired: int = 0  # answers of 401 (an access token expired: refreshed and sent again)
    renewed: int = 0  # sign-ins renewed (refresh-token grants sent to the provider on the way)

    @property
    def resent(self) -> int:
        """Requests beyond the work itself: throttled and expired answers sent again, sign-in renewals."""
        return self.throttled + self.expired + self.renewed

    def reads(self) -> dict[str, int]:
        return {k: v for k, v in self.requests.items() if k.startswith(READ_PREFIXES)}

    def writes(self) -> dict[str, int]:
        return {k: v for k, v in self.requests.items() if k.startswith(WRITE_PREFIXES)}

    def reset(self) -> None:
        self.requests.clear()
        self.throttled = 0
        self.expired = 0
        self.renewed = 0


def _instrument(connector: Any, sandbox: Any) -> CallLog:
    log = CallLog()
    received = sandbox.request_log  # what the provider saw, answered 429s and 401s included
    for name in dir(type(connector)):
        if name.startswith("_") or not name.startswith(READ_PREFIXES + WRITE_PREFIXES):
            continue
        method = getattr(connector, name)
        if not callable(method):
            continue

        def wrapper(*args: Any, __m: Any = method, __n: str = name, **kw: Any) -> Any:
            key = f"{__n}:{args[0]}" if __n == "read_records" and args else __n
            if log.depth:
                return __m(*args, **kw)
            log.depth += 1
            before = len(received)
            try:
                return __m(*args, **kw)
            finally:
                log.depth -= 1
                log.requests[key] += len(received) - before

        setattr(connector, name, functools.wraps(method)(wrapper))
    return log


@dataclass
class Side:
    provider: str
    sandbox: Any
    connector: Any
    calls: CallLog


def sized_seed(companies: int, people: int = 100, deals: int = 60) -> contextlib.AbstractContextManager:
    """Seed 'demo' with ``companies`` CRM companies (the demo's messy mix, scaled)."""
    kind = f"bench-{companies}-{people}-{deals}"
    demo_data.SIZES[kind] = {"companies": companies, "people": people, "deals": deals}
    return demo_data.sized(kind)


def side(provider: str, seed: str = "demo") -> Side:
    sandbox = sandbox_class(provider)()
    sandbox.seed(seed)
    transport = _CountingTransport(sandbox)
    tokens = MemoryTokenStore()
    conn = Connection(id=f"{provider}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=sandbox.public_url,
                      auth_url=sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), sandbox.test_callback_params(),
                       transport=transport, client_secret="sandbox-secret")
    # Waiting out a rate limit moves the sandbox's clock: limits are honoured at no wall time.
    connector = registry.make_connector(conn, tokens, transport=transport, sleep=sandbox.advance)
    log = _instrument(connector, sandbox)
    transport.log = log
    return Side(provider, sandbox, connector, log)


class _CountingTransport(InProcessTransport):
    """Counts the sandbox's 429 answers, so a count of calls can say which were throttled retries."""

    log: CallLog | None = None

    def handle_request(self, request: Any) -> Any:
        response = super().handle_request(request)
        if response.status_code == 429 and self.log is not None:
            self.log.throttled += 1
        if response.status_code == 401 and self.log is not None:
            self.log.expired += 1
        if self.log is not None and b"grant_type=refresh_token" in (request.content or b""):
            self.log.renewed += 1
        return response


class World:
    """One workspace in a throwaway SQLite store, its CRM and ledger in-process."""

    def __init__(self, crm: str, acct: str, *, crm_seed: str = "demo", acct_seed: str = "demo",
                 companies: int | None = None, deals: int = 60, settings: dict | None = None,
                 home: Path | None = None) -> None:
        self._tmp = None
        if home is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bench-")
            home = Path(self._tmp.name)
        self.home = home
        self.store = Store(f"sqlite:///{home}/bench.db")
        with self.store.session() as s:
            ws = Workspace(name="bench", crm_provider=crm, accounting_provider=acct, settings=settings or {})
            s.add(ws)
            s.flush()
            self.ws_id = ws.id
        with sized_seed(companies, deals=deals) if companies else contextlib.nullcontext():
            self.crm = side(crm, crm_seed)
            self.acct = side(acct, acct_seed)

    def engine(self, **kw: Any) -> SyncEngine:
        return SyncEngine(self.store, self.ws_id, self.crm.connector, self.acct.connector, **kw)

    def sync(self, **kw: Any) -> Any:
        return self.engine(**kw).run()

    def timed_sync(self, **kw: Any) -> tuple[Any, float]:
        start = time.perf_counter()
        result = self.sync(**kw)
        return result, time.perf_counter() - start

    def reset_calls(self) -> None:
        self.crm.calls.reset()
        self.acct.calls.reset()

    def close(self) -> None:
        self.crm.connector.close()
        self.acct.connector.close()
        self.store.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()


@contextlib.contextmanager
def world(*args: Any, **kw: Any) -> Iterator[World]:
    w = World(*args, **kw)
    try:
        yield w
    finally:
        w.close()


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    if not n:
        return float("nan")
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def seed_companies(crm_sandbox: Any, n: int) -> None:
    """``n`` distinct CRM companies (generated names, each with an email, phone and address).

    The migration benchmark's generator (``bench.sandbox_child``): a few near-twins (names sharing all but one word)
    go to review instead of being created, so a run creates slightly fewer than ``n``.
    """
    from bench.sandbox_child import seed_companies as _seed_companies

    _seed_companies(crm_sandbox, n)


def naive(connector: Any) -> Any:
    """Make ``connector`` a one-call-per-record client: the engine sends it one record a call."""
    import dataclasses

    connector.limits = dataclasses.replace(connector.limits, batch_max=1)
    return connector


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB: VmHWM, which starts afresh at exec.

    (Not getrusage's ru_maxrss: Linux keeps that across fork and exec, so a probe started from a
    big parent would report the parent's size.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mb() -> float:
    """Current resident set size, in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
