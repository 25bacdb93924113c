"""The scheduler service: jobs per workspace in the app's own database, paused and resumed.

Cadences live in each workspace's settings; jobs are rebuilt from them (so a changed setting
takes effect at once) and persist in APScheduler's SQLAlchemy job store across restarts.
Missed runs are coalesced into one; one instance per job, and the workspace lease keeps two
processes from syncing the same workspace at once.

Time comes from a ``Clock`` (the system's by default). APScheduler 3 reads "now" as
``datetime.now(scheduler.timezone)``, so a fake clock reaches it through the scheduler's time zone
(``_ClockZone``): a test moves the clock and wakes the scheduler instead of waiting for a run to fall due.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.domain.clock import SYSTEM_CLOCK, Clock
from app.domain.settings import Schedule, SettingsError, WorkspaceSettings, settings_of
from app.ops.budget import realtime_minutes
from app.ops.workspace_settings import save
from app.ops.workspaces import list_workspaces
from app.sched import jobs
from app.store.db import Store

log = logging.getLogger("crossledger.sched")

KINDS = ("realtime", "batch", "reconcile")
KEEPALIVE_ID = "keepalive"
DEFAULTS = Schedule().to_json()  # the cadence of a workspace that never set one


@dataclass(frozen=True, slots=True)
class JobInfo:
    workspace: str
    kind: str
    next_run: dt.datetime | None
    paused: bool


def cadence(settings: WorkspaceSettings | Mapping[str, Any] | None) -> dict[str, Any]:
    """The schedule as the triggers read it, from typed settings or the stored dict."""
    sched = settings_of(settings).schedule.to_json()
    return {k: sched[k] for k in DEFAULTS}


def trigger_for(kind: str, sched: dict[str, Any], tz: dt.tzinfo = dt.UTC, now: dt.datetime | None = None):
    """``now``: where a quick-sync interval starts counting (the scheduler's clock; APScheduler's
    default is the computer's, which puts a fake clock's runs at a phase set by the wall clock)."""
    if kind == "realtime":
        minutes = sched["realtime_minutes"]
        start = None if now is None else now + dt.timedelta(minutes=minutes)
        return IntervalTrigger(minutes=minutes, start_date=start, timezone=tz)
    if kind == "batch":
        return CronTrigger(hour=sched["batch_hour"], minute=0, timezone=tz)
    return CronTrigger(day=sched["reconcile_day"], hour=6, minute=0, timezone=tz)


def job_id(kind: str, workspace_id: int) -> str:
    return f"{kind}:{workspace_id}"


class _ClockZone(dt.tzinfo):
    """UTC, with "now" read from a ``Clock``: ``datetime.now(zone)`` returns ``zone.fromutc(...)``.

    Only for a scheduler's "now": converting a time into this zone gives the clock's time too, which
    is why ``_ClockedScheduler`` does not use it to work out how long to sleep. Times handed out are
    in ``dt.UTC``, so nothing the job store persists carries this zone.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def dst(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, when: dt.datetime | None) -> str:
        return "UTC"

    def fromutc(self, when: dt.datetime) -> dt.datetime:
        return self.clock.now().astimezone(dt.UTC)


class _ClockedScheduler(BackgroundScheduler):
    """APScheduler on a clock that moves only when told (tests): runs fall due by the clock, and it
    looks for them each time it is woken (start, resume, a changed job, ``Scheduler.wakeup``) instead
    of sleeping until the next one. A fake clock should start at the real time and only go forward:
    the executor still measures a run's lateness on the computer's clock."""

    def _main_loop(self) -> None:
        while self.state != STATE_STOPPED:
            self._event.wait()
            self._event.clear()
            self._process_jobs()


class Scheduler:
    """Owns one APScheduler instance whose jobs run on its own thread pool, never the UI thread."""

    def __init__(self, store: Store, context: jobs.Context, *, scheduler: Any = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.context = context
        self.clock = clock
        real = clock is SYSTEM_CLOCK
        self.scheduler = scheduler or (BackgroundScheduler if real else _ClockedScheduler)(
            jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename="apscheduler_jobs")},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=dt.UTC if real else _ClockZone(clock),
        )
        if context.clock is None:
            context.clock = clock
        self._jobs_lock = threading.RLock()
        self._respacer: threading.Thread | None = None
        # After a sync, what it cost may widen (or narrow) the quick-sync cadence: see realtime_minutes.
        self.scheduler.add_listener(self._respace, EVENT_JOB_EXECUTED)

    def start(self, paused: bool = False) -> None:
        jobs.install(self.context)
        self.scheduler.start(paused=True)  # jobs get their run times once the scheduler is up
        self.sync_jobs()
        if not paused:
            self.scheduler.resume()

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking new runs; a running sync is asked to stop at its next batch boundary."""
        self.context.cancel.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        jobs.install(None)

    def _respace(self, event: Any) -> None:
        """Re-space on a thread of its own: a job's thread must not wait on the scheduler's locks, which
        ``shutdown`` holds while it waits for that very thread."""
        kind = str(getattr(event, "job_id", "")).partition(":")[0]
        if kind not in ("realtime", "batch") or self.scheduler.state == STATE_STOPPED:
            return
        respacer = threading.Thread(target=self._respace_now, name="crossledger-respace", daemon=True)
        respacer.start()
        self._respacer = respacer  # only once started: ``settle`` on another thread may join it at once

    def _respace_now(self) -> None:
        try:
            if self.scheduler.state != STATE_STOPPED and not self.context.cancel.is_set():
                self.sync_jobs()
        except Exception as exc:  # noqa: BLE001 - the cadence stays as it was; never stops the scheduler
            log.warning("could not re-space the scheduled syncs: %s", exc)

    def settle(self, timeout: float = 60) -> None:
        """Wait for a re-spacing after a sync to finish (tests that move a fake clock)."""
        respacer = self._respacer
        if respacer is not None:
            respacer.join(timeout)

    def sync_jobs(self) -> None:
        """Make the stored jobs match the workspaces and their cadences."""
        with self._jobs_lock:
            self._sync_jobs()

    def _sync_jobs(self) -> None:
        wanted: set[str] = {KEEPALIVE_ID}
        if self.scheduler.get_job(KEEPALIVE_ID) is None:  # once a day, for every connection
            self.scheduler.add_job(jobs.run_job, CronTrigger(hour=4, minute=30, timezone=dt.UTC), id=KEEPALIVE_ID,
                                   args=["keepalive", "*"], replace_existing=True, name="keep sign-ins alive")
        for ws in list_workspaces(self.store):
            try:
                sched = cadence(settings_of(ws))
            except SettingsError as exc:  # its jobs stay as they were; the others follow their settings
                log.warning("the schedule of %s was not changed: %s", ws.name, exc)
                wanted.update(job_id(kind, ws.id) for kind in KINDS)
                continue
            # a connection's daily cap may need the quick syncs further apart than the user's cadence
            sched["realtime_minutes"] = realtime_minutes(self.store, ws.name, sched["realtime_minutes"],
                                                         batch_hour=int(sched["batch_hour"]), clock=self.clock)
            for kind in KINDS:
                jid = job_id(kind, ws.id)
                wanted.add(jid)
                existing = self.scheduler.get_job(jid)
                trig = trigger_for(kind, sched, now=self.clock.now())
                if existing is None:
                    self.scheduler.add_job(jobs.run_job, trig, id=jid, args=[kind, ws.name], replace_existing=True,
                                           name=f"{kind} {ws.name}")
                elif str(existing.trigger) != str(trig) or list(existing.args) != [kind, ws.name]:
                    self.scheduler.modify_job(jid, args=[kind, ws.name])
                    self.scheduler.reschedule_job(jid, trigger=trig)
                job = self.scheduler.get_job(jid)
                if sched["paused"] and job.next_run_time is not None:
                    job.pause()
                elif not sched["paused"] and job.next_run_time is None:
                    job.resume()
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()

    def set_paused(self, workspace: str, paused: bool) -> None:
        ws = next(w for w in list_workspaces(self.store) if w.name == workspace)
        save(self.store, ws.name, schedule=replace(settings_of(ws).schedule, paused=paused))
        self.sync_jobs()

    def pause_all(self) -> None:
        self.scheduler.pause()

    def resume_all(self) -> None:
        self.scheduler.resume()

    def run_now(self, workspace: str, kind: str = "realtime") -> None:
        ws = next(w for w in list_workspaces(self.store) if w.name == workspace)
        self.scheduler.get_job(job_id(kind, ws.id)).modify(next_run_time=self.clock.now())

    def wakeup(self) -> None:
        """Look for due runs now (after a fake clock has moved; the real one wakes it by itself)."""
        self.scheduler.wakeup()

    def jobs(self) -> list[JobInfo]:
        names = {ws.id: ws.name for ws in list_workspaces(self.store)}
        out = []
        for job in self.scheduler.get_jobs():
            kind, _, wid = job.id.partition(":")
            if not wid.isdigit():  # the app-wide keep-alive job belongs to no workspace
                continue
            out.append(JobInfo(names.get(int(wid), wid), kind, getattr(job, "next_run_time", None),
                               job.next_run_time is None))
        return out
