"""Run the year: the business's events and the scheduler's jobs in time order on one virtual clock.

A day: the quick sync at the workspace's cadence (every 6 hours by default: 00:30, 06:30, 12:30, 18:30;
every 12 in the suite: 06:30, 18:30), the nightly full sync at 02:00, on the 1st the monthly
reconciliation at 06:00; the business works from 06:35 to 17:55. A few faults a day are put on the
syncs other than 18:30's (server errors, throttling, time-outs, a connection lost after the
provider committed, a garbled answer, an expired sign-in); the 18:30 sync runs clean, and at 23:00 the
invariants are checked.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import tempfile
import time
from typing import Any

from app.sandbox.base import Fault
from app.sched.service import job_id
from bench.year.business import Business, events
from bench.year.checks import Checker
from bench.year.crm import CRMS, seed_products
from bench.year.ledger import Ledger
from bench.year.world import World, reconcile_reaches_sandboxes

FAULT_KINDS = ("500", "429", "timeout", "reset_after_commit", "malformed", "expire_token")
API_CALLS = r"(?i)^(?!.*(oauth|token))"  # every request but a sign-in renewal
SIGN_IN = r"(?i)(oauth|token)"  # a sign-in renewal (the token endpoint)
CLEAN_HOUR = 18  # the day's last quick sync runs without faults, so the day's work is settled by the checks


def _start() -> dt.datetime:
    """Midnight after the computer's today (APScheduler's executor reads the real clock for lateness, so the
    virtual one must not be behind it)."""
    return dt.datetime.combine(dt.date.today() + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)


def run(crm: str, ledger: str, days: int, seed: int, which: str = "supported", faults_per_day: float = 3.0,
        cadence: int = 360, signin_faults_per_day: float = 0.0, violations_kept: int = 30) -> dict[str, Any]:
    """``cadence``: the workspace's quick-sync setting in minutes; the scheduler starts so that one quick
    sync falls at 18:30 each day. ``faults_per_day`` hit the providers' API calls; ``signin_faults_per_day``
    hit the sign-in renewals (a separate class: see bench/README.md)."""
    rng = random.Random(f"{seed}-{crm}-{ledger}")
    logging.getLogger("crossledger").setLevel(logging.ERROR)  # the faults' retries are expected: not printed
    started, cpu = time.perf_counter(), time.process_time()
    start = _start()
    chosen = events(which)
    with tempfile.TemporaryDirectory(prefix="year-") as folder:
        w = World(folder, crm, ledger, start, realtime_minutes=cadence, crm_seed=seed_products)
        closers = [w.connector("crm"), w.connector("ledger"), w.connector("ledger")]
        checker = Checker(w, None, closers[2])  # type: ignore[arg-type]
        business = Business(CRMS[crm](w.crm_box, closers[0]), Ledger(ledger, w.ledger_box, closers[1]),
                            checker.invoice_of)
        checker.business = business
        fired = {"faults": 0}
        syncs: dict[str, int] = {}
        try:
            w.start()
            # An IntervalTrigger takes its phase from the computer's clock: put the quick syncs on the
            # virtual day's grid (one at 18:30), from where each next run follows the last.
            w.scheduler.scheduler.modify_job(job_id("realtime", w.ws.id), next_run_time=start + dt.timedelta(
                minutes=(CLEAN_HOUR * 60 + 30) % cadence))
            with reconcile_reaches_sandboxes(w):
                for n in range(days):
                    midnight = start + dt.timedelta(days=n)
                    per_sync = (faults_per_day * cadence / 1440, signin_faults_per_day * cadence / 1440)
                    _day(w, business, checker, rng, midnight, chosen, per_sync, fired)
        finally:
            w.close()
            for c in closers:
                c.close()
        job_errors = []
        for kind, when, result in w.results:
            if isinstance(result, BaseException):
                job_errors.append(f"{when:%Y-%m-%d %H:%M} {kind}: {type(result).__name__}: {result}"[:300])
            if kind in ("realtime", "batch"):
                status = "error" if isinstance(result, BaseException) else result.status
                syncs[status] = syncs.get(status, 0) + 1
    return {
        "pair": f"{crm}-{ledger}", "days": days, "seed": seed, "events_switch": which,
        "quick_sync_minutes": cadence, "faults_per_day": faults_per_day,
        "signin_faults_per_day": signin_faults_per_day,
        "events": sum(business.done.values()), "events_by_kind": dict(sorted(business.done.items())),
        "events_with_nothing_to_do": dict(sorted(business.skipped.items())),
        "refused_to_the_business": business.refused[:violations_kept],
        "companies": len(business.truth.companies), "deals": len(business.truth.deals),
        "won_deals": sum(1 for d in business.truth.deals.values() if d.stage == "won"),
        "planted": len(business.truth.plants), "planted_in_months_not_reported_yet": checker.unchecked(checker.months),
        "syncs": syncs, "faults_fired": fired["faults"],
        "job_errors": job_errors[:violations_kept],
        "month_reports_checked": checker.reports_checked, "invariant_checks": checker.checks,
        "violations": len(checker.violations), "violations_by_invariant": checker.by_invariant,
        "first_violations": checker.violations[:violations_kept],
        "wall_seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
    }


def _day(w: World, business: Business, checker: Checker, rng: random.Random, midnight: dt.datetime,
         chosen: list, faults_per_sync: tuple[float, float], fired: dict[str, int]) -> None:
    day = midnight.date()
    todo = business.run_day(rng, day, chosen)
    check_at = midnight + dt.timedelta(hours=23)
    reports_before = sum(1 for kind, _w, _r in w.results if kind == "reconcile")
    while True:
        job = w.next_job()
        event_at = midnight + dt.timedelta(minutes=todo[0][0]) if todo else None
        if event_at is not None and (job is None or event_at < job):
            w.advance_to(event_at)
            business.do(todo.pop(0)[1], rng, day)
            continue
        if job is None or job >= check_at:
            break
        w.advance_to(job)
        boxes = list(w.sandboxes.values())
        if job.hour != CLEAN_HOUR:
            for where, mean in zip((API_CALLS, SIGN_IN), faults_per_sync, strict=True):
                for _ in range(_how_many(rng, mean)):
                    rng.choice(boxes).faults.append(Fault(rng.choice(FAULT_KINDS), nth=rng.randint(1, 12) if
                                                          where == API_CALLS else 1, match=where))
        try:
            w.run_due()
        finally:
            for box in boxes:
                fired["faults"] += sum(f.fired for f in box.faults)
                box.faults.clear()
    w.advance_to(check_at)
    checker.day(day)
    reports = [(when, r) for kind, when, r in w.results if kind == "reconcile"]
    for _when, result in reports[reports_before:]:
        checker.report(day, result)


def _how_many(rng: random.Random, mean: float) -> int:
    return int(mean) + (1 if rng.random() < mean - int(mean) else 0)
