"""Job functions. APScheduler persists jobs by reference, so these are module-level functions
that look up the running app's context instead of being bound methods."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("crossledger.sched")


@dataclass
class Context:
    """What a job needs from the running app; set by the Scheduler that runs it."""

    store: Any
    tokens: Any
    on_result: Callable[[str, str, Any], None] = lambda kind, ws, result: None
    on_error: Callable[[str, str, BaseException], None] = lambda kind, ws, exc: None
    cancel: threading.Event = field(default_factory=threading.Event)
    runners: dict[str, Callable[..., Any]] = field(default_factory=dict)
    clock: Any = None  # the Scheduler's Clock (set by it); None: the computer's
    sync_options: dict[str, Any] = field(default_factory=dict)  # more keywords for run_sync (tests: sandboxes)


_context: Context | None = None
# One lock a workspace: its scheduled jobs that fall due together (the nightly full sync and a quick sync at
# 02:00) run one after the other in this process, instead of the second finding the first's lease and being
# lost until the next night.
_turns: dict[str, threading.Lock] = {}
_turns_guard = threading.Lock()


def _turn(workspace: str) -> threading.Lock:
    with _turns_guard:
        return _turns.setdefault(workspace, threading.Lock())


def install(context: Context | None) -> None:
    global _context
    _context = context


def run_job(kind: str, workspace: str) -> None:
    """Entry point of every persisted job: kind is realtime, batch or reconcile."""
    ctx = _context
    if ctx is None:
        log.warning("job %s for %s fired with no app context; skipped", kind, workspace)
        return
    runner = ctx.runners.get(kind) or _default_runner(kind)
    try:
        if kind not in HELD_KINDS:
            result = runner(ctx, workspace)
        else:
            with _turn(workspace):
                if _held(ctx, workspace):
                    return
                result = runner(ctx, workspace)
    except BaseException as exc:  # noqa: BLE001 - reported to the app, never kills the scheduler
        log.warning("%s job for %s failed: %s", kind, workspace, exc)
        ctx.on_error(kind, workspace, exc)
        return
    ctx.on_result(kind, workspace, result)


HELD_KINDS = ("realtime", "batch", "reconcile")


def _held(ctx: Context, workspace: str) -> bool:
    """A provider asked everyone to wait, or scheduled syncs spent their share of its day: this workspace's
    jobs are skipped (no request sent) until then, and run again by themselves afterwards."""
    if ctx.store is None:
        return False
    from app.domain.clock import SYSTEM_CLOCK
    from app.ops.budget import scheduled_hold

    until = scheduled_hold(ctx.store, workspace, ctx.clock or SYSTEM_CLOCK)
    if until is not None:
        log.info("scheduled syncs of %s wait until %s (provider allowance)", workspace, until.isoformat())
    return until is not None


def check_connections(ctx: Context, workspace: str) -> None:
    """A connection whose sign-in has died stops that workspace's scheduled syncs: no request is sent
    (no retry storm against the provider) and the app tells the user once, until it is reconnected."""
    from sqlalchemy import select

    from app.connectors import registry
    from app.connectors.errors import AuthExpired
    from app.ops.workspaces import get_workspace
    from app.store.models import ConnectionRow

    ws = get_workspace(ctx.store, workspace)
    with ctx.store.session() as s:
        dead = s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id,
                                                     ConnectionRow.status == "reconnect")).first()
        if dead is None:
            return
        label = registry.info(dead.provider).label if dead.provider in registry.PROVIDER_MODULES else dead.provider
    raise AuthExpired(f"The sign-in to {label} for '{workspace}' has stopped working, so its scheduled syncs are "
                      f"paused. Reconnect {label} to start them again.", provider=dead.provider)


def _options(ctx: Context) -> dict[str, Any]:
    return {**({"clock": ctx.clock} if ctx.clock is not None else {}), **ctx.sync_options}


def _default_runner(kind: str) -> Callable[[Context, str], Any]:
    def realtime(ctx: Context, workspace: str) -> Any:
        from app.ops.sync_run import run_sync

        check_connections(ctx, workspace)
        return run_sync(ctx.store, ctx.tokens, workspace, trigger="schedule", cancel=ctx.cancel, **_options(ctx))

    def batch(ctx: Context, workspace: str) -> Any:
        from app.ops.sync_run import run_sync

        check_connections(ctx, workspace)
        return run_sync(ctx.store, ctx.tokens, workspace, trigger="nightly", cancel=ctx.cancel, full=True,
                        **_options(ctx))

    def reconcile(ctx: Context, workspace: str) -> Any:
        from app.ops import reconcile_month

        return reconcile_month.scheduled(ctx.store, ctx.tokens, workspace)

    def keepalive(ctx: Context, workspace: str) -> Any:
        from app.ops.watchdog import keep_alive
        from app.store import backup

        db_file = backup.sqlite_file(ctx.store.url)
        if db_file is not None:  # the window may stay open for days: the day's backup is made here too
            try:
                backup.daily(db_file)
            except Exception as exc:  # noqa: BLE001 - a backup problem never stops the sign-in renewals
                log.warning("the daily backup was not made: %s", exc)
        return keep_alive(ctx.store, ctx.tokens)

    return {"realtime": realtime, "batch": batch, "reconcile": reconcile, "keepalive": keepalive}[kind]
