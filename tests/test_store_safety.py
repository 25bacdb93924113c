"""The database survives kills, damage and mistakes: interrupted runs, a lost lease, backups and restores."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import update

from app.cli import main
from app.ops.doctor import check_integrity
from app.ops.storage import open_store
from app.store import backup, lease
from app.store.db import Store, sqlite_url
from app.store.migrate import config
from app.store.models import Journal, Lease, Run, Workspace, utcnow
from app.sync.engine import LeaseLost, SyncEngine
from tests.support import in_process


def _store_with_workspace(home: Path, name: str = "acme") -> tuple[Store, int]:
    home.mkdir(parents=True, exist_ok=True)
    store = Store(sqlite_url(home))
    with store.session() as s:
        ws = Workspace(name=name, crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        s.add(ws)
        s.flush()
        return store, ws.id


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- a killed run ------------------------------------------------------------------------------------
def test_a_run_left_running_by_a_killed_process_is_marked_interrupted_at_the_next_start(tmp_path):
    home = tmp_path / "h"
    store, ws_id = _store_with_workspace(home)
    _, other_ws = _store_with_workspace(home, "busy co")
    with store.session() as s:
        killed = Run(workspace_id=ws_id, trigger="cli")
        live = Run(workspace_id=other_ws, trigger="cli")
        s.add_all([killed, live])
        s.flush()
        killed_id, live_id = killed.id, live.id
        # "busy co" is being synced right now by a process that is alive (this one): left alone
        s.add(Lease(workspace_id=other_ws, holder=lease.holder_id(), expires_at=utcnow() + dt.timedelta(minutes=5)))
    opened = open_store(home, None)
    assert opened.interrupted == [killed_id]
    with opened.store.session() as s:
        assert s.get(Run, killed_id).status == "interrupted"
        assert "stopped before it finished" in s.get(Run, killed_id).message
        assert s.get(Run, killed_id).finished_at is not None
        assert s.get(Run, live_id).status == "running"


def test_a_lease_held_by_a_dead_process_does_not_keep_its_run_running(tmp_path):
    home = tmp_path / "h"
    store, ws_id = _store_with_workspace(home)
    import socket

    with store.session() as s:
        s.add(Run(workspace_id=ws_id, trigger="cli"))
        # pid 2**22+1 is above Linux's pid_max: no such process
        s.add(Lease(workspace_id=ws_id, holder=f"{socket.gethostname()}:{2**22 + 1}:dead",
                    expires_at=utcnow() + dt.timedelta(minutes=5)))
    assert len(open_store(home, None).interrupted) == 1


# -- the lease ---------------------------------------------------------------------------------------
def test_a_sync_that_loses_its_lease_stops_before_its_next_write(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/l.db")
    with store.session() as s:
        ws = Workspace(name="l", crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
        s.add(Run(workspace_id=ws_id, trigger="cli"))  # killed earlier: this sync marks it
    crm, acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")
    calls: list[int] = []
    real = acct.connector.create_customers

    def create_then_lose_the_lease(writes):
        calls.append(len(writes))
        out = real(writes)
        with store.session() as s:  # the run was held up past its lease; another process took over
            s.execute(update(Lease).where(Lease.workspace_id == ws_id)
                      .values(holder="elsewhere:1:other", expires_at=utcnow() + dt.timedelta(minutes=5)))
        return out

    acct.connector.create_customers = create_then_lose_the_lease
    result = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert len(calls) == 1  # the first batch went; nothing after the failed renewal
    assert result.status == "failed"
    assert result.errors == [LeaseLost.MESSAGE]
    with store.session() as s:
        pending = s.query(Journal).filter_by(status="pending").count()
        statuses = sorted(r.status for r in s.query(Run))
        other = s.get(Lease, ws_id)
    assert pending == 0  # nothing journalled and left unsent
    assert statuses == ["failed", "interrupted"]
    assert other is not None and other.holder == "elsewhere:1:other"  # the other run's lease is left alone


# -- backups -----------------------------------------------------------------------------------------
def _names(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("select name from workspace order by name")]


def test_one_backup_a_day_the_last_seven_kept(tmp_path):
    home = tmp_path / "h"
    _store_with_workspace(home)
    db = home / "crossledger.db"
    open_store(home, None)
    open_store(home, None)
    [today] = list((home / "backups").glob("crossledger-daily-*.db"))
    assert _names(today) == ["acme"]
    assert today.stat().st_mode & 0o077 == 0  # client books: the owner's only
    start = dt.date(2027, 3, 1)
    for n in range(10):
        assert backup.daily(db, today=start + dt.timedelta(days=n)) is not None
    kept = sorted(p.name for p in (home / "backups").glob("crossledger-daily-*.db"))
    assert kept == [f"crossledger-daily-{start + dt.timedelta(days=n)}.db" for n in range(3, 10)]


def test_a_schema_upgrade_is_preceded_by_a_backup(tmp_path):
    home = tmp_path / "h"
    store, _ = _store_with_workspace(home)
    cfg = config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    store.dispose()
    Store(sqlite_url(home))  # an older store: upgraded at start
    [copy] = list((home / "backups").glob("crossledger-before-upgrade-*.db"))
    with sqlite3.connect(copy) as conn:
        [(old,)] = conn.execute("select version_num from alembic_version").fetchall()
    with sqlite3.connect(home / "crossledger.db") as conn:
        [(new,)] = conn.execute("select version_num from alembic_version").fetchall()
    assert old != new and _names(copy) == ["acme"]
    Store(sqlite_url(home))  # already up to date: no second copy
    assert len(list((home / "backups").glob("crossledger-before-upgrade-*.db"))) == 1


def _damage(db: Path) -> None:
    """4 KiB of garbage over a page in the middle of the file, as a bad disk or a stray write would."""
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek((size // 4096 // 2) * 4096)
        fh.write(bytes(range(256)) * 16)


def test_doctor_finds_a_damaged_database_and_names_the_backup_to_restore(tmp_path, capsys):
    home = tmp_path / "h"
    store, ws_id = _store_with_workspace(home)
    with store.session() as s:  # enough rows for several pages
        s.add_all(Run(workspace_id=ws_id, trigger="cli", status="ok", message="x" * 500) for _ in range(200))
    store.dispose()
    url = sqlite_url(home)
    assert check_integrity(url).ok
    assert _cli(capsys, "--home", str(home), "backup")[0] == 0
    [saved] = list((home / "backups").glob("crossledger-2*.db"))
    _damage(home / "crossledger.db")
    found = check_integrity(url)
    assert not found.ok and "damaged" in found.message
    assert f"crossledger restore {saved}" in found.fix

    code, out, err = _cli(capsys, "--home", str(home), "restore", str(saved))
    assert code == 0, err
    assert "crossledger-damaged-" in out  # the damaged file is kept aside, not destroyed
    assert check_integrity(url).ok
    assert _names(home / "crossledger.db") == ["acme"]


def test_backup_then_restore_from_the_command_line(tmp_path, capsys):
    home = tmp_path / "h"
    assert _cli(capsys, "--home", str(home), "workspace", "add", "Acme", "--crm", "hubspot",
                "--accounting", "xero")[0] == 0
    code, out, _ = _cli(capsys, "--home", str(home), "backup", str(tmp_path / "acme.db"))
    assert code == 0 and str(tmp_path / "acme.db") in out
    assert _cli(capsys, "--home", str(home), "workspace", "add", "Beta", "--crm", "hubspot",
                "--accounting", "xero")[0] == 0
    code, out, err = _cli(capsys, "--home", str(home), "restore", str(tmp_path / "acme.db"))
    assert code == 0, err
    assert _names(home / "crossledger.db") == ["Acme"]
    [kept] = list((home / "backups").glob("crossledger-before-restore-*.db"))
    assert _names(kept) == ["Acme", "Beta"]  # what was replaced is kept


def test_restore_is_refused_while_a_sync_holds_a_workspace(tmp_path, capsys):
    home = tmp_path / "h"
    store, ws_id = _store_with_workspace(home)
    assert _cli(capsys, "--home", str(home), "backup", str(tmp_path / "b.db"))[0] == 0
    with store.session() as s:
        s.add(Lease(workspace_id=ws_id, holder=lease.holder_id(), expires_at=utcnow() + dt.timedelta(minutes=5)))
        s.add(Workspace(name="after", crm_provider="hubspot", accounting_provider="xero", settings={}))
    code, out, err = _cli(capsys, "--home", str(home), "restore", str(tmp_path / "b.db"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "'acme' is running right now" in err
    assert _names(home / "crossledger.db") == ["acme", "after"]  # untouched


@pytest.mark.parametrize("content", [b"", b"my notes\n" * 100, b"SQLite format 3\x00" + b"\x00" * 100])
def test_restore_refuses_what_is_not_a_crossledger_backup(tmp_path, capsys, content):
    home = tmp_path / "h"
    _store_with_workspace(home)
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    code, _, err = _cli(capsys, "--home", str(home), "restore", str(bad))
    assert code == 2 and err.count("\n") == 1 and "backup" in err
    assert _names(home / "crossledger.db") == ["acme"]


def test_db_never_writes_over_a_file_that_is_not_a_crossledger_database(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("Q3 figures, do not lose\n" * 50)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("create table recipes (name text)")
    before = notes.read_bytes(), other.read_bytes()
    for target in (notes, other):
        code, _, err = _cli(capsys, "--home", str(tmp_path / "h"), "--db", f"sqlite:///{target}", "status")
        assert code == 2 and err.count("\n") == 1 and "will not write" in err
    assert (notes.read_bytes(), other.read_bytes()) == before


def test_an_undo_that_loses_its_lease_stops_before_its_next_change(tmp_path):
    from app.ops.undo import apply_undo, plan_undo
    from tests.test_undo import WS, Scene, count_writes, real, world

    with world(tmp_path, "hubspot", "quickbooks") as w:
        sc = Scene(w)
        planned = len(plan_undo(w.store, w.tokens, WS, sc.run_id).steps)
        writes = count_writes(w.crm, w.acct)

        def taken_over(_req, _resp) -> None:
            if real(writes) != [[], []]:  # the first change went through; meanwhile another run took over
                with w.store.session() as s:
                    s.execute(update(Lease).where(Lease.workspace_id == w.ws_id)
                              .values(holder="elsewhere:1:other", expires_at=utcnow() + dt.timedelta(minutes=5)))

        w.acct.sandbox.exchange_hooks.append(taken_over)
        result = apply_undo(w.store, w.tokens, WS, sc.run_id)
        assert result.status == "failed" and LeaseLost.MESSAGE in result.errors
        assert sum(len(log) for log in real(writes)) == 1 < planned  # one change, then it stopped
        with w.store.session() as s:
            assert s.get(Run, result.undo_run_id).status == "failed"


def test_a_database_whose_start_was_overwritten_is_called_damaged_with_the_backup_to_restore(tmp_path, capsys):
    home = tmp_path / "h"
    _store_with_workspace(home)[0].dispose()  # closed: its write-ahead log is folded into the file
    open_store(home, None).store.dispose()  # today's backup
    db = home / "crossledger.db"
    with open(db, "r+b") as fh:
        fh.write(b"\x00garbage" * 400)
    code, _, err = _cli(capsys, "--home", str(home), "status")
    assert code == 2 and err.count("\n") == 1
    assert "is damaged" in err and "crossledger restore " in err and "crossledger-daily-" in err
    assert not check_integrity(sqlite_url(home)).ok
