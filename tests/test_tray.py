"""The tray: its state as pure functions, its menu and notifications offscreen, and the real thing
on Xvfb with trayer (opened with a real right click, "Pause all" clicked for real)."""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.connectors import errors as cerr
from app.connectors.tokens import MemoryTokenStore, Tokens
from app.ops.status import ConnectionInfo, RunRow, WorkspaceCounts, WorkspaceStatus
from app.ops.workspaces import add_workspace, update_settings
from app.sched import jobs
from app.sched.service import Scheduler
from app.store.db import Store
from app.store.models import ConnectionRow, Quarantine
from app.sync.engine import Busy, RunResult
from app.ui import tray_state
from app.ui.tray_state import NO_TRAY_REASON, state_for
from tests.support import scheduler_clock

ROOT = Path(__file__).resolve().parent.parent
T0 = dt.datetime(2026, 3, 14, 14, 2)  # naive UTC, as the store keeps it
NOW = dt.datetime(2026, 3, 14, 14, 30, tzinfo=dt.UTC)


def ws(name: str = "Acme", *, status: str | None = "ok", quarantined: int = 0, counts: dict | None = None,
       reconnect: bool = False, wid: int = 1, conflicts: int = 0, matches: int = 0) -> WorkspaceStatus:
    run = RunRow(7, "schedule", status, T0, T0, counts or {}, "Xero refused the sign-in" if status == "failed"
                 else None, False) if status else None
    conns = [ConnectionInfo("crm", "hubspot", None, "https://api.hubapi.com", "connected"),
             ConnectionInfo("accounting", "xero", None, "https://api.xero.com",
                            "reconnect" if reconnect else "connected")]
    return WorkspaceStatus(wid, name, "hubspot", "xero", conns, 10, {"email": 10}, quarantined, run,
                           WorkspaceCounts(10, quarantined, conflicts, matches))


# -- pure: no Qt application -------------------------------------------------------------------

def test_state_for_idle_review_error():
    assert state_for([]) == "idle"
    assert state_for([ws(), ws("Birch", status=None, wid=2)]) == "idle"
    assert state_for([ws(), ws("Birch", quarantined=3, wid=2)]) == "review"
    assert state_for([ws(status="partial")]) == "review"
    assert state_for([ws(conflicts=2)]) == "review"  # open conflicts, as the Review tab counts them
    assert state_for([ws(counts={"conflicts": 2})]) == "idle"  # a past run's count, decided since
    assert state_for([ws(), ws("Birch", status="failed", wid=2)]) == "error"
    assert state_for([ws(reconnect=True)]) == "error"
    assert state_for([ws()], failed={"Acme"}) == "error"  # raised before it could record a run


def test_state_for_precedence_error_syncing_paused_review():
    review, broken = ws("Acme", quarantined=2), ws("Birch", status="failed", wid=2)
    assert state_for([review, broken], running={"Acme"}) == "error"  # a person is needed: it wins
    assert state_for([review, ws("Birch", wid=2)], running={"Birch"}) == "syncing"
    assert state_for([review], running={"Acme"}, paused=True) == "syncing"  # a run still finishing
    assert state_for([review], paused=True) == "paused"
    assert state_for([review, ws("Birch", wid=2)], paused={"Acme", "Birch"}) == "paused"
    assert state_for([review, ws("Birch", wid=2)], paused={"Birch"}) == "review"  # not all of them
    assert state_for([], paused=set()) == "idle"
    assert state_for([ws()], running={"Somebody else"}) == "idle"


def test_menu_lines_are_plain_words():
    assert tray_state.run_result_words(ws(counts={"created": 3, "updated": 2}).last_run) == "synced, 5 changes"
    assert tray_state.run_result_words(ws(counts={"read": 40}).last_run) == "synced, nothing new"
    assert tray_state.run_result_words(ws(status="partial", counts={"errors": 2}).last_run) == \
        "partly synced, 2 records failed"
    assert tray_state.run_result_words(ws(status="failed").last_run) == "failed: Xero refused the sign-in"
    line = tray_state.last_run_line(ws(counts={"created": 1}), NOW)
    assert line.startswith("Last run: today ") and line.endswith("synced, 1 change")
    assert tray_state.last_run_line(ws(status=None), NOW) == "Last run: not synced yet"
    assert len(tray_state.elide("x" * 200)) == tray_state.MAX_LINE

    jobs_info = [type("J", (), {"workspace": "Acme", "kind": "batch", "paused": False,
                                "next_run": NOW + dt.timedelta(hours=3)})(),
                 type("J", (), {"workspace": "Acme", "kind": "realtime", "paused": False,
                                "next_run": NOW + dt.timedelta(minutes=2)})()]
    assert tray_state.next_run(jobs_info, "Acme") == (NOW + dt.timedelta(minutes=2), "realtime")
    assert tray_state.next_run_line(jobs_info, "Acme", paused=False, everything_paused=False, now=NOW) \
        .endswith("(quick sync)")
    assert tray_state.next_run_line(jobs_info, "Acme", paused=True, everything_paused=False, now=NOW) == \
        "Next run: none while paused"
    assert tray_state.state_line(ws(), running=False, paused=False, failure=None, realtime_minutes=2) == \
        "State: up to date · syncs every 2 minutes"
    assert tray_state.state_line(ws(reconnect=True), running=False, paused=False, failure=None) == \
        "State: needs attention — reconnect Xero"
    assert tray_state.state_line(ws(quarantined=1), running=False, paused=True, failure=None) == \
        "State: paused · 1 held back"
    assert tray_state.state_line(ws(quarantined=3, conflicts=1, matches=1), running=False, paused=False,
                                 failure=None) == "State: 2 to review, 3 held back"


def test_tooltip_summarises_every_workspace():
    items = [ws("Acme"), ws("Birch", quarantined=4, wid=2), ws("Cedar", status="failed", wid=3)]
    text = tray_state.tooltip(state_for(items), items, now=NOW)
    lines = text.splitlines()
    assert lines[0] == "Crossledger — Cedar needs attention"
    assert lines[1].startswith("Acme: synced today")
    assert lines[2] == "Birch: 4 held back"
    assert lines[3] == "Cedar: needs attention"
    many = [ws(f"Client {i}", wid=i) for i in range(8)]
    assert tray_state.tooltip("idle", many, now=NOW).splitlines()[-1] == "and 3 more"
    assert tray_state.summary_line("paused", items) == "Crossledger — automatic syncing is paused"
    assert tray_state.summary_line("idle", []) == "Crossledger — no workspaces yet"


def test_messages_say_what_happened_and_what_to_do():
    from app.ui.text import notice_for_error

    failed = tray_state.failed_run_message("Acme", notice_for_error(cerr.AuthExpired("gone", provider="xero"),
                                                                    workspace="Acme"))
    assert failed.title == "Acme: The sign-in to Xero has expired" and "Reconnect Xero" in failed.body
    review = tray_state.review_message("Birch", 3, ledger="Xero")
    assert review.title == "Birch: 3 held back"
    assert "Open Crossledger" in review.body and "Held back" in review.body and "to Xero" in review.body
    both = tray_state.review_message("Birch", 1, 2, ledger="Xero")
    assert both.title == "Birch: 2 to review, 1 held back" and "under Review" in both.body
    soon = tray_state.expiring_message(tray_state.Expiring("c1", "Acme", "xero", 4.6))
    assert soon.title == "Acme: the Xero sign-in expires in 5 days"
    assert "Sync now" in soon.body and "click Reconnect Xero… under the workspace's name" in soon.body


def _store(tmp_path: Path, *names: str) -> Store:
    store = Store(f"sqlite:///{tmp_path}/tray.db")
    for name in names:
        add_workspace(store, name, "hubspot", "xero")
    return store


def _connect(store: Store, wid: int, provider: str, side: str) -> str:
    cid = f"{wid}-{provider}"
    with store.session() as s:
        s.add(ConnectionRow(id=cid, workspace_id=wid, side=side, provider=provider, base_url="https://x.test",
                            auth_url=None, client_id="id", tenant_id=None, label=None, extra={}))
    return cid


def test_expiring_connections_reads_refresh_ages(tmp_path):
    store = _store(tmp_path, "Acme", "Birch")
    tokens = MemoryTokenStore()
    now = 1_800_000_000.0
    day = 86400
    tokens.save(_connect(store, 1, "xero", "accounting"), Tokens("a", "r", refresh_issued_at=now - 55 * day))
    tokens.save(_connect(store, 1, "hubspot", "crm"), Tokens("a", "r", refresh_issued_at=now - 500 * day))
    tokens.save(_connect(store, 2, "quickbooks", "accounting"), Tokens("a", "r", refresh_issued_at=now - 30 * day))
    found = tray_state.expiring_connections(store, tokens, now=now)
    assert [(e.workspace, e.provider, round(e.days_left)) for e in found] == [("Acme", "xero", 5)]
    assert tray_state.expiring_connections(store, None, now=now) == []


# -- the controller, offscreen (no system tray there) ------------------------------------------

class Env:
    def __init__(self, tmp_path: Path, names: tuple[str, ...] = ("Acme", "Birch")) -> None:
        self.store = _store(tmp_path, *names)
        self.calls: list[str] = []
        self.runner_threads: list[threading.Thread] = []
        self.behaviour: dict[str, Any] = {}
        self.gate = threading.Event()
        self.gate.set()
        runners = dict.fromkeys(("realtime", "batch", "reconcile"), self._run)
        self.clock = scheduler_clock()  # nothing falls due by itself: runs start when a test says so
        self.scheduler = Scheduler(self.store, jobs.Context(self.store, None, runners=runners), clock=self.clock)
        self.scheduler.start()
        self.tray: Any = None
        self.ended: Any = None

    def _run(self, ctx: jobs.Context, workspace: str) -> Any:
        self.runner_threads.append(threading.current_thread())
        self.calls.append(workspace)
        assert self.gate.wait(60)
        action = self.behaviour.get(workspace)
        if isinstance(action, BaseException):
            raise action
        if callable(action):
            return action()
        return RunResult(None, workspace, "ok", False, {"read": 1})

    def make_tray(self, **kw: Any) -> Any:
        from app.ui.tray import TrayController

        self.tray = TrayController(self.store, self.scheduler, lambda: self.calls.append("open"),
                                   lambda: self.calls.append("quit"), **kw)
        self.ended = ended_runs(self.tray)
        return self.tray

    def run_to_the_end(self, qtbot, workspace: str) -> None:
        """Start a run and wait until the tray has taken in its end (and so everything it reported), and
        sees nothing of that workspace still running (a run the scheduler started by itself would
        rightly show as "syncing" until it ends)."""
        wid = next(ws.id for ws in self.tray._statuses if ws.name == workspace)
        before = self.ended.count(wid)
        self.scheduler.run_now(workspace)
        qtbot.waitUntil(lambda: self.ended.count(wid) > before and workspace not in self.tray.running_workspaces(),
                        timeout=60_000)

    def close(self) -> None:
        self.gate.set()
        if self.tray is not None:
            self.tray.shutdown()
        self.scheduler.shutdown()


@pytest.fixture
def env(tmp_path: Path, qapp) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


def _entries(tray: Any) -> list[tuple[str, str, bool]]:
    from app.ui.tray import describe_menu

    tray.menu.aboutToShow.emit()
    return [(e["kind"], e["text"], e["enabled"]) for e in describe_menu(tray.menu)]


def ended_runs(tray: Any) -> Any:
    """Counts the scheduler's job ends as the tray's UI thread takes them in. Queued after the tray's
    own slots, so once a run is counted here the tray has handled everything that run reported."""
    from PySide6.QtCore import QObject, Qt, Slot

    class Ended(QObject):
        def __init__(self) -> None:
            super().__init__(tray)
            self.jobs: list[str] = []

        @Slot(str)
        def add(self, job_id: str) -> None:
            self.jobs.append(job_id)

        def count(self, workspace_id: int) -> int:
            return sum(1 for j in self.jobs if j.partition(":")[2] == str(workspace_id))

    ended = Ended()
    tray.events.job_ended.connect(ended.add, Qt.ConnectionType.QueuedConnection)
    return ended


def _action(tray: Any, name: str) -> Any:
    tray.menu.aboutToShow.emit()
    found = [a for a in tray.menu.actions() if a.objectName() == name]
    for sub in tray.menu.actions():
        if sub.menu() is not None:
            found += [a for a in sub.menu().actions() if a.objectName() == name]
    assert found, f"no action {name!r} in the menu"
    return found[0]


def test_without_a_tray_it_says_why_and_does_not_crash(env, qtbot):
    from PySide6.QtWidgets import QSystemTrayIcon

    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen
    tray = env.make_tray()
    assert tray.available is False
    assert tray.reason == NO_TRAY_REASON
    assert tray.show() is False
    assert not tray.icon.isVisible()
    with qtbot.waitSignal(tray.notified) as told:  # notifications still reach the window
        assert tray.notify("Acme", tray_state.review_message("Acme", 2))
    assert told.args[0] == "Acme: 2 held back"


def test_menu_is_rebuilt_on_show_with_a_section_per_workspace(env):
    tray = env.make_tray()
    entries = _entries(tray)
    texts = [t for _, t, _ in entries]
    assert entries[0] == ("action", "Open Crossledger", True)  # first, as in Dropbox's and Nextcloud's menus
    assert entries[2] == ("action", "Crossledger — everything is up to date", False)
    assert ("section", "Acme", True) in entries and ("section", "Birch", True) in entries
    acme = texts.index("Acme")
    assert texts[acme + 1] == "Last run: not synced yet"
    assert texts[acme + 2].startswith("Next run: today ") or texts[acme + 2].startswith("Next run: ")
    assert texts[acme + 3] == "State: waiting for the first sync"
    assert texts[acme + 4:acme + 6] == ["Sync now", "Pause syncing"]
    assert texts[-3:] == ["Pause all syncing", "", "Quit Crossledger"]

    add_workspace(env.store, "Cedar", "hubspot", "xero")  # the next opening shows what is new
    assert "Cedar" in [t for _, t, _ in _entries(tray)]


def test_more_than_three_workspaces_get_a_submenu_each(tmp_path, qapp):
    e = Env(tmp_path, ("Acme", "Birch", "Cedar", "Dune"))
    try:
        tray = e.make_tray()
        entries = _entries(tray)
        assert [t for k, t, _ in entries if k == "submenu"] == ["Acme", "Birch", "Cedar", "Dune"]
        assert _action(tray, "sync:Dune").text() == "Sync now"
    finally:
        e.close()


def test_pause_resume_and_pause_all(env, qtbot):
    tray = env.make_tray()
    _action(tray, "pause:Acme").trigger()
    assert {j.kind for j in env.scheduler.jobs() if j.workspace == "Acme" and j.paused} == \
        {"realtime", "batch", "reconcile"}
    texts = [t for _, t, _ in _entries(tray)]
    acme = texts.index("Acme")
    assert texts[acme + 2] == "Next run: none while paused"
    assert _action(tray, "resume:Acme").text() == "Resume syncing"
    assert not _action(tray, "sync:Acme").isEnabled()  # run_now would un-pause the job
    _action(tray, "resume:Acme").trigger()
    assert not any(j.paused for j in env.scheduler.jobs())

    with qtbot.waitSignal(tray.state_changed) as changed:
        _action(tray, "pause-all").trigger()
    assert changed.args == ["paused"] and tray.everything_paused()
    assert tray.icon.toolTip().startswith("Crossledger — automatic syncing is paused")
    assert _action(tray, "resume-all").text() == "Resume all syncing"
    _action(tray, "resume-all").trigger()
    assert not tray.everything_paused() and tray.state == "idle"


def test_open_quit_and_sync_now(env, qtbot):
    tray = env.make_tray()
    _action(tray, "open").trigger()
    _action(tray, "quit").trigger()
    assert env.calls == ["open", "quit"]
    _action(tray, "sync:Birch").trigger()
    qtbot.waitUntil(lambda: "Birch" in env.calls, timeout=60_000)

    started: list[tuple[int, str]] = []
    custom = env.make_tray(sync_now=lambda wid, name: started.append((wid, name)))
    _action(custom, "pause:Acme").trigger()
    assert _action(custom, "sync:Acme").isEnabled()  # the window's own runner ignores the pause
    _action(custom, "sync:Acme").trigger()
    assert started == [(1, "Acme")]


def test_scheduler_threads_reach_the_ui_thread_as_signals(env, qtbot):
    tray = env.make_tray()
    env.gate.clear()
    env.scheduler.run_now("Acme")
    qtbot.waitUntil(lambda: tray.state == "syncing", timeout=60_000)
    assert tray.running_workspaces() == {"Acme"}
    assert tray.icon.toolTip().startswith("Crossledger — syncing Acme")
    env.gate.set()
    qtbot.waitUntil(lambda: tray.state == "idle", timeout=60_000)
    assert env.runner_threads and all(t is not threading.main_thread() for t in env.runner_threads)

    tray.set_running(2, True)  # a run the window started (SyncController signals carry the id)
    assert tray.state == "syncing" and tray.running_workspaces() == {"Birch"}
    tray.set_running(2, False)
    assert tray.state == "idle"


def test_a_failed_run_is_told_once_with_what_to_do(env, qtbot):
    tray = env.make_tray()
    seen: list[tuple[str, threading.Thread]] = []
    tray.notified.connect(lambda title, body, level: seen.append((title, threading.current_thread())))
    env.behaviour["Acme"] = cerr.AuthExpired("refresh token revoked", provider="xero")
    with qtbot.waitSignal(tray.notified, timeout=60_000) as told:
        env.scheduler.run_now("Acme")
    title, body, level = told.args
    assert (title, level) == ("Acme: The sign-in to Xero has expired", "error")
    assert "Reconnect Xero" in body
    assert seen[0][1] is threading.main_thread()  # emitted on the UI thread, not the job's
    assert tray.state == "error"
    # The failure is told from the job's own report; the scheduler's "job ended" event is queued apart and
    # may arrive just after it on a busy machine: until then the menu rightly says the run is still going.
    qtbot.waitUntil(lambda: "Acme" not in tray.running_workspaces(), timeout=60_000)
    state_line = _action(tray, "state:Acme").text()
    assert state_line == "State: needs attention — the sign-in to Xero has expired"

    qtbot.waitUntil(lambda: env.ended.count(1) == 1, timeout=60_000)
    env.clock.advance(minutes=1)  # before the 2-minute quick sync falls due by itself
    env.run_to_the_end(qtbot, "Acme")  # the same failure again a minute later: no second message
    assert env.calls.count("Acme") == 2 and len(seen) == 1

    env.behaviour["Acme"] = Busy("Acme is syncing in another window")
    env.clock.advance(minutes=1)  # before the 2-minute quick sync falls due by itself
    env.run_to_the_end(qtbot, "Acme")
    assert env.calls.count("Acme") == 3 and len(seen) == 1 and tray.state == "error"

    env.behaviour.pop("Acme")
    env.clock.advance(minutes=1)  # before the 2-minute quick sync falls due by itself
    env.run_to_the_end(qtbot, "Acme")
    assert tray.state == "idle" and len(seen) == 1


def test_records_waiting_for_review_are_told_when_they_grow(env, qtbot):
    tray = env.make_tray()

    def hold_back() -> RunResult:
        with env.store.session() as s:
            for i in range(2):
                s.add(Quarantine(workspace_id=2, side="crm", record_type="person", record_id=f"p{i}",
                                 name=f"Person {i}", reasons={"items": [{"field": "email", "message": "bad"}]}))
        return RunResult(None, "Birch", "ok", False, {"read": 5, "quarantined": 2})

    env.behaviour["Birch"] = hold_back
    told: list[str] = []
    tray.notified.connect(lambda title, body, level: told.append(title))
    env.run_to_the_end(qtbot, "Birch")
    assert told == ["Birch: 2 held back"]
    assert tray.state == "review"

    env.behaviour["Birch"] = lambda: RunResult(None, "Birch", "ok", False, {"read": 5})
    env.clock.advance(minutes=1)  # before the 2-minute quick sync falls due by itself
    env.run_to_the_end(qtbot, "Birch")  # the same two still wait: not told again
    assert env.calls.count("Birch") == 2 and len(told) == 1


def test_notifications_can_be_turned_off_per_workspace(env, qtbot):
    update_settings(env.store, "Acme", notifications=False)
    tray = env.make_tray()
    env.behaviour["Acme"] = cerr.TransportError("reset", provider="xero")
    told: list[str] = []
    tray.notified.connect(lambda title, body, level: told.append(title))
    env.run_to_the_end(qtbot, "Acme")
    assert tray.state == "error" and told == []


def test_a_sign_in_about_to_expire_is_told_once_a_day(env, qtbot):
    tokens = MemoryTokenStore()
    cid = _connect(env.store, 1, "xero", "accounting")
    tokens.save(cid, Tokens("a", "r", refresh_issued_at=env.clock.now().timestamp() - 57 * 86400))
    tray = env.make_tray(tokens=tokens)
    told: list[str] = []
    tray.notified.connect(lambda title, body, level: told.append(title))

    def check() -> None:
        tray.check_expiring()
        job = tray._expiry_job
        qtbot.waitUntil(lambda: not job.running, timeout=60_000)  # its result is handled on the UI thread

    check()
    assert told == ["Acme: the Xero sign-in expires in 3 days"]
    env.clock.advance(hours=6)  # the next check, the same day
    check()
    assert len(told) == 1
    env.clock.advance(hours=18)  # the next day: told again
    check()
    assert told[1:] == ["Acme: the Xero sign-in expires in 2 days"]


# -- the real tray: Xvfb + trayer, driven with xdotool -----------------------------------------

NEEDED = ("Xvfb", "trayer", "xdotool")


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    """Xvfb on a free display: with -displayfd it picks the number and tells us."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 10
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.2)
        if ready:
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            number += chunk
    os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number.strip().decode()}"


@pytest.fixture(scope="module")
def x_tray() -> Iterator[str]:
    """An X server with a system tray (trayer), as on a plain Linux desktop."""
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install xvfb trayer xdotool)"
        if os.environ.get("CI"):
            pytest.fail(f"the real tray test must run in CI: {why}")
        pytest.skip(why)
    xvfb, display = _start_xvfb()
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel",
                               "--width", "200", "--height", "32"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        yield display
    finally:
        for proc in (trayer, xvfb):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_real_tray_menu_opens_with_a_right_click_and_pause_all_works(x_tray, tmp_path):
    out, shot = tmp_path / "probe.json", tmp_path / "tray-menu.png"
    env = {**os.environ, "DISPLAY": x_tray, "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "tray_probe.py"), "--out", str(out),
                           "--screenshot", str(shot)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["available"] is True and result["reason"] == ""
    x, y, w, h = result["geometry"]
    assert (x > 0 or y > 0) and w > 0 and h > 0  # embedded in trayer's panel
    assert result["state_before"] == "review"
    assert result["tooltip"].startswith("Crossledger — 2 held back")
    assert result["menu_opened"] is True

    entries = result["entries"]
    texts = [e["text"] for e in entries]
    assert texts[0] == "Open Crossledger"  # first, as in Dropbox's and Nextcloud's tray menus
    assert texts[2] == "Crossledger — 2 held back"
    for name in ("Alder & Finch Architects", "Birchwood Furniture"):
        i = texts.index(name)
        assert entries[i]["kind"] == "section"
        # a run two minutes ago reads "today", or "yesterday" just after midnight
        assert texts[i + 1].startswith(("Last run: today ", "Last run: yesterday "))
        assert texts[i + 2].startswith("Next run: ") and texts[i + 2].endswith("(quick sync)")
        assert texts[i + 3].startswith("State: ")
        assert texts[i + 4:i + 6] == ["Sync now", "Pause syncing"]
    assert "State: 2 held back" in texts
    menu_actions = ("Pause all syncing", "Resume all syncing", "Open Crossledger", "Quit Crossledger")
    assert [t for t in texts if t in menu_actions] == ["Open Crossledger", "Pause all syncing", "Quit Crossledger"]
    assert texts[-1] == "Quit Crossledger"

    assert result["paused_all"] is True  # the real click on "Pause all" paused the scheduler
    assert result["state_after"] == "paused"
    after = [e["text"] for e in result["entries_after"]]
    assert "Resume all syncing" in after and "Pause all syncing" not in after
    assert after[2] == "Crossledger — automatic syncing is paused"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
