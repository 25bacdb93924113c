"""The embedded demo: sandbox CRM and ledger seeded with messy data, connected and synced."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

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
# Zoho Books allows 100 calls a minute; the demo's first sync needs a few hundred, so its sandbox
# allows ten times that: sample data in seconds, not minutes. The real limit applies to real accounts.
DEMO_LIMITS_SCALE = {"zohobooks": 10.0}


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
    ledger_box = None
    boxes = []
    if fresh:
        folder = home / "sandboxes"
        folder.mkdir(parents=True, exist_ok=True)
        for provider in (crm, accounting):
            state = folder / f"{name}-{provider}.json"
            state.unlink(missing_ok=True)
            if progress:
                progress(f"Starting the {registry.info(provider).label} sandbox", 0, 1)
            scale = DEMO_LIMITS_SCALE.get(provider, 1.0)
            server = sandboxes.ensure(provider, str(state), seed="demo", limits_scale=scale)
            boxes.append(server.app)
            if provider == accounting:
                ledger_box = server.app
            conn = new_connection(ws, provider, server.url)
            conn.extra["sandbox_state"] = str(state)
            conn.extra.update(sandboxes.told_of_sample(provider))
            if scale != 1.0:  # the connector paces itself to the sandbox's raised limit
                conn.extra["sandbox_limits_scale"] = scale
                conn.extra["requests_per_minute"] = int(100 * scale)
            if progress:
                progress(f"Connecting to {registry.info(provider).label}", 0, 1)
            secret = "demo-client-secret"  # noqa: S105 - a sandbox's, not a real secret
            connect(conn, tokens, client_secret=secret, timeout=30)
            save_connection(store, ws, conn)
    result = run_sync(store, tokens, name, trigger="demo", progress=progress)
    if ledger_box is not None and _customers_pay(store, ws.id, ledger_box):
        for box in boxes:  # the payments come in a few minutes later: the providers' rate windows have passed
            box.advance(300)
        if progress:
            progress("Reading the customers' payments back to the deals", 0, 1)
        paid = run_sync(store, tokens, name, trigger="demo", progress=progress)
        result.counts["deals_updated"] = result.counts.get("deals_updated", 0) + paid.counts.get("deals_updated", 0)
        result.counts["writes"] = result.counts.get("writes", 0) + paid.counts.get("writes", 0)
        result.errors.extend(paid.errors)
    return DemoResult(name, crm, accounting, result, fresh)


def _customers_pay(store: Store, workspace_id: int, ledger: Any) -> int:
    """Some customers pay, in part or in full, as the demo's data says, in the ledger sandbox."""
    from sqlalchemy import select

    from app.sandbox.demo_data import demo_data
    from app.store.models import Link, Mirror

    plans: dict[str, list[str | None]] = {}
    for d in demo_data().deals:
        if d.stage == "won":
            plans.setdefault(d.name, []).append(d.paid)
    with store.session() as s:
        links = list(s.scalars(select(Link).where(Link.workspace_id == workspace_id, Link.object_type == "invoice")
                               .order_by(Link.crm_id)))
        mirror = {(m.side, m.remote_id): m.data for m in s.scalars(select(Mirror).where(
            Mirror.workspace_id == workspace_id, Mirror.object_type.in_(("deal", "invoice"))))}
    paid = 0
    day = dt.datetime.fromtimestamp(ledger.now(), dt.UTC).date() - dt.timedelta(days=3)
    for lk in links:
        name = (mirror.get(("crm", lk.crm_id)) or {}).get("name") or ""
        inv = mirror.get(("accounting", lk.acct_id)) or {}
        plan = plans.get(name, [None]).pop(0) if plans.get(name) else None
        if plan is None or not inv.get("total") or inv.get("status") in ("paid", "void"):
            continue
        total = Decimal(inv["total"])
        amount = total if plan == "full" else (total / 3).quantize(Decimal("0.01"))
        try:
            if ledger.provider == "xero" and inv.get("status") == "draft":  # approved before it is paid
                ledger.user_edit("invoice", lk.acct_id, Status="AUTHORISED")
            ledger.record_payment(lk.acct_id, amount, day.isoformat())
            paid += 1
        except ValueError:  # the sandbox refused it as the ledger would: the demo goes on without it
            continue
    return paid


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
