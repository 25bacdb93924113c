"""Connection watchdog: keep idle sign-ins alive before their refresh tokens die of disuse.

Xero and Pipedrive drop a refresh token unused for 60 days, QuickBooks one older than about 100
days. A workspace that is paused (or a client off for the summer) would lose its connection
without anyone noticing; once a day the scheduler renews every sign-in past half its life.
A renewal the provider refuses marks the connection "reconnect" (which pauses that workspace's
scheduled syncs and tells the user once), never a retry storm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.connectors.errors import AuthExpired, ConnectorError, Unauthorized
from app.ops.doctor import REFRESH_LIFETIME_DAYS
from app.ops.workspaces import list_workspaces, mark_needs_reconnect, open_connectors
from app.store.db import Store
from app.store.models import ConnectionRow, Workspace

log = logging.getLogger("crossledger.watchdog")


@dataclass
class KeepAlive:
    renewed: list[str] = field(default_factory=list)  # "workspace: provider"
    dead: list[str] = field(default_factory=list)  # "workspace: provider" now marked reconnect
    errors: list[str] = field(default_factory=list)  # could not try (network, provider down): next day


def keep_alive(store: Store, tokens: Any, *, now: float | None = None, fraction: float = 0.5,
               lifetimes: dict[str, int | None] = REFRESH_LIFETIME_DAYS,
               open_fn: Callable[..., tuple[Any, Any]] = open_connectors) -> KeepAlive:
    """Renew each sign-in whose refresh token has used up ``fraction`` of its provider's lifetime."""
    when = time.time() if now is None else now
    out = KeepAlive()
    for ws in list_workspaces(store):
        with store.session() as s:
            rows = {c.id: (c.provider, c.status) for c in s.scalars(
                select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id))}
        due = []
        for conn_id, (provider, status) in rows.items():
            days = lifetimes.get(provider)
            saved = tokens.load(conn_id) if days and status != "reconnect" else None
            if saved is None or not saved.refresh_token:
                continue
            issued = saved.refresh_issued_at
            if issued and (when - issued) / 86400 >= days * fraction:
                due.append((conn_id, saved.access_token))
        if not due:
            continue
        try:
            crm, acct = open_fn(store, tokens, ws)
        except ConnectorError as exc:
            out.errors.append(f"{ws.name}: {exc.message}")
            continue
        try:
            for connector in (crm, acct):
                match = next((stale for cid, stale in due if cid == connector.conn.id), None)
                if match is None:
                    continue
                label = f"{ws.name}: {connector.provider}"
                try:
                    connector.api.refresh(stale=match)
                    out.renewed.append(label)
                    log.info("renewed the idle sign-in of %s", label)
                except (AuthExpired, Unauthorized):
                    mark_needs_reconnect(store, connector.conn.id)
                    out.dead.append(label)
                except ConnectorError as exc:
                    out.errors.append(f"{label}: {exc.message}")
        finally:
            crm.close()
            acct.close()
    return out


@dataclass(frozen=True, slots=True)
class Expiring:
    """A sign-in that stops working soon unless a sync renews it."""

    connection_id: str
    workspace: str
    provider: str
    days_left: float


def expiring_connections(store: Store, tokens: Any, *, now: float | None = None, within_days: float = 7,
                         lifetimes: Mapping[str, int | None] = REFRESH_LIFETIME_DAYS) -> list[Expiring]:
    """Sign-ins whose refresh token dies within ``within_days`` when unused. Reads the keyring:
    call it off the UI thread."""
    when = time.time() if now is None else now
    with store.session() as s:
        rows = [(c.id, ws.name, c.provider, c.status) for c, ws in s.execute(
            select(ConnectionRow, Workspace).join(Workspace, Workspace.id == ConnectionRow.workspace_id)
            .order_by(Workspace.name, ConnectionRow.side))]
    out = []
    for conn_id, ws_name, provider, status in rows:
        days = lifetimes.get(provider)
        if not days or status == "reconnect" or tokens is None:
            continue
        saved = tokens.load(conn_id)
        if saved is None or not saved.refresh_issued_at:
            continue
        left = (saved.refresh_issued_at + days * 86400 - when) / 86400
        if 0 < left <= within_days:
            out.append(Expiring(conn_id, ws_name, provider, left))
    return out
