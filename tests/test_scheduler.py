"""The embedded scheduler: cadences from settings, persistence, coalescing, pause, no overlap."""

from __future__ import annotations

import datetime as dt
import threading

from apscheduler.events import EVENT_ALL, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED
from apscheduler.schedulers.background import BackgroundScheduler

from app.ops.workspaces import add_workspace, update_settings
from app.sched import jobs
from app.sched.service import Scheduler, cadence, job_id, trigger_for
from app.store.db import Store
from tests.support import scheduler_clock

T0 = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)


def test_cadences_follow_settings_with_an_injected_clock():
    sched = cadence({"schedule": {"realtime_minutes": 5}})
    rt = trigger_for("realtime", sched)
    first = rt.get_next_fire_time(None, T0)
    assert rt.get_next_fire_time(first, first) - first == dt.timedelta(minutes=5)
    # counted from the scheduler's clock, not the computer's
    assert trigger_for("realtime", sched, now=T0).get_next_fire_time(None, T0) == T0 + dt.timedelta(minutes=5)
    assert cadence({"schedule": {"realtime_minutes": 0}})["realtime_minutes"] == 1  # never below a minute
    nightly = trigger_for("batch", cadence({}))
    assert nightly.get_next_fire_time(None, T0) == dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    monthly = trigger_for("reconcile", cadence({}))
    assert monthly.get_next_fire_time(None, T0) == dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def _store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme", "hubspot", "quickbooks")
    add_workspace(store, "Birch", "hubspot", "xero")
    return store


def test_jobs_persist_across_a_restart_and_follow_pause(tmp_path):
    store = _store(tmp_path)
    s1 = Scheduler(store, jobs.Context(store, None))
    s1.start(paused=True)
    assert {(j.workspace, j.kind) for j in s1.jobs()} == {(w, k) for w in ("Acme", "Birch")
                                                          for k in ("realtime", "batch", "reconcile")}
    s1.set_paused("Acme", True)
    s1.shutdown()

    s2 = Scheduler(store, jobs.Context(store, None))
    s2.start(paused=True)
    paused = {(j.workspace, j.kind) for j in s2.jobs() if j.paused}
    assert paused == {("Acme", "realtime"), ("Acme", "batch"), ("Acme", "reconcile")}
    update_settings(store, "Birch", schedule={"realtime_minutes": 7})
    s2.sync_jobs()
    birch = s2.scheduler.get_job(job_id("realtime", 2))
    assert birch.trigger.interval == dt.timedelta(minutes=7)
    s2.shutdown()


class Events:
    """What the scheduler reports (from its own threads), for a test to wait on."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.seen: list = []
        self._cond = threading.Condition()
        scheduler.scheduler.add_listener(self._add, EVENT_ALL)

    def _add(self, event) -> None:
        with self._cond:
            self.seen.append(event)
            self._cond.notify_all()

    def of(self, code: int, jid: str) -> list:
        with self._cond:
            return [e for e in self.seen if e.code == code and e.job_id == jid]

    def wait_for(self, code: int, jid: str, count: int = 1) -> list:
        """Until ``count`` such events came; the minute only matters when something is broken."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.of(code, jid)) >= count, timeout=60), self.seen
        return self.of(code, jid)


def test_missed_runs_are_coalesced_due_runs_follow_the_clock_and_never_overlap(tmp_path):
    store = _store(tmp_path)
    ran: list[str] = []
    active: dict[str, int] = {}
    most: dict[str, int] = {}
    lock = threading.Lock()
    gate = threading.Event()

    def held(ctx, workspace):
        with lock:
            active[workspace] = active.get(workspace, 0) + 1
            most[workspace] = max(most.get(workspace, 0), active[workspace])
        ran.append(workspace)
        assert gate.wait(60)
        with lock:
            active[workspace] -= 1

    clock = scheduler_clock()
    ctx = jobs.Context(store, None, runners=dict.fromkeys(("realtime", "batch", "reconcile", "keepalive"), held))
    s = Scheduler(store, ctx, clock=clock)
    events = Events(s)
    acme, birch = job_id("realtime", 1), job_id("realtime", 2)
    s.start()
    assert s.scheduler.get_job(acme).next_run_time - clock.now() <= dt.timedelta(minutes=2)
    assert ran == []  # nothing is due until the clock gets there

    # The app was closed for an hour: thirty quick syncs were missed. Each workspace syncs once, not 30 times.
    clock.advance(hours=1)
    s.wakeup()
    (submitted,) = events.wait_for(EVENT_JOB_SUBMITTED, acme)
    assert len(submitted.scheduled_run_times) == 1
    assert s.scheduler.get_job(acme).next_run_time > clock.now()  # the missed ones are not owed any more

    # Sync now while that run is still going: refused by the scheduler, never a second one alongside
    s.run_now("Acme")
    events.wait_for(EVENT_JOB_MAX_INSTANCES, acme)
    gate.set()
    events.wait_for(EVENT_JOB_EXECUTED, acme)
    assert ran.count("Acme") == 1

    events.wait_for(EVENT_JOB_EXECUTED, birch)

    # The next quick syncs fall due when the clock reaches them, two minutes on at the most
    due = [s.scheduler.get_job(jid).next_run_time for jid in (acme, birch)]
    assert all(dt.timedelta(0) < when - clock.now() <= dt.timedelta(minutes=2) for when in due)
    clock.advance((max(due) - clock.now()).total_seconds())
    s.wakeup()
    events.wait_for(EVENT_JOB_EXECUTED, acme, count=2)
    events.wait_for(EVENT_JOB_EXECUTED, birch, count=2)
    s.shutdown()
    assert ran.count("Acme") == 2 and ran.count("Birch") == 2
    assert most == {"Acme": 1, "Birch": 1}


def test_scheduler_runs_jobs_off_the_calling_thread(tmp_path):
    store = _store(tmp_path)
    seen = {}
    done = threading.Event()

    def record(ctx, workspace):
        seen["thread"] = threading.current_thread()
        done.set()

    s = Scheduler(store, jobs.Context(store, None, runners={"realtime": record}))
    s.start()
    s.run_now("Birch")
    assert done.wait(60)  # at once; the minute only matters when something is broken
    s.shutdown()
    assert seen["thread"] is not threading.main_thread()
    assert isinstance(s.scheduler, BackgroundScheduler)


def test_a_dead_sign_in_stops_scheduled_syncs_without_calling_the_provider(tmp_path, monkeypatch):
    from app.connectors.errors import AuthExpired
    from app.ops import sync_run
    from app.store.models import ConnectionRow

    store = Store(f"sqlite:///{tmp_path}/s.db")
    ws = add_workspace(store, "Acme Books", "hubspot", "xero")
    with store.session() as s:
        s.add(ConnectionRow(id="c-xero", workspace_id=ws.id, side="accounting", provider="xero",
                            base_url="https://api.xero.com", auth_url=None, client_id="x", tenant_id="t",
                            label="Acme", extra={}, status="reconnect"))
    calls: list[str] = []
    monkeypatch.setattr(sync_run, "run_sync", lambda *a, **k: calls.append("sync"))
    errors: list[BaseException] = []
    jobs.install(jobs.Context(store, None, on_error=lambda kind, w, exc: errors.append(exc)))
    try:
        for _ in range(3):
            jobs.run_job("realtime", "Acme Books")
        jobs.run_job("batch", "Acme Books")
    finally:
        jobs.install(None)
    assert calls == []  # not one request to the provider
    assert len(errors) == 4 and all(isinstance(e, AuthExpired) for e in errors)
    assert "Reconnect Xero" in errors[0].message and "'Acme Books'" in errors[0].message
    with store.session() as s:
        s.get(ConnectionRow, "c-xero").status = "ok"
    jobs.install(jobs.Context(store, None))
    try:
        jobs.run_job("realtime", "Acme Books")
    finally:
        jobs.install(None)
    assert calls == ["sync"]  # reconnected: scheduled syncs run again


def test_the_nightly_sync_due_with_a_quick_sync_runs_after_it_instead_of_being_lost(tmp_path):
    """At 02:00 the nightly full sync and a quick sync can fall due together: the second waits for the
    first in this process, instead of finding its hold on the workspace and being skipped until the
    next night. Another workspace's jobs do not wait."""
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme Books", "hubspot", "xero")
    add_workspace(store, "Bistro", "hubspot", "xero")
    order: list[str] = []
    quick_inside, let_quick_end = threading.Event(), threading.Event()

    def quick(ctx, ws):
        quick_inside.set()
        assert let_quick_end.wait(30)
        order.append(f"quick {ws}")

    def nightly(ctx, ws):
        order.append(f"nightly {ws}")

    jobs.install(jobs.Context(store, None, runners={"realtime": quick, "batch": nightly}))
    try:
        first = threading.Thread(target=jobs.run_job, args=("realtime", "Acme Books"))
        first.start()
        assert quick_inside.wait(30)
        second = threading.Thread(target=jobs.run_job, args=("batch", "Acme Books"))
        second.start()
        jobs.run_job("batch", "Bistro")  # another workspace: at once
        assert order == ["nightly Bistro"]
        let_quick_end.set()
        first.join(30)
        second.join(30)
    finally:
        jobs.install(None)
    assert order == ["nightly Bistro", "quick Acme Books", "nightly Acme Books"]
