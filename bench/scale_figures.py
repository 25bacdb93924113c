"""Issue 20's figures of cost against size, in process (``bench.harness``): an idle cycle over many linked
customers, and HubSpot's idle reads after a bulk edit. Calls are counted at the sandboxes' request logs."""

from __future__ import annotations

import re
import time
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
