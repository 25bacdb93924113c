"""`crossledger --self-test` (app.ops.selftest.run), in-process: the checks a packaged build runs."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path

import pytest
from openpyxl import load_workbook

from app import cli
from app.connectors import registry
from app.connectors.errors import KeyringUnavailable
from app.connectors.tokens import KeyringTokenStore
from app.ops import selftest


def _local(host: object) -> bool:
    if not isinstance(host, str):
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach a host other than 127.0.0.1 fails the test (Unix sockets, as D-Bus uses, pass)."""
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            attempts.append(address)
            raise OSError(f"the self-test tried to reach {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kw):
        if not _local(host):
            attempts.append(host)
            raise socket.gaierror(f"the self-test tried to look up {host}")
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"network reached: {attempts}"


def test_self_test_passes_offline_and_keeps_its_workbook_in_the_given_home(tmp_path, no_network):
    lines: list[str] = []
    home = tmp_path / "home"

    assert selftest.run(home, out=lines.append) == 0, "\n".join(lines)

    text = "\n".join(lines)
    assert lines[0].startswith("Crossledger self-test: Crossledger ")
    assert re.search(r"Libraries: httpx \S+, SQLAlchemy \S+, Alembic \S+, APScheduler \S+, openpyxl \S+, "
                     r"keyring \S+", text)
    assert re.search(r"^ok +Database: .* upgraded to schema revision \w+", text, re.M)
    assert re.search(r"^(ok +Keyring: sign-ins will be stored in keyring\.backends\.|warning +Keyring: )", text,
                     re.M)
    created = re.search(r"^ok +Sync: .* created (\d+) customers", text, re.M)
    assert created and int(created.group(1)) > 0
    assert re.search(r"^ok +Sync again with nothing changed: 0 writes\.", text, re.M)
    assert re.search(r"^ok +Reconciliation of 2026-\d\d: \d+ discrepancies; workbook written and re-opened", text,
                     re.M)
    assert lines[-1].startswith("Self-test passed")
    assert "FAILED" not in text

    # With a home given, the run's folder is kept there, so the workbook can be opened afterwards.
    (folder,) = home.glob("selftest-*")
    (workbook,) = folder.glob("selftest-reconciliation-2026-*.xlsx")
    assert (folder / "crossledger.db").exists()
    wb = load_workbook(workbook)
    assert wb.sheetnames[:2] == ["Summary", "Discrepancies"]
    wb.close()


@pytest.fixture
def quick(monkeypatch):
    """Skip the sync and the workbook (covered above) when a test is about the other lines."""
    monkeypatch.setattr(selftest, "_check_sync", lambda r, store, opened: (None, None, None))
    monkeypatch.setattr(selftest, "_check_workbook", lambda *a: None)


def test_without_a_home_the_temporary_folder_is_removed(quick, capsys):
    assert selftest.run(None) == 0
    out = capsys.readouterr().out
    folder = re.search(r"^Working in (.+) \(removed afterwards\)\.$", out, re.M)
    assert folder, out
    assert not Path(folder.group(1)).exists()


def test_a_missing_keyring_is_a_warning_with_the_fix_not_a_failure(quick, monkeypatch, tmp_path):
    def no_keyring():
        raise KeyringUnavailable("No password keyring is available. On Linux install gnome-keyring.")

    monkeypatch.setattr(KeyringTokenStore, "check", staticmethod(no_keyring))
    lines: list[str] = []
    assert selftest.run(tmp_path, out=lines.append) == 0
    (warning,) = [x for x in lines if x.startswith("warning")]
    assert "Keyring" in warning and "install gnome-keyring" in warning
    assert lines[-1].startswith("Self-test passed with 1 warning in ")


def test_a_working_keyring_is_named(quick, monkeypatch, tmp_path):
    monkeypatch.setattr(KeyringTokenStore, "check", staticmethod(lambda: "keyring.backends.SecretService.Keyring"))
    lines: list[str] = []
    assert selftest.run(tmp_path, out=lines.append) == 0
    assert "ok       Keyring: sign-ins will be stored in keyring.backends.SecretService.Keyring." in lines
    assert not [x for x in lines if x.startswith("warning")]


def test_a_build_without_connectors_fails_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "available", lambda kind=None: [])
    lines: list[str] = []
    assert selftest.run(tmp_path, out=lines.append) == 1
    assert any(x.startswith("FAILED") and "no CRM connector" in x and "reinstall" in x for x in lines), lines
    assert lines[-1] == "Self-test failed."


def test_an_unexpected_error_names_the_step_and_fails(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(selftest, "_check_sync", lambda r, store, opened: (None, None, None))

    def disk_full(*_a):
        raise OSError("No space left on device")

    monkeypatch.setattr(selftest, "_check_workbook", disk_full)
    lines: list[str] = []
    assert selftest.run(tmp_path, out=lines.append) == 1
    assert "FAILED   The reconciliation workbook broke: OSError: No space left on device" in lines
    assert "Traceback" in capsys.readouterr().err


def test_the_pair_is_hubspot_to_quickbooks_when_built_else_the_first_of_each(monkeypatch):
    monkeypatch.setattr(selftest, "_usable", lambda provider: provider != "xero")
    built = {"crm": ["hubspot", "pipedrive"], "accounting": ["quickbooks", "xero", "zohobooks"]}
    monkeypatch.setattr(registry, "available", lambda kind=None: built[kind])
    assert selftest.pick_pair() == ("hubspot", "quickbooks")
    built.update(crm=["pipedrive", "zohocrm"], accounting=["xero", "zohobooks"])
    assert selftest.pick_pair() == ("pipedrive", "zohobooks")  # xero has no sandbox in this build


def test_library_versions_name_each_main_library():
    versions = selftest.library_versions()
    assert set(versions) == {"httpx", "SQLAlchemy", "Alembic", "APScheduler", "openpyxl", "keyring"}
    assert all(re.match(r"\d+\.\d+", v) for v in versions.values()), versions


def test_the_cli_flag_runs_it_with_the_home(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(selftest, "run", lambda home: seen.append(home) or 7)
    assert cli.main(["--home", str(tmp_path), "--self-test"]) == 7
    assert seen == [tmp_path]
