"""How the migration's apply writes: in the providers' batches, through the run's journal (its RunContext)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import DateTime, Table, bindparam, case, delete, func, insert, select, update

from app.connectors.base import CustomerWrite, RecordWrite, WriteResult
from app.connectors.errors import ConnectorError, RateLimited, StaleVersion
from app.connectors.http import RateLimiter
from app.domain.models import CrmRecord, Party
from app.ops.migration.estimate import JOURNAL_GROUP, MigrationResult, PlanRow, describe_duration
from app.ops.migration.plan import _key
from app.store.models import FieldChange, Journal, Link, MigrationRow, Quarantine, utcnow
from app.store.serial import jsonable, party_from, text_value
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


JournalEntry = tuple[str, str, str, tuple[Any, Any], str | None, dict]  # key, op, side, CRM ref, target, payload
LinkSpec = tuple[tuple[Any, Any], Any, str, dict]  # CRM ref, ledger id, how, snapshot
RENEW_EVERY = 2.0  # seconds between renewals of the run's lease (it lasts five minutes)
_JOURNAL, _FIELDS, _LINKS, _ROWS = (cast(Table, m.__table__) for m in (Journal, FieldChange, Link, MigrationRow))


_JOURNAL_COLUMNS = ("workspace_id", "run_id", "key", "op", "side", "crm_type", "crm_id", "target_id", "payload",
                    "status", "error", "created_at", "updated_at")
_JOURNAL_STATEMENT = 50  # journal rows a statement inserts (and returns the ids of)
_STATEMENT_SIZES = (100, 50, 25, 10, 5, 2)  # audit rows or links one statement inserts
_AUDIT = ("run_id", "journal_id", "side", "record_id", "field", "before", "after", "rule")
_LINK = ("workspace_id", "object_type", "crm_type", "crm_id", "acct_id", "how", "run_id", "snapshot", "created_at",
         "updated_at")


@dataclass(slots=True)
class _Driver:
    """A statement compiled once for a positional driver (SQLite): its text, its parameters' names in
    order, their fixed values and each one's conversion."""

    text: str
    names: list[str]
    fixed: dict[str, Any]
    processors: list[Any]

    def rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        convert = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        if not convert:
            return rows
        out = []
        for r in rows:
            values = list(r)
            for i, p in convert:
                if (v := values[i]) is not None:
                    values[i] = p(v)
            out.append(tuple(values))
        return out


def _remembered(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` for a column whose values repeat (a page's rows share one time): each value once."""
    seen: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        if (done := seen.get(value)) is None:
            if len(seen) > 64:
                seen.clear()
            done = seen[value] = convert(value)
        return done
    return remembered


_COMPILED: dict[tuple[str, str], _Driver | None] = {}


def _driver(conn: Any, name: str, build: Callable[[], Any]) -> _Driver | None:
    """``build()``'s statement as the driver takes it, compiled once per dialect (None: a driver with
    named parameters, which gets SQLAlchemy's own handling)."""
    key = (conn.dialect.name, name)
    if key not in _COMPILED:
        sql = build().compile(dialect=conn.dialect)
        names = list(sql.positiontup or ()) if sql.positional else []
        processors = []
        for n in names:
            kind = sql.binds[n].type
            convert = kind.dialect_impl(conn.dialect).bind_processor(conn.dialect)
            processors.append(_remembered(convert) if convert is not None and isinstance(kind, DateTime) else convert)
        _COMPILED[key] = _Driver(str(sql), names, {n: sql.binds[n].effective_value for n in names},
                                 processors) if names else None
    return _COMPILED[key]


def _insert_many(s: Any, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Rows (values in ``columns``' order) inserted in one statement. Where the driver takes positional
    parameters (SQLite) it gets them directly, each value through its column's own conversion: for the
    tens of thousands of audit rows and links of an import, SQLAlchemy's per-row parameter handling
    cost more than the rest of recording a page. Other drivers get SQLAlchemy's own batching."""
    if not rows:
        return
    conn = s.connection()
    driver = _driver(conn, f"insert {table.name}", lambda: insert(table).values({c: bindparam(c) for c in columns}))
    if driver is None or sorted(driver.names) != sorted(columns):
        s.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    if driver.names != list(columns):  # in the table's order
        at = [columns.index(n) for n in driver.names]
        rows = [tuple(r[i] for i in at) for r in rows]
    rows = driver.rows(rows)
    # Up to a hundred rows a statement (one step of the database each, not one a row), in a few fixed
    # sizes so that only a few statements are ever compiled; what is left over goes row by row.
    names, done = driver.names, 0
    for size in _STATEMENT_SIZES:
        while len(rows) - done >= size:
            many = _rows_statement(conn, table, names, size)
            if many is None:
                break
            conn.exec_driver_sql(many.text, tuple(v for r in rows[done:done + size] for v in r))
            done += size
    if done < len(rows):
        conn.exec_driver_sql(driver.text, rows[done:])


_STATEMENTS: dict[tuple[Any, ...], _Driver | None] = {}


def _rows_statement(conn: Any, table: Table, columns: Sequence[str], n: int, *returning: Any) -> _Driver | None:
    """An insert of ``n`` rows of ``columns`` in one statement (``returning`` those columns), compiled once
    for a positional driver, its parameters row after row in ``columns``' order; None for another driver."""
    key = (conn.dialect.name, table.name, tuple(columns), n, tuple(c.name for c in returning))
    if key in _STATEMENTS:  # checked once: its parameters' names are 800 strings for a hundred audit rows
        return _STATEMENTS[key]

    def build() -> Any:
        statement = insert(table).values(
            [{c: bindparam(f"{c}_{i}", type_=table.c[c].type) for c in columns} for i in range(n)])
        return statement.returning(*returning) if returning else statement

    back = ",".join(c.name for c in returning)
    driver = _driver(conn, f"insert {table.name} {','.join(columns)} x{n} returning {back}", build)
    if driver is not None and driver.names != [f"{c}_{i}" for i in range(n) for c in columns]:
        driver = None
    _STATEMENTS[key] = driver
    return driver


def _execute_many(s: Any, name: str, build: Callable[[], Any], rows: list[dict[str, Any]]) -> None:
    """``build()``'s statement (an update) once for each of ``rows`` (values by parameter name), in one go:
    straight to a positional driver as ``_insert_many`` does, else through SQLAlchemy."""
    if not rows:
        return
    conn = s.connection()
    driver = _driver(conn, name, build)
    if driver is None:
        s.execute(build(), rows)
        return
    fixed, names = driver.fixed, driver.names
    conn.exec_driver_sql(driver.text, driver.rows([tuple(r[n] if n in r else fixed[n] for n in names)
                                                   for r in rows]))


@dataclass(slots=True)
class _Page:
    """One page of rows: journalled in one commit, then sent in the provider's batches."""

    chunk: list[PlanRow]  # every row of the page
    todo: list[PlanRow]  # those not written by an earlier apply
    results: list[WriteResult] = field(default_factory=list)  # answers, in ``todo``'s order


class _Flight:
    """One journalled page sent in the background by the run's sender thread, batch after batch; ``land``
    waits for its answers.

    Only the sending happens there (the journal, the records and any provider call of ``settle`` stay on
    the run's own thread), so waiting on the provider overlaps our recording of the page before."""

    def __init__(self, sender: ThreadPoolExecutor, writes: _Writes, side: str,
                 call: Callable[[list[Any]], list[WriteResult]], page: _Page, ids: dict[str, int],
                 batches: list[list[Any]]) -> None:
        self.writes, self.side, self.call, self.page, self.ids, self.batches = writes, side, call, page, ids, batches
        self.landed = False
        self.future = sender.submit(self._send)

    def _send(self) -> None:
        for writes in self.batches:
            self.page.results += self.writes._send(self.side, self.call, writes)

    def join(self) -> None:
        wait([self.future])

    def land(self, settle: Callable[[_Page], Any]) -> tuple[_Page, Any, dict[str, int]]:
        """The page answered (its error raised here), settled: what to record."""
        self.future.result()
        self.landed = True
        return self.page, settle(self.page), self.ids


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
        self._halt = threading.Event()  # the run is stopping: the page in flight sends nothing more

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
    done_targets: dict[str, str | None]  # key -> what it made, for every write done by an earlier apply
    link_ids: dict[tuple[Any, Any], int]  # the workspace's customer links (this run holds the workspace)
    links_made: set[tuple[Any, Any]]  # and those this apply made (their ids read only if needed again)
    _keys: dict[tuple[int, str], str]
    _renewed: float

    def _journal(self, entries: list[JournalEntry], s: Any = None) -> dict[str, int]:
        """The engine's journal, written in one statement per page (thousands of rows in a migration):
        each entry's id by its key. In ``s`` when given (committed with the rest of that session).
        Payloads are made of the plan rows' own JSON, so they are stored as they are."""
        if not entries:
            return {}
        if s is None:
            with self.store.session() as own:
                return self._journal(entries, own)
        now = utcnow()
        rows = [(self.ws_id, self.run_id, key, op, side, ref[0], ref[1], target, payload, "pending", None, now, now)
                for key, op, side, ref, target, payload in entries]
        conn, ids = s.connection(), {}
        for start in range(0, len(rows), _JOURNAL_STATEMENT):
            chunk = rows[start:start + _JOURNAL_STATEMENT]
            n = len(chunk)
            driver = _rows_statement(conn, _JOURNAL, _JOURNAL_COLUMNS, n, _JOURNAL.c.key, _JOURNAL.c.id)
            if driver is not None:
                flat = driver.rows([tuple(v for r in chunk for v in r)])[0]
                ids.update(conn.exec_driver_sql(driver.text, flat).all())
            else:
                ids.update(s.execute(insert(_JOURNAL).returning(_JOURNAL.c.key, _JOURNAL.c.id),
                                     [dict(zip(_JOURNAL_COLUMNS, r, strict=True)) for r in chunk]).all())
        return ids

    def _journal_done(self, s: Any, targets: Mapping[str, str | None]) -> None:
        """Writes answered: their pending journal rows (this run's, and any an earlier run left) done, with
        what each made; up to _JOURNAL_STATEMENT keys a statement."""
        now, items = utcnow(), list(targets.items())
        for start in range(0, len(items), _JOURNAL_STATEMENT):
            chunk = items[start:start + _JOURNAL_STATEMENT]
            n = len(chunk)

            def statement(n: int = n) -> Any:
                keys = [bindparam(f"k{i}", type_=_JOURNAL.c.key.type) for i in range(n)]
                made = case(*((_JOURNAL.c.key == k, bindparam(f"t{i}", type_=_JOURNAL.c.target_id.type))
                              for i, k in enumerate(keys)), else_=_JOURNAL.c.target_id)
                return update(_JOURNAL).where(_JOURNAL.c.workspace_id == bindparam("b_ws"),
                                              _JOURNAL.c.status == "pending", _JOURNAL.c.key.in_(keys)).values(
                    status="done", target_id=made, updated_at=bindparam("b_now", type_=_JOURNAL.c.updated_at.type))

            values: dict[str, Any] = {"b_ws": self.ws_id, "b_now": now}
            for i, (key, target) in enumerate(chunk):
                values[f"k{i}"], values[f"t{i}"] = key, target
            _execute_many(s, f"journal done {n}", statement, [values])

    def _check(self) -> None:
        """Stop if asked to; renew the run's hold on the workspace every RENEW_EVERY seconds."""
        if self.cancel.is_set():
            raise Cancelled()
        if time.monotonic() - getattr(self, "_renewed", 0.0) >= RENEW_EVERY:
            self.ctx.check_cancel()
            self._renewed = time.monotonic()

    @staticmethod
    def _requests(connector: Any) -> int:
        api = getattr(connector, "api", None)
        return int(getattr(api, "request_count", 0))

    def _key(self, row_id: int, part: str) -> str:
        try:
            return self._keys[(row_id, part)]
        except (AttributeError, KeyError):
            if not hasattr(self, "_keys"):
                self._keys = {}
            key = self._keys[(row_id, part)] = op_key(self.ws_name, "migration", str(self.plan_id), str(row_id),
                                                       part)
            return key

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
            if self.cancel.is_set() or self._halt.is_set():  # the lease is renewed once a journal group
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
            if self._halt.wait(min(left, 30.0)):  # wake up now and then to honour Cancel; at once for a stop
                raise Cancelled()

    # The batching loop every create shares.
    def _write_pages(self, side: str, rows: list[PlanRow], part: str, *,
                     entry: Callable[[PlanRow], JournalEntry], write: Callable[[PlanRow], Any],
                     call: Callable[[list[Any]], list[WriteResult]], settle: Callable[[_Page], Any],
                     record: Callable[[Any, _Page, Any, dict[str, int]], None], stage: str,
                     advance: bool = True) -> None:
        """``rows`` a page at a time (one provider batch, or JOURNAL_GROUP single-record writes), each page
        journalled in a commit before it is sent. A page is sent in the background (``_Flight``) while the
        page before it is recorded and the next one journalled, in one commit: the provider's answer and our
        own bookkeeping are no longer waited for one after the other.

        ``settle`` turns a page's answers into what to record (it may call the provider again, for a
        refused name, with nothing else in flight and outside any transaction); ``record`` writes that in a
        session. A write is journalled before it is sent; a run killed leaves at most two pages pending for
        ``_settle`` (the one in flight and the one journalled after it). A run stopped (cancel, a refusal,
        a lost sign-in) first records what had been answered and takes a page journalled but never sent out
        of the journal. ``advance``: the page's rows count as done for the progress (not when a later step
        finishes them)."""
        connector = self.acct if side == "accounting" else self.crm
        batch = max(1, connector.limits.batch_max)
        size = batch if batch > 1 else JOURNAL_GROUP
        answered: tuple[_Page, Any, dict[str, int]] | None = None  # answered, not recorded yet
        flight: _Flight | None = None  # the page being sent
        ready: dict[str, int] = {}  # the journal ids of a page journalled, not sent yet
        sender = ThreadPoolExecutor(1, thread_name_prefix="migration-send")
        self._halt.clear()
        try:
            for start in range(0, len(rows), size):
                self._check()
                chunk = rows[start:start + size]
                page = _Page(chunk, [r for r in chunk if self._key(r.id, part) not in self.keys_done])
                with self.store.session() as s:
                    if answered is not None:
                        record(s, *answered)
                    ready = self._journal([entry(r) for r in page.todo], s)
                if answered is not None:
                    self._progress(stage, len(answered[0].chunk) if advance else 0)
                    answered = None
                batches = [[write(r) for r in page.todo[sub:sub + batch]] for sub in range(0, len(page.todo), batch)]
                if flight is not None:
                    answered = flight.land(settle)
                flight, ready = _Flight(sender, self, side, call, page, ready, batches), {}
            if flight is not None:
                last = flight.land(settle)
                flight = None
                with self.store.session() as s:
                    for page, settled, ids in (answered, last) if answered is not None else (last,):
                        record(s, page, settled, ids)
                for page, _, _ in (answered, last) if answered is not None else (last,):
                    self._progress(stage, len(page.chunk) if advance else 0)
                answered = None
        except BaseException:
            self._stopped(record, settle, answered, flight, ready)
            raise
        finally:
            sender.shutdown()

    def _stopped(self, record: Callable[[Any, _Page, Any, dict[str, int]], None], settle: Callable[[_Page], Any],
                 answered: tuple[_Page, Any, dict[str, int]] | None, flight: _Flight | None,
                 unsent: dict[str, int]) -> None:
        """A run stopping in the middle of its pages: what was answered is recorded (the page in flight is
        waited for first), and a page journalled but never sent leaves the journal."""
        done = [answered] if answered is not None else []
        if flight is not None and not flight.landed:
            self._halt.set()  # a daily-limit wait in flight ends now, not when the limit resets
            flight.join()
            flight.landed = True
            if flight.page.results:  # what was answered before the stop is kept (the rest stays pending)
                done.append((flight.page, settle(flight.page), flight.ids))
        if not done and not unsent:
            return
        with self.store.session() as s:
            for page, settled, ids in done:
                record(s, page, settled, ids)
            if unsent:
                s.execute(delete(_JOURNAL).where(_JOURNAL.c.id.in_(list(unsent.values()))))

    def _create_ledger(self, rows: list[PlanRow]) -> None:
        parties: dict[int, Party] = {}

        def party(r: PlanRow) -> Party:
            if r.id not in parties:
                parties[r.id] = party_from(r.payload["party"])
            return parties[r.id]

        def settle(page: _Page) -> dict[int, str | None]:
            created: dict[int, str | None] = {}
            for r, res in zip(page.todo, page.results, strict=False):
                acct_id = res.id if res.ok else None
                if not res.ok:
                    create = _CreateLike(self._key(r.id, "create"), party(r), r.payload["display_name"],
                                         [tuple(x) for x in r.payload["refs"]])
                    acct_id = resolve_create_error(self.ctx, self.acct, create, res.error)
                    if acct_id is None:
                        self._mark(r.id, "failed", error=res.error.message if res.error else "refused")
                        continue
                else:
                    self.counts["writes"] += 1
                created[r.id] = acct_id
            for r in page.chunk:  # made by an earlier apply that stopped before marking its row
                if r.id not in created and self._key(r.id, "create") in self.keys_done:
                    created[r.id] = r.target_id or self.done_targets.get(self._key(r.id, "create"))
            return created

        def record(s: Any, page: _Page, created: dict[int, str | None], ids: dict[str, int]) -> None:
            made = [(r, acct_id) for r in page.chunk if (acct_id := created.get(r.id))]
            keys = {self._key(r.id, "create"): acct_id for r, acct_id in made}
            self._journal_done(s, keys)
            links: list[LinkSpec] = []
            changes: list[tuple[Any, ...]] = []
            run_id = self.run_id
            for r, acct_id in made:
                # the plan's own JSON (the party's fields, the CRM's): stored as they are
                fields = party(r).fields()
                # the audit trail, as the sync records a create: every field it set
                jid = ids.get(self._key(r.id, "create"))
                changes += [(run_id, jid, "accounting", acct_id, f, None, str(v), "migration")
                            for f, v in fields.items() if v]
                for n, ref in enumerate(r.payload["refs"]):
                    crm_fields = r.payload["crm_fields"].get(_key(tuple(ref)), fields)
                    links.append((tuple(ref), acct_id, "created" if n == 0 else "duplicate",
                                  {"crm": crm_fields, "acct": fields}))
                parties.pop(r.id, None)
            _insert_many(s, _FIELDS, _AUDIT, changes)
            self._add_links(s, links, plain=True)
            self._rows_done(s, {r.id: acct_id for r, acct_id in made})
            self.keys_done.update(keys)

        self._write_pages(
            "accounting", rows, "create",
            entry=lambda r: (self._key(r.id, "create"), "create_customer", "accounting", tuple(r.payload["refs"][0]),
                             None, {"display_name": r.payload["display_name"], "email": r.payload["party"].get("email"),
                                    "refs": r.payload["refs"], "migration_row": r.id}),
            write=lambda r: CustomerWrite(self._key(r.id, "create"), party(r), display_name=r.payload["display_name"]),
            call=self.acct.create_customers, settle=settle, record=record,
            stage=f"Creating customers in {self.result.ledger_label}")

    def _rows_done(self, s: Any, targets: dict[int, str | None], **extra: Any) -> None:
        """Plan rows written: done, with what they made (and their new ``crm_type``/``crm_id`` in ``extra``,
        by row id); up to _JOURNAL_STATEMENT rows a statement, a value left None keeping the row's own."""
        items = list(targets.items())
        sets = [("target_id", "t")] + ([("crm_type", "y"), ("crm_id", "c")] if extra else [])
        for start in range(0, len(items), _JOURNAL_STATEMENT):
            chunk = items[start:start + _JOURNAL_STATEMENT]
            n = len(chunk)

            def statement(n: int = n) -> Any:
                ids = [bindparam(f"i{i}", type_=_ROWS.c.id.type) for i in range(n)]
                columns: dict[str, Any] = {"status": "done"}
                for column, mark in sets:
                    own = _ROWS.c[column]
                    columns[column] = func.coalesce(case(*((_ROWS.c.id == row, bindparam(f"{mark}{i}", type_=own.type))
                                                           for i, row in enumerate(ids))), own)
                return update(_ROWS).where(_ROWS.c.id.in_(ids)).values(**columns)

            values: dict[str, Any] = {}
            for i, (row_id, target) in enumerate(chunk):
                values[f"i{i}"], values[f"t{i}"] = row_id, target
                if extra:  # only the CRM side's ids so far
                    values[f"y{i}"] = extra.get(str(row_id), {}).get("crm_type")
                    values[f"c{i}"] = extra.get(str(row_id), {}).get("crm_id")
            _execute_many(s, f"plan rows done {n}" + (" in the CRM" if extra else ""), statement, [values])

    def _add_links(self, s: Any, links: list[LinkSpec], *, plain: bool = False) -> None:
        """Links for many records in one go (an existing link for a record is updated, never doubled).
        ``plain``: the snapshots hold JSON's types already."""
        if not links:
            return
        now = utcnow()
        new: dict[tuple[Any, Any], tuple[Any, ...]] = {}
        changed: list[dict[str, Any]] = []
        made_here = [ref for ref, *_ in links if ref in self.links_made and ref not in self.link_ids]
        if made_here:  # linked earlier in this apply and linked again: its id, to update it
            for lid, t, i in s.execute(select(Link.id, Link.crm_type, Link.crm_id).where(
                    Link.workspace_id == self.ws_id, Link.object_type == "customer",
                    Link.crm_id.in_([ref[1] for ref in made_here]))):
                self.link_ids[(t, i)] = lid
        for ref, acct_id, how, snapshot in links:
            snap = snapshot if plain else jsonable(snapshot)
            if ref in self.link_ids:
                changed.append({"b_id": self.link_ids[ref], "b_acct": acct_id, "b_how": how, "b_snap": snap,
                                "b_now": now})
                continue
            new[ref] = (self.ws_id, "customer", ref[0], ref[1], acct_id, how, self.run_id, snap, now, now)
        if changed:
            s.execute(update(_LINKS).where(_LINKS.c.id == bindparam("b_id")).values(
                acct_id=bindparam("b_acct"), how=bindparam("b_how"),
                snapshot=bindparam("b_snap", type_=_LINKS.c.snapshot.type), updated_at=bindparam("b_now")), changed)
        _insert_many(s, _LINKS, _LINK, list(new.values()))
        self.links_made.update(new)

    def _links(self, rows: list[PlanRow]) -> None:
        failed: set[int] = set()

        def answers(side: str, part: str) -> tuple[Callable[[_Page], Any], Callable[..., None]]:
            """How the answers to one side's updates are settled and recorded."""
            def settle(page: _Page) -> set[int]:
                done = set()
                for r, res in zip(page.todo, page.results, strict=False):
                    if side == "accounting" and not res.ok and isinstance(res.error, StaleVersion):
                        res = self._retry_update(r)
                    if res.ok:
                        done.add(r.id)
                        self.counts["writes"] += 1
                    else:
                        failed.add(r.id)
                        self._fail_row(r, self._key(r.id, part), res.error)
                return done

            def record(s: Any, page: _Page, done: set[int], ids: dict[str, int]) -> None:
                made = [r for r in page.todo if r.id in done]
                target = (lambda r: r.acct_id) if side == "accounting" else (lambda r: r.crm_id)
                changes = "acct_changes" if side == "accounting" else "crm_changes"
                keys = {self._key(r.id, part): target(r) for r in made}
                self._journal_done(s, keys)
                _insert_many(s, _FIELDS, _AUDIT, [
                    (self.run_id, ids.get(self._key(r.id, part)), side, target(r), f, text_value(before),
                     text_value(after), "migration")
                    for r in made for f, (before, after) in r.payload[changes].items()])
                self.keys_done.update(keys)

            return settle, record

        # 1. the ledger's side of each link, in the ledger's batches
        settle, record = answers("accounting", "acct")
        self._write_pages(
            "accounting", [r for r in rows if r.payload.get("acct_changes")], "acct",
            entry=lambda r: (self._key(r.id, "acct"), "update_customer", "accounting", (r.crm_type, r.crm_id),
                             r.acct_id, {"changes": r.payload["acct_changes"], "migration_row": r.id}),
            write=lambda r: CustomerWrite(self._key(r.id, "acct"), party_from(r.payload["acct_party"]), id=r.acct_id,
                                          version=r.payload.get("version")),
            call=self.acct.update_customers, settle=settle, record=record, advance=False,
            stage=f"Filling in customers in {self.result.ledger_label}")
        # 2. the CRM's side, in the CRM's batches
        settle, record = answers("crm", "crm")
        self._write_pages(
            "crm", [r for r in rows if r.payload.get("crm_props") and r.id not in failed], "crm",
            entry=lambda r: (self._key(r.id, "crm"), "update_crm", "crm", (r.crm_type, r.crm_id), r.crm_id,
                             {"changes": r.payload["crm_changes"], "migration_row": r.id}),
            write=lambda r: RecordWrite(self._key(r.id, "crm"), r.crm_type, r.crm_id, r.payload["crm_props"]),
            call=self.crm.update_records, settle=settle, record=record, advance=False,
            stage=f"Filling in records in {self.result.crm_label}")
        # 3. the links themselves
        for start in range(0, len(rows), 500):
            chunk = [r for r in rows[start:start + 500] if r.id not in failed]
            with self.store.session() as s, s.no_autoflush:
                self._add_links(s, [((r.crm_type, r.crm_id), r.acct_id, r.payload.get("how") or "name",
                                     r.payload["snapshot"]) for r in chunk])
                self._rows_done(s, dict.fromkeys((r.id for r in chunk), None))
            self._progress("Linking records", len(rows[start:start + 500]))

    def _retry_update(self, r: PlanRow) -> WriteResult:
        fresh = self.acct.get_customers([r.acct_id])
        changes = {f: v[1] for f, v in r.payload["acct_changes"].items()}
        if not fresh:
            return self.acct.update_customers([CustomerWrite(self._key(r.id, "acct"), party_from(
                r.payload["acct_party"]), id=r.acct_id)])[0]
        return self.acct.update_customers([CustomerWrite(self._key(r.id, "acct"),
                                                         fresh[0].party.with_fields(changes), id=r.acct_id,
                                                         version=fresh[0].version)])[0]

    def _fail_row(self, r: PlanRow, key: str, error: ConnectorError | None) -> None:
        message = error.message if error else "unknown error"
        with self.store.session() as s:
            for j in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                     Journal.status == "pending")):
                j.status, j.error = "failed", message
            row = s.get(MigrationRow, r.id)
            row.status, row.error = "failed", message
        self.errors.append(f"{r.name}: {message}")

    def _create_crm(self, rows: list[PlanRow]) -> None:
        def settle(page: _Page) -> dict[int, tuple[str, dict]]:
            created: dict[int, tuple[str, dict]] = {}
            for r, res in zip(page.todo, page.results, strict=False):
                if res.ok and res.id:
                    self.counts["writes"] += 1
                    crm_fields = r.payload["crm_fields"]
                    if isinstance(res.record, CrmRecord):
                        crm_fields = validate_party(map_record(res.record, self.mapping))[0].fields()
                    created[r.id] = (res.id, crm_fields)
                else:
                    self._fail_row(r, self._key(r.id, "create"), res.error)
            for r in page.chunk:  # made by an earlier apply that stopped before marking its row
                if r.id not in created and self._key(r.id, "create") in self.keys_done:
                    target = r.target_id or self.done_targets.get(self._key(r.id, "create"))
                    if target:
                        created[r.id] = (target, r.payload["crm_fields"])
            return created

        def record(s: Any, page: _Page, created: dict[int, tuple[str, dict]], ids: dict[str, int]) -> None:
            made = [r for r in page.chunk if r.id in created]
            keys = {self._key(r.id, "create"): created[r.id][0] for r in made}
            self._journal_done(s, keys)
            _insert_many(s, _FIELDS, _AUDIT, [(self.run_id, None, "crm", created[r.id][0], f, None, str(v),
                                               "migration") for r in made for f, v in created[r.id][1].items() if v])
            self._add_links(s, [((r.payload["object_type"], created[r.id][0]), r.acct_id, "created_in_crm",
                                 {"crm": created[r.id][1], "acct": r.payload["acct_fields"]}) for r in made])
            self._rows_done(s, {r.id: created[r.id][0] for r in made},
                            **{str(r.id): {"crm_type": r.payload["object_type"], "crm_id": created[r.id][0]}
                               for r in made})
            self.keys_done.update(keys)

        self._write_pages(
            "crm", rows, "create",
            entry=lambda r: (self._key(r.id, "create"), "create_crm", "crm", (r.payload["object_type"], ""), None,
                             {"display_name": r.name, "properties": r.payload["properties"], "migration_row": r.id}),
            write=lambda r: RecordWrite(self._key(r.id, "create"), r.payload["object_type"], None,
                                        r.payload["properties"]),
            call=self.crm.update_records, settle=settle, record=record,
            stage=f"Creating records in {self.result.crm_label}")

    def _hold(self, rows: list[PlanRow]) -> None:
        """Invalid records and possible matches: listed where the bookkeeper looks (held back)."""
        if not rows:
            return
        with self.store.session() as s:
            refs = [r for r in rows if r.crm_type and r.crm_id]
            ids = sorted({r.crm_id for r in refs if r.crm_id})
            held: dict[tuple[Any, Any], Quarantine] = {}
            for start in range(0, len(ids), 500):
                for q in s.scalars(select(Quarantine).where(
                        Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm",
                        Quarantine.record_id.in_(ids[start:start + 500]))):
                    held.setdefault((q.record_type, q.record_id), q)
            for r in refs:
                q = held.get((r.crm_type, r.crm_id))
                if q is None:
                    q = held[(r.crm_type, r.crm_id)] = Quarantine(workspace_id=self.ws_id, side="crm",
                                                                  record_type=r.crm_type, record_id=r.crm_id)
                    s.add(q)
                items = r.payload.get("problems") or [{"field": "match", "message": r.explanation or ""}]
                q.name, q.reasons, q.run_id = r.name[:300], {"items": items}, self.run_id
            s.flush()
            self._rows_done(s, dict.fromkeys((r.id for r in rows), None))
        self._progress("Listing records held back", len(rows))
