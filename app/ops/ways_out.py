"""One-click ways out of an invoice held because its ledger customer was archived, merged or deleted.

Plain Python, no Qt: the CLI (``held``, ``reactivate``, ``relink``, ``unlink``) and the Held back tab call it.

The sync holds a deal it cannot invoice (issue 21): a quarantine row of the deal whose reasons hold an item
``{"field": "customer", "message": ..., "way_out": {"kind", "label", "target_id", "side": "accounting",
"crm_type", "crm_id"}}``. :func:`ways_out` lists them, one per customer (several deals often wait on the same
one), and :func:`take` settles one:

* ``reactivate``: the ledger makes the customer active again (``reactivate_customer``);
* ``link_to_survivor``: the CRM record's link moves to the customer it was merged into, unless that customer
  is linked to another CRM record already (refused, saying what to do);
* ``unlink``: the link goes, so the next sync creates the customer again (or links one with the same details).

Then every hold waiting on it is released: the deal stays listed, with "Released by you" and what the next
sync does, and is "release"-marked so that sync plans it again (held deals are looked at every run) and drops
the hold once its invoice is made. A link change or a reactivation is its own run (trigger ``relink``,
``unlink`` or ``activate``) with its field change, so ``history`` shows it and ``undo`` of that run takes
a link back. It is recorded once the ledger has answered: asking a ledger to reactivate an active customer
changes nothing, so a crash in between loses nothing. A refusal changes nothing here and says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from sqlalchemy import select

from app.connectors.errors import AuthExpired, ConnectorError, Forbidden, Unauthorized
from app.connectors.tokens import TokenStore
from app.domain.clock import SYSTEM_CLOCK, Clock
from app.domain.models import AccountingCustomer
from app.ops import changes
from app.ops.budget import provider_label
from app.ops.status import WAY_OUT_TRIGGERS
from app.ops.workspaces import UserError, WorkspaceInfo, get_workspace, open_connectors
from app.store import lease
from app.store.db import Store
from app.store.models import Journal, Link, Mirror, Quarantine, Run, utcnow
from app.store.repos.journal import add_changes
from app.store.repos.links import move_customer_link
from app.store.repos.mirror import MirrorRepo

Kind = Literal["reactivate", "link_to_survivor", "unlink"]
KINDS: tuple[Kind, ...] = ("reactivate", "link_to_survivor", "unlink")
TRIGGERS: dict[str, str] = dict(zip(KINDS, WAY_OUT_TRIGGERS, strict=True))  # runs of their own, never "last sync"
RULE = "chosen-by-you"  # why the field changed, as the history tells it ("Chosen by you")
CHANGES = (changes.CUSTOMERS, changes.QUARANTINE, changes.RUNS)
_ALIAS = {"contact": "person", "person": "contact"}  # the engine says contact, links say person


@dataclass(frozen=True, slots=True)
class Waiting:
    """A held record (a deal) waiting on the way out."""

    record_type: str
    record_id: str
    name: str


@dataclass(frozen=True, slots=True)
class WayOut:
    kind: Kind
    label: str  # the button's words
    reason: str  # why the deals wait, in a bookkeeper's words
    target_id: str | None  # the customer to reactivate or to link to; None to unlink
    crm_type: str
    crm_id: str
    crm_name: str = ""
    target_name: str = ""
    waiting: tuple[Waiting, ...] = ()
    since: dt.datetime | None = None

    @property
    def key(self) -> str:
        return _key(self.kind, self.target_id, self.crm_type, self.crm_id)

    def waiting_text(self) -> str:
        """'the invoice for Big Order' / 'the invoices for Big Order and Renewal' / '... and 2 more'."""
        names = [f"'{w.name}'" if w.name else f"deal {w.record_id}" for w in self.waiting]
        if len(names) <= 1:
            return f"the invoice for {names[0] if names else 'its deal'}"
        if len(names) > 3:
            names = [*names[:2], f"{len(names) - 2} more"]
        return f"the invoices for {', '.join(names[:-1])} and {names[-1]}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "label": self.label, "reason": self.reason,
                "customer_id": self.target_id, "customer_name": self.target_name or None,
                "record_type": self.crm_type, "record_id": self.crm_id, "record_name": self.crm_name or None,
                "waiting": [{"record_type": w.record_type, "record_id": w.record_id, "name": w.name}
                            for w in self.waiting],
                "since": self.since.isoformat() + "Z" if self.since else None}


@dataclass(frozen=True, slots=True)
class Taken:
    """What taking a way out did: ``ok``, or ``refused`` by Crossledger (nothing done; what to do instead)
    or by the ledger (``provider``). ``message`` says what happened and what the next sync does."""

    status: Literal["ok", "refused", "provider"]
    message: str
    way_out: WayOut
    released: tuple[Waiting, ...] = field(default=())
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "run_id": self.run_id,
                "released": [{"record_type": w.record_type, "record_id": w.record_id, "name": w.name}
                             for w in self.released], "way_out": self.way_out.to_json()}


def _key(kind: str, target: str | None, crm_type: str, crm_id: str) -> str:
    # Reactivating a customer is one act however many CRM records are linked to it.
    return f"reactivate:{target}" if kind == "reactivate" else f"{kind}:{crm_type}:{crm_id}:{target or ''}"


def _offer(item: dict[str, Any]) -> dict[str, Any] | None:
    way = item.get("way_out") if isinstance(item, dict) else None
    if not isinstance(way, dict) or way.get("kind") not in KINDS or way.get("side", "accounting") != "accounting":
        return None
    if not way.get("crm_id") or (way.get("kind") != "unlink" and not way.get("target_id")):
        return None
    return way


def _way_key(way: dict[str, Any]) -> str:
    return _key(str(way["kind"]), way.get("target_id"), str(way.get("crm_type") or "company"), str(way["crm_id"]))


# -- listing ----------------------------------------------------------------------------------------
def ways_out(store: Store, workspace_id: int) -> list[WayOut]:
    """The open ways out of a workspace, one per customer, oldest first."""
    with store.session() as s:
        rows = [q for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == workspace_id,
                                                              Quarantine.side == "crm").order_by(Quarantine.id))
                if not (q.reasons or {}).get("release")]
        found: dict[str, tuple[dict[str, Any], str, list[Waiting], dt.datetime]] = {}
        for q in rows:
            for item in (q.reasons or {}).get("items") or []:
                way = _offer(item)
                if way is None:
                    continue
                key = _way_key(way)
                if key not in found:
                    found[key] = (way, str(item.get("message") or ""), [], q.created_at)
                if all(w.record_id != q.record_id or w.record_type != q.record_type for w in found[key][2]):
                    found[key][2].append(Waiting(q.record_type, q.record_id, q.name))
        if not found:
            return []
        crm_names = {(lk.crm_type, lk.crm_id): ((lk.snapshot or {}).get("crm") or {}).get("name") or ""
                     for lk in s.scalars(select(Link).where(Link.workspace_id == workspace_id,
                                                            Link.object_type == "customer"))}
        targets = [str(w["target_id"]) for w, *_ in found.values() if w.get("target_id")]
        acct_names = {j.target_id: str(j.payload.get("display_name") or "") for j in s.scalars(  # made by a sync
            select(Journal).where(Journal.workspace_id == workspace_id, Journal.op == "create_customer",
                                  Journal.status == "done", Journal.target_id.in_(targets)))}
        acct_names.update({m.remote_id: m.data.get("raw_name") or m.data.get("name") or "" for m in s.scalars(
            select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                                 Mirror.object_type == "customer", Mirror.remote_id.in_(targets)))
            if m.data.get("raw_name") or m.data.get("name")})
    out = []
    for way, reason, waiting, since in found.values():
        crm_type, crm_id = str(way.get("crm_type") or "company"), str(way["crm_id"])
        crm_name = crm_names.get((crm_type, crm_id)) or crm_names.get((_ALIAS.get(crm_type, ""), crm_id)) or ""
        target = str(way["target_id"]) if way.get("target_id") else None
        out.append(WayOut(way["kind"], str(way.get("label") or ""), reason, target, crm_type, crm_id, crm_name,
                          acct_names.get(target or "", ""), tuple(waiting), since))
    return out


def find(offers: Sequence[WayOut], kinds: Sequence[str], record: str) -> WayOut:
    """The way out of one of ``kinds`` for ``record``: the customer's or CRM record's id or name (any case),
    or a waiting deal's. UserError saying what is open when none or several fit."""
    wanted = record.strip().casefold()

    def fits(w: WayOut) -> bool:
        names = {w.target_id or "", w.crm_id, w.target_name, w.crm_name,
                 *(x.record_id for x in w.waiting), *(x.name for x in w.waiting)}
        return wanted in {n.casefold() for n in names if n}

    hits = [w for w in offers if w.kind in kinds and fits(w)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UserError(f"Several held invoices fit '{record}'. Give the id instead: "
                        f"{', '.join(sorted({w.target_id or w.crm_id for w in hits}))}.")
    other = [w for w in offers if fits(w)]
    if other:
        raise UserError(f"The way out for '{record}' is: {other[0].label}.")
    raise UserError(f"Nothing held waits on '{record}'. 'crossledger held' lists what waits and how to release it.")


# -- taking one -------------------------------------------------------------------------------------
Connect = Callable[[], Any]  # opens the ledger's connector


def take(store: Store, tokens: TokenStore, workspace: str, key: str, *, transport: httpx.BaseTransport | None = None,
         clock: Clock = SYSTEM_CLOCK, sleep: Callable[[float], None] | None = None) -> Taken:
    """Take the way out ``key`` (``WayOut.key``) of ``workspace``. UserError when it is no longer open."""
    ws = get_workspace(store, workspace)
    way = next((w for w in ways_out(store, ws.id) if w.key == key), None)
    if way is None:
        raise UserError("That is no longer waiting: it was settled already, or a sync held it for another "
                        "reason. The Held back list shows what still waits.")

    def ledger() -> Any:
        crm, acct = open_connectors(store, tokens, ws, transport, clock=clock, sleep=sleep)
        crm.close()
        return acct

    holder = lease.holder_id()
    if not lease.acquire(store, ws.id, holder, clock=clock):
        return Taken("refused", f"A sync of '{ws.name}' is running. Try again when it has finished; nothing was "
                                "changed.", way)
    try:
        taken = _Taker(store, ws, way, ledger).run()
    finally:
        lease.release(store, ws.id, holder)
    if taken.ok:
        changes.announce(store, ws.id, CHANGES)
    return taken


class _Taker:
    def __init__(self, store: Store, ws: WorkspaceInfo, way: WayOut, ledger: Connect) -> None:
        self.store, self.ws, self.way, self.ledger = store, ws, way, ledger
        self.crm_label, self.acct_label = provider_label(ws.crm), provider_label(ws.accounting)
        self.crm_name = way.crm_name or f"{way.crm_type} {way.crm_id}"
        self.target_name = way.target_name or (f"customer {way.target_id}" if way.target_id else "")

    def run(self) -> Taken:
        if self.way.kind == "reactivate":
            return self._reactivate()
        return self._relink() if self.way.kind == "link_to_survivor" else self._unlink()

    # -- reactivate --------------------------------------------------------------------------------
    def _reactivate(self) -> Taken:
        w = self.way
        assert w.target_id is not None  # listed only with one
        acct = self.ledger()
        try:
            res = acct.reactivate_customer(w.target_id)
            error = res.error
        except ConnectorError as exc:  # the sign-in lost, or the ledger out of reach
            res, error = None, exc
        finally:
            acct.close()
        if error is not None or res is None:
            return Taken("provider", self._refusal(error), w)
        customer = res.record if isinstance(res.record, AccountingCustomer) else None
        name = (customer.raw_name or customer.party.name) if customer else self.target_name
        message = f"'{name}' is active again in {self.acct_label}. The next sync makes {w.waiting_text()}."
        with self.store.session() as s:
            run = self._run(s, message, reactivated=1)
            j = Journal(workspace_id=self.ws.id, run_id=run.id, key=f"way-out-{run.id}-reactivate-{w.target_id}",
                        op="reactivate_customer", side="accounting", crm_type=w.crm_type, crm_id=w.crm_id,
                        target_id=w.target_id, payload={"way_out": w.key}, status="done")
            s.add(j)
            s.flush()
            add_changes(s, run.id, j.id, "accounting", w.target_id, {"active": ("false", "true")}, RULE)
            released = self._release(s, run, message)
        if customer is not None:
            MirrorRepo(self.store, self.ws.id).put_customers([customer])
        return Taken("ok", message, w, released, run.id)

    def _wait_verb(self) -> str:
        return "still waits" if len(self.way.waiting) < 2 else "still wait"

    def _refusal(self, exc: ConnectorError | None, doing: str = "reactivate") -> str:
        """The ledger's refusal (or silence) in plain words, and that nothing changed."""
        acct = self.acct_label
        still = f"Nothing was changed; {self.way.waiting_text()} {self._wait_verb()}."
        if isinstance(exc, AuthExpired | Unauthorized | Forbidden):
            return (f"{acct} asks you to sign in again (Reconnect {acct} for '{self.ws.name}'), then try again. "
                    f"{still}")
        if exc is not None and exc.retryable:
            return f"{acct} could not be reached just now: {_sentence(exc.message)} Try again in a moment. {still}"
        why = _sentence(exc.message) if exc is not None else "it gave no reason."
        if doing == "reactivate":
            return f"{acct} did not make '{self.target_name}' active again: {why} {still}"
        return f"{acct} could not read '{self.target_name}': {why} {still}"

    # -- links -------------------------------------------------------------------------------------
    def _link_ref(self, s: Any) -> tuple[tuple[str, str], Link | None]:
        for crm_type in (self.way.crm_type, _ALIAS.get(self.way.crm_type, "")):
            row = s.scalars(select(Link).where(Link.workspace_id == self.ws.id, Link.object_type == "customer",
                                               Link.crm_type == crm_type, Link.crm_id == self.way.crm_id)).first()
            if row is not None:
                return (row.crm_type, row.crm_id), row
        return (self.way.crm_type, self.way.crm_id), None

    def _relink(self) -> Taken:
        w = self.way
        assert w.target_id is not None  # listed only with one
        with self.store.session() as s:
            ref, _ = self._link_ref(s)
            other = s.scalars(select(Link).where(Link.workspace_id == self.ws.id, Link.object_type == "customer",
                                                 Link.acct_id == w.target_id)).first()
            other_ref = (other.crm_type, other.crm_id) if other is not None else None
            other_name = (((other.snapshot or {}).get("crm") or {}).get("name")
                          or f"{other.crm_type} {other.crm_id}") if other is not None else ""
        if other_ref is not None and other_ref != ref:
            return Taken("refused", (
                f"'{self.target_name}' is already linked to '{other_name}' in {self.crm_label}, and one customer is "
                f"linked to one CRM record. Merge '{self.crm_name}' into '{other_name}' in {self.crm_label} (the "
                f"invoices then follow '{other_name}'), or unlink '{other_name}' first (crossledger unlink "
                f"\"{self.ws.name}\" {other_ref[1]}) and try again. Nothing was changed."), w)
        survivor, refused, why = self._survivor()
        if survivor is None:
            return Taken(refused, why, w)
        name = survivor.raw_name or survivor.party.name
        message = (f"'{self.crm_name}' is now linked to '{name}' in {self.acct_label}. The next sync makes "
                   f"{w.waiting_text()} for '{name}'.")
        with self.store.session() as s:
            run = self._run(s, message, relinked=1)
            # What the survivor holds now is taken as last seen: no field flows until either side is edited.
            before = move_customer_link(s, self.ws.id, ref, w.target_id, run.id, acct=survivor.party.fields())
            if before is None:
                s.add(Link(workspace_id=self.ws.id, object_type="customer", crm_type=ref[0], crm_id=ref[1],
                           acct_id=w.target_id, how="link", run_id=run.id,
                           snapshot={"acct": survivor.party.fields()}))
            add_changes(s, run.id, None, "local", ref[1],
                        {"linked_customer": (before.acct_id if before else None, w.target_id)}, RULE)
            released = self._release(s, run, message)
        MirrorRepo(self.store, self.ws.id).put_customers([survivor])
        return Taken("ok", message, w, released, run.id)

    def _survivor(self) -> tuple[AccountingCustomer | None, Literal["refused", "provider"], str]:
        """The customer to link to, as the ledger holds it now; or why not."""
        assert self.way.target_id is not None
        acct = self.ledger()
        try:
            found = acct.get_customers([self.way.target_id])
        except ConnectorError as exc:
            return None, "provider", self._refusal(exc, "read")
        finally:
            acct.close()
        still = f"Nothing was changed; {self.way.waiting_text()} {self._wait_verb()}."
        if not found:
            return None, "refused", (f"'{self.target_name}' is no longer in {self.acct_label}, so nothing can be "
                                     f"linked to it. Check the customer there. {still}")
        survivor = found[0]
        if not survivor.active:
            name = survivor.raw_name or survivor.party.name
            return None, "refused", (f"'{name}' is inactive (archived) in {self.acct_label} too. Make it active "
                                     f"there, then try again. {still}")
        return survivor, "refused", ""

    def _unlink(self) -> Taken:
        w = self.way
        message = (f"'{self.crm_name}' is no longer linked to a customer in {self.acct_label}. The next sync "
                   f"creates it there again (or links a customer with the same details), then makes "
                   f"{w.waiting_text()}.")
        with self.store.session() as s:
            ref, _ = self._link_ref(s)
            run = self._run(s, message, unlinked=1)
            before = move_customer_link(s, self.ws.id, ref, None, run.id)
            add_changes(s, run.id, None, "local", ref[1],
                        {"linked_customer": (before.acct_id if before else None, None)}, RULE)
            released = self._release(s, run, message)
            # The CRM record is planned again by the next sync (it may not have changed since).
            held = s.scalars(select(Quarantine).where(Quarantine.workspace_id == self.ws.id, Quarantine.side == "crm",
                                                      Quarantine.record_type == ref[0],
                                                      Quarantine.record_id == ref[1])).first()
            if held is None:
                held = Quarantine(workspace_id=self.ws.id, side="crm", record_type=ref[0], record_id=ref[1],
                                  name=self.crm_name[:300], run_id=run.id)
                s.add(held)
            held.reasons = {"items": [{"field": "customer", "message": f"Unlinked by you: the next sync creates or "
                                       f"links it in {self.acct_label} again."}], "release": True}
        return Taken("ok", message, w, released, run.id)

    # -- shared ------------------------------------------------------------------------------------
    def _run(self, s: Any, message: str, **counts: int) -> Run:
        now = utcnow()
        run = Run(workspace_id=self.ws.id, trigger=TRIGGERS[self.way.kind], dry_run=0, status="ok",
                  counts={**counts, "released": len(self.way.waiting)}, message=message, started_at=now,
                  finished_at=now)
        s.add(run)
        s.flush()
        return run

    def _release(self, s: Any, run: Run, message: str) -> tuple[Waiting, ...]:
        """Every hold waiting on this way out: released, with what happened in its reason."""
        out = []
        for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == self.ws.id, Quarantine.side == "crm")):
            reasons = dict(q.reasons or {})
            items = list(reasons.get("items") or [])
            if reasons.get("release") or not any((way := _offer(i)) and _way_key(way) == self.way.key for i in items):
                continue
            kept = [i for i in items if _offer(i) is None]
            q.reasons = {**reasons, "items": [{"field": "customer", "message": f"Released by you: {message}"}, *kept],
                         "release": True, "way_out_taken": {"kind": self.way.kind, "run_id": run.id}}
            out.append(Waiting(q.record_type, q.record_id, q.name))
        return tuple(out)


def _sentence(text: str) -> str:
    text = " ".join((text or "").split())
    return text if text.endswith((".", "!", "?")) else text + "."
