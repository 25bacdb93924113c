"""Everything the window says, in a bookkeeper's words. Plain Python: no Qt, testable alone.

Typed exceptions map to messages here (never by matching on error strings), so the window
never shows a traceback and every problem comes with what to do next.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from app.connectors import errors as cerr
from app.domain.clock import local
from app.domain.text import plural
from app.ops.status import WorkspaceCounts, after_invoice_words
from app.ops.workspaces import UserError
from app.sync.run_context import Busy

if TYPE_CHECKING:
    from app.sync.engine import RunResult  # the engine itself is imported by the first sync, not the window

log = logging.getLogger("crossledger.ui")

Level = Literal["success", "info", "warning", "error"]

# Used when a connector module is not installed in this build (or not written yet).
_PROVIDER_LABELS = {
    "hubspot": "HubSpot",
    "salesforce": "Salesforce",
    "pipedrive": "Pipedrive",
    "zohocrm": "Zoho CRM",
    "quickbooks": "QuickBooks Online",
    "xero": "Xero",
    "zohobooks": "Zoho Books",
}

_HOW = {
    "created": "Created",
    "email": "Same email",
    "tax_id": "Same tax ID",
    "name": "Same name",
    "duplicate": "Duplicate in CRM",
    "link": "Linked earlier",
    "id": "Linked earlier",
    "manual": "Linked by you",
    "matched": "Invoiced before",
}

_HOW_TIPS = {
    "created": "Crossledger created this customer in the accounting system.",
    "email": "Linked to an existing customer in the accounting system with the same email address.",
    "tax_id": "Linked to an existing customer in the accounting system with the same tax ID.",
    "name": "Linked to an existing customer in the accounting system with the same name.",
    "duplicate": ("Another CRM record for the same customer was synced first; both share one customer in the "
                  "accounting system."),
    "link": "Linked in an earlier sync.",
    "id": "Linked in an earlier sync.",
    "manual": "You said these two are the same customer (in the migration or the Review tab).",
    "matched": ("The accounting system already had this deal's invoice; Crossledger linked it instead of making "
                "another."),
}

_RUN_STATUS = {
    "ok": "Synced",
    "partial": "Partly synced",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "running": "Running",
    "interrupted": "Interrupted",
}

_RUN_LEVEL: dict[str, Level] = {"ok": "success", "partial": "warning", "failed": "error", "cancelled": "info",
                                "running": "info", "interrupted": "warning"}

_TRIGGERS = {"manual": "Sync now", "schedule": "Scheduled", "demo": "Demo set-up", "cli": "Command line"}


@dataclass(frozen=True, slots=True)
class Notice:
    """One message for the bookkeeper: what happened and, when something went wrong, what to do."""

    level: Level
    title: str
    detail: str = ""
    action: str = ""  # a button on the banner: its words; the window knows what it does


# -- labels ------------------------------------------------------------------------------------

def provider_label(name: str) -> str:
    if name in _PROVIDER_LABELS:
        return _PROVIDER_LABELS[name]
    try:
        from app.connectors import registry

        return registry.info(name).label
    except (ValueError, ImportError, AttributeError):
        return name.replace("_", " ").title()


def pair_label(crm: str, accounting: str) -> str:
    return f"{provider_label(crm)} ↔ {provider_label(accounting)}"


def how_label(how: str) -> str:
    key = how.split(":", 1)[0]
    return _HOW.get(key, key.replace("_", " ").capitalize())


def how_tip(how: str) -> str:
    return _HOW_TIPS.get(how.split(":", 1)[0], "")


def record_type_label(record_type: str) -> str:
    return {"company": "Company", "person": "Person", "deal": "Deal", "customer": "Customer",
            "invoice": "Invoice"}.get(record_type, record_type.capitalize())


def run_status_label(status: str) -> str:
    return _RUN_STATUS.get(status, status.capitalize())


def run_level(status: str) -> Level:
    return _RUN_LEVEL.get(status, "info")


def trigger_label(trigger: str) -> str:
    return _TRIGGERS.get(trigger, trigger.capitalize())


def is_sandbox(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.endswith(".localhost")


# -- time --------------------------------------------------------------------------------------

def format_when(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'Today, 14:02', 'Yesterday, 09:15', '3 Mar, 14:02' or '3 Mar 2024'."""
    if value is None:
        return ""
    when = local(value)
    today = local(now or dt.datetime.now(dt.UTC)).date()
    clock = f"{when:%H:%M}"
    if when.date() == today:
        return f"Today, {clock}"
    if when.date() == today - dt.timedelta(days=1):
        return f"Yesterday, {clock}"
    if when.year == today.year:
        return f"{when.day} {when:%b}, {clock}"
    return f"{when.day} {when:%b %Y}"


def format_duration(start: dt.datetime, end: dt.datetime | None) -> str:
    if end is None:
        return ""
    seconds = max(0, round((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def last_run_text(status: str | None, started_at: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """The one line under a workspace in the list."""
    if status is None or started_at is None:
        return "Not synced yet"
    when = format_when(started_at, now)
    when = when[0].lower() + when[1:] if when.startswith(("Today", "Yesterday")) else when
    return f"{run_status_label(status)} {when}" if status != "running" else "Syncing…"


def sentence(value: str) -> str:
    """End with one full stop: 'Crossledger Demo Inc.' stays as it is, never 'Inc..'."""
    value = value.rstrip()
    return value if value.endswith((".", "!", "?", "…")) else value + "."


# -- the counts (docs/glossary.md) --------------------------------------------------------------

def attention_words(held_back: int, to_review: int) -> str:
    """'3 to review, 16 held back': the Review and Held back tabs' numbers, in their words.
    Empty when nothing waits. From ``app.ops.status.workspace_counts``, like every count shown."""
    parts = [f"{to_review:,} to review"] if to_review else []
    if held_back:
        parts.append(f"{held_back:,} held back")
    return ", ".join(parts)


# -- run results -------------------------------------------------------------------------------

def run_summary(counts: Mapping[str, int]) -> str:
    """'Created 143 customers, linked 22 to existing ones, updated 3': what the run changed. How
    many are held back or to review is the workspace's count, said apart in the tabs' numbers
    (``notice_for_result``, docs/glossary.md), never a run's own tally, which counts a record again
    every run while its reason lasts."""
    if counts.get("undo_of"):  # an undo run: what it took back
        return undo_summary(counts)
    parts = []
    if counts.get("created"):
        parts.append(f"created {plural(counts['created'], 'customer')}")
    if counts.get("linked"):
        parts.append(f"linked {counts['linked']:,} to existing ones")
    if counts.get("updated"):
        parts.append(f"updated {counts['updated']:,}")
    if after := after_invoice_words(dict(counts)):
        parts.append(after)
    if not parts:
        if counts.get("quarantined") or counts.get("conflicts"):
            return "Nothing changed"  # not "in sync": some records were held back or need a decision
        return "Everything was already in sync" if counts.get("read") else "Nothing new to sync"
    text = ", ".join(parts)
    return text[0].upper() + text[1:]


def undo_summary(counts: Mapping[str, int]) -> str:
    """'Undid run #12: 3 values put back, 2 customers made inactive, 1 left alone'."""
    parts = [f"{plural(counts[k], what)} {how}" for k, what, how in (
        ("restored", "value", "put back"), ("deactivated", "customer", "made inactive"),
        ("voided", "invoice", "voided"), ("unlinked", "link", "removed")) if counts.get(k)]
    if counts.get("refused"):
        parts.append(f"{counts['refused']:,} left alone")
    if counts.get("failed"):
        parts.append(f"{counts['failed']:,} failed")
    return f"Undid run #{counts['undo_of']}" + (": " + ", ".join(parts) if parts else ": nothing needed changing")


ALLOW_LARGE_CHANGE = "Sync and allow these changes"


def notice_for_result(result: RunResult, now: WorkspaceCounts | None = None) -> Notice:
    """``now``: the workspace's counts after the run, said as the tabs say them ("Now 16 held back")."""
    summary = run_summary(result.counts)
    if now is not None and (words := attention_words(now.held_back, now.to_review)):
        summary = f"{summary}. Now {words}"
    if result.status == "ok":
        return Notice("success", "Sync finished", f"{summary}.")
    if result.status == "cancelled":
        return Notice("info", "Sync cancelled",
                      "What was sent before you cancelled is kept. The next sync picks up the rest.")
    if result.status == "partial":
        first = result.errors[0] if result.errors else ""
        more = f" (and {len(result.errors) - 1:,} more)" if len(result.errors) > 1 else ""
        return Notice("warning", "Sync finished, but some records could not be sent",
                      f"{summary}. {plural(len(result.errors), 'record')} failed: {first}{more} "
                      "They will be tried again on the next sync.")
    if result.status == "paused":  # a provider's long wait or spent day: the scheduler carries on after it
        return Notice("info", "Sync paused", f"{result.errors[-1] if result.errors else ''} What was sent before "
                      "the pause is kept; scheduled syncs carry on from there.")
    if result.status == "held":
        return Notice("warning", "Sync stopped before a large change", result.errors[0] if result.errors else "",
                      action=ALLOW_LARGE_CHANGE)
    first = result.errors[0] if result.errors else "The sync stopped before it could finish."
    return Notice("error", "The sync could not finish",
                  f"{first} Nothing was lost; when that is sorted out, click Sync now again.")


IN_WINDOW = (  # the command line's advice, said the window's way
    (re.compile(r"Connect it with 'crossledger connect[^']*'\."), "Click Connect… beside the tabs to connect it."),
    (re.compile(r"Create it with 'crossledger workspace add'\."), "Add it with Add client… under the list."),
    (re.compile(r"\s*[^.]*'crossledger [^']*'[^.]*\."), ""),  # any other command: the window has a button
)


def in_window_words(message: str) -> str:
    """An ops message with no command to type in it: the window has a button for each."""
    for pattern, words in IN_WINDOW:
        message = pattern.sub(words, message)
    return message.strip()


def notice_for_error(exc: BaseException, *, workspace: str = "") -> Notice:
    """A typed failure in plain words with the next step. Unknown errors are logged, not shown."""
    if isinstance(exc, Busy):
        return Notice("info", "Already syncing", str(exc))
    if isinstance(exc, UserError):
        return Notice("warning", "This workspace is not ready to sync", in_window_words(str(exc)))
    if isinstance(exc, cerr.ConnectorError):
        label = provider_label(exc.provider) if exc.provider else "The provider"
        if isinstance(exc, cerr.KeyringUnavailable):
            return Notice("error", "Crossledger cannot reach the system keyring", exc.message)
        if isinstance(exc, cerr.AuthExpired | cerr.Unauthorized):
            return Notice("error", f"The sign-in to {label} has expired",
                          f"{label} no longer accepts Crossledger's sign-in, so nothing was synced. "
                          f"Click Reconnect {label}… under the workspace's name, then sync "
                          "again.")
        if isinstance(exc, cerr.RateLimited):
            if exc.daily:
                return Notice("warning", f"{label}'s daily limit is used up",
                              f"{label} accepts no more requests from Crossledger today. Sync again tomorrow; "
                              "nothing was lost.")
            wait = _wait_words(exc.retry_after)
            return Notice("warning", f"{label} asked Crossledger to slow down",
                          f"Too many requests in a short time. Sync again {wait}; nothing was lost.")
        if isinstance(exc, cerr.TransportError):
            return Notice("error", f"Could not reach {label}",
                          "Check the internet connection, then sync again. Anything that may have been sent "
                          "is checked before it is sent again, so nothing is created twice.")
        if isinstance(exc, cerr.ServerError):
            return Notice("error", f"{label} is having trouble right now",
                          f"{label} answered with an error on its side. Nothing was lost; sync again in a few "
                          "minutes.")
        if isinstance(exc, cerr.ValidationRejected):
            field = f" ({exc.field})" if exc.field else ""
            return Notice("warning", f"{label} refused a record{field}",
                          f"{exc.message} Correct the record in the CRM, then sync again.")
        if isinstance(exc, cerr.StaleVersion):
            return Notice("info", "A record changed while syncing",
                          "Someone edited a customer while Crossledger was writing it. Sync again to pick up "
                          "the change.")
        return Notice("error", f"{label} reported a problem", f"{exc.message} Sync again in a few minutes.")
    log.error("Sync failed with an unexpected error", exc_info=exc)
    return Notice("error", "Something went wrong during the sync",
                  "Nothing was lost. Try Sync now again; if it keeps happening, send the log file "
                  "to support.")


def _wait_words(seconds: float | None) -> str:
    if not seconds:
        return "in a minute or two"
    if seconds < 90:
        return f"in {max(1, round(seconds))} seconds"
    return f"in about {round(seconds / 60)} minutes"


def progress_text(stage: str) -> str:
    """The stage only: the engine's totals mix steps and records, the bar shows the proportion."""
    return "Finishing…" if stage == "Done" else f"{stage}…"
