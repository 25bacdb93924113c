"""What the Activity page and its workbook show: every run and every field change, with record names.

``app.ops.history`` reads the journal by record ID; a bookkeeper knows records by name, so this module
puts the names next to the IDs (from the links and the last-read mirror), once, for both the page and
the .xlsx export. Plain Python, no Qt.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.domain.files import atomic_path
from app.ops.conflicts import FIELD_LABELS
from app.ops.history import ChangeEntry, field_changes
from app.ops.status import RECONCILE
from app.store.db import Store
from app.store.models import FieldChange, Link, Mirror, Run, Workspace

if TYPE_CHECKING:  # openpyxl is imported when a workbook is written: it costs the window's start ~0.3 s
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

SIDE_LABELS = {"crm": "CRM", "accounting": "Ledger", "local": "Crossledger"}
TRIGGER_LABELS = {"manual": "Sync now", "schedule": "Scheduled", "demo": "Demo set-up", "cli": "Command line",
                  "undo": "Undo"}
STATUS_LABELS = {"ok": "Synced", "partial": "Partly synced", "failed": "Failed", "cancelled": "Cancelled",
                 "running": "Running", "interrupted": "Interrupted"}
RULE_LABELS = {  # {crm} and {ledger} are the providers' names
    "created": "New customer",
    "crm-changed": "Changed in {crm}",
    "ledger-changed": "Changed in {ledger}",
    "conflict:crm": "Changed on both sides; {crm} wins by rule",
    "conflict:accounting": "Changed on both sides; {ledger} wins by rule",
    "review": "Chosen in Review",
    "chosen-by-you": "Chosen by you",
    "ledger-owns": "Copied from the invoice in {ledger}",
    "migration": "The one-time import",
    "undo": "Undo of an earlier run",
}


DEAL_FIELD = "crossledger_"  # the prefix of the fields Crossledger keeps on a CRM deal (DEAL_FIELDS)


def field_label(name: str) -> str:
    if name.startswith(DEAL_FIELD):  # a field Crossledger keeps on a CRM deal: as the CRM labels it
        return _deal_labels().get(name) or name.removeprefix(DEAL_FIELD).replace("_", " ").capitalize()
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


@functools.cache
def _deal_labels() -> dict[str, str]:
    """The labels the CRM properties were made with ('Balance due'), read when first needed."""
    from app.sync.invoice_apply import DEAL_FIELDS

    return {f.name: f.label for f in DEAL_FIELDS}


def side_label(side: str) -> str:
    return SIDE_LABELS.get(side, side.capitalize())


def trigger_label(trigger: str) -> str:
    return TRIGGER_LABELS.get(trigger, trigger.capitalize())


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.capitalize())


def rule_label(rule: str, crm: str = "the CRM", ledger: str = "the ledger") -> str:
    """Why a field changed, from the rule the journal recorded ('+cleaned': written without the hidden
    characters the CRM's value holds)."""
    rule, cleaned, _ = rule.partition("+cleaned")
    if cleaned:
        return f"{rule_label(rule, crm, ledger)}; hidden characters (text-direction controls, byte-order marks " \
               "or zero-width spaces) taken out"
    words = RULE_LABELS.get(rule)
    if words is None:
        return rule.replace("_", " ").replace("-", " ").capitalize()
    return words.format(crm=crm, ledger=ledger)


@dataclass(frozen=True, slots=True)
class ActivityRun:
    id: int
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    counts: dict[str, Any]
    message: str | None
    dry_run: bool
    changes: int  # field changes it made

    @property
    def errors(self) -> int:
        return int(self.counts.get("errors") or 0)

    def counts_text(self) -> str:
        """'3 customers created, 15 fields changed' (what it read is in the workbook's Read column)."""
        n = {k: int(v) for k, v in self.counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        parts = [f"Undid run #{self.counts['undo_of']}"] if self.counts.get("undo_of") else []
        if self.trigger != "undo":
            updated = n.get("writes", 0) - n.get("created", 0)
            for count, one, many in ((n.get("created", 0), "customer created", "customers created"),
                                     (n.get("linked", 0), "linked to an existing one", "linked to existing ones"),
                                     (updated, "record updated", "records updated")):
                if count > 0:
                    parts.append(f"{count:,} {one if count == 1 else many}")
        for key, words in (("restored", "put back"), ("deactivated", "made inactive"), ("voided", "voided"),
                           ("unlinked", "unlinked"), ("refused", "left alone"), ("quarantined", "held back"),
                           ("conflicts", "to review")):
            if n.get(key):
                parts.append(f"{n[key]:,} {words}")
        if self.changes:
            parts.append(f"{self.changes:,} field{'' if self.changes == 1 else 's'} changed")
        return ", ".join(parts) or ("Nothing to change" if n.get("read") else "Nothing new to read")


@dataclass(frozen=True, slots=True)
class ActivityChange:
    run_id: int
    run_started: dt.datetime
    trigger: str
    side: str
    record_id: str  # as the side written knows it
    record_key: str  # the CRM record it belongs to (both sides of one linked record share it)
    record: str  # its name, or its ID when no name is known
    record_type: str
    field: str
    before: str | None
    after: str | None
    rule: str

    def search_text(self) -> str:
        return " ".join((self.record, self.record_id, self.record_key, self.field, field_label(self.field),
                         side_label(self.side), self.before or "", self.after or "", self.rule,
                         rule_label(self.rule), trigger_label(self.trigger))).casefold()


@dataclass(frozen=True, slots=True)
class Activity:
    workspace: str
    runs: list[ActivityRun] = field(default_factory=list)
    changes: list[ActivityChange] = field(default_factory=list)
    crm_label: str = "the CRM"  # the providers' names, e.g. "HubSpot", "QuickBooks Online"
    ledger_label: str = "the ledger"

    def side(self, side: str) -> str:
        return {"crm": self.crm_label, "accounting": self.ledger_label}.get(side) or side_label(side)

    def why(self, rule: str) -> str:
        return rule_label(rule, self.crm_label, self.ledger_label)

    def changes_of(self, run_id: int) -> list[ActivityChange]:
        return [c for c in self.changes if c.run_id == run_id]


@dataclass(frozen=True, slots=True)
class _Names:
    """Record ID on either side -> (CRM record key, name, record type)."""

    by_side: dict[tuple[str, str], tuple[str, str, str]]

    def of(self, side: str, record_id: str) -> tuple[str, str, str]:
        return self.by_side.get((side, record_id), (record_id, "", ""))


def _names(store: Store, ws_id: int) -> _Names:
    with store.session() as s:
        mirror: dict[tuple[str, str], tuple[str, str]] = {}
        for m in s.scalars(select(Mirror).where(Mirror.workspace_id == ws_id)):
            data = m.data or {}
            name = str(data.get("raw_name") or data.get("name") or data.get("number") or "")
            mirror[(m.side, m.remote_id)] = (name, m.object_type)
        out: dict[tuple[str, str], tuple[str, str, str]] = {
            key: (key[1], name, otype) for key, (name, otype) in mirror.items()}
        ledger_seen: set[str] = set()  # two CRM records may share a ledger customer: the first linked names it
        for lk in s.scalars(select(Link).where(Link.workspace_id == ws_id).order_by(Link.id)):
            snap = lk.snapshot or {}
            name = (str((snap.get("crm") or {}).get("name") or "") or mirror.get(("crm", lk.crm_id), ("", ""))[0]
                    or str((snap.get("acct") or {}).get("name") or "")
                    or mirror.get(("accounting", lk.acct_id), ("", ""))[0])
            out[("crm", lk.crm_id)] = (lk.crm_id, name, lk.crm_type)
            if lk.acct_id not in ledger_seen:
                ledger_seen.add(lk.acct_id)
                out[("accounting", lk.acct_id)] = (lk.crm_id, name, lk.crm_type)
        return _Names(out)


def load_activity(store: Store, workspace: str, *, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Activity:
    """Every run of a workspace (newest first) and the field changes each made, named."""
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).one_or_none()
        if ws is None:
            return Activity(workspace)
        ws_id = ws.id
        labels = _provider_label(ws.crm_provider), _provider_label(ws.accounting_provider)
        per_run = dict(s.execute(select(FieldChange.run_id, func.count()).join(Run, Run.id == FieldChange.run_id)
                                 .where(Run.workspace_id == ws_id).group_by(FieldChange.run_id)).all())
        q = select(Run).where(Run.workspace_id == ws_id, Run.trigger != RECONCILE)  # never a sync (its own history)
        if since:
            q = q.where(Run.started_at >= since)
        if until:
            q = q.where(Run.started_at < until)
        runs = [ActivityRun(r.id, r.trigger, r.status, r.started_at, r.finished_at, dict(r.counts or {}), r.message,
                            bool(r.dry_run), int(per_run.get(r.id, 0)))
                for r in s.scalars(q.order_by(Run.started_at.desc(), Run.id.desc()))]
    names = _names(store, ws_id)
    changes = [_named(c, names) for c in field_changes(store, workspace, since=since, until=until)]
    return Activity(workspace, runs, changes, *labels)


def _provider_label(name: str) -> str:
    try:
        from app.connectors import registry

        return registry.info(name).label
    except (ValueError, ImportError, AttributeError):
        return name.replace("_", " ").title()


def _named(c: ChangeEntry, names: _Names) -> ActivityChange:
    key, name, otype = names.of(c.side, c.record_id)
    return ActivityChange(c.run_id, c.run_started, c.trigger, c.side, c.record_id, key, name or c.record_id,
                          otype, c.field, c.before, c.after, c.rule)


def record_history(store: Store, workspace: str, crm_id: str, acct_id: str | None = None
                   ) -> dict[str, list[ActivityChange]]:
    """For one linked record, how each field got its current value: its changes on both sides, oldest first."""
    from app.ops.history import how_field_got_value

    sides = [("crm", crm_id)] + ([("accounting", acct_id)] if acct_id else [])
    fields: set[str] = set()
    for _side, rid in sides:
        fields.update(c.field for c in field_changes(store, workspace, record_id=rid))
    if not fields:
        return {}
    with store.session() as s:  # one record: its name from its link, not the whole workspace's mirror
        ws_id = s.scalars(select(Workspace.id).where(Workspace.name == workspace)).one()
        lk = s.scalars(select(Link).where(Link.workspace_id == ws_id, Link.crm_id == crm_id)).first()
        snap = (lk.snapshot or {}) if lk else {}
        name = str((snap.get("crm") or {}).get("name") or (snap.get("acct") or {}).get("name") or crm_id)
        kind = lk.crm_type if lk else ""
    names = _Names(dict.fromkeys(sides, (crm_id, name, kind)))
    order = list(FIELD_LABELS)
    out: dict[str, list[ActivityChange]] = {}
    for f in sorted(fields, key=lambda f: (order.index(f) if f in order else len(order), f)):
        chain = [c for side, rid in sides for c in how_field_got_value(store, workspace, rid, f) if c.side == side]
        chain.sort(key=lambda c: (c.run_started, c.run_id, c.side != "crm"))
        out[f] = [_named(c, names) for c in chain]
    return out


# -- the workbook -------------------------------------------------------------------------------------
DATE_TIME = "yyyy-mm-dd hh:mm"
FONT = "Calibri"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _excel_time(value: dt.datetime | None) -> dt.datetime | None:
    """The store keeps naive UTC; Excel has no time zones, so write the workstation's local time."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone().replace(tzinfo=None, microsecond=0)


def _put(cell: Any, value: Any) -> None:
    """Text stays text: a value like '=1+1' or '+44 20…' never runs as a formula."""
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
        if value.startswith(_FORMULA_START):
            cell.quotePrefix = True


def _sheet(wb: Workbook, title: str, headers: Sequence[tuple[str, int]], rows: Iterable[Sequence[Any]],
           dates: Sequence[int] = (), wrap: Sequence[int] = ()) -> Worksheet:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    for col, (name, width) in enumerate(headers, 1):
        cell = ws.cell(row=1, column=col, value=name)
        cell.fill = PatternFill("solid", fgColor="1F3A5F")
        cell.font = Font(name=FONT, bold=True, color="FFFFFF")
        cell.alignment = Alignment(vertical="center")
        ws.column_dimensions[get_column_letter(col)].width = width
    last = 1
    for last, row in enumerate(rows, 2):
        for col, value in enumerate(row, 1):
            cell = ws.cell(row=last, column=col)
            _put(cell, value)
            if col in dates:
                cell.number_format = DATE_TIME
            if col in wrap:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
            else:
                cell.alignment = Alignment(vertical="top")
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{last}"
    ws.print_title_rows = "1:1"
    ws.page_setup.orientation = "landscape"
    return ws


RUN_HEADERS = (("Run", 7), ("Trigger", 15), ("Started", 18), ("Finished", 18), ("Status", 14), ("Read", 8),
               ("Written", 9), ("Fields changed", 15), ("Errors", 8), ("Message", 60))
CHANGE_HEADERS = (("Record", 30), ("Record ID", 16), ("Field", 18), ("Side", 20), ("Before", 32), ("After", 32),
                  ("Rule", 34), ("Run", 7), ("Run started", 18), ("Trigger", 15))


def write_workbook(activity: Activity, path: Path, *, runs: Sequence[ActivityRun] | None = None,
                   changes: Sequence[ActivityChange] | None = None) -> Path:
    """A Runs sheet and a Changes sheet; ``runs``/``changes`` narrow it to what the page is showing."""
    runs = activity.runs if runs is None else runs
    changes = activity.changes if changes is None else changes
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    _sheet(wb, "Runs", RUN_HEADERS, (
        [r.id, trigger_label(r.trigger) + (" (dry run)" if r.dry_run else ""), _excel_time(r.started_at),
         _excel_time(r.finished_at), status_label(r.status), int(r.counts.get("read") or 0),
         int(r.counts.get("writes") or 0), r.changes, r.errors, r.message or ""]
        for r in runs), dates=(3, 4), wrap=(10,))
    _sheet(wb, "Changes", CHANGE_HEADERS, (
        [c.record, c.record_id, field_label(c.field), activity.side(c.side), c.before or "", c.after or "",
         activity.why(c.rule), c.run_id, _excel_time(c.run_started), trigger_label(c.trigger)]
        for c in changes), dates=(9,), wrap=(5, 6))
    wb.properties.title = f"Crossledger activity: {activity.workspace}"
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path


def export_history(store: Store, workspace: str, path: Path) -> Path:
    """Every run and field change of a workspace to ``path`` (.xlsx)."""
    return write_workbook(load_activity(store, workspace), path)
