"""How the migration's apply writes: in the providers' batches, through the run's journal (its RunContext)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from app.connectors.base import CustomerWrite, RecordWrite, WriteResult
from app.connectors.errors import ConnectorError, RateLimited, StaleVersion
from app.connectors.http import RateLimiter
from app.domain.models import CrmRecord, Party
from app.ops.migration.estimate import JOURNAL_GROUP, MigrationResult, describe_duration
from app.ops.migration.plan import _key
from app.store.models import FieldChange, Journal, Link, MigrationRow, Quarantine, utcnow
from app.store.serial import jsonable, party_from
from app.sync.engine import resolve_create_error
from app.sync.mapping import map_record
from app.sync.planner import op_key
from app.sync.run_context import Cancelled, Progress, RunContext, WithRunContext
from app.sync.validate import validate_party


@dataclass(slots=True)
class _CreateLike:
    """What the engine's duplicate-name handling needs to know about a create."""

    key: str
    party: Party
    display_name: str
    refs: list[tuple[str, str]]


class _Writes(WithRunContext):
    """The apply's writes: each batch journalled before it is sent and finished when answered, at the
    providers' limits, with links, audit trail and held-back records committed per batch. The lease,
    run record, journal, progress and cancel are the run's ``RunContext`` (``self.ctx``)."""

    def __init__(self, store: Any, ws_id: int, crm: Any, acct: Any, *, trigger: str = "migration",
                 dry_run: bool = False, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.ctx = RunContext(store, ws_id, trigger=trigger, dry_run=dry_run, progress=progress, cancel=cancel,
                              counts={"read": 0, "created": 0, "updated": 0, "linked": 0, "quarantined": 0,
                                      "conflicts": 0, "writes": 0})
        self.store, self.ws_id, self.crm, self.acct, self.dry_run = store, ws_id, crm, acct, dry_run
        self.progress, self.cancel = self.ctx.progress, self.ctx.cancel

    # set by the migration engine (apply.py) before the writes start
    result: MigrationResult | None
    plan_id: int | None
    keys_done: set[str]
    mapping: Any
    total: int
    done_rows: int
    started: float
    calls_before: tuple[int, int]
    wait_for_quota: bool
    sleep: Callable[[float], None]
    _pacers: dict[str, RateLimiter]

    def _journal(self, entries: list[tuple[str, str, str, tuple[str, str], str | None, dict]]) -> None:
        """The engine's journal, written in one statement per batch (thousands of rows in a migration)."""
        if not entries:
            return
        now = utcnow()
        with self.store.session() as s:
            s.execute(insert(Journal), [
                {"workspace_id": self.ws_id, "run_id": self.run_id, "key": key, "op": op, "side": side,
                 "crm_type": ref[0], "crm_id": ref[1], "target_id": target, "payload": jsonable(payload),
                 "status": "pending", "created_at": now, "updated_at": now}
                for key, op, side, ref, target, payload in entries])

    @staticmethod
    def _requests(connector: Any) -> int:
        api = getattr(connector, "api", None)
        return int(getattr(api, "request_count", 0))

    def _key(self, row_id: int, part: str) -> str:
        return op_key(self.ws_name, "migration", str(self.plan_id), str(row_id), part)

    def _progress(self, stage: str, step: int = 1) -> None:
        self.done_rows += step
        elapsed = time.monotonic() - self.started
        rate = self.done_rows / elapsed if elapsed > 0 else 0
        left = (self.total - self.done_rows) / rate if rate else 0
        self.progress(f"{stage} ({describe_duration(left)} left)" if self.done_rows < self.total else stage,
                      min(self.done_rows, self.total), self.total)

    def _mark(self, row_id: int, status: str, *, target: str | None = None, error: str | None = None) -> None:
        with self.store.session() as s:
            row = s.get(MigrationRow, row_id)
            row.status = status
            if target:
                row.target_id = target
            if error:
                row.error = error

    # Sending with the journal: recorded before it is sent, finished when answered.
    def _send(self, side: str, call: Callable[[list[Any]], list[WriteResult]], writes: list[Any]) -> list[WriteResult]:
        """One batch; the records a rate limit turned away are sent again once it allows, waiting for
        a daily cap to reset when there is one (everything before is already recorded)."""
        results: list[WriteResult | None] = [None] * len(writes)
        todo = list(range(len(writes)))
        short_waits = 0
        pacer = self._pacers.get(side)
        while todo:
            if self.cancel.is_set():  # the lease is renewed once a journal group, not on every call
                raise Cancelled()
            started = time.monotonic()
            if pacer is not None:  # its writes go through a throttled batch endpoint
                pacer.acquire()
            try:
                answers = call([writes[i] for i in todo])
                self.result.call_seconds += time.monotonic() - started
            except RateLimited as exc:
                if not exc.daily or not self.wait_for_quota:
                    raise
                self._wait_quota(side, exc.retry_after)
                continue
            again: list[int] = []
            wait, daily = 0.0, False
            for i, res in zip(todo, answers, strict=True):
                err = res.error
                if isinstance(err, RateLimited) and err.daily and not self.wait_for_quota:
                    raise err  # stop here: the rest stays in the plan for the next apply
                if isinstance(err, RateLimited) and ((err.daily and self.wait_for_quota) or
                                                     (not err.daily and short_waits < 5)):
                    again.append(i)
                    wait = max(wait, err.retry_after or 1.0)
                    daily = daily or err.daily
                else:
                    results[i] = res
            todo = again
            if again and daily:
                self._wait_quota(side, wait)
            elif again:
                short_waits += 1
                self.sleep(wait)
        return [r for r in results if r is not None]

    def _wait_quota(self, side: str, retry_after: float | None) -> None:
        label = self.result.ledger_label if side == "accounting" else self.result.crm_label
        wait = retry_after if retry_after and retry_after > 0 else 3600.0
        until = time.monotonic() + wait
        when = (dt.datetime.now().astimezone() + dt.timedelta(seconds=wait)).strftime("%H:%M")
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            self.progress(f"{label}'s daily limit is used up: everything so far is saved, and the import "
                          f"continues by itself at {when}", self.done_rows, self.total)
            self.ctx.check_cancel()
            if self.sleep is not time.sleep:  # an injected clock (tests, sandboxes): its sleep is the wait
                self.sleep(left)
                return
            self.sleep(min(left, 30.0))  # wake up now and then to honour Cancel

    def _create_ledger(self, rows: list[MigrationRow]) -> None:
        batch = max(1, self.acct.limits.batch_max)
        group = max(batch, JOURNAL_GROUP if batch == 1 else batch)
        for start in range(0, len(rows), group):
            self.ctx.check_cancel()
            chunk = rows[start:start + group]
            todo = [r for r in chunk if self._key(r.id, "create") not in self.keys_done]
            self._journal([(self._key(r.id, "create"), "create_customer", "accounting", tuple(r.payload["refs"][0]),
                            None, {"display_name": r.payload["display_name"],
                                   "email": r.payload["party"].get("email"), "refs": r.payload["refs"],
                                   "migration_row": r.id}) for r in todo])
            results: list[tuple[MigrationRow, WriteResult]] = []
            for sub in range(0, len(todo), batch):
                part = todo[sub:sub + batch]
                writes = [CustomerWrite(self._key(r.id, "create"), party_from(r.payload["party"]),
                                        display_name=r.payload["display_name"]) for r in part]
                results += list(zip(part, self._send("accounting", self.acct.create_customers, writes), strict=True))
            created: dict[int, str] = {}
            for r, res in results:
                acct_id = res.id if res.ok else None
                if not res.ok:
                    create = _CreateLike(self._key(r.id, "create"), party_from(r.payload["party"]),
                                         r.payload["display_name"], [tuple(x) for x in r.payload["refs"]])
                    acct_id = resolve_create_error(self.ctx, self.acct, create, res.error)
                    if acct_id is None:
                        self._mark(r.id, "failed", error=res.error.message if res.error else "refused")
                        continue
                else:
                    self.counts["writes"] += 1
                created[r.id] = acct_id
            for r in chunk:
                if r.id not in created and self._key(r.id, "create") in self.keys_done:
                    created[r.id] = r.target_id or self._journal_target(self._key(r.id, "create"))
            self._commit_creates(chunk, created)
            self._progress(f"Creating customers in {self.result.ledger_label}", len(chunk))

    def _journal_target(self, key: str) -> str | None:
        with self.store.session() as s:
            return s.scalar(select(Journal.target_id).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                            Journal.status == "done").limit(1))

    def _commit_creates(self, chunk: list[MigrationRow], created: dict[int, str | None]) -> None:
        with self.store.session() as s, s.no_autoflush:
            keys = {self._key(r.id, "create"): created.get(r.id) for r in chunk if created.get(r.id)}
            # ids and keys only: loading whole journal rows would decode every payload for nothing
            journal_ids: dict[str, int] = dict(s.execute(
                select(Journal.key, Journal.id).where(Journal.workspace_id == self.ws_id,
                                                      Journal.key.in_(list(keys)), Journal.status == "pending")).all())
            if journal_ids:
                now = utcnow()
                s.execute(update(Journal), [{"id": i, "status": "done", "target_id": keys[k], "updated_at": now}
                                            for k, i in journal_ids.items()])
            links = []
            changes: list[dict[str, Any]] = []
            for r in chunk:
                acct_id = created.get(r.id)
                if not acct_id:
                    continue
                party = party_from(r.payload["party"]).fields()
                # the audit trail, as the sync records a create: every field it set
                changes += [{"run_id": self.run_id, "journal_id": journal_ids.get(self._key(r.id, "create")),
                             "side": "accounting", "record_id": acct_id, "field": f, "before": None,
                             "after": str(v), "rule": "migration"} for f, v in party.items() if v]
                for n, ref in enumerate(r.payload["refs"]):
                    crm_fields = r.payload["crm_fields"].get(_key(tuple(ref)), party)
                    links.append((tuple(ref), acct_id, "created" if n == 0 else "duplicate",
                                  {"crm": crm_fields, "acct": party}))
                self.keys_done.add(self._key(r.id, "create"))
            if changes:
                s.execute(insert(FieldChange), changes)
            self._add_links(s, links)
            self._rows_done(s, {r.id: created[r.id] for r in chunk if created.get(r.id)})

    def _rows_done(self, s: Any, targets: dict[int, str | None], **extra: Any) -> None:
        if targets:
            s.execute(update(MigrationRow), [{"id": i, "status": "done", **({"target_id": t} if t else {}),
                                              **extra.get(str(i), {})} for i, t in targets.items()])

    def _add_links(self, s: Any, links: list[tuple[tuple[str, str], str, str, dict]]) -> None:
        """Links for many records in one go (an existing link for a record is updated, never doubled)."""
        if not links:
            return
        ids = [ref[1] for ref, *_ in links]
        existing: dict[tuple[str, str], Link] = {}
        for start in range(0, len(ids), 500):
            for lk in s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer",
                                                   Link.crm_id.in_(ids[start:start + 500]))):
                existing[(lk.crm_type, lk.crm_id)] = lk
        now = utcnow()
        new: dict[tuple[str, str], dict[str, Any]] = {}
        for ref, acct_id, how, snapshot in links:
            row = existing.get(ref)
            if row is None:
                new[ref] = {"workspace_id": self.ws_id, "object_type": "customer", "crm_type": ref[0],
                            "crm_id": ref[1], "acct_id": acct_id, "how": how, "run_id": self.run_id,
                            "snapshot": jsonable(snapshot), "created_at": now, "updated_at": now}
                continue
            row.acct_id, row.how, row.snapshot, row.updated_at = acct_id, how, jsonable(snapshot), now
        if new:
            s.execute(insert(Link), list(new.values()))

    def _links(self, rows: list[MigrationRow]) -> None:
        # 1. the ledger's side of each link, in the ledger's batches
        acct_rows = [r for r in rows if r.payload.get("acct_changes")
                     and self._key(r.id, "acct") not in self.keys_done]
        batch = max(1, self.acct.limits.batch_max)
        group = max(batch, JOURNAL_GROUP if batch == 1 else batch)
        failed: set[int] = set()
        for start in range(0, len(acct_rows), group):
            self.ctx.check_cancel()
            chunk = acct_rows[start:start + group]
            self._journal([(self._key(r.id, "acct"), "update_customer", "accounting", (r.crm_type, r.crm_id),
                            r.acct_id, {"changes": r.payload["acct_changes"], "migration_row": r.id})
                           for r in chunk])
            for sub in range(0, len(chunk), batch):
                part = chunk[sub:sub + batch]
                writes = [CustomerWrite(self._key(r.id, "acct"), party_from(r.payload["acct_party"]), id=r.acct_id,
                                        version=r.payload.get("version")) for r in part]
                answers = self._send("accounting", self.acct.update_customers, writes)
                for r, res in zip(part, answers, strict=True):
                    if not res.ok and isinstance(res.error, StaleVersion):
                        res = self._retry_update(r)
                    if res.ok:
                        self.ctx.finish(self._key(r.id, "acct"), r.acct_id)
                        self.keys_done.add(self._key(r.id, "acct"))
                        self.counts["writes"] += 1
                        self.ctx.journal.record_changes(self.run_id, self._key(r.id, "acct"), "accounting",
                                                        r.acct_id, r.payload["acct_changes"], "migration")
                    else:
                        failed.add(r.id)
                        self._fail_row(r, self._key(r.id, "acct"), res.error)
            self._progress(f"Filling in customers in {self.result.ledger_label}", 0)
        # 2. the CRM's side, in the CRM's batches
        crm_rows = [r for r in rows if r.payload.get("crm_props") and r.id not in failed
                    and self._key(r.id, "crm") not in self.keys_done]
        cbatch = max(1, self.crm.limits.batch_max)
        cgroup = max(cbatch, JOURNAL_GROUP if cbatch == 1 else cbatch)
        for start in range(0, len(crm_rows), cgroup):
            self.ctx.check_cancel()
            chunk = crm_rows[start:start + cgroup]
            self._journal([(self._key(r.id, "crm"), "update_crm", "crm", (r.crm_type, r.crm_id), r.crm_id,
                            {"changes": r.payload["crm_changes"], "migration_row": r.id}) for r in chunk])
            for sub in range(0, len(chunk), cbatch):
                part = chunk[sub:sub + cbatch]
                writes = [RecordWrite(self._key(r.id, "crm"), r.crm_type, r.crm_id, r.payload["crm_props"])
                          for r in part]
                answers = self._send("crm", self.crm.update_records, writes)
                for r, res in zip(part, answers, strict=True):
                    if res.ok:
                        self.ctx.finish(self._key(r.id, "crm"), r.crm_id)
                        self.keys_done.add(self._key(r.id, "crm"))
                        self.counts["writes"] += 1
                        self.ctx.journal.record_changes(self.run_id, self._key(r.id, "crm"), "crm", r.crm_id,
                                                        r.payload["crm_changes"], "migration")
                    else:
                        failed.add(r.id)
                        self._fail_row(r, self._key(r.id, "crm"), res.error)
        # 3. the links themselves
        for start in range(0, len(rows), 500):
            chunk = [r for r in rows[start:start + 500] if r.id not in failed]
            with self.store.session() as s, s.no_autoflush:
                self._add_links(s, [((r.crm_type, r.crm_id), r.acct_id, r.payload.get("how") or "name",
                                     r.payload["snapshot"]) for r in chunk])
                self._rows_done(s, dict.fromkeys((r.id for r in chunk), None))
            self._progress("Linking records", len(rows[start:start + 500]))

    def _retry_update(self, r: MigrationRow) -> WriteResult:
        fresh = self.acct.get_customers([r.acct_id])
        changes = {f: v[1] for f, v in r.payload["acct_changes"].items()}
        if not fresh:
            return self.acct.update_customers([CustomerWrite(self._key(r.id, "acct"), party_from(
                r.payload["acct_party"]), id=r.acct_id)])[0]
        return self.acct.update_customers([CustomerWrite(self._key(r.id, "acct"),
                                                         fresh[0].party.with_fields(changes), id=r.acct_id,
                                                         version=fresh[0].version)])[0]

    def _fail_row(self, r: MigrationRow, key: str, error: ConnectorError | None) -> None:
        message = error.message if error else "unknown error"
        with self.store.session() as s:
            for j in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                     Journal.status == "pending")):
                j.status, j.error = "failed", message
            row = s.get(MigrationRow, r.id)
            row.status, row.error = "failed", message
        self.errors.append(f"{r.name}: {message}")

    def _create_crm(self, rows: list[MigrationRow]) -> None:
        batch = max(1, self.crm.limits.batch_max)
        group = max(batch, JOURNAL_GROUP if batch == 1 else batch)
        for start in range(0, len(rows), group):
            self.ctx.check_cancel()
            chunk = rows[start:start + group]
            todo = [r for r in chunk if self._key(r.id, "create") not in self.keys_done]
            self._journal([(self._key(r.id, "create"), "create_crm", "crm", (r.payload["object_type"], ""), None,
                            {"display_name": r.name, "properties": r.payload["properties"], "migration_row": r.id})
                           for r in todo])
            created: dict[int, tuple[str, dict]] = {}
            for sub in range(0, len(todo), batch):
                part = todo[sub:sub + batch]
                writes = [RecordWrite(self._key(r.id, "create"), r.payload["object_type"], None,
                                      r.payload["properties"]) for r in part]
                answers = self._send("crm", self.crm.update_records, writes)
                for r, res in zip(part, answers, strict=True):
                    if res.ok and res.id:
                        self.counts["writes"] += 1
                        crm_fields = r.payload["crm_fields"]
                        if isinstance(res.record, CrmRecord):
                            crm_fields = validate_party(map_record(res.record, self.mapping))[0].fields()
                        created[r.id] = (res.id, crm_fields)
                    else:
                        self._fail_row(r, self._key(r.id, "create"), res.error)
            for r in chunk:
                if r.id not in created and self._key(r.id, "create") in self.keys_done:
                    target = r.target_id or self._journal_target(self._key(r.id, "create"))
                    if target:
                        created[r.id] = (target, r.payload["crm_fields"])
            with self.store.session() as s:
                keys = {self._key(r.id, "create"): created[r.id][0] for r in chunk if r.id in created}
                for j in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                         Journal.key.in_(list(keys)), Journal.status == "pending")):
                    j.status, j.target_id, j.updated_at = "done", keys[j.key], utcnow()
                made = [r for r in chunk if r.id in created]
                changes = [{"run_id": self.run_id, "journal_id": None, "side": "crm", "record_id": created[r.id][0],
                            "field": f, "before": None, "after": str(v), "rule": "migration"}
                           for r in made for f, v in created[r.id][1].items() if v]
                if changes:
                    s.execute(insert(FieldChange), changes)
                self._add_links(s, [((r.payload["object_type"], created[r.id][0]), r.acct_id, "created_in_crm",
                                     {"crm": created[r.id][1], "acct": r.payload["acct_fields"]}) for r in made])
                self._rows_done(s, {r.id: created[r.id][0] for r in made},
                                **{str(r.id): {"crm_type": r.payload["object_type"], "crm_id": created[r.id][0]}
                                   for r in made})
                self.keys_done.update(self._key(r.id, "create") for r in made)
            self._progress(f"Creating records in {self.result.crm_label}", len(chunk))

    def _hold(self, rows: list[MigrationRow]) -> None:
        """Invalid records and possible matches: listed where the bookkeeper looks (held back)."""
        with self.store.session() as s:
            for r in rows:
                if r.crm_type and r.crm_id:
                    q = s.scalars(select(Quarantine).where(
                        Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm",
                        Quarantine.record_type == r.crm_type, Quarantine.record_id == r.crm_id)).first()
                    if q is None:
                        q = Quarantine(workspace_id=self.ws_id, side="crm", record_type=r.crm_type,
                                       record_id=r.crm_id)
                        s.add(q)
                    items = r.payload.get("problems") or [{"field": "match", "message": r.explanation or ""}]
                    q.name, q.reasons, q.run_id = r.name[:300], {"items": items}, self.run_id
                s.get(MigrationRow, r.id).status = "done"
        if rows:
            self._progress("Listing records held back", len(rows))
