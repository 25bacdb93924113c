"""'n of N · about 2 min left' for long work (undo, sync, migration, reconciliation), from a clock that
tests drive."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds, monotonic


def time_left_words(seconds: float) -> str:
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {int(round(seconds / 5.0) * 5)} seconds left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


class Eta:
    """Counts done out of total and guesses the time left from the pace since counting began (a first
    read of both sides, before anything is counted, does not slow the guess down)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.done = 0
        self.total = 0
        self._since: tuple[float, int] | None = None  # (when, done) at the first count

    def restart(self) -> None:
        self.done = self.total = 0
        self._since = None

    def update(self, done: int, total: int) -> None:
        if total > 0 and self._since is None:
            self._since = (self._clock(), done)
        self.done, self.total = done, total

    def seconds_left(self) -> float | None:
        """None until the pace can be told (nothing counted yet, or the total unknown)."""
        if self._since is None or self.total <= 0:
            return None
        t0, d0 = self._since
        elapsed, counted = self._clock() - t0, self.done - d0
        if elapsed <= 0 or counted <= 0:
            return None
        return max(0.0, (self.total - self.done) * elapsed / counted)

    def text(self) -> str:
        """'12 of 489 · about 2 min left' (just '12 of 489' until the pace is known)."""
        if self.total <= 0:
            return ""
        left = self.seconds_left()
        count = f"{min(self.done, self.total):,} of {self.total:,}"
        return f"{count} · {time_left_words(left)}" if left is not None and self.done < self.total else count
