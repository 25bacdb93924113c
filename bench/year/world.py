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
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
from apscheduler.events import EVENT_JOB_EXECUTED

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
        self._executed: dict[str, int] = {}
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
        self.scheduler.scheduler.add_listener(self._done, EVENT_JOB_EXECUTED)
        self.scheduler.start()

    def _done(self, event: Any) -> None:
        with self._cond:
            self._executed[event.job_id] = self._executed.get(event.job_id, 0) + 1
            self._cond.notify_all()

    def next_job(self) -> dt.datetime | None:
        assert self.scheduler is not None
        times = [j.next_run_time for j in self.scheduler.scheduler.get_jobs() if j.next_run_time is not None]
        return min(times) if times else None

    def run_due(self) -> list[str]:
        """Let the scheduler start what the clock has made due, and wait until each has finished."""
        assert self.scheduler is not None
        now = self.clock.now()
        due = [j.id for j in self.scheduler.scheduler.get_jobs() if j.next_run_time is not None
               and j.next_run_time <= now]
        with self._cond:
            before = {jid: self._executed.get(jid, 0) for jid in due}
        self.scheduler.wakeup()
        with self._cond:
            for jid in due:
                if not self._cond.wait_for(lambda j=jid: self._executed.get(j, 0) > before[j], timeout=300):
                    raise RuntimeError(f"the scheduled job {jid} did not finish")
        self.scheduler.settle()
        return due

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
