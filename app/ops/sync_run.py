"""Run one workspace's sync: what the CLI, the Sync now button and the scheduler all call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from app.connectors import registry
from app.connectors.errors import AuthExpired, RateLimited
from app.connectors.tokens import TokenStore
from app.domain.clock import SYSTEM_CLOCK, Clock
from app.ops import budget, changes
from app.ops.workspaces import get_workspace, mark_needs_reconnect, open_connectors
from app.store.budget import next_day
from app.store.db import Store
from app.store.repos.runs import restate
from app.sync.engine import Progress, RunResult, SyncEngine

SCHEDULED = ("schedule", "nightly")


def run_sync(
    store: Store,
    tokens: TokenStore,
    name: str,
    *,
    dry_run: bool = False,
    trigger: str = "manual",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    full: bool = False,
    allow_mass_change: bool = False,
    clock: Clock = SYSTEM_CLOCK,
    sleep: Callable[[float], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RunResult:
    """``clock``, ``sleep`` and ``transport`` are for tests: a virtual day against in-process sandboxes."""
    ws = get_workspace(store, name)
    share = budget.SCHEDULED_SHARE if trigger in SCHEDULED else 1.0
    crm, acct = open_connectors(store, tokens, ws, transport, share=share, clock=clock, sleep=sleep)
    try:
        for connector in (crm, acct):
            if progress is not None and getattr(connector, "api", None) is not None:
                connector.api.on_wait = _waiting(progress)
        started, before = time.perf_counter(), (_sent(crm), _sent(acct))
        spent = (_sent(crm, "units_spent"), _sent(acct, "units_spent"))
        engine = SyncEngine(store, ws.id, crm, acct, trigger=trigger, dry_run=dry_run, progress=progress,
                            cancel=cancel, full=full, allow_mass_change=allow_mass_change, clock=clock)
        result = engine.run()
        result.seconds = time.perf_counter() - started
        result.requests = {"crm": _sent(crm) - before[0], "accounting": _sent(acct) - before[1]}
        if isinstance(engine.failure, AuthExpired):  # the window offers Reconnect for that side
            for connector in (crm, acct):
                if _names(connector, engine.failure.provider):
                    mark_needs_reconnect(store, connector.conn.id)
        _pause_if_held(store, result, engine.failure, (crm, acct), clock)
        if trigger in SCHEDULED and result.status == "ok" and not dry_run and (
                trigger == "nightly" or not result.counts.get("writes")):
            budget.remember_cost(store, crm, _sent(crm, "units_spent") - spent[0], nightly=trigger == "nightly")
            budget.remember_cost(store, acct, _sent(acct, "units_spent") - spent[1], nightly=trigger == "nightly")
        changes.announce(store, ws.id, changes.DRY_RUN if dry_run else changes.SYNC)
        return result
    finally:
        crm.close()
        acct.close()


def _waiting(progress: Progress) -> Callable[[float, str], None]:
    def tell(seconds: float, provider: str) -> None:
        label = budget.provider_label(provider)
        progress(f"{label} asked us to wait {seconds:.0f} s", 0, 1)

    return tell


def _pause_if_held(store: Store, result: RunResult, failure: Exception | None, connectors: tuple,
                   clock: Clock) -> None:
    """A run stopped by a long wait or a spent day is paused, not failed: it says until when (local time)
    and the scheduler leaves the workspace alone until then."""
    if not isinstance(failure, RateLimited) or not (failure.daily or (failure.retry_after or 0) > 60):
        return
    now = clock.now().timestamp()
    held = [b.resume_at() for c in connectors if (b := getattr(getattr(c, "api", None), "budget", None))]
    until = max((t for t in held if t), default=None)
    if until is None:
        until = now + failure.retry_after if failure.retry_after else next_day(now)
    message = f"Paused until {budget.local_time(until)}: {failure.message}"
    result.status = "paused"
    result.errors = [*(e for e in result.errors if e != failure.message), message]
    if result.run_id is not None:
        restate(store, result.run_id, "paused", "\n".join(result.errors[:50]))


def _sent(connector: object, what: str = "request_count") -> int:
    """Requests this connector's HTTP client has sent so far (token renewals are not counted), or with
    ``units_spent`` what they cost of the account's day (Pipedrive: tokens)."""
    return int(getattr(getattr(connector, "api", None), what, 0))


def _names(connector: object, provider: str) -> bool:
    """Whether an error's provider ('Xero', 'QuickBooks Online', 'hubspot') is this connector's."""
    name = getattr(connector, "provider", "")
    wanted = "".join(provider.lower().split())
    return bool(name) and wanted in {name, "".join(registry.info(name).label.lower().split())}
