"""One instance per user and home folder: a second launch raises the first and exits 0; a crashed
first instance leaves nothing that blocks the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QDir

from app.domain.clock import FakeClock
from app.ui.single_instance import ALREADY_RUNNING, SingleInstance, instance_key

ROOT = Path(__file__).resolve().parent.parent

# What the app does at start (app/ui/app.py): carry on as the first instance, or hand over and exit 0.
LAUNCH = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from PySide6.QtCore import QCoreApplication
from app.ui.single_instance import ALREADY_RUNNING, NOT_ANSWERING, SingleInstance
app = QCoreApplication(sys.argv[:1])
guard = SingleInstance(sys.argv[1])
if not guard.acquire():
    print(ALREADY_RUNNING if guard.answered else NOT_ANSWERING, flush=True)
    sys.exit(0)
print("first", flush=True)
if len(sys.argv) > 2:  # stay up until killed, like a running app
    time.sleep(60)
"""


def _launch(key: str, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, key, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)


def test_the_key_is_per_user_and_per_home(tmp_path):
    a = instance_key(tmp_path / "a", user="ann")
    assert a == instance_key(tmp_path / "a", user="ann")  # stable across launches
    assert a != instance_key(tmp_path / "b", user="ann")  # another --home
    assert a != instance_key(tmp_path / "a", user="bob")  # another user
    assert instance_key(None) == instance_key(None)
    assert len(a) < 40 and a.startswith("crossledger-")  # Unix socket paths are short


def test_a_second_instance_in_the_same_process_raises_the_first(qtbot, tmp_path):
    key = instance_key(tmp_path)
    first, second = SingleInstance(key), SingleInstance(key)
    try:
        assert first.acquire() and first.is_primary
        with qtbot.waitSignal(first.message_received, timeout=60_000) as got:
            assert second.acquire() is False
        assert second.answered and not second.is_primary
        assert got.args == ["raise"]
    finally:
        first.close()
        second.close()


def test_a_second_launch_says_already_running_exits_0_and_the_first_gets_raise(qtbot, tmp_path):
    key = instance_key(tmp_path)
    first = SingleInstance(key)
    try:
        assert first.acquire()
        with qtbot.waitSignal(first.message_received, timeout=60_000) as got:
            out, err = _launch(key).communicate(timeout=60)
        assert out.strip() == ALREADY_RUNNING, err
        assert got.args == ["raise"]
    finally:
        first.close()
    # Once the first has quit, the next launch is the first again.
    proc = _launch(key)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "first", err


@pytest.mark.skipif(os.name != "posix", reason="socket files and SIGKILL are Unix things")
def test_after_a_crash_the_stale_socket_is_removed_and_the_next_start_is_first(qtbot, tmp_path):
    key = instance_key(tmp_path)
    crashed = _launch(key, "stay")
    assert crashed.stdout.readline().strip() == "first"
    socket_file = Path(QDir.tempPath()) / key
    assert socket_file.exists()
    crashed.send_signal(signal.SIGKILL)  # no clean-up at all, as in a crash
    crashed.wait(10)
    assert socket_file.exists()  # left behind

    clock = FakeClock()  # its retries would move it: the takeover must not wait at all
    again = SingleInstance(key, clock=clock)
    try:
        assert again.acquire() is True  # the lock named a dead process: taken over
        assert clock.monotonic() == 0
        late = SingleInstance(key)
        with qtbot.waitSignal(again.message_received, timeout=60_000) as got:
            assert late.acquire() is False and late.answered  # the old socket file was replaced
        assert got.args == ["raise"]
    finally:
        again.close()
        crashed.stdout.close()
        crashed.stderr.close()


def test_a_first_instance_that_does_not_answer_gets_three_seconds_then_is_reported(qapp, tmp_path):
    from PySide6.QtCore import QLockFile

    key = instance_key(tmp_path)
    stuck = QLockFile(str(Path(QDir.tempPath()) / f"{key}.lock"))
    assert stuck.tryLock(0)  # a first instance that holds the lock but never listens
    clock = FakeClock()
    try:
        second = SingleInstance(key, clock=clock)
        assert second.acquire() is False and not second.answered  # the app then prints NOT_ANSWERING
        assert 3 <= clock.monotonic() < 3.2  # it kept asking for three seconds, by its clock, not the wall's
    finally:
        stuck.unlock()
