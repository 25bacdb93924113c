"""A shared office on PostgreSQL: the store works there, one sync per workspace at a time across
processes, a dead process's lease is taken over, and different workspaces run side by side."""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.domain.clock import FakeClock
from app.store import lease
from app.store.db import Store
from app.store.models import Lease, Workspace
from app.sync.engine import Busy, SyncEngine
from tests.support import in_process

ROOT = Path(__file__).resolve().parent.parent


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1, in a temporary folder, for this module."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs the 'postgresql' package")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="crossledger-pg-")
    data, port = os.path.join(root, "data"), _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    subprocess.run([*as_user, initdb, "-D", data, "-U", "crossledger", "--auth=trust", "-E", "UTF8"], **quiet)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-w", "-l", os.path.join(root, "log"), "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], **quiet)
    try:
        yield f"postgresql+psycopg://crossledger@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def store(pg_url) -> Iterator[Store]:
    s = Store(pg_url)
    with s.engine.begin() as conn:  # a clean slate per test, schema kept
        tables = [r[0] for r in conn.execute(text(
            "select tablename from pg_tables where schemaname='public' and tablename <> 'alembic_version'"))]
        if tables:
            conn.execute(text(f"truncate {', '.join(tables)} restart identity cascade"))
    yield s
    s.dispose()


def _workspace(store: Store, name: str) -> int:
    with store.session() as s:
        ws = Workspace(name=name, crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        s.add(ws)
        s.flush()
        return ws.id


def test_a_sync_runs_on_postgresql_and_a_second_one_writes_nothing(store):
    ws_id = _workspace(store, "Acme Books")
    crm, acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")
    first = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert first.status == "ok", first.errors
    assert first.counts["created"] > 100
    assert SyncEngine(store, ws_id, crm.connector, acct.connector).run().counts["writes"] == 0


def test_a_second_sync_of_the_same_workspace_is_refused_while_one_runs(store):
    ws_id = _workspace(store, "Acme Books")
    crm, acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")
    inside, release = threading.Event(), threading.Event()

    def slow_progress(stage: str, done: int, total: int) -> None:
        inside.set()
        release.wait(10)

    first = SyncEngine(store, ws_id, crm.connector, acct.connector, progress=slow_progress)
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        assert inside.wait(60)
        with pytest.raises(Busy, match="already running"):
            SyncEngine(store, ws_id, in_process("hubspot", "demo").connector,
                       in_process("quickbooks", "demo").connector).run()
    finally:
        release.set()
        thread.join(30)


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from app.store import lease
    from app.store.db import Store
    store = Store({url!r}, migrate=False)
    holder = lease.holder_id()
    print("ready", flush=True)
    sys.stdin.readline()  # "go": both processes start contending together, however slow their start was
    turns = 0
    while turns < {turns}:
        if lease.acquire(store, {ws}, holder, ttl=300):
            start = time.time()
            print("held", start, flush=True)
            if {wait_to_release}:
                sys.stdin.readline()  # held until the test says "release"
            else:
                time.sleep(0.02)  # a little work inside, so that an overlap would show
            print("done", start, time.time(), flush=True)
            lease.release(store, {ws}, holder)
            turns += 1
        else:
            time.sleep(0.005)  # the other one has it: ask again shortly
""")


def _holder(url: str, ws: int, *, turns: int = 5, wait_to_release: bool = False) -> subprocess.Popen:
    code = HOLDER.format(root=str(ROOT), url=url, ws=ws, turns=turns, wait_to_release=wait_to_release)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _go(*procs: subprocess.Popen) -> None:
    """Once every holder has started (they start side by side), let them all begin at once."""
    assert [_line(p) for p in procs] == ["ready"] * len(procs)
    for p in procs:
        _tell(p, "go")


def _line(proc: subprocess.Popen, timeout: float = 120) -> str:
    """The holder's next line; the timeout only matters when something is broken."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not got or not got[0]:
        proc.kill()
        pytest.fail(f"the lease holder said nothing: {proc.stderr.read()[-2000:]}")
    return got[0].strip()


def _tell(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _intervals(out: str) -> list[tuple[float, float]]:
    return [(float(p[1]), float(p[2])) for p in (line.split() for line in out.splitlines()) if p[0] == "done"]


def test_two_processes_never_hold_the_same_workspace_at_once(store, pg_url):
    ws_id = _workspace(store, "Acme Books")
    procs = [_holder(pg_url, ws_id) for _ in range(2)]
    _go(*procs)
    outs = [p.communicate(timeout=120) for p in procs]  # each ends after its five turns
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    a, b = (_intervals(o) for o, _ in outs)
    assert len(a) == len(b) == 5, "both processes should get their turns"
    for s1, e1 in a:
        for s2, e2 in b:
            assert e1 <= s2 or e2 <= s1, "two syncs of one workspace overlapped"


def test_different_workspaces_run_in_parallel(store, pg_url):
    one, two = _workspace(store, "Acme Books"), _workspace(store, "Beta Bakery")
    procs = [_holder(pg_url, one, turns=1, wait_to_release=True), _holder(pg_url, two, turns=1, wait_to_release=True)]
    _go(*procs)
    # each holds its own workspace and keeps it until told: both holding at once is the proof
    assert [_line(p).split()[0] for p in procs] == ["held", "held"]
    for p in procs:
        _tell(p, "release")
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]


def test_a_lease_left_by_a_killed_process_is_taken_over(store, pg_url):
    ws_id = _workspace(store, "Acme Books")
    proc = _holder(pg_url, ws_id, turns=1, wait_to_release=True)
    _go(proc)
    assert _line(proc).startswith("held")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        pipe.close()
    # the dead process was on this machine: its lease is taken at once
    assert lease.acquire(store, ws_id, lease.holder_id())


def test_a_lease_from_another_machine_is_taken_over_once_it_expires(store):
    ws_id = _workspace(store, "Acme Books")
    clock = FakeClock()
    with store.session() as s:
        s.add(Lease(workspace_id=ws_id, holder="front-desk-pc:4242:abcd1234",
                    expires_at=clock.now().replace(tzinfo=None) + dt.timedelta(seconds=300)))
    me = lease.holder_id()
    clock.advance(299)
    assert not lease.acquire(store, ws_id, me, clock=clock)  # still alive as far as we can tell
    clock.advance(2)
    assert lease.acquire(store, ws_id, me, clock=clock)


def test_clients_on_postgresql_share_one_daily_count(store, pg_url):
    from tests.budget_world import race_for_the_day

    assert race_for_the_day(pg_url) == (300, 300)  # four at once, and not one call over the cap
