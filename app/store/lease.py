"""A lease per workspace so that one sync runs at a time, across processes sharing the store."""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import cast

from sqlalchemy import Table, bindparam, delete, or_, update
from sqlalchemy.exc import IntegrityError

from app.domain.clock import SYSTEM_CLOCK, Clock
from app.store.db import Store
from app.store.models import Lease


def _utcnow(clock: Clock) -> dt.datetime:
    return clock.now().astimezone(dt.UTC).replace(tzinfo=None)  # naive UTC, as the store keeps it


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """A lease left by a process on this machine that no longer exists (killed, crashed)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(store: Store, workspace_id: int, holder: str, ttl: float = 300, *, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Take the workspace for ``ttl`` seconds: free, expired by ``clock``, left by a dead process here,
    or already ours (renewed)."""
    now = _utcnow(clock)
    expires = now + dt.timedelta(seconds=ttl)
    with store.session() as s:
        current = s.get(Lease, workspace_id)
        if current is not None and current.holder != holder and holder_is_dead(current.holder):
            current.expires_at = now - dt.timedelta(seconds=1)
            s.flush()
        took = s.execute(
            update(Lease)
            .where(Lease.workspace_id == workspace_id, or_(Lease.expires_at < now, Lease.holder == holder))
            .values(holder=holder, expires_at=expires)
        ).rowcount
        if took:
            return True
    try:
        with store.session() as s:
            s.add(Lease(workspace_id=workspace_id, holder=holder, expires_at=expires))
        return True
    except IntegrityError:
        return False


_LEASES = cast(Table, Lease.__table__)
# Built once: a run renews before every group of writes, and an ORM session per renewal cost more than
# the update itself.
_RENEW = update(_LEASES).where(_LEASES.c.workspace_id == bindparam("ws"),
                               _LEASES.c.holder == bindparam("b_holder")).values(expires_at=bindparam("b_until"))


def renew(store: Store, workspace_id: int, holder: str, ttl: float = 300, *, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Keep the workspace ``ttl`` seconds more; False when this holder no longer has it."""
    with store.engine.begin() as conn:
        return bool(conn.execute(_RENEW, {"ws": workspace_id, "b_holder": holder,
                                          "b_until": _utcnow(clock) + dt.timedelta(seconds=ttl)}).rowcount)


def release(store: Store, workspace_id: int, holder: str) -> None:
    with store.session() as s:
        s.execute(delete(Lease).where(Lease.workspace_id == workspace_id, Lease.holder == holder))
