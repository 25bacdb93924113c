"""The workspace's settings, its runs and its change-feed cursors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.domain.settings import stored_with
from app.store.db import Store
from app.store.models import Cursor, Run, Workspace, utcnow


class WorkspaceRepo:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def name_and_settings(self) -> tuple[str, dict[str, Any]]:
        with self.store.session() as s:
            ws = s.get(Workspace, self.ws_id)
            assert ws is not None
            return ws.name, dict(ws.settings or {})

    def save_setting(self, key: str, value: Any) -> None:
        with self.store.session() as s:
            ws = s.get(Workspace, self.ws_id)
            assert ws is not None
            ws.settings = stored_with(ws.settings, **{key: value})


class Runs:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def start(self, trigger: str, dry_run: bool, counts: dict[str, Any] | None = None) -> int:
        with self.store.session() as s:
            run = Run(workspace_id=self.ws_id, trigger=trigger, dry_run=int(dry_run), counts=dict(counts or {}))
            s.add(run)
            s.flush()
            return run.id

    def finish(self, run_id: int, status: str, counts: dict[str, Any], message: str | None) -> None:
        with self.store.session() as s:
            run = s.get(Run, run_id)
            assert run is not None  # made at the start of the run
            run.status, run.counts, run.message, run.finished_at = status, dict(counts), message, utcnow()


def restate(store: Store, run_id: int, status: str, message: str | None) -> None:
    """A finished run's status and message, as seen afterwards (a run stopped by a provider's daily limit
    is "paused" until then)."""
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is not None:
            run.status, run.message = status, message


class Cursors:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def load(self) -> dict[tuple[str, str], str | None]:
        with self.store.session() as s:
            rows = s.scalars(select(Cursor).where(Cursor.workspace_id == self.ws_id)).all()
            return {(r.side, r.object_type): r.value for r in rows}

    def save(self, values: dict[tuple[str, str], str | None]) -> None:
        with self.store.session() as s:
            rows = {(r.side, r.object_type): r for r in
                    s.scalars(select(Cursor).where(Cursor.workspace_id == self.ws_id)).all()}
            for (side, otype), value in values.items():
                row = rows.get((side, otype))
                if row is None:
                    s.add(Cursor(workspace_id=self.ws_id, side=side, object_type=otype, value=value))
                else:
                    row.value = value
