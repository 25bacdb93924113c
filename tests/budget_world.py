"""A workspace whose two connections are in-process sandboxes on one virtual clock, stored like the app's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx

from app.connectors.tokens import MemoryTokenStore
from app.domain.clock import FakeClock
from app.ops.connect import connect_with_grant
from app.ops.sync_run import run_sync
from app.ops.workspaces import WorkspaceInfo, add_workspace, new_connection, save_connection
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport
from app.store.db import Store


class Router(httpx.BaseTransport):
    """One transport for the whole app: each sandbox answers at its own host name."""

    def __init__(self, routes: dict[str, InProcessTransport]) -> None:
        self.routes = routes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.routes[request.url.host].handle_request(request)


@dataclass
class World:
    store: Store
    tokens: MemoryTokenStore
    clock: FakeClock
    crm: Any
    books: Any
    transport: Router
    name: str = "Acme"

    def options(self) -> dict[str, Any]:
        """What run_sync (and the scheduler's jobs) need to reach the sandboxes on the virtual clock."""
        return {"clock": self.clock, "sleep": self.clock.sleep, "transport": self.transport}

    def sync(self, **kw: Any):
        return run_sync(self.store, self.tokens, self.name, **{**self.options(), **kw})

    def spent(self, sandbox: Any) -> int:
        """What the provider counts against its day: Pipedrive's tokens, everyone else's calls."""
        tokens = getattr(sandbox, "tokens_used_today", None)
        return int(tokens()) if tokens is not None else self.api_calls(sandbox)

    def api_calls(self, sandbox: Any) -> int:
        """Calls the provider counted against the allowance (sign-in renewals are not API calls)."""
        return sum(1 for _m, path, _s in sandbox.request_log if "/oauth" not in path)


def make_world(tmp_path, start: dt.datetime, *, plan: str = "Free", crm: str = "hubspot",
               crm_options: dict[str, Any] | None = None) -> World:
    clock = FakeClock(start)
    store = Store(f"sqlite:///{tmp_path}/budget.db")
    ws = add_workspace(store, "Acme", crm, "zohobooks")
    tokens = MemoryTokenStore()
    routes: dict[str, InProcessTransport] = {}
    sandboxes = [connect_in_process(store, ws, tokens, clock, provider, host, routes, **kw)
                 for provider, host, kw in ((crm, "crm.test", crm_options or {}),
                                            ("zohobooks", "books.test", {"plan": plan}))]
    return World(store, tokens, clock, sandboxes[0], sandboxes[1], Router(routes))


def connect_in_process(store: Store, ws: WorkspaceInfo, tokens: MemoryTokenStore, clock: FakeClock, provider: str,
                       host: str, routes: dict[str, InProcessTransport], seed: str = "demo", **kw: Any) -> Any:
    """A sandbox on the virtual clock answering at ``host`` (added to ``routes``), connected to the workspace."""
    sandbox = sandbox_class(provider)(clock=lambda: clock.now().timestamp(), **kw)
    sandbox.public_url = f"http://{host}"
    sandbox.seed(seed)
    routes[host] = InProcessTransport(sandbox)
    conn = new_connection(ws, provider, sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), sandbox.test_callback_params(),
                       transport=routes[host], client_secret="sandbox-secret")
    save_connection(store, ws, conn)
    return sandbox


def race_for_the_day(url: str, *, clients: int = 4, cap: int = 300) -> tuple[int, int]:
    """``clients`` budgets, each on its own engine (as separate processes would be), book calls on one
    account at once until the day is spent; returns (calls they were allowed, the store's count)."""
    import threading

    from app.store.budget import StoreBudget
    from app.store.models import ProviderBudget

    clock = FakeClock(dt.datetime(2026, 12, 8, 9, tzinfo=dt.UTC))
    stores = [Store(url) for _ in range(clients)]
    allowed = [0] * clients

    def spend(n: int) -> None:
        budget = StoreBudget(stores[n], "zohobooks:race", cap=cap, clock=clock)
        while budget.take() == (0.0, ""):
            allowed[n] += 1
        budget.close()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with stores[0].session() as s:
        used = s.get(ProviderBudget, "zohobooks:race").used
    for store in stores:
        store.dispose()
    return sum(allowed), used
