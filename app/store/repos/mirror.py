"""The mirror: each side's records as last read, so a run plans from them without reading everything again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.domain.models import AccountingCustomer, CrmRecord, PartyKind
from app.store.db import Store
from app.store.models import Mirror
from app.store.serial import iso, naive_utc, parse_iso, party_data, party_from

CHUNK = 500  # ids per IN (...) query


@dataclass(frozen=True, slots=True)
class MirrorRecord:
    remote_id: str
    data: dict[str, Any]
    version: str | None
    archived: bool
    updated_at: dt.datetime | None

    def with_archived(self) -> dict[str, Any]:
        """The row's data with ``_archived`` added, as the invoice planner reads ledger rows."""
        return {**self.data, "_archived": self.archived}


MirrorItem = tuple[str, dict[str, Any], str | None, bool, dt.datetime | None]  # id, data, version, archived, updated


class MirrorRepo:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def _where(self, side: str, otype: str) -> tuple[Any, ...]:
        return Mirror.workspace_id == self.ws_id, Mirror.side == side, Mirror.object_type == otype

    def upsert(self, side: str, otype: str, items: Iterable[MirrorItem]) -> None:
        items = list(items)
        if not items:
            return
        with self.store.session() as s:
            ids = [i[0] for i in items]
            existing = {}
            for start in range(0, len(ids), CHUNK):
                existing.update({m.remote_id: m for m in s.scalars(select(Mirror).where(
                    *self._where(side, otype), Mirror.remote_id.in_(ids[start:start + CHUNK])))})
            for rid, data, version, archived, updated in items:
                row = existing.get(rid)
                if row is None:
                    row = Mirror(workspace_id=self.ws_id, side=side, object_type=otype, remote_id=rid)
                    s.add(row)
                    existing[rid] = row
                row.data, row.version, row.archived, row.updated_at = data, version, int(archived), updated

    def mark_archived(self, side: str, otype: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.store.session() as s:
            for m in s.scalars(select(Mirror).where(*self._where(side, otype), Mirror.remote_id.in_(list(ids)))):
                m.archived = 1

    def archived(self, side: str, otype: str) -> dict[str, MirrorRecord]:
        """The rows of one kind marked archived (inactive, deleted or merged away)."""
        with self.store.session() as s:
            return {m.remote_id: _record(m) for m in s.scalars(select(Mirror).where(
                *self._where(side, otype), Mirror.archived == 1))}

    def add_data(self, side: str, otype: str, extra: dict[str, dict[str, Any]], *,
                 archived: bool | None = None) -> None:
        """Keys added to rows' data (a record's fate: ``fate``, ``merged_into``...); ``archived`` sets the mark."""
        if not extra:
            return
        with self.store.session() as s:
            rows = {m.remote_id: m for m in s.scalars(select(Mirror).where(
                *self._where(side, otype), Mirror.remote_id.in_(list(extra))))}
            for rid, more in extra.items():
                row = rows.get(rid)
                if row is None:
                    row = Mirror(workspace_id=self.ws_id, side=side, object_type=otype, remote_id=rid, data={})
                    s.add(row)
                row.data = {**(row.data or {}), **more}
                if archived is not None:
                    row.archived = int(archived)

    def records(self, side: str, otype: str, ids: Sequence[str] | None = None) -> dict[str, MirrorRecord]:
        """One kind of record on one side: all of them, or those of ``ids`` the mirror has."""
        out: dict[str, MirrorRecord] = {}
        with self.store.session() as s:
            if ids is None:
                rows: Iterable[Mirror] = s.scalars(select(Mirror).where(*self._where(side, otype)))
                out = {m.remote_id: _record(m) for m in rows}
            else:
                wanted = list(ids)
                for start in range(0, len(wanted), CHUNK):
                    for m in s.scalars(select(Mirror).where(*self._where(side, otype),
                                                            Mirror.remote_id.in_(wanted[start:start + CHUNK]))):
                        out[m.remote_id] = _record(m)
        return out

    def put_crm(self, otype: str, records: Sequence[CrmRecord], deleted: Sequence[str] = ()) -> None:
        """CRM records as read (and the ids the CRM says were deleted)."""
        self.upsert("crm", otype, (
            (r.id, {"properties": r.properties, "company_id": r.company_id, "updated_at": iso(r.updated_at)},
             None, r.archived, naive_utc(r.updated_at)) for r in records))
        self.mark_archived("crm", otype, deleted)

    def put_customers(self, customers: Sequence[AccountingCustomer], deleted: Sequence[str] = ()) -> None:
        """Ledger customers as read (and the ids the ledger says were deleted)."""
        self.upsert("accounting", "customer", (
            (c.id, party_data(c.party, c.raw_name), c.version, not c.active, naive_utc(c.updated_at))
            for c in customers))
        self.mark_archived("accounting", "customer", deleted)

    def customers(self, ids: Sequence[str] | None = None) -> dict[str, AccountingCustomer]:
        """The ledger's customers as mirrored: all of them, or those of ``ids`` the mirror has."""
        return {rid: AccountingCustomer(rid, party_from(m.data), m.updated_at, not m.archived, m.version,
                                        m.data.get("raw_name"))
                for rid, m in self.records("accounting", "customer", ids).items()}

    def crm_records(self, otype: PartyKind, ids: Sequence[str]) -> dict[str, CrmRecord]:
        return {rid: CrmRecord(otype, rid, m.data.get("properties", {}), parse_iso(m.data.get("updated_at")),
                               m.archived, m.data.get("company_id"))
                for rid, m in self.records("crm", otype, ids).items()}

    def rows(self, side: str, otype: str, ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """As :meth:`records`, each as its data with ``_archived``."""
        return {rid: r.with_archived() for rid, r in self.records(side, otype, ids).items()}

    def rows_with(self, side: str, otype: str, key: str, values: Sequence[str]) -> dict[str, dict[str, Any]]:
        """As :meth:`rows`, those whose data holds one of ``values`` at ``key`` (a payment's invoice, an
        invoice's customer): filtered by the database, in the order they were mirrored. (For more values
        than one query takes, every row is read once and filtered here rather than the table searched
        once per 500 values.)"""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return {}
        if len(wanted) > CHUNK:
            keep = set(wanted)
            return {rid: row for rid, row in self.rows(side, otype).items() if row.get(key) in keep}
        with self.store.session() as s:
            found = s.scalars(select(Mirror).where(*self._where(side, otype),
                                                   Mirror.data[key].as_string().in_(wanted)).order_by(Mirror.id))
            return {m.remote_id: _record(m).with_archived() for m in found}


def _record(m: Mirror) -> MirrorRecord:
    return MirrorRecord(m.remote_id, m.data, m.version, bool(m.archived), m.updated_at)
