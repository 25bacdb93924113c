"""Which token store a command uses, and the demo's way round a machine with no keyring.

Sign-ins to real providers live only in the OS keyring; without one, Crossledger refuses them with
a message that says what to install. The embedded demo is different: its providers are local
imitations whose tokens open nothing but themselves. On a server, a container, WSL or a CI box with
no Secret Service running, the demo keeps those tokens in memory for the one process and signs in to
its sandboxes again whenever a later command needs them (the imitations approve at once), so
``crossledger demo`` and then ``crossledger sync demo`` work there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.connectors.base import Connection
from app.connectors.errors import KeyringUnavailable
from app.connectors.tokens import KeyringTokenStore, MemoryTokenStore, TokenStore
from app.store.db import Store

if TYPE_CHECKING:
    from app.ops.workspaces import WorkspaceInfo

SANDBOX_CLIENT_SECRET = "demo-client-secret"  # noqa: S105 - what the local imitations accept; not a secret

IN_MEMORY_NOTE = ("No system keyring is running here, so the demo's sign-ins to its local sandboxes are kept in "
                  "memory for this run only; they open nothing but the sandboxes. A real provider needs the keyring.")


@dataclass(frozen=True)
class TokenChoice:
    tokens: TokenStore
    note: str | None = None  # one line for the user when the choice is not the OS keyring

    @property
    def in_memory(self) -> bool:
        return isinstance(self.tokens, MemoryTokenStore)


def keyring_available() -> bool:
    try:
        KeyringTokenStore.check()
    except KeyringUnavailable:
        return False
    return True


def choose_tokens(store: Store | None = None, workspaces: list[str] | None = None, *,
                  sandbox_only: bool = False) -> TokenChoice:
    """The OS keyring when there is one; otherwise memory, for work that touches only embedded sandboxes.

    ``sandbox_only`` says the caller is about to create sandbox connections (the demo). Otherwise the
    named workspaces (all of them when ``workspaces`` is None) must have only embedded-sandbox
    connections; they are signed in again into the memory store. Anything else raises
    KeyringUnavailable with today's message.
    """
    try:
        KeyringTokenStore.check()
        return TokenChoice(KeyringTokenStore())
    except KeyringUnavailable:
        if sandbox_only:
            return TokenChoice(MemoryTokenStore(), IN_MEMORY_NOTE)
        if store is None:
            raise
        conns = _connections(store, workspaces)
        if not conns or not all(c.extra.get("sandbox_state") for _, c in conns):
            raise
        tokens = MemoryTokenStore()
        sign_in_sandboxes(store, tokens, [ws for ws, _ in conns])
        return TokenChoice(tokens, IN_MEMORY_NOTE)


def sign_in_sandboxes(store: Store, tokens: TokenStore, workspace_names: list[str]) -> int:
    """Sign in again to every embedded sandbox of these workspaces; how many sign-ins were made."""
    from app.ops.connect import connect
    from app.ops.workspaces import get_workspace, load_connection, save_connection, side_of

    made = 0
    for name in dict.fromkeys(workspace_names):
        ws = get_workspace(store, name)
        for provider in (ws.crm, ws.accounting):
            conn = load_connection(store, ws, side_of(provider))  # serves the sandbox again if needed
            if not conn.extra.get("sandbox_state") or tokens.load(conn.id) is not None:
                continue
            connect(conn, tokens, client_secret=SANDBOX_CLIENT_SECRET, timeout=30)
            save_connection(store, ws, conn)
            made += 1
    return made


def _connections(store: Store, workspaces: list[str] | None) -> list[tuple[str, Connection]]:
    from app.ops.workspaces import UserError, get_workspace, list_workspaces, side_of

    names = workspaces if workspaces is not None else [w.name for w in list_workspaces(store)]
    found: list[tuple[str, Connection]] = []
    for name in names:
        try:
            ws = get_workspace(store, name)
        except UserError:
            continue
        for provider in (ws.crm, ws.accounting):
            try:
                found.append((name, _peek(store, ws, side_of(provider))))
            except UserError:
                continue
    return found


def _peek(store: Store, ws: WorkspaceInfo, side: str) -> Connection:
    """The saved connection, without serving its sandbox (only its kind matters here)."""
    from sqlalchemy import select

    from app.ops.workspaces import UserError
    from app.store.models import ConnectionRow

    with store.session() as s:
        row = s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id,
                                                    ConnectionRow.side == side)).first()
        if row is None:
            raise UserError("no connection")
        return Connection(id=row.id, provider=row.provider, base_url=row.base_url, auth_url=row.auth_url,
                          client_id=row.client_id, tenant_id=row.tenant_id, label=row.label, extra=dict(row.extra))
