"""`crossledger doctor` says what is wrong and how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def doctor(home: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--home", str(home), "doctor"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def test_without_dbus_it_names_the_missing_keyring_and_the_package(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = doctor(tmp_path / "h", env)
    assert proc.returncode == 1
    assert "No system keyring is available (there is no D-Bus session)" in proc.stdout
    assert "gnome-keyring" in proc.stdout
    assert "System tray" in proc.stdout
    assert proc.stdout.rstrip().endswith("\n2 things need attention.")  # the keyring and the tray
    assert "Traceback" not in proc.stderr


def test_with_a_keyring_and_a_fresh_home_only_the_tray_is_missing(secret_service, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("DISPLAY", None)
    proc = doctor(tmp_path / "h", env)
    assert "ok  Keyring" in proc.stdout and "ok  Database" in proc.stdout and "ok  Data folder" in proc.stdout
    assert "!!  System tray" in proc.stdout
    assert proc.stdout.rstrip().endswith("\n1 thing needs attention.")  # not "1 thing(s)"


def test_an_unwritable_data_folder_is_reported(tmp_path):
    if os.geteuid() == 0:
        home = Path("/proc/crossledger-cannot-write-here")
    else:
        home = tmp_path / "ro"
        home.mkdir()
        home.chmod(0o500)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = doctor(home, env)
    assert "!!  Data folder" in proc.stdout and "--home" in proc.stdout
