"""Held back: records the sync did not send, each with why, one reason per line.

Two groups: records that need correcting (the checks held them), and records you held back yourself by
undoing a run; several of the latter can be picked and synced again at once.

Above them, the one-click ways out (app/ops/ways_out.py): an invoice waiting on a ledger customer that was
archived, merged or deleted shows its button ("Make 'Acme Ltd' active again"), one per customer however many
deals wait on it. A click takes it on the workspace's writer thread (the ledger is called there, never on the UI
thread) and says what happened; the change is announced, so the window re-reads the list. The view offers
them once it is given a ``WayOutActions`` (``attach_ways_out``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ops.status import QuarantineRow
from app.ui.banner import MessageBanner
from app.ui.models import HeldBackModel, SearchFilterProxy
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table
from app.ui.text import Level, Notice

if TYPE_CHECKING:  # app.ops.ways_out is imported on first use: it is not needed to open the window
    from app.connectors.tokens import TokenStore
    from app.ops.ways_out import Taken, WayOut
    from app.store.db import Store
    from app.ui.workers import WriteQueues

Index = QModelIndex | QPersistentModelIndex
CHECKS, UNDONE = "checks", "undone"
NOTE_EMPTY = "Nothing is held back. Every record passed the checks."


class HeldBackFilter(SearchFilterProxy):
    """The search, and one group: held by the checks, or held by an undo (None: both)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.group: str | None = None

    def set_group(self, group: str | None) -> None:
        if group != self.group:
            self.change_filter(lambda: setattr(self, "group", group))

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if (self.group is not None and isinstance(model, HeldBackModel)
                and model.row(source_row).undone != (self.group == UNDONE)):
            return False
        return super().filterAcceptsRow(source_row, source_parent)


@dataclass
class WayOutActions:
    """What the Held back tab needs to offer the ways out: the store they are read from, the sign-ins, the window's
    writer per workspace, and which workspace is shown ((id, name), or None). ``options``: how the ledger is
    reached (tests: an in-process transport and a virtual clock)."""

    store: Store
    tokens: TokenStore
    writes: WriteQueues
    workspace: Callable[[], tuple[int, str] | None]
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> list[WayOut]:
        from app.ops.ways_out import ways_out

        shown = self.workspace()
        return ways_out(self.store, shown[0]) if shown else []

    def take(self, way: WayOut, on_done: Callable[[Taken], None], on_failure: Callable[[Exception], None],
             parent: QObject) -> bool:
        shown = self.workspace()
        if shown is None:
            return False
        from app.ops.ways_out import take

        ws_id, name = shown
        self.writes.run(ws_id, lambda _p: take(self.store, self.tokens, name, way.key, **self.options),
                        on_success=on_done, on_failure=on_failure, parent=parent)
        return True


class WayOutCard(QFrame):
    """One way out: why the invoices wait, which ones, and the button that settles it."""

    def __init__(self, way: WayOut, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.way = way
        self.setObjectName("Card")
        reason = QLabel(way.reason or way.label)
        reason.setWordWrap(True)
        names = [w.name or f"{w.record_type} {w.record_id}" for w in way.waiting]
        waiting = QLabel(("Waiting: " if len(names) > 1 else "Waiting: the invoice for ") + ", ".join(names))
        waiting.setObjectName("Muted")
        waiting.setWordWrap(True)
        self.button = QPushButton(way.label)
        self.button.setObjectName("PrimaryButton")
        self.button.setAccessibleName(way.label)
        self.button.setToolTip("Done in the ledger now; the next sync then makes the invoices that wait.")
        words = QVBoxLayout()
        words.setSpacing(2)
        words.addWidget(reason)
        words.addWidget(waiting)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(12)
        layout.addLayout(words, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)


class HeldBackView(QWidget):
    """``release_many([(record_type, record_id), ...])``: the user lets records held by an undo sync again.
    ``way_out_taken(Taken)``: a way out was taken (or refused), after its result is shown."""

    release_many = Signal(list)
    way_out_taken = Signal(object)

    def __init__(self, model: HeldBackModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = HeldBackFilter(self)
        self.proxy.setSourceModel(model)

        self.intro = QLabel()
        self.intro.setObjectName("Muted")
        self.intro.setWordWrap(True)

        # The two groups, shown when both have records
        self.checks_button = QPushButton()
        self.undone_button = QPushButton()
        self.groups = QButtonGroup(self)
        self.groups.setExclusive(True)
        for button, group in ((self.checks_button, CHECKS), (self.undone_button, UNDONE)):
            button.setCheckable(True)
            button.setObjectName("CompactButton")
            button.setProperty("group", group)
            self.groups.addButton(button)
        self.checks_button.setToolTip("Records the checks held back: correct them in the CRM")
        self.undone_button.setToolTip("Records you held back by undoing a run: pick them and sync them again")
        self.checks_button.setChecked(True)
        self.groups.buttonToggled.connect(self._group_toggled)

        # Record, Type, Why it was held back, Held since
        self.table = make_table(self.proxy, (230, 90, Fill(320), 150))
        self.table.setWordWrap(True)
        self.table.setItemDelegate(PaddedTextDelegate(self.table))
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        self.table.sortByColumn(HeldBackModel.NAME, Qt.SortOrder.AscendingOrder)
        self.table.setTabKeyNavigation(False)
        self.body = TableOrNote(self.table)
        self.release = QPushButton("Sync again")
        self.release.setObjectName("PrimaryButton")
        self.release.setToolTip("The next sync creates or links the selected records again. Pick several with "
                                "Ctrl or Shift, or Ctrl+A for all.")
        self.release.setEnabled(False)
        self.release.clicked.connect(self._release)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        top = QHBoxLayout()
        top.setContentsMargins(16, 10, 16, 8)
        top.setSpacing(8)
        top.addWidget(self.checks_button)
        top.addWidget(self.undone_button)
        top.addWidget(self.intro, 1)
        top.addWidget(self.release, 0, Qt.AlignmentFlag.AlignVCenter)

        # The ways out, above the table; what the last click did
        self.ways: WayOutActions | None = None
        self.cards: list[WayOutCard] = []
        self.result = MessageBanner()
        self.ways_box = QWidget()
        self.ways_layout = QVBoxLayout(self.ways_box)
        self.ways_layout.setContentsMargins(16, 0, 16, 8)
        self.ways_layout.setSpacing(6)
        self.ways_box.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        result_row = QHBoxLayout()
        result_row.setContentsMargins(16, 0, 16, 8)
        result_row.addWidget(self.result)
        layout.addLayout(result_row)
        layout.addWidget(self.ways_box)
        layout.addWidget(self.body, 1)
        self.body.show_note(NOTE_EMPTY)
        self._group_changed()

    @property
    def group(self) -> str:
        return UNDONE if self.undone_button.isChecked() else CHECKS

    def show_group(self, group: str) -> None:
        (self.undone_button if group == UNDONE else self.checks_button).setChecked(True)

    def selected_rows(self) -> list[QuarantineRow]:
        return [self.model.row(self.proxy.mapToSource(i).row()) for i in self.table.selectionModel().selectedRows()]

    def selected(self) -> QuarantineRow | None:
        rows = self.selected_rows()
        return rows[0] if rows else None

    def _selection_changed(self) -> None:
        undone = [r for r in self.selected_rows() if r.undone]
        self.release.setEnabled(bool(undone))
        self.release.setText(f"Sync {len(undone):,} again" if len(undone) > 1 else "Sync again")

    def _release(self) -> None:
        undone = [(r.record_type, r.record_id) for r in self.selected_rows() if r.undone]
        if not undone:
            return
        self.release_many.emit(undone)

    def _group_toggled(self, _button: object, on: bool) -> None:
        if on:
            self._group_changed()

    def _group_changed(self) -> None:
        rows = [self.model.row(n) for n in range(self.model.rowCount())]
        n_undone = sum(r.undone for r in rows)
        n_checks = len(rows) - n_undone
        both = bool(n_undone and n_checks)
        group = self.group if both else (UNDONE if n_undone else CHECKS)
        self.proxy.set_group(group if rows else None)
        self.checks_button.setText(f"To correct  {n_checks:,}")
        self.undone_button.setText(f"Undone by you  {n_undone:,}")
        self.checks_button.setVisible(both)
        self.undone_button.setVisible(both)
        self.release.setVisible(group == UNDONE and n_undone > 0)
        self.intro.setText(
            "Records you held back by undoing a run. Select them (Ctrl or Shift for several) and click Sync "
            "again: the next sync creates or links them again." if group == UNDONE else
            "These records were not sent to the other side. Correct them in the CRM and the next sync picks "
            "them up.")
        self.table.clearSelection()
        self._selection_changed()
        if rows:
            self.body.show_table()
        else:
            self.body.show_note(NOTE_EMPTY)

    def set_rows(self, rows: list[QuarantineRow]) -> None:
        self.model.set_rows(rows)
        self._group_changed()
        self.show_ways_out()

    # -- ways out ------------------------------------------------------------------------------------
    def attach_ways_out(self, actions: WayOutActions) -> None:
        self.ways = actions
        self.show_ways_out()

    def show_ways_out(self) -> None:
        """The open ways out of the shown workspace, read again (a small read, as the rows are)."""
        for card in self.cards:
            self.ways_layout.removeWidget(card)
            card.deleteLater()
        self.cards = []
        for way in self.ways.open() if self.ways is not None else []:
            card = WayOutCard(way, self.ways_box)
            card.button.clicked.connect(lambda _=False, c=card: self._take(c))
            self.ways_layout.addWidget(card)
            self.cards.append(card)
        self.ways_box.setVisible(bool(self.cards))

    def _take(self, card: WayOutCard) -> None:
        if self.ways is None:
            return
        card.button.setEnabled(False)
        card.button.setText("Working…")
        if not self.ways.take(card.way, self._taken, lambda exc: self._failed(card.way, exc), self):
            card.button.setEnabled(True)
            card.button.setText(card.way.label)

    def _taken(self, taken: Taken) -> None:
        levels: dict[str, Level] = {"ok": "success", "refused": "warning", "provider": "error"}
        title = "Done" if taken.ok else "Not done"
        self.result.show_notice(Notice(levels[taken.status], f"{title}: {taken.way_out.label}", taken.message))
        self.show_ways_out()
        self.way_out_taken.emit(taken)

    def _failed(self, way: WayOut, exc: Exception) -> None:
        from app.ops.workspaces import UserError

        detail = str(exc) if isinstance(exc, UserError) else (
            "Something unexpected went wrong; nothing more was changed. Try again, or run 'crossledger held' to "
            "see what still waits.")
        self.result.show_notice(Notice("error", f"Not done: {way.label}", detail))
        self.show_ways_out()
