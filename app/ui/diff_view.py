"""The side-by-side diff view: one record's conflicting fields, and the bookkeeper's choice for each.

What differs is computed by ``app.domain.diff`` (pure); this module only paints the spans and
collects the choices. Saving goes through ``app.ops.conflicts`` on a worker thread.

Keys: Alt+L keeps the CRM's value, Alt+R the ledger's, Alt+E types another, for the field that has
the focus (or the first one not decided yet); Enter saves; Tab walks every control in reading order.
"""

from __future__ import annotations

import html
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.domain.diff import Span, diff_spans
from app.ops import conflicts
from app.ops.conflicts import Choice, ConflictView
from app.store.db import Store
from app.ui.text import Notice
from app.ui.theme import Palette
from app.ui.workers import BackgroundJob, ProgressFn

log = logging.getLogger("crossledger.ui")
EMPTY_WORDS = "(empty)"
KEY_HINT = "Alt+L keep the CRM's · Alt+R keep the ledger's · Alt+E type another · Enter save"

def _style() -> str:
    """Read when a diff view is made, so it has the light or the dark palette."""
    return f"""
QFrame#DiffCell {{
    background: {Palette.SURFACE};
    border: 1px solid {Palette.BORDER};
    border-radius: 6px;
}}
QFrame#DiffCell[chosen="true"] {{
    background: {Palette.SUCCESS_SOFT};
    border: 2px solid {Palette.SUCCESS};
}}
QFrame#DiffCell[base="true"] {{
    background: {Palette.WINDOW};
    border: 1px dashed {Palette.BORDER};
}}
QLabel#DiffValue {{
    color: {Palette.TEXT};
    font-size: 11pt;
}}
QLabel#DiffBase {{
    color: {Palette.TEXT_MUTED};
    font-size: 11pt;
}}
QLabel#FieldName {{
    font-weight: 600;
    color: {Palette.TEXT};
    font-size: 10.5pt;
}}
QLabel#ColumnHead {{
    color: {Palette.TEXT_MUTED};
    font-weight: 600;
}}
QPushButton#PickButton {{
    padding: 5px 12px;
    text-align: left;
}}
QPushButton#PickButton:checked {{
    background: {Palette.SUCCESS};
    border-color: {Palette.SUCCESS};
    color: {Palette.ON_ACCENT};
    font-weight: 600;
}}
QPushButton#PickButton:focus, QPushButton#PrimaryButton:focus {{
    border: 2px solid {Palette.ACCENT_PRESSED};
}}
QPushButton#PickButton:checked:focus {{
    border: 2px solid {Palette.ACCENT};
}}
QCheckBox:focus {{
    color: {Palette.ACCENT};
}}
QLabel#KeyHint {{
    color: {Palette.TEXT_FAINT};
}}
QFrame#FieldDivider {{
    background: {Palette.BORDER_SOFT};
    border: none;
    max-height: 1px;
    min-height: 1px;
}}
"""


GAP_MARK = "\u2038"  # ‸ a caret, where characters are missing on this side


def spans_html(spans: Sequence[Span]) -> str:
    """Rich text for one value: the words and characters that differ on a highlighter background."""
    if not spans:
        return f'<span style="color:{Palette.TEXT_FAINT}; font-style:italic;">{EMPTY_WORDS}</span>'
    parts = []
    for span in spans:
        words = html.escape(span.text)
        if span.op == "equal":
            parts.append(words)
        elif span.op == "gap":  # the other side has something here that this side lacks
            parts.append(f'<span style="background-color:{Palette.HIGHLIGHT}; '
                         f'color:{Palette.TEXT_FAINT};">{GAP_MARK}</span>')
        else:
            parts.append(f'<span style="background-color:{Palette.HIGHLIGHT};">{words}</span>')
    return f'<span style="white-space:pre-wrap;">{"".join(parts)}</span>'


def value_html(value: str | None) -> str:
    if not value:
        return f'<span style="font-style:italic;">{EMPTY_WORDS}</span>'
    return f'<span style="white-space:pre-wrap;">{html.escape(value)}</span>'


def _and(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _restyle(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def _cell(body: QLabel, *, base: bool = False) -> QFrame:
    frame = QFrame()
    frame.setObjectName("DiffCell")
    frame.setProperty("base", base)
    frame.setProperty("chosen", False)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 9, 12, 9)
    layout.addWidget(body)
    return frame


def _value_label(rich: str, name: str) -> QLabel:
    label = QLabel(rich)
    label.setObjectName(name)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(80)
    return label


@dataclass
class FieldRow:
    """The widgets of one conflicting field, and the choice made for it."""

    conflict: ConflictView
    left_cell: QFrame
    right_cell: QFrame
    left_value: QLabel
    right_value: QLabel
    use_left: QPushButton
    use_right: QPushButton
    type_other: QPushButton
    editor: QLineEdit
    editor_row: QWidget

    @property
    def choice(self) -> Choice | None:
        if self.use_left.isChecked():
            return "crm"
        if self.use_right.isChecked():
            return "accounting"
        if self.type_other.isChecked():
            return "edited"
        return None

    @property
    def decided(self) -> bool:
        return self.choice is not None and (self.choice != "edited" or bool(self.editor.text().strip()))

    def widgets(self) -> list[QWidget]:
        return [self.use_left, self.use_right, self.type_other, self.editor]

    def chosen_value(self) -> str | None:
        if self.choice == "crm":
            return self.conflict.crm_value
        if self.choice == "accounting":
            return self.conflict.acct_value
        if self.choice == "edited":
            return self.editor.text().strip() or None
        return None


class DiffView(QWidget):
    """One record's conflicts side by side: CRM value, ledger value, last synced value, and the choice."""

    saved = Signal(int)  # how many conflicts were decided (similar ones included)
    failed = Signal(object)  # a Notice

    def __init__(self, store: Store, pool: QThreadPool | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._pool = pool or QThreadPool.globalInstance()
        self._job: BackgroundJob[int] | None = None
        self.rows: list[FieldRow] = []
        self.crm_label = "CRM"
        self.acct_label = "Ledger"
        self.setStyleSheet(_style())

        self.title = QLabel()
        self.title.setObjectName("SectionTitle")
        self.subtitle = QLabel()
        self.subtitle.setObjectName("Muted")
        self.subtitle.setWordWrap(True)

        self._grid_host = QWidget()
        self._grid_host.setObjectName("Content")
        self.grid = QGridLayout(self._grid_host)
        self.grid.setContentsMargins(0, 0, 4, 0)
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(6)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._grid_host)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scroll = scroll

        self.similar_box = QCheckBox()
        self.similar_box.setToolTip("Alt+A")
        self.similar_box.hide()
        self.save_button = QPushButton("Save choices")
        self.save_button.setObjectName("PrimaryButton")
        self.save_button.setToolTip("Enter")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save)
        self.keys = QLabel(KEY_HINT)
        self.keys.setObjectName("KeyHint")
        self.keys.setWordWrap(True)
        self.decided = QLabel()  # "1 of 2 decided": every conflicting field of the record is listed above
        self.decided.setObjectName("Muted")

        bottom = QHBoxLayout()
        bottom.setSpacing(12)
        bottom.addWidget(self.keys, 1)
        bottom.addWidget(self.decided)
        bottom.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(10)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.similar_box)
        layout.addLayout(bottom)

        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (("Alt+L", lambda: self.pick("crm")), ("Alt+R", lambda: self.pick("accounting")),
                           ("Alt+E", lambda: self.pick("edited")), ("Alt+A", self._toggle_similar),
                           ("Return", self.save), ("Enter", self.save)):
            shortcut = QShortcut(QKeySequence(keys), self, context=context)
            shortcut.activated.connect(slot)

    # -- loading ---------------------------------------------------------------------------------
    def use_pool(self, pool: QThreadPool) -> None:
        """Save choices on ``pool`` from now on (the workspace's writer)."""
        self._pool = pool

    def set_conflicts(self, items: Sequence[ConflictView], *, crm_label: str, acct_label: str,
                      similar: int = 0) -> None:
        """Show one record's open conflicts; ``similar``: other open conflicts on the same fields."""
        self.crm_label, self.acct_label = crm_label, acct_label
        self._clear()
        if not items:
            self.title.setText("")
            self.subtitle.setText("")
            self.similar_box.hide()
            self._update_buttons()
            return
        first = items[0]
        self.title.setText(first.record_name)
        self.subtitle.setText(
            f"The {_and(c.field_label.lower() for c in items)} changed in both {crm_label} and {acct_label} since "
            f"the last sync, and your rules ask you to choose. Highlighted: where the two differ. Pick the value "
            f"to keep; the next sync writes it to both. The rest of this record keeps syncing as usual.")
        heads = ("", f"In {crm_label}", f"In {acct_label}", "Last synced (both agreed)")
        for col, words in enumerate(heads):
            head = QLabel(words)
            head.setObjectName("ColumnHead")
            self.grid.addWidget(head, 0, col)
        for n, conflict in enumerate(items):
            self._add_row(conflict, 1 + n * 4)
        self.grid.setColumnStretch(0, 0)
        self.grid.setColumnMinimumWidth(0, 90)
        for col, stretch in ((1, 4), (2, 4), (3, 3)):
            self.grid.setColumnStretch(col, stretch)
        self.grid.setRowStretch(1 + len(items) * 4, 1)
        fields_words = items[0].field_label.lower() if len(items) == 1 else "these fields"
        if similar:
            others = "conflict" if similar == 1 else "conflicts"
            self.similar_box.setText(f"Apply the same choice to {similar} similar {others} "
                                     f"(other records where {fields_words} differ{'s' if len(items) == 1 else ''})")
            self.similar_box.setChecked(False)
            self.similar_box.show()
        else:
            self.similar_box.hide()
        self.keys.setText(KEY_HINT + (" · Alt+A same choice for similar" if similar else ""))
        for n in range(self.grid.count()):  # shown now, not on the next event-loop turn: focus may go there
            widget = self.grid.itemAt(n).widget()
            if widget is not None and not any(widget is r.editor_row for r in self.rows):
                widget.show()
        self._chain_tabs()
        self._update_buttons()

    def _clear(self) -> None:
        self.rows = []
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.hide()
                widget.deleteLater()
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)

    def _add_row(self, c: ConflictView, r: int) -> None:
        left_spans, right_spans = diff_spans(c.crm_value, c.acct_value)
        name = QLabel(c.field_label)
        name.setObjectName("FieldName")
        name.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        name.setContentsMargins(0, 10, 0, 0)
        left_value = _value_label(spans_html(left_spans), "DiffValue")
        right_value = _value_label(spans_html(right_spans), "DiffValue")
        base_value = _value_label(value_html(c.base_value) if c.base_value is not None
                                  else '<span style="font-style:italic;">(not synced before)</span>', "DiffBase")
        left_cell, right_cell, base_cell = _cell(left_value), _cell(right_value), _cell(base_value, base=True)

        use_left = QPushButton("Keep this value   Alt+L")
        use_right = QPushButton("Keep this value   Alt+R")
        type_other = QPushButton("Type another value…   Alt+E")
        for button in (use_left, use_right, type_other):
            button.setObjectName("PickButton")
            button.setCheckable(True)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
        use_left.setAccessibleName(f"Keep {self.crm_label}'s {c.field_label.lower()}")
        use_right.setAccessibleName(f"Keep {self.acct_label}'s {c.field_label.lower()}")
        type_other.setAccessibleName(f"Type another {c.field_label.lower()}")

        editor = QLineEdit()
        editor.setPlaceholderText(f"The {c.field_label.lower()} to put in both {self.crm_label} and "
                                  f"{self.acct_label}")
        editor.setAccessibleName(f"{c.field_label} for both sides")
        editor_row = QWidget()
        er = QHBoxLayout(editor_row)
        er.setContentsMargins(0, 0, 0, 4)
        caption = QLabel("Value for both sides:")
        caption.setObjectName("Muted")
        er.addWidget(caption)
        er.addWidget(editor, 1)
        editor_row.hide()

        divider = QFrame()
        divider.setObjectName("FieldDivider")
        self.grid.addWidget(name, r, 0, 2, 1)
        self.grid.addWidget(left_cell, r, 1)
        self.grid.addWidget(right_cell, r, 2)
        self.grid.addWidget(base_cell, r, 3)
        self.grid.addWidget(use_left, r + 1, 1)
        self.grid.addWidget(use_right, r + 1, 2)
        self.grid.addWidget(type_other, r + 1, 3)
        self.grid.addWidget(editor_row, r + 2, 1, 1, 3)
        self.grid.addWidget(divider, r + 3, 0, 1, 4)

        row = FieldRow(c, left_cell, right_cell, left_value, right_value, use_left, use_right, type_other,
                       editor, editor_row)
        # One choice at a time, kept by _picked rather than a QButtonGroup: a group makes Tab skip to the
        # next field's first button, and every button should be reachable with Tab.
        for button in (use_left, use_right, type_other):
            button.toggled.connect(lambda on, row=row, button=button: self._picked(row, button, on))
        editor.textChanged.connect(lambda _t: self._update_buttons())
        self.rows.append(row)

    def _chain_tabs(self) -> None:
        chain: list[QWidget] = [w for row in self.rows for w in row.widgets()]
        chain += [self.similar_box, self.save_button]
        for a, b in itertools.pairwise(chain):
            QWidget.setTabOrder(a, b)

    # -- choosing --------------------------------------------------------------------------------
    def current_row(self) -> FieldRow | None:
        """The field with the keyboard focus; else the first one not decided yet; else the first."""
        focus = QApplication.focusWidget()
        for row in self.rows:
            if focus is not None and any(w is focus or w.isAncestorOf(focus) for w in row.widgets()):
                return row
        return next((row for row in self.rows if not row.decided), self.rows[0] if self.rows else None)

    def pick(self, choice: Choice, row: FieldRow | None = None) -> None:
        """Alt+L / Alt+R / Alt+E: choose for the current field, then move on to the next undecided one."""
        row = row or self.current_row()
        if row is None:
            return
        button = {"crm": row.use_left, "accounting": row.use_right, "edited": row.type_other}[choice]
        button.setChecked(True)
        if choice == "edited":
            row.editor.setFocus()
            row.editor.selectAll()
            return
        self._focus_next(row)

    def _focus_next(self, after: FieldRow) -> None:
        rows = self.rows[self.rows.index(after) + 1:] + self.rows[:self.rows.index(after)]
        nxt = next((r for r in rows if not r.decided), None)
        if nxt is not None:
            nxt.use_left.setFocus()
        else:
            self.save_button.setFocus()

    def _picked(self, row: FieldRow, button: QAbstractButton, on: bool) -> None:
        if on:
            for other in (row.use_left, row.use_right, row.type_other):
                if other is not button and other.isChecked():
                    other.blockSignals(True)
                    other.setChecked(False)
                    other.blockSignals(False)
        self._choice_changed(row)

    def _choice_changed(self, row: FieldRow) -> None:
        choice = row.choice
        row.left_cell.setProperty("chosen", choice == "crm")
        row.right_cell.setProperty("chosen", choice == "accounting")
        _restyle(row.left_cell)
        _restyle(row.right_cell)
        row.use_left.setText("✓ Keeping this value" if choice == "crm" else "Keep this value   Alt+L")
        row.use_right.setText("✓ Keeping this value" if choice == "accounting" else "Keep this value   Alt+R")
        row.editor_row.setVisible(choice == "edited")
        if choice == "edited" and not row.editor.text():
            # start from the CRM's value, so a small correction is a small edit
            row.editor.setText(row.conflict.crm_value or row.conflict.acct_value or "")
        self._update_buttons()

    def _update_buttons(self) -> None:
        decided = [r for r in self.rows if r.decided]
        self.decided.setText(f"{len(decided)} of {len(self.rows)} decided" if self.rows else "")
        busy = self._job is not None
        self.save_button.setEnabled(bool(decided) and not busy)
        sides = any(r.choice in ("crm", "accounting") for r in decided)
        self.similar_box.setEnabled(sides and not busy)

    def _toggle_similar(self) -> None:
        """Alt+A: apply the choice to all similar conflicts, or not."""
        if self.similar_box.isVisible() and self.similar_box.isEnabled():
            self.similar_box.toggle()
            self.similar_box.setFocus()

    # -- saving ----------------------------------------------------------------------------------
    def choices(self) -> list[tuple[int, Choice, str | None]]:
        out: list[tuple[int, Choice, str | None]] = []
        for row in self.rows:
            if row.decided and row.choice is not None:
                out.append((row.conflict.id, row.choice, row.chosen_value() if row.choice == "edited" else None))
        return out

    def save(self) -> None:
        """Enter / Save choices: record them off the UI thread; the next sync applies them."""
        chosen = self.choices()
        if not chosen or self._job is not None:
            return
        to_similar = self.similar_box.isVisible() and self.similar_box.isChecked()
        store = self._store

        def work(_progress: ProgressFn) -> int:
            return conflicts.record_choices(store, chosen, to_similar=to_similar)

        self._job = BackgroundJob(work, on_success=self._saved, on_failure=self._failed, parent=self)
        self._update_buttons()
        self._job.start(self._pool)

    def _finish_job(self) -> None:
        if self._job is not None:
            self._job.dispose()
        self._job = None
        self._update_buttons()

    def _saved(self, n: int) -> None:
        self._finish_job()
        self.saved.emit(n)

    def _failed(self, exc: Exception) -> None:
        self._finish_job()
        self.failed.emit(_save_notice(exc))

    def showing(self) -> tuple[int, ...]:
        """The conflicts on screen, so a refresh after a sync can leave unsaved picks alone."""
        return tuple(row.conflict.id for row in self.rows)

    @property
    def busy(self) -> bool:
        return self._job is not None

    def focus_first(self) -> None:
        row = next((r for r in self.rows if not r.decided), self.rows[0] if self.rows else None)
        if row is not None:
            row.use_left.setFocus()


def _save_notice(exc: Exception) -> Notice:
    from app.ops.workspaces import UserError

    if isinstance(exc, UserError):
        return Notice("warning", "That choice was not saved", f"{exc} The list has been refreshed.")
    log.error("Saving a review choice failed", exc_info=exc)
    return Notice("error", "Your choices were not saved",
                  "Crossledger could not write them to its database. Nothing was changed in the CRM or the "
                  "ledger; try again in a moment.")
