"""Everything shown for the selected workspace, loaded from the store in one place."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from app.connectors.tokens import TokenStore
from app.ops import changes, status
from app.ops.changes import Changed
from app.ops.status import WorkspaceStatus
from app.store.db import Store
from app.ui.banner import MessageBanner
from app.ui.connection_bar import ConnectionBar
from app.ui.header import WorkspaceHeader
from app.ui.linked_view import LinkedView
from app.ui.models import HeldBackModel, LinkedModel, RunsModel
from app.ui.quarantine_view import UNDONE, HeldBackView, WayOutActions
from app.ui.runs_view import RunsStrip
from app.ui.sync_controller import RunState
from app.ui.text import Notice, provider_label
from app.ui.workers import BackgroundJob, WriteQueues

if TYPE_CHECKING:
    from app.ui.activity import ActivityPage
    from app.ui.reconcile_page import ReconcilePage
    from app.ui.review_page import ReviewPage

log = logging.getLogger("crossledger.ui.workspace")
BIG_LINKED = 2000  # linked records above which the Linked table is read on a worker thread


class WorkspacePage(QWidget):
    """Header, result banner, Linked records / Held back tabs and the recent-runs strip."""

    LINKED_TAB, HELD_TAB = 0, 1

    def __init__(self, store: Store, now: Callable[[], dt.datetime], parent: QWidget | None = None,
                 *, tokens: TokenStore | None = None, writes: WriteQueues | None = None, pages: bool = True) -> None:
        """``pages=False`` leaves the Reconcile, Review and Activity tabs (and their imports: the
        reconciliation and the sync engine) to ``add_pages()``, which the window's start calls once the
        workspaces and this page's own tables have been painted."""
        super().__init__(parent)
        self.setObjectName("Content")
        self._store = store
        self._now = now
        self._tokens = tokens
        self.writes = writes or WriteQueues(self)  # the window's database writes: one worker per workspace
        self.workspace: WorkspaceStatus | None = None
        self._counts = (0, 0)  # the rows the Linked and Held back tables show
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._generation = 0  # each load() bumps it; an older background read is then dropped
        self.header = WorkspaceHeader(now)
        self.banner = MessageBanner()
        self.linked = LinkedView(LinkedModel(self, now=now))
        self.held = HeldBackView(HeldBackModel(self, now=now))
        self.runs = RunsStrip(RunsModel(self, now=now))
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.tabs.addTab(self.linked, "Linked records")
        self.tabs.addTab(self.held, "Held back")
        self.held.release_many.connect(self._release)
        if tokens is not None:  # the one click out of a hold: reactivate, link to the survivor, unlink
            self.held.attach_ways_out(WayOutActions(store, tokens, self.writes, lambda: (
                (self.workspace.id, self.workspace.name) if self.workspace else None)))
        # The recent runs are the Activity tab's first table; the strip is kept (its model feeds the tests and
        # the tray's wording) but no longer takes 115 px under every table.
        self.runs.setParent(self)
        self.runs.hide()
        # One banner area: a page's own message (Reconcile, Review, Activity) replaces the window's and back,
        # so two never stack above the table.
        self._banners = [self.banner]
        self.banner.shown.connect(lambda: self._newest_banner(self.banner))
        self.has_pages = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 10)
        layout.setSpacing(8)
        layout.addWidget(self.header)
        self.connection_bar = ConnectionBar()  # Connect…, Field mapping…, Reconnect: beside the tabs
        self.connect_clicked = self.connection_bar.connect_clicked
        self.mapping_clicked = self.connection_bar.mapping_clicked
        self.migrate_clicked = self.connection_bar.migrate_clicked
        self.reconnect_clicked = self.connection_bar.reconnect_clicked
        self.tabs.setCornerWidget(self.connection_bar, Qt.Corner.TopRightCorner)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        if pages:
            self.add_pages()

    def add_pages(self) -> None:
        """The Reconcile, Review and Activity tabs (once)."""
        if self.has_pages:
            return
        from app.ui.activity import ActivityPage, StoreUndo
        from app.ui.reconcile_page import ReconcilePage, reconcile_history, reconcile_runner
        from app.ui.review_page import ReviewPage

        store, now, tokens = self._store, self._now, self._tokens
        self.reconcile: ReconcilePage = ReconcilePage(reconcile_runner(store, tokens) if tokens is not None else None,
                                                      today=lambda: now().date(), history=reconcile_history(store))
        self.tabs.addTab(self.reconcile, "Reconcile")
        # open conflicts and ambiguous matches, with the diff view
        self.review: ReviewPage = ReviewPage(store, now=now, writes=self.writes)
        self.tabs.addTab(self.review, "Review")
        self.review.count_changed.connect(
            lambda n: self.tabs.setTabText(self.tabs.indexOf(self.review), f"Review  {n:,}"))
        self.activity: ActivityPage = ActivityPage(store, undo=StoreUndo(store, tokens) if tokens is not None
                                                   else None, today=lambda: now().date())  # every run, undo
        self.tabs.addTab(self.activity, "Activity")
        self.linked.history_requested.connect(self.activity.show_history)
        self.activity.show_me.connect(lambda: self.tabs.setCurrentWidget(self.activity))
        self.activity.undone.connect(self._after_undo)
        for banner in (self.reconcile.banner, self.review.banner, self.activity.banner):
            self._banners.append(banner)
            banner.shown.connect(lambda b=banner: self._newest_banner(b))
        self.has_pages = True
        if self.workspace is not None:  # shown already (the window's start): these tabs catch up with it
            self._refresh_pages(self.workspace, Changed(self.workspace.id, changes.KINDS))

    @property
    def workspace_id(self) -> int:
        return self.workspace.id if self.workspace else -1

    def load(self, ws: WorkspaceStatus) -> None:
        """Read this workspace's rows: small reads on the UI thread; a big Linked table (more than
        BIG_LINKED records) is read and sorted on a worker thread, so the window never stalls."""
        self.refresh(ws, Changed(ws.id, changes.KINDS))

    def refresh(self, ws: WorkspaceStatus, what: Changed) -> None:
        """Re-read what ``what`` says changed (everything for another workspace); the header's counts and
        "Last sync" come with ``ws`` and are always shown afresh."""
        changed = self.workspace is None or self.workspace.id != ws.id
        if changed or self.workspace is None or self.workspace.name != ws.name:  # another one, or renamed
            what = Changed(ws.id, changes.KINDS)
        self.workspace = ws
        n_linked, n_held = self._counts
        if what.touches(changes.CUSTOMERS, changes.INVOICES):
            big = ws.links > BIG_LINKED
            linked = [] if big else status.linked_records(self._store, ws.id)
            n_linked = ws.links if big else len(linked)
            self._generation += 1
            if big:
                if changed:
                    self.linked.set_rows([])
                self._read_linked(ws.id, self._generation)
            else:
                self.linked.set_rows(linked)
        if what.touches(changes.QUARANTINE):
            held = status.quarantined_records(self._store, ws.id)
            n_held = len(held)
            self.held.set_rows(held)
        self._counts = (n_linked, n_held)
        self.header.set_workspace(ws, linked=n_linked, held=n_held)
        if what.touches(changes.CONNECTIONS, changes.SETTINGS):
            self.connection_bar.set_workspace(ws)
        if self.has_pages:
            self._refresh_pages(ws, what)
        if what.touches(changes.RUNS):
            self.runs.set_rows(status.recent_runs(self._store, ws.id, limit=20))
        self.tabs.setTabText(self.LINKED_TAB, f"Linked records  {n_linked:,}")
        self.tabs.setTabText(self.HELD_TAB, f"Held back  {n_held:,}")
        if changed:
            self.linked.search.clear()
            self.tabs.setCurrentIndex(self.LINKED_TAB)

    def _refresh_pages(self, ws: WorkspaceStatus, what: Changed) -> None:
        """The Reconcile, Review and Activity tabs' part of ``refresh``."""
        if self.reconcile.workspace != ws.name:
            self.reconcile.set_workspace(ws.name)  # its results are another workspace's: cleared
        elif what.touches(changes.RECONCILIATIONS):
            self.reconcile.show_history()
        self.activity.write_pool = self.writes.pool(ws.id)
        if what.touches(changes.CONFLICTS, changes.QUARANTINE, changes.SETTINGS, changes.CONNECTIONS):
            self.review.set_workspace(ws)
        if what.touches(changes.RUNS, changes.CUSTOMERS, changes.INVOICES):
            self.activity.set_workspace(ws.name, {"crm": provider_label(ws.crm),
                                                  "accounting": provider_label(ws.accounting)})

    def _read_linked(self, ws_id: int, generation: int) -> None:
        model = self.linked.model

        def shown(rows: list) -> None:
            if generation == self._generation and self.workspace_id == ws_id:  # nothing newer asked since
                self.linked.set_rows(rows, in_order=True)

        def failed(exc: Exception) -> None:
            log.warning("reading the linked records failed", exc_info=exc)
            if generation == self._generation:
                self.banner.show_notice(Notice("error", "The linked records could not be read",
                                               "Crossledger could not read them from its database. Select the "
                                               "workspace again; if it keeps failing, quit and open Crossledger "
                                               "again."))

        job: BackgroundJob[list] = BackgroundJob(lambda _p: model.ordered(status.linked_records(self._store, ws_id)),
                                                 on_success=shown, on_failure=failed, parent=self)
        job.done.connect(job.dispose)
        job.start(self._pool)

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        pages = [self.reconcile.shutdown(timeout_ms), self.activity.shutdown(timeout_ms)] if self.has_pages else []
        return self._pool.waitForDone(timeout_ms) and self.writes.wait(timeout_ms) and all(pages)

    def _newest_banner(self, newest: MessageBanner) -> None:
        for banner in self._banners:
            if banner is not newest and not banner.isHidden():
                banner.hide()

    def _release(self, records: list[tuple[str, str]]) -> None:
        """One small write per record, on the workspace's writer: lift an undo's hold so the next sync makes
        each record again. The release announces its change, and the window re-reads Held back."""
        from app.ops.undo import release_undone

        if self.workspace is None:
            return
        held = {(r.record_type, r.record_id): r for r in
                (self.held.model.row(n) for n in range(self.held.model.rowCount()))}
        store, name = self._store, self.workspace.name

        def work(_progress: object) -> list[tuple[str, str]]:
            return [key for key in records if release_undone(store, name, *key)]

        self.writes.run(self.workspace.id, work, on_success=lambda released: self._released(released, held),
                        on_failure=lambda exc: log.warning("releasing held records failed", exc_info=exc),
                        parent=self)

    def _released(self, released: list[tuple[str, str]], held: dict) -> None:
        if len(released) == 1:
            row = held.get(released[0])
            name = (row.name if row else "") or f"{released[0][0]} {released[0][1]}"
            self.banner.show_notice(Notice("info", f"{name} will be synced again",
                                           "The next sync creates or links it again. Click Sync now to do it now."))
        elif released:
            self.banner.show_notice(Notice("info", f"{len(released):,} records will be synced again",
                                           "The next sync creates or links them again. Click Sync now to do it "
                                           "now."))

    def _after_undo(self) -> None:
        """An undo holds back the CRM records whose ledger side it took away: they are their own group (the
        undo announced what it changed: the window re-reads those)."""
        self.held.show_group(UNDONE)

    def show_run(self, state: RunState | None) -> None:
        self.header.set_run(state)

    def show_notice(self, notice: Notice | None) -> None:
        self.banner.show_notice(notice)
