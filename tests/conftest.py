"""Shared fixtures: an isolated HOME, and a real Secret Service keyring for keyring tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_TEST_HOME = tempfile.mkdtemp(prefix="crossledger-test-home-")
os.environ["HOME"] = _TEST_HOME  # never touch the developer's real keyring or data
os.environ["XDG_DATA_HOME"] = os.path.join(_TEST_HOME, ".local", "share")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_TEST_HOME, ".config")
os.environ.pop("CROSSLEDGER_HOME", None)
# The many `python -m app` children read and write the bytecode cache even where the environment turns it
# off (PYTHONDONTWRITEBYTECODE): each would otherwise compile the app and its libraries again (~1.5 s CPU).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _start_keyring() -> dict[str, str] | None:
    """Start a private D-Bus session with gnome-keyring's Secret Service, unlocked."""
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        return None
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    address, pid = out[0], out[1]
    env = {"DBUS_SESSION_BUS_ADDRESS": address}
    os.environ.update(env)
    subprocess.run(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
        input="crossledger-test-password", capture_output=True, text=True, check=True,
        env={**os.environ},
    )
    # Only once the unlocked daemon owns the Secret Service name may a client call it: a call made before
    # (a busy machine) has D-Bus start a second daemon, one with no password, whose collection stays locked.
    deadline = time.monotonic() + (30 if shutil.which("dbus-send") else 0)
    while time.monotonic() < deadline and "true" not in subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets"],
            capture_output=True, text=True, env={**os.environ}).stdout:
        time.sleep(0.1)
    env["_DBUS_PID"] = pid
    return env


@pytest.fixture(scope="session")
def secret_service() -> Iterator[str]:
    """A real Secret Service keyring; the backend's name. Fails in CI if it cannot start."""
    started = None
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        started = _start_keyring()
    import keyring
    from keyring.backends import SecretService

    keyring.set_keyring(SecretService.Keyring())
    try:
        keyring.set_password("crossledger-selftest", "probe", "x")
        keyring.delete_password("crossledger-selftest", "probe")
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"No Secret Service keyring in CI: {exc}")
        pytest.skip(f"no Secret Service keyring here ({exc}); install gnome-keyring and dbus")
    yield "keyring.backends.SecretService.Keyring"
    if started:
        subprocess.run(["kill", started["_DBUS_PID"]], check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


# The few tests that take a minute or more start first, so that on a few cores the suite does not end
# waiting on one of them (pytest-xdist hands tests out in collection order).
SLOW_FIRST = (
    "test_demo_invoices_every_won_deal_and_shows_payment_states",
    "test_migration_killed_halfway_and_restarted",
    "test_random_kills_then_a_rerun",
    "test_quick_bench_spends_exactly",
    "test_killed_during_invoice_creation",
    "test_sync_killed_at_random_points",
    "test_demo_then_status_then_sync",
    "test_the_service_runs_the_scheduled_syncs_headless",
    "test_a_day_of_scheduled_syncs",
    "test_cli_reconcile_after_the_demo",
    "test_a_month_of_business_keeps_every_invariant",
    "test_undo_planning_calls_do_not_grow",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.name.startswith(SLOW_FIRST))


@pytest.fixture(scope="module", autouse=True)
def _windows_end_with_their_module() -> Iterator[None]:
    """Windows a test module left open are deleted when it ends. A test worker runs hundreds of GUI tests
    in one QApplication, and what they leave adds up (thousands of widgets): every later change to the
    whole application, a theme above all, then repolishes them all (a 0.3 s test took 40 s). Hidden and
    deleted, never closed: a close may ask a question or keep the window in the tray."""
    import sys

    def address(widget: object) -> int:  # the C++ object's: a wrapper may be made anew for each look-up
        import shiboken6

        return int(shiboken6.getCppPointer(widget)[0])

    widgets = sys.modules.get("PySide6.QtWidgets")
    app = widgets.QApplication.instance() if widgets else None
    before = {address(w) for w in app.topLevelWidgets()} if app is not None else set()
    yield
    widgets = sys.modules.get("PySide6.QtWidgets")
    app = widgets.QApplication.instance() if widgets else None
    if app is None:
        return
    from PySide6.QtCore import QCoreApplication, QEvent

    for w in app.topLevelWidgets():
        if address(w) not in before:
            w.hide()
            w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
