"""Workspaces (one per client company) and their connections."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, select

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.tokens import TokenStore
from app.domain.clock import SYSTEM_CLOCK, Clock
from app.ops import changes, sandboxes
from app.store.db import Store
from app.store.models import ConnectionRow, Workspace

NAME_PATTERN = r"[\w .&'-]{1,120}"


class UserError(Exception):
    """Something the user asked for that cannot be done, with what to do instead."""


@dataclass(frozen=True, slots=True)
class WorkspaceInfo:
    id: int
    name: str
    crm: str
    accounting: str
    settings: dict[str, Any]


def _info(ws: Workspace) -> WorkspaceInfo:
    return WorkspaceInfo(ws.id, ws.name, ws.crm_provider, ws.accounting_provider, dict(ws.settings or {}))


def _same_name(s: Any, name: str, but: int | None = None) -> Workspace | None:
    """The workspace already called ``name`` in any case ('DEMO' and 'demo' are one name)."""
    key = name.casefold()
    return next((ws for ws in s.scalars(select(Workspace))
                 if ws.name.casefold() == key and ws.id != but), None)


def add_workspace(store: Store, name: str, crm: str, accounting: str) -> WorkspaceInfo:
    name = name.strip()
    if not re.fullmatch(NAME_PATTERN, name):
        raise UserError("A workspace name may use letters, digits, spaces and . & ' - (up to 120 characters).")
    if crm not in registry.CRM_PROVIDERS:
        raise UserError(f"'{crm}' is not a CRM Crossledger supports. Choose one of: "
                        f"{', '.join(registry.CRM_PROVIDERS)}.")
    if accounting not in registry.ACCOUNTING_PROVIDERS:
        raise UserError(f"'{accounting}' is not an accounting system Crossledger supports. Choose one of: "
                        f"{', '.join(registry.ACCOUNTING_PROVIDERS)}.")
    with store.session() as s:
        if clash := _same_name(s, name):
            raise UserError(f"There is already a workspace called '{clash.name}'. Pick another name.")
        ws = Workspace(name=name, crm_provider=crm, accounting_provider=accounting, settings={})
        s.add(ws)
        s.flush()
        return _info(ws)


def list_workspaces(store: Store) -> list[WorkspaceInfo]:
    with store.session() as s:
        return [_info(ws) for ws in s.scalars(select(Workspace).order_by(Workspace.name))]


def get_workspace(store: Store, name: str) -> WorkspaceInfo:
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == name)).first()
        if ws is None:  # names are unique whatever their case: 'demo' finds 'Demo'
            every = list(s.scalars(select(Workspace)))
            ws = next((w for w in every if w.name.casefold() == name.casefold()), None)
        if ws is None:
            names = ", ".join(w.name for w in every) or "none yet"
            raise UserError(f"There is no workspace called '{name}' (workspaces: {names}). "
                            "Create it with 'crossledger workspace add'.")
        return _info(ws)


def remove_workspace(store: Store, tokens: TokenStore, name: str) -> list[str]:
    """Delete a workspace and its tokens from the keyring; returns the connections removed."""
    ws = get_workspace(store, name)
    with store.session() as s:
        conns = list(s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id)))
        for c in conns:
            tokens.delete(c.id)
        s.execute(delete(Workspace).where(Workspace.id == ws.id))
        return [c.provider for c in conns]


def rename_workspace(store: Store, old: str, new: str) -> WorkspaceInfo:
    """Give a workspace another name; its connections, links, history and schedule stay with it."""
    ws = get_workspace(store, old)
    new = new.strip()
    if new == ws.name:
        return ws
    if not re.fullmatch(NAME_PATTERN, new):
        raise UserError("A workspace name may use letters, digits, spaces and . & ' - (up to 120 characters).")
    with store.session() as s:
        if clash := _same_name(s, new, but=ws.id):
            raise UserError(f"There is already a workspace called '{clash.name}'. Pick another name.")
        row = s.get(Workspace, ws.id)
        row.name = new
        s.flush()
        return _info(row)


def check_new_name(store: Store, name: str) -> str | None:
    """Why ``name`` cannot be a new workspace's name, or None when it can."""
    name = name.strip()
    if not name:
        return "Enter the client company's name."
    if not re.fullmatch(NAME_PATTERN, name):
        return "A workspace name may use letters, digits, spaces and . & ' - (up to 120 characters)."
    with store.session() as s:
        if clash := _same_name(s, name):
            return f"There is already a workspace called '{clash.name}'. Pick another name."
    return None


def set_provider(store: Store, name: str, side: str, provider: str) -> WorkspaceInfo:
    """Change which CRM or accounting system a workspace uses, while that side is not connected yet."""
    ws = get_workspace(store, name)
    allowed = registry.CRM_PROVIDERS if side == "crm" else registry.ACCOUNTING_PROVIDERS
    if provider not in allowed:
        raise UserError(f"'{provider}' cannot be the {'CRM' if side == 'crm' else 'accounting system'}.")
    with store.session() as s:
        if s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id,
                                                 ConnectionRow.side == side)).first():
            raise UserError("This side is already connected. Remove the workspace and add it again to switch "
                            "to another system, so no records are linked to the wrong one.")
        row = s.get(Workspace, ws.id)
        if side == "crm":
            row.crm_provider = provider
        else:
            row.accounting_provider = provider
        s.flush()
        return _info(row)


def connection_status(store: Store, ws: WorkspaceInfo) -> dict[str, str]:
    """side -> 'connected' | 'reconnect' for the sides that have a connection."""
    with store.session() as s:
        return {c.side: c.status for c in s.scalars(select(ConnectionRow)
                                                    .where(ConnectionRow.workspace_id == ws.id))}


def mark_needs_reconnect(store: Store, connection_id: str) -> None:
    """The connection's refresh token is dead: the window offers Reconnect for it."""
    with store.session() as s:
        row = s.get(ConnectionRow, connection_id)
        ws_id = row.workspace_id if row is not None else None
        if row is not None:
            row.status = "reconnect"
    if ws_id is not None:
        changes.announce(store, ws_id, changes.CONNECTIONS)


def update_settings(store: Store, name: str, **values: Any) -> None:
    ws = get_workspace(store, name)
    with store.session() as s:
        row = s.get(Workspace, ws.id)
        row.settings = {**(row.settings or {}), **values}
    changes.announce(store, ws.id, changes.SETTINGS)


def side_of(provider: str) -> str:
    return "crm" if provider in registry.CRM_PROVIDERS else "accounting"


def new_connection(ws: WorkspaceInfo, provider: str, base_url: str, auth_url: str | None = None) -> Connection:
    side = side_of(provider)
    expected = ws.crm if side == "crm" else ws.accounting
    if provider != expected:
        raise UserError(f"Workspace '{ws.name}' uses {registry.info(expected).label} for its "
                        f"{'CRM' if side == 'crm' else 'accounting'}, not {provider}.")
    return Connection(id=f"{ws.id}-{provider}-{uuid.uuid4().hex[:8]}", provider=provider,
                      base_url=base_url.rstrip("/"), auth_url=(auth_url or base_url).rstrip("/"))


# What the user told us about an account, which no sign-in can read back: kept when it is connected again.
TOLD_BY_USER = ("plan",)


def save_connection(store: Store, ws: WorkspaceInfo, conn: Connection) -> None:
    side = side_of(conn.provider)
    with store.session() as s:
        old = s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id,
                                                    ConnectionRow.side == side)).first()
        if old is not None and old.provider == conn.provider:
            for key in TOLD_BY_USER:
                if key in (old.extra or {}) and key not in conn.extra:
                    conn.extra[key] = old.extra[key]
        s.execute(delete(ConnectionRow).where(ConnectionRow.workspace_id == ws.id, ConnectionRow.side == side))
        s.add(ConnectionRow(id=conn.id, workspace_id=ws.id, side=side, provider=conn.provider,
                            base_url=conn.base_url, auth_url=conn.auth_url, client_id=conn.client_id,
                            tenant_id=conn.tenant_id, label=conn.label, extra=dict(conn.extra),
                            status="connected"))
    changes.announce(store, ws.id, changes.CONNECTIONS)


def load_connection(store: Store, ws: WorkspaceInfo, side: str) -> Connection:
    with store.session() as s:
        row = s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id,
                                                    ConnectionRow.side == side)).first()
        if row is None:
            provider = ws.crm if side == "crm" else ws.accounting
            raise UserError(f"Workspace '{ws.name}' has no {registry.info(provider).label} connection yet. "
                            f"Connect it with 'crossledger connect {provider} --workspace \"{ws.name}\"'.")
        conn = Connection(id=row.id, provider=row.provider, base_url=row.base_url, auth_url=row.auth_url,
                          client_id=row.client_id, tenant_id=row.tenant_id, label=row.label, extra=dict(row.extra))
    sandbox_state = conn.extra.get("sandbox_state")
    if sandbox_state:  # an embedded sandbox: make sure it is being served, maybe on a new port
        server = sandboxes.ensure(conn.provider, sandbox_state, port=_port_of(conn.base_url),
                                  limits_scale=float(conn.extra.get("sandbox_limits_scale") or 1.0))
        if server.url != _origin(conn.base_url):
            conn.base_url = conn.base_url.replace(_origin(conn.base_url), server.url)
            conn.auth_url = server.url
            with store.session() as s:
                row = s.get(ConnectionRow, conn.id)
                row.base_url, row.auth_url = conn.base_url, conn.auth_url
    return conn


def open_connectors(store: Store, tokens: TokenStore, ws: WorkspaceInfo,
                    transport: httpx.BaseTransport | None = None, *, share: float = 1.0,
                    clock: Clock = SYSTEM_CLOCK, sleep: Callable[[float], None] | None = None) -> tuple[Any, Any]:
    """Both sides' connectors, each booking its calls in its account's budget in the store (``share``: the
    part of a daily cap they may spend; ``clock``/``sleep`` move time in tests)."""
    from app.ops import detail_cache
    from app.ops.budget import attach

    opened = []
    for side in ("crm", "accounting"):
        connector = registry.make_connector(load_connection(store, ws, side), tokens, transport=transport, sleep=sleep,
                                            clock=None if clock is SYSTEM_CLOCK else clock.monotonic)
        attach(store, connector, share=share, clock=clock)
        detail_cache.attach(store, connector)
        opened.append(connector)
    return opened[0], opened[1]


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}" if parsed.port else f"{parsed.scheme}://{parsed.host}"


def _port_of(url: str) -> int:
    return httpx.URL(url).port or 0
