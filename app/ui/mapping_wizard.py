"""Field mapping: thin Qt pages over app.wizard.mapping_flow.

The CRM's fields (custom ones included) and sample records are read once in the background
when the wizard opens; every edit of the field table redraws the live preview from them.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.connectors import registry
from app.connectors.tokens import TokenStore
from app.ops import workspaces
from app.store.db import Store
from app.sync.mapping import TRANSFORM_LABELS
from app.ui import text
from app.ui.connect_wizard import start_job
from app.ui.theme import Palette
from app.ui.wizard_kit import add_step_indicator, follow_palette, style_main_action
from app.ui.workers import BackgroundJob
from app.wizard.mapping_flow import (
    CUSTOMERS_FROM,
    DIRECTION_LABEL,
    FIELD_LABEL,
    INVOICE_LABEL,
    MATCHED_AT_SYNC,
    OBJECT_LABEL,
    OBJECTS,
    RULE_LABEL,
    MappingFlow,
    PreviewRow,
    Samples,
    fetch_samples,
    fields_of,
    named_labels,
    sample_values,
    set_field,
    stored_ledger,
)

PAGE_IDS = {"objects": 0, "fields": 1, "preview": 2, "save": 3}
PREVIEW_FIELDS = ("name", "email", "phone", "address_line1", "city", "postal_code", "country", "tax_id")
Index = QModelIndex | QPersistentModelIndex


def _when(iso: str) -> str:
    try:
        return dt.datetime.fromisoformat(iso).strftime("%d %b %Y, %H:%M UTC")
    except ValueError:
        return iso


def _label(value: str = "", name: str = "") -> QLabel:
    label = QLabel(value)
    label.setWordWrap(True)
    if name:
        label.setObjectName(name)
    return label


class PreviewModel(QAbstractTableModel):
    """Sample records as the draft maps them: one row each, with what the next sync would do."""

    def __init__(self, parent: QWidget | None = None, crm_label: str = "the CRM") -> None:
        super().__init__(parent)
        self.crm_label = crm_label
        self.rows: list[PreviewRow] = []
        self.headers = ["Record", *(FIELD_LABEL[f] for f in PREVIEW_FIELDS), "Next sync", "Problems"]

    def set_rows(self, rows: list[PreviewRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            kind = "Company" if row.object_type == "company" else "Contact"
            if col == 0:  # the name, as a bookkeeper knows the record; its kind and id in the tooltip
                if role == Qt.ItemDataRole.ToolTipRole:
                    return f"{kind} {row.record_id} in {self.crm_label}"
                return row.name or f"(a {kind.lower()} with no name)"
            if col <= len(PREVIEW_FIELDS):
                return row.values.get(PREVIEW_FIELDS[col - 1]) or ""
            if col == len(PREVIEW_FIELDS) + 1:
                return row.outcome
            return " ".join(row.problems)
        if role == Qt.ItemDataRole.ForegroundRole and row.problems and col == len(self.headers) - 1:
            return QColor(Palette.ERROR)
        return None


class _Page(QWizardPage):
    step_id = ""

    def __init__(self, wizard: MappingWizard, step_id: str, title: str, subtitle: str) -> None:
        super().__init__()
        self.w = wizard
        self.step_id = step_id
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self.errors = _label(name="ErrorText")
        self.errors.hide()

    def values(self) -> dict[str, Any]:
        return {}

    def show_problems(self, problems: dict[str, str]) -> None:
        self.errors.setText("\n".join(problems.values()))
        self.errors.setVisible(bool(problems))

    def validatePage(self) -> bool:
        if self.w.mf is None:
            return False
        problems = self.w.mf.flow.submit(self.values(), self.step_id)
        self.show_problems(problems)
        return not problems


class ObjectsPage(_Page):
    def __init__(self, wizard: MappingWizard) -> None:
        super().__init__(wizard, "objects", "Which CRM records become customers",
                         "Companies, contacts, or both. A contact who belongs to a company is billed through the "
                         "company.")
        self.loading = _label()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.choices: dict[str, QRadioButton] = {}
        group = QButtonGroup(self)
        choice_box = QVBoxLayout()
        for value, label in CUSTOMERS_FROM.items():
            button = QRadioButton(label)
            group.addButton(button)
            self.choices[value] = button
            choice_box.addWidget(button)
        self.invoices = QComboBox()
        for value, label in INVOICE_LABEL.items():
            self.invoices.addItem(label, value)
        self.customers = QComboBox()
        for value, label in named_labels(DIRECTION_LABEL, wizard.crm_label, wizard.ledger_label).items():
            self.customers.addItem(label, value)
        self.versions = QListWidget()
        self.versions.setWordWrap(True)
        self.versions.setMaximumHeight(150)
        self.use_version = QPushButton("Start from this version")
        self.use_version.clicked.connect(self._use_version)
        self.versions_title = _label("Saved versions of this mapping", "SectionTitle")

        layout = QVBoxLayout(self)
        layout.addWidget(self.loading)
        layout.addWidget(self.busy)
        layout.addLayout(choice_box)
        form = QFormLayout()
        form.addRow("C&ustomers:", self.customers)
        form.addRow("Won &deals:", self.invoices)
        layout.addLayout(form)
        layout.addSpacing(8)
        layout.addWidget(self.versions_title)
        layout.addWidget(self.versions)
        layout.addWidget(self.use_version, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        layout.addWidget(self.errors)
        chain = [*self.choices.values(), self.customers, self.invoices, self.versions, self.use_version]
        for a, b in itertools.pairwise(chain):
            self.setTabOrder(a, b)

    def initializePage(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        mf = self.w.mf
        ready = mf is not None
        self.busy.setVisible(self.w.loading)
        self.loading.setVisible(not ready or self.w.load_error is not None)
        if self.w.load_error is not None:
            self.loading.setObjectName("ErrorText")
            self.loading.setText(self.w.load_error)
            self.loading.setStyleSheet("")
        elif not ready:
            self.loading.setText(f"Reading the fields and some sample records from {self.w.crm_label}…")
        for button in self.choices.values():
            button.setEnabled(ready)
        self.invoices.setEnabled(ready)
        self.customers.setEnabled(ready)
        if mf is None:
            self.versions_title.hide()
            self.versions.hide()
            self.use_version.hide()
            self.completeChanged.emit()
            return
        self.choices[mf.draft.customers_from].setChecked(True)
        self.invoices.setCurrentIndex(max(self.invoices.findData(mf.draft.invoices), 0))
        self.customers.setCurrentIndex(max(self.customers.findData(mf.draft.customers), 0))
        self.versions.clear()
        for v in mf.versions():
            item = QListWidgetItem(f"Version {v.number}, saved {_when(v.saved_at)}: {v.summary}")
            item.setData(Qt.ItemDataRole.UserRole, v.number)
            item.setToolTip(v.summary)
            self.versions.addItem(item)
        has = self.versions.count() > 0
        self.versions_title.setVisible(has)
        self.versions.setVisible(has)
        self.use_version.setVisible(has)
        self.completeChanged.emit()

    def _use_version(self) -> None:
        item = self.versions.currentItem()
        if item is None or self.w.mf is None:
            return
        self.w.mf.start_from_version(int(item.data(Qt.ItemDataRole.UserRole)))
        self.refresh()

    def isComplete(self) -> bool:
        return self.w.mf is not None

    def values(self) -> dict[str, Any]:
        chosen = next((v for v, b in self.choices.items() if b.isChecked()), "both")
        return {"customers_from": chosen, "invoices": self.invoices.currentData(),
                "customers": self.customers.currentData()}


class FieldTable(QTableWidget):
    """One object type's rows: customer field | CRM field | tidy-up | who wins | direction."""

    changed = Signal()
    COLUMNS = ("Customer field", "CRM field", "Tidy-up", "When both changed", "Direction")

    def __init__(self, wizard: MappingWizard, object_type: str) -> None:
        super().__init__(0, len(self.COLUMNS))
        self.w = wizard
        self.object_type = object_type
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().hide()
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        for col in (3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setColumnWidth(2, 190)
        self.setTabKeyNavigation(False)
        self.combos: dict[tuple[str, int], QComboBox] = {}

    def load(self) -> None:
        mf = self.w.mf
        assert mf is not None
        canonicals = fields_of(self.object_type)
        self.setRowCount(len(canonicals))
        choices = mf.field_choices(self.object_type)
        for row, canonical in enumerate(canonicals):
            item = _cell(FIELD_LABEL[canonical])
            self.setItem(row, 0, item)
            src, transform = mf.draft.source(self.object_type, canonical)
            source = QComboBox()
            source.addItem("— not synced —", "")
            for f in choices:
                source.addItem(f"{f.label} ({f.name})" + ("  · custom" if f.custom else ""), f.name)
            if src and source.findData(src) < 0:
                source.addItem(f"{src} (not in the CRM any more)", src)
            source.setCurrentIndex(max(source.findData(src), 0))
            tidy = QComboBox()
            for value, label in TRANSFORM_LABELS.items():
                tidy.addItem(label, value)
            tidy.setCurrentIndex(max(tidy.findData(transform), 0))
            self._put(row, 1, source, canonical, "source")
            self._put(row, 2, tidy, canonical, "transform")
            if canonical in ("first_name", "last_name"):
                for col in (3, 4):
                    self.setItem(row, col, _cell("(as the customer name)"))
                continue
            rule = QComboBox()
            for value, label in named_labels(RULE_LABEL, self.w.crm_label, self.w.ledger_label).items():
                rule.addItem(label, value)
            rule.setCurrentIndex(max(rule.findData(mf.draft.rules.get(canonical, "crm")), 0))
            direction = QComboBox()
            for value, label in named_labels(DIRECTION_LABEL, self.w.crm_label, self.w.ledger_label).items():
                direction.addItem(label, value)
            direction.setCurrentIndex(max(direction.findData(mf.draft.direction(canonical)), 0))
            self._put(row, 3, rule, canonical, "rule")
            self._put(row, 4, direction, canonical, "direction")
            samples = sample_values(mf.samples, self.object_type, src)
            source.setToolTip("Examples: " + ", ".join(samples) if samples else "")
        self.resizeRowsToContents()

    def _put(self, row: int, col: int, combo: QComboBox, canonical: str, what: str) -> None:
        combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCellWidget(row, col, combo)
        self.combos[(canonical, col)] = combo
        combo.currentIndexChanged.connect(lambda _i, c=canonical, k=what, b=combo: self._edited(c, k, b))

    def _edited(self, canonical: str, what: str, combo: QComboBox) -> None:
        mf = self.w.mf
        if mf is None:
            return
        set_field(mf.draft, self.object_type, canonical, **{what: combo.currentData()})
        if what == "source":
            samples = sample_values(mf.samples, self.object_type, combo.currentData())
            combo.setToolTip("Examples: " + ", ".join(samples) if samples else "")
        self.changed.emit()

    def mark(self, problems: dict[str, tuple[int, str]]) -> None:
        """Mark the drop-down a problem is about and say it under the field's name, in its row.
        ``problems``: canonical field -> (column, message)."""
        for row, canonical in enumerate(fields_of(self.object_type)):
            col, message = problems.get(canonical, (0, ""))
            item = self.item(row, 0)
            if item is not None:
                item.setText(f"{FIELD_LABEL[canonical]}\n{message}" if message else FIELD_LABEL[canonical])
                item.setForeground(QColor(Palette.ERROR) if message else self.palette().text().color())
                item.setToolTip(message)
            for (c, k), combo in self.combos.items():
                if c == canonical:
                    combo.setProperty("invalid", bool(message) and k == col)
                    combo.style().unpolish(combo)
                    combo.style().polish(combo)
        self.resizeRowsToContents()

    def set_combo(self, canonical: str, col: int, value: str) -> None:
        """Choose ``value`` in a row's drop-down, as a click would (tests, screenshots)."""
        combo = self.combos[(canonical, col)]
        combo.setCurrentIndex(combo.findData(value))


def _cell(value: str) -> QTableWidgetItem:
    """A read-only cell."""
    item = QTableWidgetItem(value)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled)
    return item


class FieldsPage(_Page):
    def __init__(self, wizard: MappingWizard) -> None:
        super().__init__(wizard, "fields", "Fields", "Which CRM field fills each customer field, how it is tidied, "
                         "who wins when both sides changed it, and which way it is synced.")
        self.tabs = QTabWidget()
        self.tables = {otype: FieldTable(wizard, otype) for otype in OBJECTS}
        for otype, table in self.tables.items():
            self.tabs.addTab(table, OBJECT_LABEL[otype])
            table.changed.connect(self._changed)
        self.live = _label(name="Help")
        self.live.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(_label("Live preview (first sample records)", "SectionTitle"))
        layout.addWidget(self.live)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        for table in self.tables.values():
            table.load()
        mf = self.w.mf
        if mf is not None:
            wanted = {"companies": ["company"], "people": ["person"]}.get(mf.draft.customers_from, list(OBJECTS))
            self.tabs.setCurrentIndex(OBJECTS.index(wanted[0]))
            for otype in OBJECTS:
                self.tabs.setTabVisible(OBJECTS.index(otype), otype in wanted)
        self._changed()

    def _changed(self) -> None:
        mf = self.w.mf
        if mf is None:
            return
        lines = []
        for row in mf.preview()[:3]:
            shown = html.escape(", ".join(v for f in ("name", "email", "phone", "country", "tax_id")
                                          if (v := row.values.get(f))))
            problem = (f" <span style='color:{Palette.ERROR}'>— {html.escape(row.problems[0])}</span>"
                       if row.problems else "")
            lines.append(f"• {shown or '(empty)'}{problem}")
        self.live.setText("<br>".join(lines) or "No sample records to preview yet.")
        self.show_problems(mf.flow.check({}, "fields"))

    def show_problems(self, problems: dict[str, str]) -> None:
        """Each problem in its field's row (marked, the message under the field's name); all of them
        also listed at the bottom, since a row may be on the other tab."""
        by_table: dict[str, dict[str, tuple[int, str]]] = {otype: {} for otype in OBJECTS}
        for key, message in problems.items():
            head, _, canonical = key.partition(".")
            if head in by_table:
                by_table[head][canonical] = (1, message)
            elif head == "rule":
                for otype in OBJECTS:
                    by_table[otype].setdefault(canonical, (3, message))
        for otype, table in self.tables.items():
            table.mark(by_table[otype])
        super().show_problems(problems)


class PreviewPage(_Page):
    def __init__(self, wizard: MappingWizard) -> None:
        super().__init__(wizard, "preview", "Preview", "Real records from the CRM, mapped as set on the previous "
                         "page, and what the next sync would do with each. Nothing is written yet.")
        self.model = PreviewModel(self, wizard.crm_label)
        self.view = QTableView()
        self.view.setAccessibleName("Preview of sample records")
        self.view.setTabKeyNavigation(False)
        self.view.setModel(self.model)
        self.view.setAlternatingRowColors(True)
        self.view.verticalHeader().hide()
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.summary = _label(name="Help")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        mf = self.w.mf
        rows = mf.preview() if mf else []
        self.model.set_rows(rows)
        self.view.resizeColumnsToContents()
        for col in range(self.model.columnCount()):
            self.view.setColumnWidth(col, min(self.view.columnWidth(col), 220))
        held = sum(1 for r in rows if r.problems)
        creates = sum(1 for r in rows if r.outcome.startswith("Creates"))
        links = sum(1 for r in rows if r.outcome.startswith("Links"))
        if any(r.outcome == MATCHED_AT_SYNC for r in rows):  # the ledger was not read for the preview
            self.summary.setText(f"{text.plural(len(rows), 'sample record')}, {held:,} would be held back. "
                                 f"The others are compared with the customers in {self.w.ledger_label} when "
                                 "syncing: one with the same email, tax ID or name is linked, otherwise a new "
                                 "customer is created.")
            return
        self.summary.setText(f"{text.plural(len(rows), 'sample record')}: {creates:,} would be created, "
                             f"{links:,} linked to existing customers, {held:,} held back.")


class SavePage(_Page):
    def __init__(self, wizard: MappingWizard) -> None:
        super().__init__(wizard, "save", "Save", "Saving makes a new version of this workspace's mapping. The "
                         "next sync uses it; older versions stay listed on the first page.")
        self.changes = QListWidget()
        layout = QVBoxLayout(self)
        layout.addWidget(_label("What changes", "SectionTitle"))
        layout.addWidget(self.changes, 1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        self.changes.clear()
        mf = self.w.mf
        lines = mf.changes() if mf else []
        for line in lines or ["Nothing changed. Saving keeps the same mapping as a new version."]:
            self.changes.addItem(line)

    def validatePage(self) -> bool:
        mf = self.w.mf
        if mf is None:
            return False
        try:
            self.w.saved_version = mf.save()
        except workspaces.UserError as exc:
            self.show_problems({"save": str(exc)})
            return False
        return True


class MappingWizard(QWizard):
    saved = Signal(str, int)  # workspace name, version

    def __init__(self, store: Store, tokens: TokenStore, workspace: str, *, pool: QThreadPool | None = None,
                 parent: QWidget | None = None, transport: Any = None) -> None:
        super().__init__(parent)
        self.store, self.tokens = store, tokens
        ws = workspaces.get_workspace(store, workspace)
        self.workspace = ws.name
        self.crm_label = registry.info(ws.crm).label
        self.ledger_label = registry.info(ws.accounting).label
        self.pool = pool or QThreadPool.globalInstance()
        self.mf: MappingFlow | None = None
        self.loading = True
        self.load_error: str | None = None
        self.saved_version: int | None = None
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        follow_palette(self)  # light or dark, as the window; made again if the system switches
        self.setWindowTitle(f"Field mapping — {ws.name} — Crossledger")
        self.setMinimumSize(940, 640)
        self.pages = {"objects": ObjectsPage(self), "fields": FieldsPage(self), "preview": PreviewPage(self),
                      "save": SavePage(self)}
        for step, page in self.pages.items():
            self.setPage(PAGE_IDS[step], page)
        self.setStartId(0)
        style_main_action(self, finish="Save")
        add_step_indicator(self, lambda page_id: (page_id + 1, len(PAGE_IDS)) if page_id in PAGE_IDS.values()
                           else None)

        def load(_progress: Any) -> tuple[dict[str, dict[str, str]], Samples]:
            crm, acct = workspaces.open_connectors(store, tokens, ws, transport=transport)
            try:
                return crm.default_mapping(), fetch_samples(crm, acct, ledger=stored_ledger(store, ws.name))
            finally:
                crm.close()
                acct.close()

        self.closed = False
        self.job = start_job(BackgroundJob(load, on_success=self._loaded, on_failure=self._load_failed), self.pool)

    def _loaded(self, result: tuple[dict[str, dict[str, str]], Samples]) -> None:
        if self.closed:
            return
        default, samples = result
        self.loading = False
        self.mf = MappingFlow(self.store, self.workspace, default)
        self.mf.set_samples(samples)
        self.pages["objects"].refresh()

    def _load_failed(self, exc: Exception) -> None:
        if self.closed:
            return
        self.loading = False
        notice = text.notice_for_error(exc, workspace=self.workspace)
        self.load_error = f"{notice.title}. {notice.detail}"
        self.pages["objects"].refresh()

    def done(self, result: int) -> None:
        super().done(result)  # QWizard validates the last page here: SavePage saves
        self.closed = not self.isVisible()  # a Finish whose last page refused leaves the wizard open
        if result == QWizard.DialogCode.Accepted and self.saved_version is not None:
            version, self.saved_version = self.saved_version, None
            self.saved.emit(self.workspace, version)

