"""Runs a killed process left "running": they are marked "interrupted" the next time Crossledger starts."""

from __future__ import annotations

from sqlalchemy import select

from app.store import lease
from app.store.db import Store
from app.store.models import Lease, Run, utcnow

INTERRUPTED_MESSAGE = ("This run stopped before it finished (Crossledger was closed or the computer stopped). "
                       "Nothing is lost: the next sync carries on from what was recorded.")


def live_holders(store: Store) -> dict[int, str]:
    """workspace id -> holder, for the leases a running process still holds."""
    with store.session() as s:
        return {row.workspace_id: row.holder for row in s.scalars(select(Lease))
                if row.expires_at > utcnow() and not lease.holder_is_dead(row.holder)}


def mark_interrupted(store: Store, workspace_id: int | None = None) -> list[int]:
    """Mark runs still "running" that nobody runs any more; returns their ids.

    With ``workspace_id`` the caller holds that workspace's lease, so none of its runs can be live.
    """
    live = set() if workspace_id is not None else set(live_holders(store))
    with store.session() as s:
        query = select(Run).where(Run.status == "running")
        if workspace_id is not None:
            query = query.where(Run.workspace_id == workspace_id)
        marked = []
        for run in s.scalars(query):
            if run.workspace_id in live:
                continue
            run.status = "interrupted"
            run.finished_at = run.finished_at or utcnow()
            run.message = "\n".join(filter(None, [INTERRUPTED_MESSAGE, run.message]))
            marked.append(run.id)
        return marked
