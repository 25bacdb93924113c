"""Review: what the sync could not decide alone, for one workspace.

Open conflicts (a field changed differently on both sides under an "ask me" rule), one row per
record, and CRM records that could be any of several ledger customers. Selecting a conflict opens
the side-by-side diff view; saved choices are applied by the next sync, or at once with Apply now
(the window runs it through its SyncController, off the UI thread).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QItemSelection, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.ops import conflicts, status
from app.ops.conflicts import AmbiguousMatch, ConflictView
from app.ops.status import WorkspaceStatus
from app.store.db import Store
from app.ui import text
from app.ui.banner import MessageBanner
from app.ui.diff_view import DiffView
from app.ui.models import RowRole, RowTableModel
from app.ui.tables import Fill, TableOrNote, make_table
from app.ui.text import Notice
from app.ui.theme import Palette
from app.ui.workers import WriteQueues

NOTHING_TO_REVIEW = ("Nothing to review. When a field changes differently in the CRM and in the ledger and your "
                     "rules say \"ask me\", it waits here for your choice.")


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One line of the Review list: a record with open conflicts, or an ambiguous match."""

    kind: str  # conflict | flag | match
    name: str
    record_type: str
    record_id: str
    since: dt.datetime
    conflicts: tuple[ConflictView, ...] = field(default_factory=tuple)
    match: AmbiguousMatch | None = None

    @property
    def what(self) -> str:
        if self.kind == "match":
            return "Could be more than one ledger customer"
        if self.kind == "flag":  # something that happened on one side, to look at
            return self.conflicts[0].field_label
        labels = [c.field_label.lower() for c in self.conflicts]
        words = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
        return f"{words[:1].upper()}{words[1:]} changed differently on both sides"


def review_items(open_conflicts: Sequence[ConflictView], matches: Sequence[AmbiguousMatch]) -> list[ReviewItem]:
    """Group the open conflicts by record (first noticed first), then the ambiguous matches."""
    grouped: dict[tuple[str, str, str], list[ConflictView]] = {}
    for c in open_conflicts:  # a record's flags are an item of their own beside its field conflicts
        grouped.setdefault(("flag" if c.is_flag else "conflict", c.crm_type, c.crm_id), []).append(c)
    items = [ReviewItem(kind, cs[0].record_name, rtype, rid, min(c.created_at for c in cs), tuple(cs))
             for (kind, rtype, rid), cs in grouped.items()]
    items += [ReviewItem("match", m.name, m.record_type, m.record_id, m.since, match=m) for m in matches]
    return items


class ReviewModel(RowTableModel[ReviewItem]):
    RECORD, WHAT, SINCE = range(3)
    HEADERS = ("Record", "What needs a decision", "Since")

    def display(self, row: ReviewItem, col: int) -> str:
        if col == self.RECORD:
            return row.name or f"(no name, ID {row.record_id})"
        if col == self.WHAT:
            return row.what
        return text.format_when(row.since, self._now())

    def sort_key(self, row: ReviewItem, col: int) -> Any:
        if col == self.SINCE:
            return row.since.timestamp() if row.since.tzinfo else row.since.replace(tzinfo=dt.UTC).timestamp()
        return super().sort_key(row, col)

    def foreground(self, row: ReviewItem, col: int) -> QColor | None:
        if col == self.SINCE:
            return QColor(Palette.TEXT_MUTED)
        if col == self.WHAT and row.kind == "match":
            return QColor(Palette.WARNING_TEXT)
        return None

    def tooltip(self, row: ReviewItem, col: int) -> str | None:
        if col == self.RECORD:
            return f"{row.name}\n{text.record_type_label(row.record_type)}, CRM ID {row.record_id}"
        if col == self.WHAT:
            return f"{row.what}\nWaiting since {text.format_when(row.since, self._now())}"
        return None


class _Panel(QWidget):
    """A panel beside the Review list: the record's name, what is the matter, and what happens next, laid
    out in one column with the panel's own controls between them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setObjectName("SectionTitle")
        self.body = QLabel()
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.next_step = QLabel()
        self.next_step.setObjectName("Muted")
        self.next_step.setWordWrap(True)

    def _column(self, *rows: QWidget | QHBoxLayout | None) -> QVBoxLayout:
        """The panel's layout, top to bottom; None is the stretch that keeps the rest at the top."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(10)
        for row in rows:
            if row is None:
                layout.addStretch(1)
            elif isinstance(row, QHBoxLayout):
                layout.addLayout(row)
            else:
                layout.addWidget(row)
        return layout


class MatchPanel(_Panel):
    """An ambiguous match: which customers it could be, a button to pick each, and what happens next.

    ``picked(record_type, record_id, choice)``: ``choice`` is the ledger customer's id, or "new"."""

    picked = Signal(str, str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._match: AmbiguousMatch | None = None
        self.choices_box = QWidget()  # replaced whole for each record shown
        self.buttons: dict[str, QPushButton] = {}  # choice -> its button
        self._column(self.title, self.body, self.choices_box, self.next_step, None)

    def set_match(self, match: AmbiguousMatch, crm_label: str, acct_label: str) -> None:
        self._match = match
        self.title.setText(match.name)
        self.body.setText(match.explanation)
        old, self.choices_box = self.choices_box, QWidget()
        self.choices = QVBoxLayout(self.choices_box)
        self.choices.setContentsMargins(0, 4, 0, 4)
        self.choices.setSpacing(8)
        self.layout().replaceWidget(old, self.choices_box)
        old.hide()
        old.deleteLater()
        self.buttons = {}
        for cand in match.candidates:
            details = " · ".join(x for x in (cand.email, cand.city, cand.tax_id) if x)
            self._choice(cand.acct_id, f"<b>{html.escape(cand.name)}</b>"
                         + (f"<br><span style='color:{Palette.TEXT_MUTED}'>{html.escape(details)}</span>"
                            if details else ""), "Link to this one", match.picked == cand.acct_id)
        if match.candidates:
            self._choice("new", f"None of these: a customer of its own in {acct_label}", "Create new",
                         match.picked == "new")
        chosen = next((c.name for c in match.candidates if c.acct_id == match.picked), None)
        if match.picked == "new":
            self.next_step.setText(f"You chose a new customer. The next sync (or Apply now) creates it in "
                                   f"{acct_label} and the record leaves this list.")
        elif chosen:
            self.next_step.setText(f"You picked '{chosen}'. The next sync (or Apply now) links the record to it "
                                   "and it leaves this list.")
        elif match.candidates:
            self.next_step.setText(f"This record is not synced until it points at one customer. Pick the right "
                                   f"one above, or merge the duplicate customers in {acct_label}.")
        else:
            self.next_step.setText(
                f"This record is not synced until it points at one customer. Merge the duplicate customers in "
                f"{acct_label}, or give the record in {crm_label} the details of the right one; the next sync "
                f"links it and it leaves this list.")

    def _choice(self, choice: str, words: str, action: str, chosen: bool) -> None:
        row = QHBoxLayout()
        label = QLabel(words)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        button = QPushButton("Picked" if chosen else action)
        button.setEnabled(not chosen)
        button.clicked.connect(lambda: self._pick(choice))
        row.addWidget(label, 1)
        row.addWidget(button)
        self.buttons[choice] = button
        self.choices.addLayout(row)

    def _pick(self, choice: str) -> None:
        if self._match is not None:
            self.picked.emit(self._match.record_type, self._match.record_id, choice)


class FlagPanel(_Panel):
    """Something that happened to a linked record on one side (a deal lost after its invoice, a customer
    merged away): what it was and what to do, and a button to say it has been seen. There is nothing to
    choose between, so no diff.

    ``seen(conflict ids)``: the bookkeeper has looked; the flags leave the list."""

    seen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ids: tuple[int, ...] = ()
        self.kind = QLabel()
        self.kind.setObjectName("Muted")
        self.seen_button = QPushButton("Mark as seen")
        self.seen_button.setObjectName("PrimaryButton")
        self.seen_button.clicked.connect(lambda: self.seen.emit(self._ids))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.seen_button)
        self._column(self.title, self.kind, self.body, self.next_step, None, buttons)

    def set_flags(self, item: ReviewItem, crm_label: str, acct_label: str) -> None:
        self._ids = tuple(c.id for c in item.conflicts)
        self.title.setText(item.name)
        self.kind.setText(item.what)
        self.body.setText("\n\n".join(c.acct_value or "" for c in item.conflicts))
        self.next_step.setText(f"Crossledger changes nothing here by itself. Do what it says in {crm_label} or "
                               f"{acct_label}, then mark it as seen: it leaves this list, and the same change is "
                               "not flagged again.")


class ReviewPage(QWidget):
    """The Review tab: the list on top, the selected record's diff view below."""

    apply_now_clicked = Signal()  # the window starts a sync of this workspace
    count_changed = Signal(int)  # what the tab's badge shows

    def __init__(self, store: Store, pool: QThreadPool | None = None, *,
                 now: Callable[[], dt.datetime] | None = None, parent: QWidget | None = None,
                 writes: WriteQueues | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._writes = writes  # the window's writer per workspace; None: saved on the given pool
        self.workspace: WorkspaceStatus | None = None
        self.crm_label = "the CRM"
        self.acct_label = "the ledger"
        self.model = ReviewModel(self, now=now) if now else ReviewModel(self)

        intro = QLabel("Changes the sync could not decide alone. Pick the value to keep for each field; "
                       "only these fields wait, the rest of each record keeps syncing.")
        intro.setObjectName("Muted")
        intro.setWordWrap(True)
        self.pending = QLabel()
        self.pending.setWordWrap(True)
        self.apply_button = QPushButton("Apply now")
        self.apply_button.setObjectName("PrimaryButton")
        self.apply_button.setToolTip("Sync this workspace now, so the saved choices reach both sides")
        self.apply_button.clicked.connect(self.apply_now_clicked)
        self.apply_button.hide()
        top = QHBoxLayout()
        top.setContentsMargins(16, 14, 16, 6)
        top.setSpacing(12)
        top.addWidget(intro, 1)

        self.banner = MessageBanner()
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(16, 0, 16, 8)
        banner_row.addWidget(self.banner)
        self.last_saved = 0
        pending_row = QHBoxLayout()
        pending_row.setContentsMargins(16, 0, 16, 6)
        pending_row.addWidget(self.pending, 1)
        pending_row.addWidget(self.apply_button)

        # Record, What needs a decision, Since
        self.table = make_table(self.model, (Fill(150), Fill(75), 0), sortable=False)  # the name first
        self.table.setColumnHidden(ReviewModel.SINCE, True)  # beside the diff view: the record and what to decide
        self.table.setSelectionMode(self.table.SelectionMode.SingleSelection)
        self.table.setMinimumWidth(220)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.activated.connect(lambda _i: self.diff.focus_first())
        self.list = TableOrNote(self.table)

        self.diff = DiffView(store, pool)
        self.diff.saved.connect(self._saved)
        self.diff.failed.connect(self._failed)
        self.match_panel = MatchPanel()
        self.match_panel.picked.connect(self._picked)
        self.flag_panel = FlagPanel()
        self.flag_panel.seen.connect(self._seen)
        self.hint = QLabel("Select a record above to compare its values side by side.")
        self.hint.setObjectName("Muted")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail = QStackedWidget()
        for widget in (self.hint, self.diff, self.match_panel, self.flag_panel):
            self.detail.addWidget(widget)
        detail_frame = QFrame()
        detail_frame.setObjectName("Content")
        dl = QVBoxLayout(detail_frame)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.detail)

        # The list on the left, as tall as the page (ten records and more at 1280×800), the selected
        # record's every conflicting field on the right.
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.list)
        self.splitter.addWidget(detail_frame)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([250, 740])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addLayout(banner_row)
        layout.addLayout(pending_row)
        layout.addWidget(self.splitter, 1)
        self.list.show_note(NOTHING_TO_REVIEW)

    # -- loading ---------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return self.model.rowCount()

    def set_workspace(self, ws: WorkspaceStatus) -> None:
        changed = self.workspace is None or self.workspace.id != ws.id
        self.workspace = ws
        if self._writes is not None:
            self.diff.use_pool(self._writes.pool(ws.id))
        self.crm_label = text.provider_label(ws.crm)
        self.acct_label = text.provider_label(ws.accounting)
        if changed:
            self.banner.show_notice(None)
        self.reload()

    def reload(self) -> None:
        """Re-read the open conflicts (small reads), keeping the selected record when it is still open."""
        if self.workspace is None:
            return
        keep = self.selected_item()
        ws_id = self.workspace.id
        matches = status.review_matches(self._store, ws_id)  # the same list status.workspace_counts counts
        items = review_items(conflicts.open_conflicts(self._store, ws_id), matches)
        self.model.set_rows(items)
        self._show_pending(conflicts.pending_choices(self._store, ws_id) + sum(1 for m in matches if m.picked))
        if items:
            self.list.show_table()
            self._fit_list(len(items))
            again = next((n for n, it in enumerate(items)
                          if keep is not None and (it.kind, it.record_type, it.record_id)
                          == (keep.kind, keep.record_type, keep.record_id)), 0)
            self.table.selectRow(again)
            self._show(items[again])
        else:
            self.list.show_note(NOTHING_TO_REVIEW)
            self.detail.setCurrentWidget(self.hint)
            self.diff.set_conflicts([], crm_label=self.crm_label, acct_label=self.acct_label)
        self.count_changed.emit(len(items))

    def _fit_list(self, rows: int) -> None:
        """Side by side, the list takes the page's height: nothing to fit."""

    def _show_pending(self, n: int) -> None:
        if n:
            self.pending.setText(
                f"{text.plural(n, 'choice')} saved. The next sync writes "
                f"{'it' if n == 1 else 'them'} to {self.crm_label} and {self.acct_label}; "
                f"Apply now syncs this workspace straight away.")
        self.pending.setVisible(bool(n))
        self.apply_button.setVisible(bool(n))

    def _picked(self, record_type: str, record_id: str, choice: str) -> None:
        """Save the answer to an ambiguous match; the next sync (or Apply now) acts on it."""
        if self.workspace is None:
            return
        store, ws_id = self._store, self.workspace.id
        if self._writes is None:
            conflicts.pick_match(store, ws_id, record_type, record_id, choice)
            self.reload()
            return
        self._writes.run(ws_id, lambda _p: conflicts.pick_match(store, ws_id, record_type, record_id, choice),
                         on_success=lambda _r: None,  # the change it announced re-reads this page
                         on_failure=lambda exc: self._failed(Notice("error", "The choice was not saved", (
                             "Crossledger's database did not answer. Pick again; if it keeps failing, quit "
                             "and open Crossledger again."))), parent=self)

    def _seen(self, ids: tuple[int, ...]) -> None:
        """Flags looked at: they leave the list (nothing is written to either side)."""
        if self.workspace is None or not ids:
            return
        store, ws_id = self._store, self.workspace.id

        def mark(_progress: object = None) -> int:
            conflicts.record_choices(store, [(i, "crm", None) for i in ids])
            return len(ids)

        if self._writes is None:
            self._saved(mark())
            return
        self._writes.run(ws_id, mark, on_success=lambda n: self._saved(n),
                         on_failure=lambda exc: self._failed(Notice("error", "It was not marked as seen", (
                             "Crossledger's database did not answer. Try again; if it keeps failing, quit "
                             "and open Crossledger again."))), parent=self)

    def selected_item(self) -> ReviewItem | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].data(RowRole) if rows else None

    def select(self, row: int) -> None:
        self.table.selectRow(row)

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        item = self.selected_item()
        if item is not None:
            self._show(item)

    def _show(self, item: ReviewItem) -> None:
        if item.kind == "match" and item.match is not None:
            self.match_panel.set_match(item.match, self.crm_label, self.acct_label)
            self.detail.setCurrentWidget(self.match_panel)
            return
        if item.kind == "flag":
            self.flag_panel.set_flags(item, self.crm_label, self.acct_label)
            self.detail.setCurrentWidget(self.flag_panel)
            return
        own = {c.id for c in item.conflicts}
        if self.detail.currentWidget() is self.diff and self.diff.showing() == tuple(c.id for c in item.conflicts):
            return  # the same record after a refresh: keep what the bookkeeper has picked so far
        similar: set[int] = set()
        for c in item.conflicts:
            similar.update(i for i in conflicts.similar(self._store, c.id) if i not in own)
        self.diff.set_conflicts(item.conflicts, crm_label=self.crm_label, acct_label=self.acct_label,
                                similar=len(similar))
        self.detail.setCurrentWidget(self.diff)

    # -- after a choice --------------------------------------------------------------------------
    def _saved(self, n: int) -> None:
        """The record leaves the list; the pending line says when the choice is applied."""
        had_focus = self.isAncestorOf(QApplication.focusWidget()) if QApplication.focusWidget() else False
        self.banner.show_notice(None)
        self.last_saved = n
        self.reload()
        if had_focus and self.count:
            self.diff.focus_first()
        elif had_focus:
            self.apply_button.setFocus()

    def _failed(self, notice: Notice) -> None:
        self.banner.show_notice(notice)
        self.reload()
