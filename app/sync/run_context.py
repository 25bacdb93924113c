"""What every run of a workspace needs, whatever it does: the lease, the run record, the journal,
progress, cancel and the clock.

The sync (``app.sync.engine``), the migration and the undo each hold one ``RunContext`` and write
through it, so a write is journalled, finished or failed the same way whoever sends it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from app.connectors.errors import ConnectorError
from app.domain.clock import SYSTEM_CLOCK, Clock
from app.domain.settings import WorkspaceSettings
from app.domain.text import mend_broken
from app.store import lease, runs
from app.store.db import Store
from app.store.repos import (
    Conflicts,
    Cursors,
    Hold,
    JournalEntry,
    JournalRepo,
    Links,
    MirrorRepo,
    QuarantineRepo,
    Runs,
    WorkspaceRepo,
)

log = logging.getLogger("crossledger.sync")

Progress = Callable[[str, int, int], None]
T = TypeVar("T")
UNEXPECTED = ("Something unexpected stopped this sync before it finished. Nothing was lost: the next "
              "sync carries on from here. If it keeps happening, send the log file to support.")


class Cancelled(Exception):
    pass


class Busy(Exception):
    """Another sync of this workspace is running (here or on another machine)."""


class LeaseLost(Exception):
    """This run could not renew its hold on the workspace (another run may have taken it): it stopped
    before its next write, so two runs never write to the same workspace at once."""

    MESSAGE = ("This run stopped before its next change because it lost its hold on the workspace (it was "
               "held up too long, and another run may have started). Nothing was sent twice; sync again "
               "and it carries on from what was recorded.")

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class Held(Exception):
    """The run stopped itself before writing anything, for a person to confirm (its status is "held")."""


class RunContext:
    """One run of one workspace: open it (lease, run record), write through it, close it."""

    def __init__(self, store: Store, ws_id: int, *, trigger: str, dry_run: bool = False,
                 progress: Progress | None = None, cancel: threading.Event | None = None,
                 holder: str | None = None, clock: Clock = SYSTEM_CLOCK,
                 counts: dict[str, Any] | None = None) -> None:
        self.store, self.ws_id, self.trigger, self.dry_run = store, ws_id, trigger, dry_run
        self.progress: Progress = progress or (lambda *_: None)
        self.cancel = cancel or threading.Event()
        self.holder = holder or lease.holder_id()
        self.clock = clock
        self.counts: dict[str, Any] = counts if counts is not None else {}
        self.errors: list[str] = []
        self.failure: ConnectorError | None = None  # what stopped the run, if a connector did
        self.run_id: int = 0
        self.workspace = WorkspaceRepo(store, ws_id)
        self.runs = Runs(store, ws_id)
        self.journal = JournalRepo(store, ws_id)
        self.links = Links(store, ws_id)
        self.mirror = MirrorRepo(store, ws_id)
        self.cursors = Cursors(store, ws_id)
        self.quarantine = QuarantineRepo(store, ws_id)
        self.conflicts = Conflicts(store, ws_id)
        self.ws_name = ""
        self._undone: dict[tuple[str, str], str] | None = None
        self.settings = WorkspaceSettings()

    def load(self) -> None:
        """Read the workspace's name and settings as they are when the run starts."""
        self.ws_name, raw = self.workspace.name_and_settings()
        self.settings = WorkspaceSettings.from_json(raw)

    # -- the run ------------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take the workspace; any run still marked running here is then known to be dead."""
        if not lease.acquire(self.store, self.ws_id, self.holder, clock=self.clock):
            return False
        runs.mark_interrupted(self.store, self.ws_id)
        return True

    def release(self) -> None:
        lease.release(self.store, self.ws_id, self.holder)

    def start(self) -> int:
        """The run's record, "running" until :meth:`close`."""
        self.run_id = self.runs.start(self.trigger, self.dry_run, self.counts)
        return self.run_id

    def close(self, status: str, more_errors: Sequence[str] = (), *, message: str | None = None) -> None:
        """Record how the run ended, its counts and (unless ``message`` says otherwise) its errors."""
        self.errors.extend(more_errors)
        if message is None:
            self.counts["errors"] = len(self.errors)
            message = mend_broken("\n".join(self.errors[:50])) or None
        self.runs.finish(self.run_id, status, self.counts, message)

    def run(self, body: Callable[[], T], *, unexpected: str = UNEXPECTED) -> tuple[str, T | None]:
        """The whole run: the workspace's lease (``Busy`` when another run holds it), the run record,
        ``body``, how it ended; the lease is released whatever happens."""
        self.load()
        if not self.acquire():
            raise Busy(f"A sync of '{self.ws_name}' is already running. It will be picked up when that one ends.")
        try:
            self.start()
            return self.execute(body, unexpected=unexpected)
        finally:
            self.release()

    def attempt(self, body: Callable[[], T]) -> tuple[str, T | None]:
        """``body``, with the stops a run expects turned into its status: cancelled, held (for a person to
        confirm), or failed (its hold on the workspace lost, or a provider's error; the reason is kept)."""
        try:
            return "ok", body()
        except Cancelled:
            return "cancelled", None
        except Held as exc:
            self.errors.append(str(exc))
            return "held", None
        except LeaseLost as exc:
            self.errors.append(str(exc))
        except ConnectorError as exc:
            self.errors.append(exc.message)
            self.failure = exc
        return "failed", None

    def execute(self, body: Callable[[], T], *, unexpected: str = UNEXPECTED) -> tuple[str, T | None]:
        """Run ``body`` as this run (started, holding the lease) and record how it ended: its status and
        what ``body`` returned. A fault of Crossledger's own closes the run with ``unexpected``, then is raised."""
        try:
            status, out = self.attempt(body)
        except BaseException as exc:
            log.exception("%s run of %r stopped", self.trigger, self.ws_name)
            try:
                self.close("failed" if isinstance(exc, Exception) else "cancelled", [unexpected])
            except Exception:  # the database itself may be what failed: the original error is the one raised
                log.exception("could not record the end of run %s", self.run_id)
            raise
        if status == "ok" and self.errors:
            status = "partial"
        self.close(status)
        return status, out

    def check_cancel(self) -> None:
        """Called before each group of writes: stop if asked to, or if this run no longer holds the workspace."""
        if self.cancel.is_set():
            raise Cancelled()
        if not lease.renew(self.store, self.ws_id, self.holder, clock=self.clock):
            raise LeaseLost()

    def today(self) -> dt.date:
        return self.clock.now().date()

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    # -- writes -------------------------------------------------------------------------------
    def journal_writes(self, entries: Sequence[JournalEntry]) -> None:
        """Record writes about to be sent (committed before they are)."""
        self.journal.add(self.run_id, entries)

    def finish(self, key: str, target_id: str | None) -> None:
        """The provider accepted the write of ``key``."""
        self.journal.finish(key, target_id)

    def fail(self, key: str, ref: tuple[str, str], name: str, error: ConnectorError | None) -> None:
        """The provider refused the write of ``key``: the run's error, and (unless it may work when
        tried again) the CRM record held back with the provider's reason."""
        message = error.message if error else "unknown error"
        retry = bool(error and error.retryable)
        self.journal.mark(key, None if retry else "failed", error=message)
        self.errors.append(f"{name}: {message}")
        if not retry:
            self.hold([Hold(ref, name, [{"field": getattr(error, "field", None) or "record",
                                         "message": f"The ledger refused it: {message}"}])])

    def hold(self, holds: Sequence[Hold], *, counted: bool = False) -> None:
        """Hold CRM records back; ``counted``: the caller has counted them already (once per record)."""
        new = self.quarantine.hold(holds, self.run_id)
        if not counted:
            self.count("quarantined", new)

    def undone_generations(self) -> dict[tuple[str, str], str]:
        """CRM records a person unlinked with an undo (app/ops/undo.py), and how many times: making them
        again needs a new idempotency key, or the ledger would replay the first create's answer."""
        if self._undone is None:
            counts: dict[tuple[str, str], int] = {}
            for ref in self.journal.done_refs("undo_unlink"):
                counts[ref] = counts.get(ref, 0) + 1
            self._undone = {ref: f"undone-{n}" for ref, n in counts.items()}
        return self._undone


class WithRunContext:
    """For the owner of a run (the sync, the migration): its RunContext's counts, errors and workspace."""

    ctx: RunContext

    @property
    def counts(self) -> dict[str, Any]:
        return self.ctx.counts

    @property
    def errors(self) -> list[str]:
        return self.ctx.errors

    @property
    def failure(self) -> ConnectorError | None:
        """What stopped the run, if a connector did."""
        return self.ctx.failure

    @property
    def run_id(self) -> int:
        return self.ctx.run_id

    @property
    def settings(self) -> WorkspaceSettings:
        return self.ctx.settings

    @property
    def ws_name(self) -> str:
        return self.ctx.ws_name
