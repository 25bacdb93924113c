"""Time as a dependency: the app reads the clock through a ``Clock`` so that tests can move it.

``SYSTEM_CLOCK`` is the real one and every constructor's default. ``FakeClock`` stands still until
a test advances it, so a lease's expiry, a missed scheduled run or "once a day" is reached at once
instead of by waiting for it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol


def local(value: dt.datetime) -> dt.datetime:
    """``value`` in the computer's own time zone, to show a person; the store keeps naive UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone()


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds that only go forward, for measuring durations."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait that long (on a fake clock: move it that far, at once)."""
        ...


class SystemClock:
    """The computer's clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock:
    """A clock that moves only when told to; safe to read from other threads (a scheduler's)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        start = start if start is not None else dt.datetime.now(dt.UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._now = start.astimezone(dt.UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float = 0, **delta: float) -> dt.datetime:
        """Move forward by ``seconds`` plus any ``timedelta`` keywords (``hours=1``); returns the new time."""
        step = dt.timedelta(seconds=seconds, **delta)
        if step < dt.timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += step
            self._mono += step.total_seconds()
            return self._now

    def sleep(self, seconds: float) -> None:
        """Stands in for ``time.sleep``: the wait passes at once."""
        self.advance(seconds)

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"
