"""Run one workspace's sync: what the CLI, the Sync now button and the scheduler all call."""

from __future__ import annotations

import threading

from app.connectors.tokens import TokenStore
from app.ops.workspaces import get_workspace, open_connectors
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
) -> RunResult:
    ws = get_workspace(store, name)
    crm, acct = open_connectors(store, tokens, ws)
    try:
        engine = SyncEngine(store, ws.id, crm, acct, trigger=trigger, dry_run=dry_run, progress=progress,
                            cancel=cancel, full=full)
        return engine.run()
    finally:
        crm.close()
        acct.close()
