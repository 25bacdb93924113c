"""After a run, the heap set aside from Python's full collections is handed back only once the mouse has
been left alone (app/ui/heap.py); a fake clock and a fake mouse drive it, the timer is never waited on."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.ui.heap import HeapKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Mouse:
    def __init__(self) -> None:
        self.pos, self.held = (10, 10), False

    def __call__(self) -> tuple[tuple[int, int], bool]:
        return self.pos, self.held


def test_collects_after_the_run_only_once_the_mouse_is_left_alone(qapp) -> None:
    clock, mouse = Clock(), Mouse()
    keeper = HeapKeeper(idle_ms=2000, latest_ms=60_000, clock=clock, mouse=mouse)
    usual = gc.get_threshold()
    try:
        keeper.hold()  # a run starts
        assert gc.get_freeze_count() > 0
        # no full pass while it lasts (each walked what the run kept since the last tick: 30-60 ms of a
        # 10,000-record run); young objects are collected as usual
        assert gc.get_threshold()[:2] == usual[:2] and gc.get_threshold()[2] >= 1_000_000
        keeper.hold()  # the next second's tick
        assert gc.get_threshold()[2] >= 1_000_000
        clock.now += 5
        assert keeper.collect_if_idle() is False  # still running: nothing handed back
        keeper.release_when_idle()  # the last run ended
        clock.now += 1.0
        assert keeper.collect_if_idle() is False and gc.get_freeze_count() > 0  # too soon
        mouse.pos = (40, 12)  # the bookkeeper moves to the table
        clock.now += 1.5
        assert keeper.collect_if_idle() is False  # 2.5 s after the end, but the mouse just moved
        mouse.held = True  # dragging the scroll bar, the pointer still
        clock.now += 2.5
        assert keeper.collect_if_idle() is False and gc.get_freeze_count() > 0
        mouse.held = False
        clock.now += 1.0
        assert keeper.collect_if_idle() is False  # released: seen now
        clock.now += 1.5
        assert keeper.collect_if_idle() is False  # 1.5 s since
        clock.now += 0.6
        assert keeper.collect_if_idle() is True
        assert gc.get_freeze_count() == 0 and keeper.collections == 1
        assert gc.get_threshold() == usual  # full passes as usual again
        assert keeper.collect_if_idle() is False  # once per run's end
    finally:
        gc.unfreeze()
        gc.set_threshold(*usual)


def test_a_busy_user_waits_a_minute_at_most_and_a_new_run_holds_it_again(qapp) -> None:
    clock, mouse = Clock(), Mouse()
    keeper = HeapKeeper(idle_ms=2000, latest_ms=60_000, clock=clock, mouse=mouse)
    usual = gc.get_threshold()
    try:
        keeper.hold()
        keeper.release_when_idle()
        keeper.hold()  # another run started before the mouse was left alone
        clock.now += 30
        assert keeper.collect_if_idle() is False and gc.get_freeze_count() > 0
        keeper.release_when_idle()
        for step in range(59):  # the mouse moves every second for a minute
            clock.now += 1
            mouse.pos = (step, step)
            assert keeper.collect_if_idle() is False
        clock.now += 1.5
        mouse.pos = (0, 99)
        assert keeper.collect_if_idle() is True and gc.get_freeze_count() == 0
        assert gc.get_threshold() == usual  # kept aside across both runs, given back once
    finally:
        gc.unfreeze()
        gc.set_threshold(*usual)
