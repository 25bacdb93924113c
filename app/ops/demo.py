"""The embedded demo: sandbox CRM and ledger seeded with messy data, connected and synced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.connectors import registry
from app.connectors.tokens import TokenStore
from app.ops import sandboxes
from app.ops.connect import connect
from app.ops.sync_run import run_sync
from app.ops.workspaces import (
    UserError,
    add_workspace,
    get_workspace,
    new_connection,
    save_connection,
)
from app.store.db import Store
from app.sync.engine import Progress, RunResult

DEMO = "demo"


@dataclass
class DemoResult:
    workspace: str
    crm: str
    accounting: str
    run: RunResult
    fresh: bool


def run_demo(store: Store, tokens: TokenStore, home: Path, *, crm: str = "hubspot",
             accounting: str = "quickbooks", name: str = DEMO, progress: Progress | None = None) -> DemoResult:
    """Seed (first time only), connect and sync the demo workspace; safe to run again."""
    if not _exists(store, name):
        ws = add_workspace(store, name, crm, accounting)
    else:
        ws = get_workspace(store, name)
        if (ws.crm, ws.accounting) != (crm, accounting):
            raise UserError(f"The '{name}' workspace already uses {ws.crm} and {ws.accounting}. "
                            f"Use another --home to try {crm} with {accounting}.")
    fresh = _connections(store, ws.id) < 2
    if fresh:
        folder = home / "sandboxes"
        folder.mkdir(parents=True, exist_ok=True)
        for provider in (crm, accounting):
            state = folder / f"{name}-{provider}.json"
            state.unlink(missing_ok=True)
            if progress:
                progress(f"Starting the {registry.info(provider).label} sandbox", 0, 1)
            server = sandboxes.ensure(provider, str(state), seed="demo")
            conn = new_connection(ws, provider, server.url)
            conn.extra["sandbox_state"] = str(state)
            if progress:
                progress(f"Connecting to {registry.info(provider).label}", 0, 1)
            secret = "demo-client-secret"  # noqa: S105 - a sandbox's, not a real secret
            connect(conn, tokens, client_secret=secret, timeout=30)
            save_connection(store, ws, conn)
    result = run_sync(store, tokens, name, trigger="demo", progress=progress)
    return DemoResult(name, crm, accounting, result, fresh)


def _connections(store: Store, workspace_id: int) -> int:
    from sqlalchemy import func, select

    from app.store.models import ConnectionRow

    with store.session() as s:
        return s.scalar(select(func.count()).select_from(ConnectionRow)
                        .where(ConnectionRow.workspace_id == workspace_id)) or 0


def _exists(store: Store, name: str) -> bool:
    try:
        get_workspace(store, name)
        return True
    except UserError:
        return False
