"""What the tray shows, decided without Qt: the icon state, the tooltip, each workspace's menu lines
and the notifications. Plain functions over the rows of ``app.ops.status`` and the scheduler's
``JobInfo``, so they are tested without a QApplication (tests/test_tray.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.settings import WorkspaceSettings
from app.ops.status import RunRow, WorkspaceStatus
from app.ops.watchdog import Expiring
from app.ops.watchdog import expiring_connections as expiring_connections  # the tray's, read off its thread
from app.ui import text

TrayState = Literal["idle", "syncing", "review", "error", "paused"]
STATES: tuple[TrayState, ...] = ("idle", "syncing", "review", "error", "paused")

NO_TRAY_REASON = ("There is no system tray on this desktop, so Crossledger keeps this window open to go on "
                  "syncing.")

KIND_LABELS = {"realtime": "quick sync", "batch": "nightly full sync", "reconcile": "monthly reconciliation"}

# Long menu lines are cut: a tray menu wider than a third of the screen is hard to read.
MAX_LINE = 72


# -- the icon state ------------------------------------------------------------------------------

def waiting_for_review(ws: WorkspaceStatus) -> int:
    """Records that need a person: the Review tab's count plus the Held back tab's."""
    return ws.to_review + ws.quarantined


def attention(ws: WorkspaceStatus) -> str:
    """'3 to review, 16 held back', the words and numbers of the window's tabs."""
    return text.attention_words(ws.quarantined, ws.to_review)


def has_error(ws: WorkspaceStatus) -> bool:
    """The last run failed, or a sign-in stopped working."""
    if ws.last_run is not None and ws.last_run.status == "failed":
        return True
    return any(c.status == "reconnect" for c in ws.connections)


def _is_paused(name: str, paused: bool | Collection[str]) -> bool:
    return paused if isinstance(paused, bool) else name in paused


def all_paused(statuses: Sequence[WorkspaceStatus], paused: bool | Collection[str]) -> bool:
    if isinstance(paused, bool):
        return paused
    return bool(statuses) and all(ws.name in paused for ws in statuses)


def workspace_state(ws: WorkspaceStatus, *, running: bool = False, paused: bool = False,
                    failed: bool = False) -> TrayState:
    if failed or has_error(ws):
        return "error"
    if running:
        return "syncing"
    if paused:
        return "paused"
    if waiting_for_review(ws) or (ws.last_run is not None and ws.last_run.status == "partial"):
        return "review"
    return "idle"


def state_for(statuses: Sequence[WorkspaceStatus], running: Collection[str] = (),
              paused: bool | Collection[str] = False, failed: Collection[str] = ()) -> TrayState:
    """The one icon for every workspace together.

    ``running``: names of workspaces syncing now; ``paused``: True when everything is paused, or the
    names of paused workspaces; ``failed``: names whose last scheduled attempt raised before it could
    record a run (a missing connection, say).

    Precedence: an error needs a person, so it wins; then activity; then "paused" (all of them, since
    nothing is syncing); then records waiting for review; else idle.
    """
    if any(ws.name in failed or has_error(ws) for ws in statuses):
        return "error"
    if any(ws.name in running for ws in statuses):
        return "syncing"
    if all_paused(statuses, paused):
        return "paused"
    if any(workspace_state(ws) == "review" for ws in statuses):
        return "review"
    return "idle"


# -- words ---------------------------------------------------------------------------------------

def elide(line: str, limit: int = MAX_LINE) -> str:
    return line if len(line) <= limit else line[: limit - 1].rstrip(" ,;:—-") + "…"


def _lower_first(value: str) -> str:
    return value[:1].lower() + value[1:] if value[:2] != value[:2].upper() else value


def run_result_words(run: RunRow) -> str:
    """'synced, 5 changes', 'partly synced, 2 records failed', 'failed: <why>' (short, for a menu)."""
    c = run.counts
    if run.status == "running":
        return "still running"
    if run.status == "cancelled":
        return "cancelled"
    if run.status == "interrupted":
        return "interrupted before it finished"
    if run.status == "failed":
        why = (run.message or "").strip().splitlines()[0] if run.message else ""
        return f"failed: {why}" if why else "failed"
    changes = sum(int(c.get(k, 0) or 0) for k in ("created", "updated", "linked"))
    if run.status == "partial":
        errors = int(c.get("errors", 0) or 0)
        return f"partly synced, {text.plural(errors, 'record')} failed" if errors else "partly synced"
    # What is held back now is the State line's count (the Held back tab's), not this run's tally.
    return f"synced, {text.plural(changes, 'change')}" if changes else "synced, nothing new"


def when_words(value: dt.datetime | None, now: dt.datetime) -> str:
    """'today 14:02', 'yesterday 09:15', '3 Mar, 14:02'."""
    words = text.format_when(value, now)
    for day in ("Today", "Yesterday"):
        if words.startswith(day + ","):
            return day.lower() + words[len(day) + 1:]
    return words


def last_run_line(ws: WorkspaceStatus, now: dt.datetime) -> str:
    if ws.last_run is None:
        return "Last run: not synced yet"
    return elide(f"Last run: {when_words(ws.last_run.started_at, now)} — {run_result_words(ws.last_run)}")


def next_run(jobs: Iterable[Any], workspace: str) -> tuple[dt.datetime, str] | None:
    """The soonest run of a workspace among the scheduler's jobs (``JobInfo``), and its kind."""
    times = [(j.next_run, j.kind) for j in jobs if j.workspace == workspace and j.next_run is not None
             and not j.paused]
    return min(times, key=lambda t: t[0]) if times else None


def next_run_line(jobs: Iterable[Any], workspace: str, *, paused: bool, everything_paused: bool,
                  now: dt.datetime) -> str:
    if everything_paused:
        return "Next run: none while everything is paused"
    if paused:
        return "Next run: none while paused"
    nxt = next_run(jobs, workspace)
    if nxt is None:
        return "Next run: not scheduled"
    when, kind = nxt
    return f"Next run: {when_words(when, now)} ({KIND_LABELS.get(kind, kind)})"


def state_line(ws: WorkspaceStatus, *, running: bool, paused: bool, failure: str | None,
               realtime_minutes: int | None = None) -> str:
    if running:
        return "State: syncing now…"
    if failure:
        return elide(f"State: needs attention — {_lower_first(failure)}")
    reconnect = next((c for c in ws.connections if c.status == "reconnect"), None)
    if reconnect is not None:
        return elide(f"State: needs attention — reconnect {text.provider_label(reconnect.provider)}")
    if ws.last_run is not None and ws.last_run.status == "failed":
        return "State: needs attention — the last sync failed"
    review = attention(ws)
    if paused:
        return "State: paused" + (f" · {review}" if review else "")
    if review:
        return f"State: {review}"
    if ws.last_run is None:
        return "State: waiting for the first sync"
    if realtime_minutes:
        return f"State: up to date · syncs every {text.plural(realtime_minutes, 'minute')}"
    return "State: up to date"


def summary_line(state: TrayState, statuses: Sequence[WorkspaceStatus], running: Collection[str] = (),
                 failed: Collection[str] = ()) -> str:
    """The first line of the tooltip and of the menu."""
    if not statuses:
        return "Crossledger — no workspaces yet"
    if state == "error":
        bad = [ws.name for ws in statuses if ws.name in failed or has_error(ws)]
        return ("Crossledger — " + (f"{bad[0]} needs attention" if len(bad) == 1
                                     else f"{len(bad)} workspaces need attention"))
    if state == "syncing":
        names = [ws.name for ws in statuses if ws.name in running]
        return elide("Crossledger — syncing " + (names[0] if len(names) == 1 else f"{len(names)} workspaces"))
    if state == "paused":
        return "Crossledger — automatic syncing is paused"
    if state == "review":
        words = text.attention_words(sum(ws.quarantined for ws in statuses), sum(ws.to_review for ws in statuses))
        return f"Crossledger — {words}" if words else "Crossledger — some records need a look"
    return "Crossledger — everything is up to date"


def tooltip(state: TrayState, statuses: Sequence[WorkspaceStatus], *, running: Collection[str] = (),
            paused: bool | Collection[str] = False, failed: Collection[str] = (), now: dt.datetime,
            limit: int = 5) -> str:
    lines = [summary_line(state, statuses, running, failed)]
    for ws in statuses[:limit]:
        if ws.name in running:
            what = "syncing now"
        elif ws.name in failed or has_error(ws):
            what = "needs attention"
        elif _is_paused(ws.name, paused):
            what = "paused"
        elif waiting_for_review(ws):
            what = attention(ws)
        elif ws.last_run is not None:
            what = f"synced {when_words(ws.last_run.started_at, now)}"
        else:
            what = "not synced yet"
        lines.append(elide(f"{ws.name}: {what}", 60))
    if len(statuses) > limit:
        lines.append(f"and {len(statuses) - limit} more")
    return "\n".join(lines)


# -- one workspace in the menu -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WorkspaceMenu:
    """What the tray menu shows for one workspace."""

    id: int
    name: str
    state: TrayState
    last_run: str
    next_run: str
    status: str
    paused: bool
    running: bool


def workspace_menus(statuses: Sequence[WorkspaceStatus], settings: Mapping[str, WorkspaceSettings],
                    jobs: Sequence[Any], *, running: Collection[str], everything_paused: bool,
                    failures: Mapping[str, str], now: dt.datetime) -> list[WorkspaceMenu]:
    out = []
    for ws in statuses:
        sched = settings.get(ws.name, WorkspaceSettings()).schedule
        paused = sched.paused
        is_running = ws.name in running
        failure = failures.get(ws.name)
        minutes = sched.realtime_minutes
        state = workspace_state(ws, running=is_running, paused=paused or everything_paused,
                                failed=failure is not None)
        out.append(WorkspaceMenu(
            ws.id, ws.name, state, last_run_line(ws, now),
            next_run_line(jobs, ws.name, paused=paused, everything_paused=everything_paused, now=now),
            state_line(ws, running=is_running, paused=paused or everything_paused, failure=failure,
                       realtime_minutes=minutes),
            paused, is_running))
    return out


# -- notifications -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    """A desktop notification: what happened (title) and what to do (body)."""

    title: str
    body: str
    level: text.Level = "info"


def failed_run_message(workspace: str, notice: text.Notice) -> Message:
    return Message(f"{workspace}: {notice.title}", notice.detail, "error")


def review_message(workspace: str, held_back: int, to_review: int = 0, *,
                   ledger: str = "the accounting system") -> Message:
    """More records need a person than before: say how many, in the tabs' words, and where to look."""
    where = []
    if to_review:
        where.append("decide each one under Review")
    if held_back:
        where.append(f"look under Held back for why each was kept out of {ledger}; correct it in the CRM and "
                     "the next sync sends it")
    return Message(f"{workspace}: {text.attention_words(held_back, to_review)}",
                   f"Crossledger sent nothing it was unsure of to {ledger}. Open Crossledger and "
                   + "; ".join(where) + ".", "warning")


def expiring_message(item: Expiring) -> Message:
    label = text.provider_label(item.provider)
    days = max(0, round(item.days_left))
    when = "today" if days == 0 else ("tomorrow" if days == 1 else f"in {days} days")
    return Message(
        f"{item.workspace}: the {label} sign-in expires {when}",
        f"Each sync renews it, but {label} has not been synced for a while. Resume syncing or choose Sync now "
        f"in the tray menu before then. If that fails, open Crossledger and click Reconnect {label}… under "
        f"the workspace's name.",
        "warning")


def reconcile_message(result: Any) -> Message:
    """The monthly reconciliation has written its workbook (an ``app.ops.reconcile_month.ReconcileResult``)."""
    month = dt.date.fromisoformat(result.month + "-01").strftime("%B %Y")
    flags = result.report.discrepancies
    high = sum(1 for d in flags if d.severity == "high")
    where = f" The workbook is in {result.path}." if result.path else ""
    if not flags:
        return Message(f"{result.workspace}: {month} reconciles", "Every won deal has its invoice and every amount "
                       f"agrees.{where}", "success")
    first = f" {high} of them need{'s' if high == 1 else ''} attention first." if high else ""
    return Message(f"{result.workspace}: {text.plural(len(flags), 'discrepancy', 'discrepancies')} in {month}",
                   f"The monthly reconciliation is ready.{first}{where} Open Crossledger's Reconcile tab to see "
                   "each one.", "warning" if high else "info")
