"""Run one workspace's sync: what the CLI, the Sync now button and the scheduler all call."""

from __future__ import annotations

import threading
import time

from app.connectors import registry
from app.connectors.errors import AuthExpired
from app.connectors.tokens import TokenStore
from app.ops.workspaces import get_workspace, mark_needs_reconnect, open_connectors
from app.store.db import Store
from app.sync.engine import Progress, RunResult, SyncEngine


def run_sync(
    store: Store,
    tokens: TokenStore,
    name: str,
    *,
    dry_run: bool = False,
    trigger: str = "manual",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    full: bool = False,
    allow_mass_change: bool = False,
) -> RunResult:
    ws = get_workspace(store, name)
    crm, acct = open_connectors(store, tokens, ws)
    try:
        started, before = time.perf_counter(), (_sent(crm), _sent(acct))
        engine = SyncEngine(store, ws.id, crm, acct, trigger=trigger, dry_run=dry_run, progress=progress,
                            cancel=cancel, full=full, allow_mass_change=allow_mass_change)
        result = engine.run()
        result.seconds = time.perf_counter() - started
        result.requests = {"crm": _sent(crm) - before[0], "accounting": _sent(acct) - before[1]}
        if isinstance(engine.failure, AuthExpired):  # the window offers Reconnect for that side
            for connector in (crm, acct):
                if _names(connector, engine.failure.provider):
                    mark_needs_reconnect(store, connector.conn.id)
        return result
    finally:
        crm.close()
        acct.close()


def _sent(connector: object) -> int:
    """Requests this connector's HTTP client has sent so far (token renewals are not counted)."""
    return int(getattr(getattr(connector, "api", None), "request_count", 0))


def _names(connector: object, provider: str) -> bool:
    """Whether an error's provider ('Xero', 'QuickBooks Online', 'hubspot') is this connector's."""
    name = getattr(connector, "provider", "")
    wanted = "".join(provider.lower().split())
    return bool(name) and wanted in {name, "".join(registry.info(name).label.lower().split())}
