"""One workspace on a virtual clock: both sandboxes in-process, the app's own Scheduler running its jobs.

The sandboxes read the same ``FakeClock`` as the scheduler, the connectors wait on it (a rate limit's
wait moves it, at no wall time), and every request reaches its sandbox through one in-process router.
The monthly reconciliation job runs ``reconcile_workspace`` for last month on the virtual date, with the
connectors reaching the in-process sandboxes; the daily keep-alive job is not run (the syncs renew the
sign-ins they use).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.tokens import MemoryTokenStore
from app.domain.clock import FakeClock
from app.ops import reconcile_month
from app.ops.connect import connect_with_grant
from app.ops.workspaces import (
    add_workspace,
    get_workspace,
    new_connection,
    open_connectors,
    save_connection,
    update_settings,
)
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport
from app.sched import jobs
from app.sched.service import Scheduler
from app.store.db import Store

NAME = "Year Co"


class Router(httpx.BaseTransport):
    """One transport for the whole app: each sandbox answers at its own host name."""

    def __init__(self, routes: dict[str, InProcessTransport]) -> None:
        self.routes = routes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.routes[request.url.host].handle_request(request)


class World:
    def __init__(self, folder: str, crm: str, ledger: str, start: dt.datetime, *, realtime_minutes: int,
                 crm_seed: Any) -> None:
        self.crm_provider, self.ledger_provider = crm, ledger
        self.clock = FakeClock(start)
        self.store = Store(f"sqlite:///{folder}/year.db")
        self.tokens = MemoryTokenStore()
        ws = add_workspace(self.store, NAME, crm, ledger)
        update_settings(self.store, NAME, schedule={"realtime_minutes": realtime_minutes, "batch_hour": 2,
                                                    "reconcile_day": 1})
        routes: dict[str, InProcessTransport] = {}
        self.sandboxes: dict[str, Any] = {}
        for side, provider in (("crm", crm), ("ledger", ledger)):
            box = sandbox_class(provider)(clock=lambda: self.clock.now().timestamp())
            box.public_url = f"http://{side}.test"
            crm_seed(box) if side == "crm" else box.seed("empty")
            routes[f"{side}.test"] = InProcessTransport(box)
            conn = new_connection(ws, provider, box.public_url)
            connect_with_grant(conn, self.tokens, box.grant_tokens(conn.client_id), box.test_callback_params(),
                               transport=routes[f"{side}.test"], client_secret="sandbox-secret")
            save_connection(self.store, ws, conn)
            self.sandboxes[side] = box
        self.transport = Router(routes)
        self.ws = get_workspace(self.store, NAME)
        self.results: list[tuple[str, dt.datetime, Any]] = []
        self._submitted = self._ended = 0  # runs the scheduler handed to its executor, and runs that ended
        self._cond = threading.Condition()
        self.scheduler: Scheduler | None = None

    @property
    def crm_box(self) -> Any:
        return self.sandboxes["crm"]

    @property
    def ledger_box(self) -> Any:
        return self.sandboxes["ledger"]

    def options(self) -> dict[str, Any]:
        return {"clock": self.clock, "sleep": self.clock.sleep, "transport": self.transport}

    def connector(self, side: str) -> Any:
        """A connector of the business (or of the checks) on the same clock, with a sign-in of its own (a
        provider that rotates refresh tokens would otherwise see two holders of one)."""
        box = self.sandboxes[side]
        provider = self.crm_provider if side == "crm" else self.ledger_provider
        conn = Connection(id=f"{side}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=box.public_url,
                          auth_url=box.public_url)
        tokens = MemoryTokenStore()
        connect_with_grant(conn, tokens, box.grant_tokens(conn.client_id), box.test_callback_params(),
                           transport=self.transport, client_secret="sandbox-secret")
        return registry.make_connector(conn, tokens, transport=self.transport, sleep=self.clock.sleep,
                                       clock=self.clock.monotonic)

    # -- the scheduler ---------------------------------------------------------------------------------
    def _reconcile(self, ctx: jobs.Context, workspace: str) -> Any:
        month = reconcile_month.last_month(self.clock.now().date())
        return reconcile_month.reconcile_workspace(self.store, self.tokens, workspace, month, None,
                                                   trigger="schedule")

    def start(self) -> None:
        ctx = jobs.Context(self.store, self.tokens,
                           on_result=lambda kind, ws, r: self.results.append((kind, self.clock.now(), r)),
                           on_error=lambda kind, ws, exc: self.results.append((kind, self.clock.now(), exc)),
                           runners={"keepalive": lambda ctx, ws: None, "reconcile": self._reconcile},
                           sync_options={"sleep": self.clock.sleep, "transport": self.transport})
        self.scheduler = Scheduler(self.store, ctx, clock=self.clock)
        self.scheduler.scheduler.add_listener(self._count, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                                              | EVENT_JOB_MISSED)
        self.scheduler.start()

    def _count(self, event: Any) -> None:
        with self._cond:
            if event.code == EVENT_JOB_SUBMITTED:
                self._submitted += len(event.scheduled_run_times)
            else:
                self._ended += 1
            self._cond.notify_all()

    def _idle(self) -> bool:
        """Nothing due, nothing running, and every run's events told."""
        assert self.scheduler is not None
        now = self.clock.now()
        if any(j.next_run_time is not None and j.next_run_time <= now for j in self.scheduler.scheduler.get_jobs()):
            return False
        executor = self.scheduler.scheduler._lookup_executor("default")  # APScheduler 3 keeps no public count
        with executor._lock:
            running = any(executor._instances.values())
        return not running and self._submitted == self._ended

    def next_job(self) -> dt.datetime | None:
        assert self.scheduler is not None
        times = [j.next_run_time for j in self.scheduler.scheduler.get_jobs() if j.next_run_time is not None]
        return min(times) if times else None

    def run_due(self) -> None:
        """Let the scheduler start what the clock has made due, and wait until all of it has finished.

        Not "the jobs due when asked": the scheduler's thread may take a due job on its own before this
        looks (a wake-up left over from an earlier change, seen late on a busy machine), and a run left
        going in the background would hold the workspace when the next job falls due (it then ends
        "Busy"). So this waits until nothing is due, the executor runs nothing and every submitted run
        has reported its end."""
        assert self.scheduler is not None
        self.scheduler.wakeup()
        deadline = time.monotonic() + 300
        with self._cond:
            while not self._idle():
                if time.monotonic() > deadline:
                    raise RuntimeError("the scheduled jobs did not finish")
                self._cond.wait(0.2)  # the executor's count falls without an event: look again soon
        self.scheduler.settle()

    def advance_to(self, when: dt.datetime) -> None:
        seconds = (when - self.clock.now()).total_seconds()
        if seconds > 0:
            self.clock.advance(seconds)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        self.store.dispose()


@contextlib.contextmanager
def reconcile_reaches_sandboxes(w: World) -> Iterator[None]:
    """``reconcile_workspace`` opens its connectors from the stored connections with no transport: here
    they reach the in-process sandboxes on the virtual clock (as run_sync's ``transport`` does)."""
    original = reconcile_month.open_connectors
    reconcile_month.open_connectors = partial(open_connectors, transport=w.transport, clock=w.clock,
                                              sleep=w.clock.sleep)
    try:
        yield
    finally:
        reconcile_month.open_connectors = original
