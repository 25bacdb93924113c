"""A provider account's allowance kept in the store, so every process using it shares one count.

The CLI, the window, the scheduler, ``crossledger service`` and a second workstation on the same
PostgreSQL each build their own HTTP client; what they may still send today, in this minute, and
whether the provider has asked everyone to wait (a Retry-After, a spent day) is one row here.

Cheap: a process books calls in blocks of ``BLOCK`` (20) and comes back to the store when its block is
used up or ``HOLD_SECONDS`` (2 s) old, and at close, handing back what it did not send. That is one
small write transaction per 20 calls at most, and nothing while idle.

How far processes can overshoot, in the worst case:

- the day: not at all. A block is booked against the cap under the row's write lock, so all
  processes together send at most ``cap`` calls a day. A process that dies holding a block leaves
  up to 19 of that day's calls unused; it never spends more. (The day counts units: one a call, except
  on Pipedrive, where a call costs its endpoint's tokens and the cap is the company's token budget.)
- the short window (Zoho Books' minute, HubSpot's ten seconds): each process keeps its own exact
  sliding limiter (so one process alone runs exactly as fast as before), and books in fixed windows
  in the store, where it gives way to what the others booked in this window and, weighed by how
  much it still overlaps, the one before (a sliding estimate). Together they can be ahead of the
  provider's exact sliding window by what that estimate misses and one block (20 calls) each. The 429 that may follow
  is shared like any Retry-After, so every process waits it out instead of each finding it.
- a Retry-After learned by one process: the others see it at their next visit to the store, after
  at most 20 calls or 2 s, and wait it out (or stop, when it is long) instead of each finding it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable

from sqlalchemy import and_, case, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.domain.clock import SYSTEM_CLOCK, Clock
from app.store.db import Store
from app.store.models import ProviderBudget

log = logging.getLogger("crossledger.budget")

BLOCK = 20
HOLD_SECONDS = 2.0


def budget_key(provider: str, tenant_id: str | None, connection_id: str) -> str:
    """One provider account: its organisation when it has one (a second workstation connects to the same
    organisation under another connection id and must share its allowance), else the connection."""
    return f"{provider}:{tenant_id}" if tenant_id else f"{provider}:conn:{connection_id}"


def day_of(epoch: float, zone: dt.tzinfo = dt.UTC) -> str:
    """The provider's day a call counts for: Zoho counts an organisation's calls by its own time zone's
    day, Pipedrive by UTC's; Xero's and Salesforce's 24 hours roll, which a calendar day never exceeds."""
    return dt.datetime.fromtimestamp(epoch, zone).date().isoformat()


def next_day(epoch: float, zone: dt.tzinfo = dt.UTC) -> float:
    """When that day ends and a new allowance begins."""
    day = dt.datetime.fromtimestamp(epoch, zone).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()


def zone_named(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - an unknown name, or no time zone database (frozen builds): UTC
        return dt.UTC


class StoreBudget:
    """The ``Budget`` an ``ApiClient`` books its calls in (app.connectors.http.Budget).

    ``share`` is the part of the daily cap this client may spend: scheduled syncs get 0.8, so at least
    a fifth of the day is always left for what the user does by hand.
    """

    def __init__(self, store: Store, key: str, *, cap: int | None, requests: int | None = None,
                 window: float | None = None, share: float = 1.0, clock: Clock = SYSTEM_CLOCK,
                 zone: dt.tzinfo = dt.UTC) -> None:
        self.store = store
        self.zone = zone
        self.key = key
        self.cap = cap
        self.requests = requests if window else None
        self.window = window if requests else None
        self.share = share
        self.clock = clock
        self._lock = threading.Lock()
        self._held = 0  # units of the day booked in the store and not spent yet
        self._held_calls = 0  # calls booked in the store's short window and not sent yet
        self._counted = True  # False: the store was out of reach when they were "booked"
        self._held_day = ""
        self._held_window = -1
        self._mine, self._mine_index = 0, -1  # calls this process booked in the current short window
        self._visited = -math.inf
        self._blocked_until = 0.0
        self._reason = ""
        self._skew = 0.0  # time passed in waits the clock did not see (an injected sleep that returns at once)
        self._row_made = False
        self._observed = 0  # the provider's own count of the day's calls, when it tells (observe)

    @property
    def limit(self) -> int | None:
        return None if self.cap is None else int(self.cap * self.share)

    def now(self) -> float:
        return self.clock.now().timestamp() + self._skew

    # -- the Budget protocol ----------------------------------------------------------------------
    def take(self, cost: int = 1) -> tuple[float, str]:
        """Book one call that costs ``cost`` units of the day (1, or Pipedrive's tokens for that endpoint)."""
        with self._lock:
            now = self.now()
            if now < self._blocked_until:
                return self._blocked_until - now, self._reason
            fresh = (now - self._visited < HOLD_SECONDS and self._held_day == day_of(now, self.zone)
                     and self._held_window == self._window_index(now))
            if not (self._held >= cost and self._held_calls > 0 and fresh):
                try:
                    wait, why = self._visit(now, cost)
                except SQLAlchemyError as exc:  # the store is out of reach: a block goes uncounted, then again
                    log.warning("provider budget %s not available (%s); calls are not counted", self.key, exc)
                    self._held, self._held_calls = BLOCK * cost, BLOCK
                    self._held_day = day_of(now, self.zone)
                    self._held_window = self._window_index(now)
                    self._visited, self._counted = now, False
                    wait, why = 0.0, ""
                if wait > 0:
                    return wait, why
            self._held -= cost
            self._held_calls -= 1
            return 0.0, ""

    def refund(self, cost: int) -> None:
        """A call booked but not charged (refused at the door): its units go back to the block held, so the
        next call spends them or ``close`` hands them back."""
        with self._lock:
            self._held += cost

    def block(self, seconds: float, reason: str = "blocked") -> None:
        """Everyone holds off for ``seconds`` (a ``"day"`` with no figure: until the day renews)."""
        with self._lock:
            now = self.now()
            until = next_day(now, self.zone) if reason == "day" and seconds <= 0 else now + seconds
            if until <= self._blocked_until:
                return
            self._blocked_until, self._reason = until, reason
            try:
                self._ensure_row()
                with self.store.session() as s:
                    s.execute(update(ProviderBudget)
                              .where(ProviderBudget.key == self.key, ProviderBudget.blocked_until < until)
                              .values(blocked_until=until, blocked_reason=reason))
            except SQLAlchemyError as exc:  # this process still holds off; the others learn it themselves
                log.warning("provider budget %s: could not share a hold (%s)", self.key, exc)

    def pause(self, seconds: float, sleep: Callable[[float], None]) -> None:
        start = self.clock.now().timestamp()
        sleep(seconds)
        seen = self.clock.now().timestamp() - start
        if seen < seconds:
            with self._lock:
                self._skew += seconds - seen

    def observe(self, used: int, cap: int | None) -> None:
        """The provider's own count of the day's calls and its cap, when its answers carry them (Salesforce's
        Sforce-Limit-Info): every app on the account spends from that allocation, so the shared count
        never stays below the provider's, and the cap is the account's own (learned at the first answer)."""
        with self._lock:
            if cap:
                self.cap = cap
            self._observed = max(self._observed, used)

    def resume_at(self) -> float | None:
        """When this account may be called again, if something is holding it now."""
        return self._blocked_until if self._blocked_until > self.now() else None

    def close(self) -> None:
        """Hand back the calls booked and not sent, so the count shows what was really spent."""
        with self._lock:
            units, calls = self._held, self._held_calls
            self._held = self._held_calls = 0
            if units <= 0 or not self._counted or self._held_day != day_of(self.now(), self.zone):
                return
            col = ProviderBudget
            with self.store.session() as s:
                s.execute(update(col).where(col.key == self.key, col.day == self._held_day).values(
                    used=case((col.used > units, col.used - units), else_=0),
                    window_used=case((and_(col.window_index == self._held_window, col.window_used > calls),
                                      col.window_used - calls),
                                     (col.window_index == self._held_window, 0), else_=col.window_used)))

    # -- the store ---------------------------------------------------------------------------------
    def _window_index(self, now: float) -> int:
        return int(now // self.window) if self.window else 0

    def _ensure_row(self) -> None:
        if self._row_made:
            return
        try:
            with self.store.session() as s:
                if s.get(ProviderBudget, self.key) is None:
                    s.add(ProviderBudget(key=self.key, day="", used=0, cap=self.cap, window_index=0, window_used=0,
                                         previous_used=0, blocked_until=0.0, blocked_reason=""))
        except IntegrityError:
            pass  # another process made it first
        self._row_made = True

    def _visit(self, now: float, cost: int = 1) -> tuple[float, str]:
        """Hand back the old block, read what everyone has spent and book the next block: ``BLOCK`` calls
        in the short window and, for the day, ``BLOCK`` calls at this one's cost."""
        today, index = day_of(now, self.zone), self._window_index(now)
        same_day = self._held_day == today and self._counted
        back = self._held if same_day else 0
        back_calls = self._held_calls if same_day else 0
        self._held = self._held_calls = 0
        self._counted = True
        self._ensure_row()
        with self.store.session() as s:
            # A write first, so SQLite takes its write lock before reading (two processes never both
            # read and then both try to write) and PostgreSQL locks the row until the commit.
            s.execute(update(ProviderBudget).where(ProviderBudget.key == self.key)
                      .values(blocked_reason=ProviderBudget.blocked_reason))
            row = s.get(ProviderBudget, self.key, populate_existing=True)
            assert row is not None  # made by _ensure_row above; rows are never deleted
            if row.day != today:
                row.day, row.used, back = today, 0, 0
            row.used = max(0, row.used - back, self._observed)
            self._observed = 0
            if self.cap is not None:
                row.cap = self.cap
            if self.window:
                if row.window_index == index == self._held_window:
                    row.window_used = max(0, row.window_used - back_calls)
                    self._mine = max(0, self._mine - back_calls)
                elif row.window_index != index:
                    row.previous_used = row.window_used if row.window_index == index - 1 else 0
                    row.window_index, row.window_used = index, 0
            self._visited = now
            if row.blocked_until > now:
                self._blocked_until, self._reason = row.blocked_until, row.blocked_reason or "blocked"
                return row.blocked_until - now, self._reason
            units = BLOCK * cost
            limit = self.limit
            if limit is not None:
                if row.used + cost > limit:
                    self._blocked_until, self._reason = next_day(now, self.zone), "day"
                    return self._blocked_until - now, "day"
                units = min(units, limit - row.used)
            calls = BLOCK
            if self.window and self.requests:
                # This process's own pace is its exact sliding limiter's; the shared window adds the others'
                # (the window before weighed by how much of it still overlaps the provider's sliding one).
                mine = self._mine if self._mine_index == index else 0
                mine_before = self._mine if self._mine_index == index - 1 else 0
                overlap = 1 - (now - index * self.window) / self.window
                others = (max(0, row.previous_used - mine_before) * overlap + max(0, row.window_used - mine))
                room = int(self.requests - others)
                if room <= 0:  # wait for the others' calls to age out, a little at a time
                    return max(0.01, min(self.window / 10, (index + 1) * self.window - now)), "window"
                calls = min(calls, room)
                units = min(units, calls * cost)
                row.window_used += calls
                self._mine, self._mine_index = mine + calls, index
            row.used += units
            self._held, self._held_calls, self._held_day, self._held_window = units, calls, today, index
            return 0.0, ""


def record_cost(store: Store, key: str, calls: int, *, nightly: bool) -> None:
    """Remember what a scheduled sync cost on this account, to space the next ones by."""
    with store.session() as s:
        row = s.get(ProviderBudget, key)
        if row is None:
            return
        if nightly:
            row.batch_calls = calls
        else:  # a run that cost more (a sign-in renewed on the way) counts at once, a cheaper one by halves
            row.run_calls = calls if row.run_calls is None else max(calls, (row.run_calls + calls) // 2)
