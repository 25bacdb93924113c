"""Issue 20's figures of cost against size, in process (``bench.harness``): an idle cycle over many linked
customers, and HubSpot's idle reads after a bulk edit. Calls are counted at the sandboxes' request logs."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import time
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from app.store.models import Link
from bench.harness import median, seed_companies, side, world

NO_LIMIT = {"safety": {"mass_change_percent": 100, "mass_change_records": 10**9}}


def idle_at_scale(n: int, repeats: int = 3) -> dict[str, Any]:
    """``n`` HubSpot companies linked to QuickBooks customers (a first sync creates them), then cycles
    with nothing changed: seconds per cycle and reads per object type and side."""
    with world("hubspot", "quickbooks", crm_seed="empty", acct_seed="empty", settings=NO_LIMIT) as w:
        seed_companies(w.crm.sandbox, n)
        w.sync()
        w.sync()  # the feeds hand the first run's writes back once
        with w.store.session() as s:
            linked = s.scalar(select(func.count()).select_from(Link).where(Link.workspace_id == w.ws_id)) or 0
        times: list[float] = []
        reads: dict[str, dict[str, int]] = {}
        for _ in range(repeats):
            w.reset_calls()
            _, seconds = w.timed_sync()
            times.append(seconds)
            reads = {"crm": dict(w.crm.calls.reads()), "ledger": dict(w.acct.calls.reads())}
    most = max(v for part in reads.values() for v in part.values())
    secs = median(times)
    return {"linked": linked, "reads": reads, "max_reads_per_type": most, "median_seconds": round(secs, 3),
            "repeats": repeats, "goal_seconds": 0.3 if n <= 10_000 else 1.0,
            "pass": most <= 1 and secs <= (0.3 if n <= 10_000 else 1.0)}


def hubspot_bulk_edit(n: int, idle_cycles: int = 3) -> dict[str, Any]:
    """``n`` HubSpot companies edited within ``n / 100`` seconds; the next read, then idle reads two minutes
    apart: the searches each sends, at the sandbox (HubSpot's 5 searches a second apply)."""
    s = side("hubspot", "empty")
    box, k = s.sandbox, s.connector
    ids = box.add_companies(n)
    cursor = k.read_records("company", None).cursor
    box.advance(300)
    for i, rid in enumerate(ids):
        box.edit("companies", rid, city="Leeds")
        if i % 100 == 99:
            box.advance(1)
    box.advance(40)

    def searches() -> int:
        return sum(1 for m, p, _ in box.request_log if m == "POST" and re.fullmatch(r".*/companies/search", p))

    before, start = searches(), time.perf_counter()
    first = k.read_records("company", cursor)
    out: dict[str, Any] = {"companies": n, "edited_read": len(first.records),
                           "first_read_searches": searches() - before,
                           "first_read_seconds": round(time.perf_counter() - start, 2), "given_again": 0}
    cursor, idle = first.cursor, []
    for _ in range(idle_cycles):
        box.advance(120)
        before = searches()
        again = k.read_records("company", cursor)
        idle.append(searches() - before)
        cursor = again.cursor
        out["given_again"] += len(again.records)
    k.close()
    out["idle_searches"] = idle
    out["pass"] = out["edited_read"] == n and max(idle) == 1 and out["given_again"] == 0
    return out


# -- an idle cycle, and one change, over a workspace linked at scale -------------------------------------
DEAL_CURRENCY = "USD"  # the QuickBooks sandbox company's home currency


class _SandboxClock:
    """CPU seconds spent inside the sandboxes answering requests: they stand in for the providers' servers,
    so the engine's own cost is the cycle's CPU less this."""

    def __init__(self, *boxes: Any) -> None:
        self.seconds = 0.0
        for box in boxes:
            box.handle = self._timed(box.handle)

    def _timed(self, handle: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            start = time.process_time()
            try:
                return handle(*args, **kw)
            finally:
                self.seconds += time.process_time() - start
        return wrapper


def _balance_by_index(qbo: Any) -> None:
    """The QuickBooks sandbox works out a customer's balance by scanning every invoice and credit memo,
    each time it answers with a customer: at 100,000 customers with an invoice each, reading them all is
    quadratic (hours). Here it finds that customer's own, from an index of ids by customer kept up to date
    as invoices and credit memos are added; the sum is the same (of each one's current balance)."""
    seen: dict[str, int] = {"Invoice": 0, "CreditMemo": 0}
    mine: dict[tuple[str, str], list[str]] = {}

    def balance(co: dict[str, Any], cid: str) -> Decimal:
        for entity in seen:
            store = co["entities"][entity]
            if len(store) != seen[entity]:
                for rid in itertools.islice(reversed(store), max(0, len(store) - seen[entity])):
                    mine.setdefault((entity, store[rid]["CustomerRef"]["value"]), []).append(rid)
                if len(store) < seen[entity]:
                    return original(co, cid)  # one was deleted: the sandbox's own scan
                seen[entity] = len(store)
        total = Decimal(0)
        for rid in mine.get(("Invoice", cid), ()):
            total += Decimal(co["entities"]["Invoice"][rid]["Balance"])
        for rid in mine.get(("CreditMemo", cid), ()):
            total -= Decimal(co["entities"]["CreditMemo"][rid]["RemainingCredit"])
        return total

    original = qbo._customer_balance
    qbo._customer_balance = balance


def seed_linked(w: Any, n: int) -> dict[str, Any]:
    """``n`` HubSpot companies, each with one won deal, and a QuickBooks ledger that already has each as a
    customer with that deal's invoice; then the first sync, with its bookkeeping done in bulk.

    The ledger's customers and invoices are made with the bodies the QuickBooks connector sends, handed to
    the sandbox directly. The first sync reads both sides through the connectors and mirrors them, plans
    with the engine's own planners (customers linked by email, invoices by their "CRM deal" reference) and
    saves the customer links with the engine's ``_save_links``; what differs from a first sync run one
    record at a time is that the invoice links and their deals' write-backs are stored in one transaction
    (the write-back values set on the HubSpot deals in the sandbox, as the write leaves them, and their
    journal rows added as done; the field-by-field history, which no sync reads, is not). Checked
    afterwards: the planners, over every record, find nothing to create, update, link, hold or write back,
    and the next sync reads nothing and writes nothing."""
    from app.connectors.base import CustomerWrite, ItemWrite
    from app.domain.models import Invoice, InvoiceLine, Item
    from app.store.models import Journal
    from app.store.models import Link as LinkRow
    from app.store.serial import jsonable
    from app.sync.invoice_apply import InvoiceSync
    from app.sync.invoice_plan import deal_digest, plan_invoices, plan_write_backs, reference_for
    from app.sync.mapping import map_record
    from app.sync.planner import DEFAULT_RULES, plan
    from app.sync.validate import validate_party

    crm, acct, hub, qbo = w.crm.connector, w.acct.connector, w.crm.sandbox, w.acct.sandbox
    _balance_by_index(qbo)
    started = time.process_time()
    seed_companies(hub, n)
    mapping = crm.default_mapping()
    co = qbo.company()
    item_id = acct.create_items([ItemWrite("bench-item", Item(None, "Annual support", "SUP-1", Decimal(1200)))])[0].id
    close = dt.date.today() - dt.timedelta(days=10)
    when = int((time.time() - 3600) * 1000)
    for rec in crm.read_records("company", None).records:
        party, _ = validate_party(map_record(rec, mapping))
        cust = qbo._write(co, "Customer", acct._create_body(CustomerWrite(f"c{rec.id}", party,
                                                                          display_name=party.name)))
        deal = hub._insert("deals", {"dealname": f"Support {party.name}", "amount": "1200",
                                     "deal_currency_code": DEAL_CURRENCY, "pipeline": "default",
                                     "dealstage": "closedwon", "closedate": f"{close.isoformat()}T00:00:00.000Z",
                                     "dealtype": "newbusiness"}, when)
        hub._associate("deals", deal, "companies", rec.id, [5, 341], touch=False)
        line = hub._insert("line_items", {"name": "Annual support", "quantity": "1", "price": "1200",
                                          "hs_sku": "SUP-1", "hs_line_item_currency_code": DEAL_CURRENCY}, when)
        hub._associate("line_items", line, "deals", deal, [20], touch=False)
        invoice = Invoice(None, cust["Id"], DEAL_CURRENCY, (InvoiceLine("Annual support", Decimal(1), Decimal(1200),
                                                                        item_id=item_id),),
                          reference=reference_for(deal), issue_date=close, due_date=close + dt.timedelta(days=30))
        qbo._write(co, "Invoice", acct._invoice_body(invoice))
    hub._index_all()
    seeded = time.process_time() - started

    # The first sync: read, mirror and plan as the engine does; links and write-backs stored in bulk.
    started = time.process_time()
    eng = w.engine()
    ctx = eng.ctx
    ctx.load()
    assert ctx.acquire()
    ctx.start()
    cursors: dict[tuple[str, str], str | None] = {}
    touched: dict[tuple[str, str], Any] = {}
    for otype in ("company", "person"):
        changes = crm.read_records(otype, None)
        touched.update({(otype, r.id): r for r in changes.records})
        ctx.mirror.put_crm(otype, changes.records, changes.deleted_ids)
        cursors[("crm", otype)] = changes.cursor
    ledger = acct.read_customers(None)
    ctx.mirror.put_customers(ledger.records, ledger.deleted_ids)
    cursors[("accounting", "customer")] = ledger.cursor
    invoices = InvoiceSync(ctx, crm, acct)
    invoices.read({}, cursors)
    customers = plan(eng._plan_input(touched, {c.id for c in ledger.records}, mapping, dict(DEFAULT_RULES), "both"))
    leftover = (customers.creates, customers.updates, customers.crm_updates, customers.quarantined)
    assert not any(leftover), customers.counts()
    eng._save_links(customers, {})
    deals = sorted(invoices._deal_ids)
    bills = plan_invoices(invoices.plan_input(deals))
    assert len(bills.links) == len(deals), (len(bills.links), len(deals))
    assert not any((bills.creates, bills.holds, bills.flags)), bills.holds[:3]
    with w.store.session() as s:
        s.add_all(LinkRow(workspace_id=w.ws_id, object_type="invoice", crm_type="deal", crm_id=lk.deal.id,
                          acct_id=lk.invoice_id, how=lk.how, run_id=ctx.run_id,
                          snapshot={"deal": deal_digest(lk.deal), "written": {}}) for lk in bills.links)
    fields = invoices._deal_fields()
    written = _write_backs(ctx, acct, plan_write_backs)
    with w.store.session() as s:
        rows = {r.crm_id: r for r in s.scalars(select(LinkRow).where(LinkRow.workspace_id == w.ws_id,
                                                                     LinkRow.object_type == "invoice"))}
        for wb in written:
            s.add(Journal(workspace_id=w.ws_id, run_id=ctx.run_id, key=wb.key, op="update_deal", side="crm",
                          crm_type="deal", crm_id=wb.link.crm_id, target_id=wb.link.crm_id,
                          payload=jsonable({"values": wb.values}), status="done"))
            rows[wb.link.crm_id].snapshot = {**rows[wb.link.crm_id].snapshot, "written": wb.values}
            props = hub.state["objects"]["deals"][wb.link.crm_id]["p"]
            props.update({fields[k]: str(v) for k, v in wb.values.items() if v is not None})
    ctx.cursors.save(cursors)
    ctx.close("ok")
    ctx.release()
    first_sync = time.process_time() - started
    assert not _write_backs(ctx, acct, plan_write_backs)  # nothing left to write back
    return {"seed_cpu_seconds": round(seeded, 1), "first_sync_cpu_seconds": round(first_sync, 1),
            "customers_linked": len(customers.links), "invoices_linked": len(bills.links)}


def _write_backs(ctx: Any, acct: Any, plan_write_backs: Any) -> list[Any]:
    links = list(ctx.links.all("invoice").values())
    rows = ctx.mirror.rows("accounting", "invoice")
    urls = {lk.acct_id: acct.invoice_url(lk.acct_id) for lk in links if not rows.get(lk.acct_id, {}).get("web_url")}
    return list(plan_write_backs(ctx.ws_name, links, rows, ctx.mirror.rows("accounting", "payment"), urls))


def idle_linked(n: int, repeats: int = 3) -> dict[str, Any]:
    """An idle cycle over ``n`` linked customers with their won deals and invoices (``seed_linked``), then one
    company edited in HubSpot: CPU and wall seconds per cycle, the engine's CPU (less the sandboxes' own),
    reads per object type and side, and the CPU of planning the one change."""
    from app.sync import engine as engine_module

    out: dict[str, Any] = {"linked": n, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    with world("hubspot", "quickbooks", crm_seed="empty", acct_seed="empty", settings=NO_LIMIT) as w:
        out.update(seed_linked(w, n))
        sandboxes = _SandboxClock(w.crm.sandbox, w.acct.sandbox)
        quiet = w.sync()  # nothing changed since the first sync: the state is one a sync leaves
        assert quiet.status == "ok", quiet.errors
        assert quiet.counts["writes"] == quiet.counts["read"] == 0, quiet.counts
        cycles: list[dict[str, float]] = []
        reads: dict[str, dict[str, int]] = {}
        for _ in range(repeats):
            w.reset_calls()
            cycles.append(_cycle(w, sandboxes))
            reads = {"crm": dict(w.crm.calls.reads()), "ledger": dict(w.acct.calls.reads())}
        out.update({k: round(median([c[k] for c in cycles]), 3) for k in ("cpu_seconds", "engine_cpu_seconds",
                                                                           "wall_seconds")})
        out["reads"] = reads
        out["max_reads_per_type"] = max(v for part in reads.values() for v in part.values())

        company = next(iter(w.crm.sandbox.state["objects"]["companies"]))
        w.crm.sandbox.edit("companies", company, billing_email="accounts@one-change.example")
        w.crm.sandbox.advance(60)  # past the search index's lag
        planning = [0.0]
        real_plan, real_input = engine_module.plan, engine_module.SyncEngine._plan_input

        def timed(fn: Any) -> Any:
            def wrapper(*args: Any, **kw: Any) -> Any:
                start = time.process_time()
                try:
                    return fn(*args, **kw)
                finally:
                    planning[0] += time.process_time() - start
            return wrapper

        engine_module.plan, engine_module.SyncEngine._plan_input = timed(real_plan), timed(real_input)
        try:
            one = _cycle(w, sandboxes)
            result = w.last
        finally:
            engine_module.plan, engine_module.SyncEngine._plan_input = real_plan, real_input
        assert result.counts["updated"] == 1, result.counts
        out["one_change"] = {**{k: round(v, 3) for k, v in one.items()},
                             "planning_cpu_ms": round(planning[0] * 1000, 1), "updated": result.counts["updated"]}
    goal = 0.3 if n <= 10_000 else 1.0
    out.update({"goal_seconds": goal, "goal_one_change_ms": 50, "repeats": repeats,
                "pass": out["max_reads_per_type"] <= 1 and out["engine_cpu_seconds"] <= goal
                and out["one_change"]["planning_cpu_ms"] <= 50})
    return out


def _cycle(w: Any, sandboxes: _SandboxClock) -> dict[str, float]:
    box_before, cpu, wall = sandboxes.seconds, time.process_time(), time.perf_counter()
    w.last = w.sync()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_seconds": cpu, "engine_cpu_seconds": cpu - (sandboxes.seconds - box_before), "wall_seconds": wall}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scale_figures [N ...]``: the figures at each size, into results.json (``idle_linked``)."""
    import json
    import sys
    from pathlib import Path

    sizes = [int(a) for a in (argv if argv is not None else sys.argv[1:])] or [10_000, 100_000]
    path = Path(__file__).with_name("results.json")
    for n in sizes:
        figure = idle_linked(n)
        figure["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        print(json.dumps(figure, indent=2))
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("idle_linked", {})[str(n)] = figure
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
