"""Links: which CRM record is which ledger record, with what each side held when last synced."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select

from app.store.db import Store
from app.store.models import Link, Quarantine, utcnow

CHUNK = 500


@dataclass(slots=True)
class LinkRecord:
    id: int
    object_type: str  # customer | invoice
    crm_type: str
    crm_id: str
    acct_id: str
    how: str
    snapshot: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None

    @property
    def ref(self) -> tuple[str, str]:
        return self.crm_type, self.crm_id


@dataclass(frozen=True, slots=True)
class SnapshotWrite:
    """What one write leaves as last seen on its link (and, with ``share_acct``, on the other links to
    that ledger customer: CRM duplicates take the write as seen, so it does not echo back into them)."""

    ref: tuple[str, str]
    crm: dict[str, Any] | None
    acct: dict[str, Any] | None
    merge_crm: bool = False
    share_acct: str | None = None


def _record(row: Link) -> LinkRecord:
    return LinkRecord(row.id, row.object_type, row.crm_type, row.crm_id, row.acct_id, row.how,
                      dict(row.snapshot or {}), row.run_id)


def set_snapshots(s: Any, ws_id: int, writes: Sequence[SnapshotWrite]) -> None:
    """In the caller's transaction, in order, as one record at a time would."""
    if not writes:
        return
    by_ref: dict[tuple[str, str], Link] = {}
    by_acct: dict[str, list[Link]] = {}
    base = (Link.workspace_id == ws_id, Link.object_type == "customer")
    crm_ids = list({w.ref[1] for w in writes})
    for start in range(0, len(crm_ids), CHUNK):
        for row in s.scalars(select(Link).where(*base, Link.crm_id.in_(crm_ids[start:start + CHUNK]))):
            by_ref.setdefault((row.crm_type, row.crm_id), row)
    acct_ids = list({w.share_acct for w in writes if w.share_acct})
    for start in range(0, len(acct_ids), CHUNK):
        for row in s.scalars(select(Link).where(*base, Link.acct_id.in_(acct_ids[start:start + CHUNK]))):
            by_acct.setdefault(row.acct_id, []).append(row)
    now = utcnow()
    for w in writes:
        row = by_ref.get(w.ref)
        if row is not None:
            snap = dict(row.snapshot or {})
            snap["crm"] = {**snap.get("crm", {}), **(w.crm or {})} if w.merge_crm else w.crm
            snap["acct"] = w.acct
            row.snapshot = snap
            row.updated_at = now
        for other in by_acct.get(w.share_acct, []) if w.share_acct else []:
            snap = dict(other.snapshot or {})
            if snap.get("acct") != w.acct:
                snap["acct"] = w.acct
                other.snapshot = snap


def move_customer_link(s: Any, ws_id: int, ref: tuple[str, str], acct_id: str | None, run_id: int, *,
                       how: str = "link", acct: dict[str, Any] | None = None) -> LinkRecord | None:
    """In the caller's transaction: the customer link of ``ref`` now points to ``acct_id`` (None: removed),
    made by run ``run_id`` (so an undo of that run takes it back). ``acct``: what the ledger side holds now,
    kept as last seen. Returns the link as it was, or None when ``ref`` had none."""
    row = s.scalars(select(Link).where(Link.workspace_id == ws_id, Link.object_type == "customer",
                                       Link.crm_type == ref[0], Link.crm_id == ref[1])).first()
    if row is None:
        return None
    before = _record(row)
    if acct_id is None:
        s.delete(row)
        return before
    row.acct_id, row.how, row.run_id, row.updated_at = acct_id, how, run_id, utcnow()
    if acct is not None:
        row.snapshot = {**(row.snapshot or {}), "acct": acct}
    return before


def rows_of(s: Any, ws_id: int, object_type: str, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Link]:
    """In the caller's session, the links of these CRM records (one indexed query per type and 500 ids)."""
    by_type: dict[str, list[str]] = {}
    for crm_type, crm_id in dict.fromkeys(refs):
        by_type.setdefault(crm_type, []).append(crm_id)
    out: dict[tuple[str, str], Link] = {}
    for crm_type, ids in by_type.items():
        for start in range(0, len(ids), CHUNK):
            for row in s.scalars(select(Link).where(Link.workspace_id == ws_id, Link.object_type == object_type,
                                                    Link.crm_type == crm_type,
                                                    Link.crm_id.in_(ids[start:start + CHUNK]))):
                out[(row.crm_type, row.crm_id)] = row
    return out


class Links:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def all(self, object_type: str) -> dict[tuple[str, str], LinkRecord]:
        with self.store.session() as s:
            return {(lk.crm_type, lk.crm_id): _record(lk) for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == object_type))}

    def count(self, object_type: str) -> int:
        with self.store.session() as s:
            return s.scalar(select(func.count()).select_from(Link).where(
                Link.workspace_id == self.ws_id, Link.object_type == object_type)) or 0

    def of(self, object_type: str, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], LinkRecord]:
        """The links of these CRM records (those that have one)."""
        refs = list(refs)
        if not refs:
            return {}
        with self.store.session() as s:
            return {ref: _record(row) for ref, row in rows_of(s, self.ws_id, object_type, refs).items()}

    def to_accounts(self, object_type: str, acct_ids: Iterable[str]) -> dict[tuple[str, str], LinkRecord]:
        """The links to these ledger records, in the order they were made."""
        wanted = list(dict.fromkeys(acct_ids))
        rows: list[Link] = []
        with self.store.session() as s:
            for start in range(0, len(wanted), CHUNK):
                rows += s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == object_type,
                                                     Link.acct_id.in_(wanted[start:start + CHUNK])))
            return {(row.crm_type, row.crm_id): _record(row) for row in sorted(rows, key=lambda r: r.id)}

    def get(self, link_id: int) -> LinkRecord | None:
        with self.store.session() as s:
            row = s.get(Link, link_id)
            return _record(row) if row is not None else None

    def save_customers(self, links: Sequence[tuple[tuple[str, str], str, str, dict[str, Any]]], run_id: int) -> None:
        """Customer links as (CRM ref, ledger id, how, snapshot): made, or moved to another ledger customer."""
        if not links:
            return
        with self.store.session() as s:
            existing = rows_of(s, self.ws_id, "customer", (ref for ref, *_ in links))
            for ref, acct_id, how, snapshot in links:
                row = existing.get(ref)
                if row is None:
                    row = Link(workspace_id=self.ws_id, object_type="customer", crm_type=ref[0], crm_id=ref[1],
                               acct_id=acct_id, how=how, run_id=run_id)
                    s.add(row)
                row.acct_id, row.how, row.snapshot = acct_id, how, snapshot
                row.updated_at = utcnow()

    def set_snapshots(self, writes: Sequence[SnapshotWrite]) -> None:
        with self.store.session() as s:
            set_snapshots(s, self.ws_id, writes)

    def add(self, object_type: str, ref: tuple[str, str], acct_id: str, how: str, run_id: int | None,
            snapshot: dict[str, Any], *, release_hold: bool = False) -> None:
        """A new link; ``release_hold``: the CRM record is no longer held back (one transaction)."""
        with self.store.session() as s:
            s.add(Link(workspace_id=self.ws_id, object_type=object_type, crm_type=ref[0], crm_id=ref[1],
                       acct_id=acct_id, how=how, run_id=run_id, snapshot=snapshot))
            if release_hold:
                s.execute(delete(Quarantine).where(Quarantine.workspace_id == self.ws_id,
                                                   Quarantine.record_type == ref[0], Quarantine.record_id == ref[1]))

    def move(self, link_id: int, crm_id: str) -> bool:
        """A customer link follows its CRM record into the one it was merged into (same ledger customer).
        When that record is linked already, the merged-away record's link goes: False."""
        with self.store.session() as s:
            row = s.get(Link, link_id)
            if row is None:
                return False
            taken = s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == row.object_type,
                                                 Link.crm_type == row.crm_type, Link.crm_id == crm_id)).first()
            if taken is not None:
                s.delete(row)
                return False
            row.crm_id, row.updated_at = crm_id, utcnow()
            row.snapshot = {k: v for k, v in (row.snapshot or {}).items() if k != "fate"}
            return True

    def repoint(self, link_id: int, acct_id: str, how: str, run_id: int | None, snapshot: dict[str, Any]) -> None:
        """An invoice link to the deal's new invoice (the old one was voided and the deal invoiced again)."""
        with self.store.session() as s:
            row = s.get(Link, link_id)
            assert row is not None  # read from the store earlier in this run
            row.acct_id, row.how, row.run_id, row.snapshot, row.updated_at = acct_id, how, run_id, snapshot, utcnow()

    def merge_snapshot(self, link_id: int, extra: dict[str, Any], *, touch: bool = True) -> None:
        with self.store.session() as s:
            row = s.get(Link, link_id)
            assert row is not None  # read from the store earlier in this run
            row.snapshot = {**(row.snapshot or {}), **extra}
            if touch:
                row.updated_at = utcnow()

    def restore_snapshots(self, *, field_name: str, side: str, record_type: str, record_id: str,
                          value: Any, other_value: Any) -> None:
        """After an undo restored ``field_name`` on ``side`` ("crm" or "acct"): that side last held ``value``
        and the other side ``other_value``, on every customer link of that record."""
        other = "crm" if side == "acct" else "acct"
        with self.store.session() as s:
            q = select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer")
            q = q.where(Link.acct_id == record_id) if side == "acct" else q.where(
                Link.crm_type == record_type, Link.crm_id == record_id)
            for link in s.scalars(q):
                snap = dict(link.snapshot or {})
                snap[side] = {**(snap.get(side) or {}), field_name: value}
                snap[other] = {**(snap.get(other) or {}), field_name: other_value}
                link.snapshot = snap
                link.updated_at = utcnow()
