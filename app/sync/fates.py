"""Linked records archived, deleted or merged on either side, found as the change feeds are read.

A step of the sync run (``app.sync.engine``), between reading and planning:

* CRM: linked companies and people the feed reports deleted (or read archived, or, on a full read,
  no longer listed) are asked ``crm.record_fates``; ``app.sync.lifecycle.link_actions`` says what to
  do. Merged into another record: the link follows the survivor (the ledger customer is never deleted,
  nor a new one made). Merged by inference (Pipedrive, Zoho CRM), merged into a record linked to another
  customer, or deleted with open invoices: flagged for a person (a conflict row ``customer:<code>``, the
  way out kept on the link's snapshot under ``fate``). A record read active again closes its flags.
* Ledger: linked customers read inactive (or reported deleted) are asked ``acct.customer_fates``; the
  mirror keeps the fate (``fate``, ``merged_into``, ``survivor_name``), from which the invoice plan holds
  that customer's next invoice with its way out (``app.sync.invoice_lifecycle.customer_hold``).

A dry run (the reconciliation's refresh) mirrors what it learns and changes no link or flag.
"""

from __future__ import annotations

from typing import Any

from app.connectors.base import AccountingConnector, Changes, CrmConnector
from app.connectors.errors import ConnectorError
from app.domain.lifecycle import CUSTOMER_FLAG, FateState, RecordFate
from app.domain.models import AccountingCustomer, CrmRecord
from app.store.repos import ConflictRecord, LinkRecord
from app.sync.invoice_lifecycle import customer_states
from app.sync.lifecycle import link_actions, link_facts
from app.sync.run_context import RunContext

FLAG_PREFIX = CUSTOMER_FLAG
OPEN_STATES = ("paid", "void")  # an invoice in neither is still open
_STATES: dict[str, FateState] = {"archived": "archived", "deleted": "deleted", "merged": "merged", "missing": "missing"}


class LinkFates:
    def __init__(self, ctx: RunContext, crm: CrmConnector, acct: AccountingConnector) -> None:
        self.ctx, self.crm, self.acct = ctx, crm, acct
        self._gone: dict[str, set[str]] = {}  # CRM type -> ids gone (or possibly gone) this run
        self._listed: dict[str, set[str] | None] = {}  # CRM type -> every id listed, on a full read
        self._back: set[tuple[str, str]] = set()  # CRM records read active this run

    # -- after each read --------------------------------------------------------------------------
    def crm_read(self, otype: str, changes: Changes[CrmRecord]) -> None:
        gone = set(changes.deleted_ids) | {r.id for r in changes.records if r.archived}
        self._gone[otype] = gone
        self._listed[otype] = {r.id for r in changes.records} if changes.full else None
        self._back |= {(otype, r.id) for r in changes.records if not r.archived}

    def ledger_read(self, changes: Changes[AccountingCustomer]) -> None:
        """Customers read inactive or reported deleted: what became of them, kept in the mirror."""
        asker = getattr(self.acct, "customer_fates", None)
        ids = sorted({c.id for c in changes.records if not c.active} | set(changes.deleted_ids))
        if not ids or asker is None:
            return
        linked = {lk.acct_id for lk in self.ctx.links.all("customer").values()}
        ids = [i for i in ids if i in linked]
        if not ids:
            return
        try:
            fates: list[RecordFate] = asker(ids)
        except ConnectorError as exc:  # the mirror's inactive mark still holds their invoices
            self.ctx.errors.append(f"Could not tell what became of {len(ids)} archived customers: {exc.message}")
            return
        self.ctx.mirror.add_data("accounting", "customer", {f.id: {
            "fate": f.state, "merged_into": f.survivor_id, "survivor_name": f.survivor_name, "fate_name": f.name}
            for f in fates if f.gone},
            archived=True)

    @staticmethod
    def gone(link: Any) -> bool:
        """A linked CRM record known deleted or merged away: nothing is written to it any more."""
        fate = ((link.snapshot if link is not None else None) or {}).get("fate") or {}
        return fate.get("state") in ("deleted", "missing", "merged")

    def vanished(self, key: str, ref: tuple[str, str]) -> None:
        """A write to a CRM record that is no longer there (its feed hides deletions, as Zoho CRM's does):
        the write is over, and what became of the record is asked now."""
        self.ctx.journal.mark(key, "failed", error="the record is gone from the CRM")
        asker = getattr(self.crm, "record_fates", None)
        mine = {r[1]: lk for r, lk in self.ctx.links.all("customer").items() if r[0] == ref[0]}
        if asker is not None and ref[1] in mine:
            self._settle_type(ref[0], [ref[1]], mine, asker)

    # -- before planning ---------------------------------------------------------------------------
    def settle(self) -> None:
        """Act on the CRM records gone this run, and close the flags of those back."""
        ctx = self.ctx
        flagged = {(c.crm_type, c.crm_id) for c in ctx.conflicts.with_outcome(("open",), ("company", "person"))
                   if c.field.startswith(FLAG_PREFIX)}
        if not ctx.dry_run and (back := sorted(flagged & self._back)):
            links = ctx.links.all("customer")
            for ref in back:  # restored in the CRM: its flags close, and its fate is forgotten
                ctx.conflicts.close(ref[0], ref[1], FLAG_PREFIX)
                if ref in links:
                    ctx.links.merge_snapshot(links[ref].id, {"fate": None}, touch=False)
        if not any(self._gone.values()) and not any(v is not None for v in self._listed.values()):
            return
        links = ctx.links.all("customer")
        asker = getattr(self.crm, "record_fates", None)
        if asker is None:
            return
        for otype in ("company", "person"):
            mine = {ref[1]: lk for ref, lk in links.items() if ref[0] == otype}
            listed = self._listed.get(otype)
            ids = {i for i in self._gone.get(otype, set()) if i in mine}
            if listed is not None:  # a full read: linked records it no longer lists may have gone
                ids |= {i for i, lk in mine.items() if i not in listed and not (lk.snapshot or {}).get("fate")}
            if ids:
                self._settle_type(otype, sorted(ids), mine, asker)

    def _settle_type(self, otype: str, ids: list[str], mine: dict[str, LinkRecord], asker: Any) -> None:
        ctx = self.ctx
        names = {i: ((mine[i].snapshot or {}).get("crm") or {}).get("name") or "" for i in ids}
        try:
            fates: list[RecordFate] = asker(otype, ids, {k: v for k, v in names.items() if v})
        except ConnectorError as exc:
            ctx.errors.append(f"Could not tell what became of {len(ids)} deleted CRM records: {exc.message}")
            return
        states = customer_states({rid: r.data for rid, r in ctx.mirror.archived("accounting", "customer").items()})
        invoices = ctx.mirror.rows("accounting", "invoice")
        by_crm = {i: lk.acct_id for i, lk in mine.items()}
        for fate in fates:
            link = mine.get(fate.id)
            if link is None or not fate.gone:
                continue
            acct = link.acct_id
            st = states.get(acct)
            ledger = RecordFate(acct, "active") if st is None else RecordFate(
                acct, _STATES.get(st.state, "archived"), survivor_id=st.survivor_id, name=st.name,
                survivor_name=st.survivor_name)
            open_count = sum(1 for row in invoices.values() if row.get("customer_id") == acct
                             and row.get("status") not in OPEN_STATES and not row.get("_archived"))
            other = by_crm.get(fate.survivor_id or "") if fate.state == "merged" else None
            other_name = None
            if other and other != acct:
                row = ctx.mirror.records("accounting", "customer", [other]).get(other)
                other_name = (row.data.get("raw_name") or row.data.get("name")) if row is not None else None
            facts = link_facts(fate, ledger, names.get(fate.id) or fate.name or fate.id,
                               ledger_name=_customer_name(ctx, acct), open_invoices=open_count, links=by_crm,
                               ledger_names={other: other_name} if other and other_name else None)
            self._act(otype, link, fate, facts)

    def _act(self, otype: str, link: LinkRecord, fate: RecordFate, facts: Any) -> None:
        ctx = self.ctx
        mirror_mark: dict[str, Any] = {"fate": fate.state}
        if fate.state == "merged" and fate.survivor_id:
            mirror_mark["merged_into"] = fate.survivor_id
        ctx.mirror.add_data("crm", otype, {fate.id: mirror_mark}, archived=True)
        if ctx.dry_run:
            return
        kept: dict[str, Any] = {"state": fate.state, "survivor_id": fate.survivor_id}
        for a in link_actions(facts).actions:
            if a.kind == "follow_crm" and a.target_id:
                ctx.links.move(link.id, a.target_id)
                ctx.count("links_followed")
                return  # the link is the survivor's now: nothing left on the merged-away record
            if a.kind == "flag":
                way = a.way_out
                kept.update(code=a.code, reason=a.reason, way_out=None if way is None else {
                    "kind": way.kind, "label": way.label, "target_id": way.target_id, "side": way.side})
                mark = f"{FLAG_PREFIX}{a.code}:{fate.survivor_id or ''}"
                if (link.snapshot or {}).get("flagged") != mark:
                    ctx.conflicts.flag(ConflictRecord(otype, fate.id, link.acct_id, f"{FLAG_PREFIX}{a.code}",
                                                      facts.crm_name, a.reason, None, "ask", "open",
                                                      link_id=link.id), ctx.run_id, mark)
                    ctx.count("conflicts")
            elif a.kind == "unlink":
                kept.update(code=a.code, reason=a.reason)
        ctx.links.merge_snapshot(link.id, {"fate": kept}, touch=False)


def _customer_name(ctx: RunContext, acct_id: str) -> str:
    row = ctx.mirror.records("accounting", "customer", [acct_id]).get(acct_id)
    if row is None:
        return acct_id
    return row.data.get("raw_name") or row.data.get("name") or acct_id


def customer_refused(ctx: RunContext, key: str, acct_id: str) -> None:
    """A customer update the ledger refused because the customer is inactive: the mirror learns it (its
    invoices then wait with a way out); the write is over, and the run is not failed for it."""
    ctx.journal.mark(key, "failed", error="the customer is inactive in the ledger")
    ctx.mirror.add_data("accounting", "customer", {acct_id: {"fate": "archived"}}, archived=True)
