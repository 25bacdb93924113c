"""The demo on a machine with no keyring running (a server, a container, WSL, a CI box).

The demo's sign-ins open nothing but its local imitations, so they may live in memory; a real
provider still refuses to connect without the OS keyring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _no_keyring_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return env


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--home", str(home), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, env=_no_keyring_env())


def test_the_demo_and_later_syncs_run_without_a_keyring_and_say_so(tmp_path):
    home = tmp_path / "home"
    demo = cli(home, "demo", "--headless")
    assert demo.returncode == 0, demo.stderr
    notes = [line for line in demo.stdout.splitlines() if "keyring" in line]
    assert len(notes) == 1 and "kept in memory for this run only" in notes[0]
    assert "created" in demo.stdout and "Traceback" not in demo.stderr

    again = cli(home, "sync", "demo", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)  # the note goes to stderr: the JSON stays parseable
    assert result["status"] == "ok" and result["writes"] == 0
    # An idle run: the run's own time, and a read or a few per side (from the client's HTTP layer).
    assert 0 < result["seconds"] < 60
    assert set(result["requests"]) == {"crm", "accounting"} and 1 <= result["requests"]["accounting"] <= 10
    assert "kept in memory" in again.stderr
    # Nothing about tokens was written to disk on the way.
    for f in home.rglob("*"):
        if f.is_file() and f.suffix in {".json", ".ini", ".toml", ".log"}:
            assert "access_token" not in f.read_text(errors="replace"), f


def test_a_real_provider_still_refuses_to_connect_without_a_keyring(tmp_path):
    home = tmp_path / "home"
    assert cli(home, "workspace", "add", "acme", "--crm", "hubspot", "--accounting", "xero").returncode == 0
    proc = cli(home, "connect", "xero", "--workspace", "acme")
    assert proc.returncode != 0
    assert "No password keyring is available" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_service_runs_the_scheduled_syncs_headless_and_stops_on_sigterm(tmp_path):
    home = tmp_path / "home"
    assert cli(home, "demo", "--headless").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "service", "--run-now"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_no_keyring_env())
    try:
        lines = []
        for line in proc.stdout:  # waits for the run itself, not for a clock
            lines.append(line)
            if "realtime sync of 'demo'" in line:
                break
        assert "ok, 0 writes" in lines[-1], lines
        assert any("running the scheduled syncs of 1 workspace from" in ln for ln in lines)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)  # at once, not after the main thread's next minute
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.strip().endswith("Stopped."), err
    assert "Traceback" not in err
