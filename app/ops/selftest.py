"""`crossledger --self-test`: check this installation end to end, on built-in sandboxes only.

It opens a throw-away store (running every database migration), names the keyring backend, syncs
a demo CRM into a demo ledger in-process (no network: the sandboxes answer through httpx's WSGI
transport), checks that a second sync writes nothing, and writes and re-opens a reconciliation
workbook. Each step prints one plain line; the first failure stops the run with exit code 1.

It is what a packaged build is smoke-tested with, so it must only use what the bundle ships.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app import __version__

# The pair the self-test prefers; otherwise the first CRM and ledger this build has.
PREFERRED = ("hubspot", "quickbooks")
WORKSPACE = "Self-test"

# Shown by the About dialog and on the self-test's first lines (distribution name, import name).
LIBRARIES = (
    ("httpx", "httpx"),
    ("SQLAlchemy", "sqlalchemy"),
    ("Alembic", "alembic"),
    ("APScheduler", "apscheduler"),
    ("openpyxl", "openpyxl"),
    ("keyring", "keyring"),
)


class SelfTestFailed(Exception):
    """A check did not hold; the message says what and what to do."""


def library_versions() -> dict[str, str]:
    """Each main library's version, from its metadata or its ``__version__`` ('not installed' if missing)."""
    out: dict[str, str] = {}
    for dist, mod in LIBRARIES:
        try:
            out[dist] = importlib.metadata.version(dist)
            continue
        except importlib.metadata.PackageNotFoundError:
            pass
        try:
            out[dist] = str(getattr(importlib.import_module(mod), "__version__", "unknown"))
        except ImportError:
            out[dist] = "not installed"
    return out


def runtime_description() -> str:
    how = "packaged build" if getattr(sys, "frozen", False) else "from source"
    return f"Crossledger {__version__} ({how}) on Python {platform.python_version()}, {platform.system()}"


def _usable(provider: str) -> bool:
    """The connector is present (``registry.available``) and so is its sandbox."""
    from app.sandbox.registry import has_sandbox

    return has_sandbox(provider)


def pick_pair() -> tuple[str, str]:
    """hubspot -> quickbooks when this build has them, else the first CRM and ledger it has."""
    from app.connectors import registry

    crms = [p for p in registry.available("crm") if _usable(p)]
    ledgers = [p for p in registry.available("accounting") if _usable(p)]
    if not crms or not ledgers:
        raise SelfTestFailed(
            f"This build has no {'CRM' if not crms else 'accounting'} connector with its sandbox, so nothing can "
            "be synced. The installation is incomplete: reinstall Crossledger.")
    crm = PREFERRED[0] if PREFERRED[0] in crms else crms[0]
    ledger = PREFERRED[1] if PREFERRED[1] in ledgers else ledgers[0]
    return crm, ledger


@contextlib.contextmanager
def _home(home: Path | None) -> Iterator[tuple[Path, bool]]:
    """A fresh folder: inside ``home`` (kept, to look at) or in the temp folder (removed afterwards)."""
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix="selftest-", dir=home)), True
        return
    folder = Path(tempfile.mkdtemp(prefix="crossledger-selftest-"))
    try:
        yield folder, False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in_process(provider: str) -> Any:
    """A demo-seeded sandbox of ``provider`` and a connector wired to it through httpx's WSGI transport."""
    from app.connectors import registry
    from app.connectors.base import Connection
    from app.connectors.tokens import MemoryTokenStore
    from app.ops.connect import connect_with_grant
    from app.sandbox.registry import sandbox_class
    from app.sandbox.server import InProcessTransport

    sandbox = sandbox_class(provider)()
    sandbox.seed("demo")
    transport = InProcessTransport(sandbox)
    tokens = MemoryTokenStore()  # the user's keyring is never touched
    conn = Connection(id=f"selftest-{provider}-{uuid.uuid4().hex[:8]}", provider=provider,
                      base_url=sandbox.public_url, auth_url=sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), sandbox.test_callback_params(),
                       transport=transport, client_secret="sandbox-secret")  # noqa: S106 - a sandbox's
    # In-process, a wait (Retry-After) moves the sandbox's clock instead of sleeping.
    return registry.make_connector(conn, tokens, transport=transport, sleep=sandbox.advance)


class _Run:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.warnings = 0

    def ok(self, text: str) -> None:
        self.out(f"ok       {text}")

    def warn(self, text: str) -> None:
        self.warnings += 1
        self.out(f"warning  {text}")


def _check_store(r: _Run, folder: Path) -> Any:
    import sqlite3

    from alembic.runtime.migration import MigrationContext

    from app.store.db import Store, sqlite_url
    from app.store.migrate import pending

    store = Store(sqlite_url(folder))
    with store.engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    left = pending(store.engine)
    if not heads or left:
        raise SelfTestFailed(f"The database migrations did not all run (at {heads or 'none'}, pending {left}). "
                             "The installation is incomplete: reinstall Crossledger.")
    r.ok(f"Database: a new SQLite {sqlite3.sqlite_version} store opened and upgraded to schema "
         f"revision {', '.join(heads)}.")
    return store


def _check_keyring(r: _Run) -> None:
    from app.connectors.errors import KeyringUnavailable
    from app.connectors.tokens import KeyringTokenStore

    try:
        backend = KeyringTokenStore.check()
    except KeyringUnavailable as exc:
        r.warn(f"Keyring: none available here. {exc.message} "
               "(This self-test does not need it; connecting a real account does.)")
        return
    r.ok(f"Keyring: sign-ins will be stored in {backend}.")


def _check_sync(r: _Run, store: Any, opened: list[Any]) -> tuple[Any, Any, Any]:
    from app.connectors import registry
    from app.ops.workspaces import add_workspace
    from app.sync.engine import SyncEngine

    crm_name, acct_name = pick_pair()
    crm_label, acct_label = registry.info(crm_name).label, registry.info(acct_name).label
    ws = add_workspace(store, WORKSPACE, crm_name, acct_name)
    crm = _in_process(crm_name)
    opened.append(crm)
    acct = _in_process(acct_name)
    opened.append(acct)
    first = SyncEngine(store, ws.id, crm, acct, trigger="selftest").run()
    c = first.counts
    if first.status != "ok" or not c.get("created"):
        detail = "; ".join(first.errors[:3]) or f"counts {c}"
        raise SelfTestFailed(f"The sync of the {crm_label} sandbox into the {acct_label} sandbox ended "
                             f"'{first.status}' and created {c.get('created', 0)} customers ({detail}).")
    r.ok(f"Sync: {crm_label} sandbox -> {acct_label} sandbox (in-process): read {c.get('read', 0)} records, "
         f"created {c['created']} customers, linked {c.get('linked', 0)}, held back {c.get('quarantined', 0)}.")
    again = SyncEngine(store, ws.id, crm, acct, trigger="selftest").run()
    a = again.counts
    if again.status != "ok" or a.get("writes") or a.get("created"):
        raise SelfTestFailed(f"A second sync with nothing changed should write nothing, but it ended "
                             f"'{again.status}' with {a.get('writes', 0)} writes and {a.get('created', 0)} "
                             f"customers created. {'; '.join(again.errors[:3])}")
    r.ok("Sync again with nothing changed: 0 writes.")
    return ws, crm, acct


def _check_workbook(r: _Run, store: Any, ws: Any, crm: Any, acct: Any, folder: Path) -> Path:
    from openpyxl import load_workbook

    from app.connectors import registry
    from app.ops.reconcile_month import month_data
    from app.reconcile.engine import reconcile
    from app.reconcile.workbook import write_workbook

    data = month_data(store, ws.id, "2026-01", crm, acct)
    months = Counter(d.close_date.strftime("%Y-%m") for d in data.deals if d.won and d.close_date)
    month = months.most_common(1)[0][0] if months else "2026-01"
    report = reconcile(dataclasses.replace(data, month=month))
    path = write_workbook(report, folder / f"selftest-reconciliation-{month}.xlsx", workspace=ws.name,
                          crm_label=registry.info(ws.crm).label, ledger_label=registry.info(ws.accounting).label)
    wb = load_workbook(path)
    try:
        sheets = wb.sheetnames
        rows = wb["Discrepancies"].max_row - 1 if "Discrepancies" in sheets else -1
    finally:
        wb.close()
    if "Summary" not in sheets or rows != len(report.discrepancies):
        raise SelfTestFailed(f"The reconciliation workbook {path} did not read back as written "
                             f"(sheets {sheets}, {rows} discrepancy rows for {len(report.discrepancies)}).")
    r.ok(f"Reconciliation of {month}: {len(report.discrepancies)} discrepancies; workbook written and re-opened "
         f"({len(sheets)} sheets: {', '.join(sheets)}).")
    return path


def run(home: Path | None = None, *, out: Callable[[str], None] | None = None) -> int:
    """Run every check, printing one line each; 0 if all passed (warnings allowed), 1 otherwise.

    ``home``: the folder to work in (a new ``selftest-*`` folder is made inside it and kept, so the
    workbook can be looked at); by default a temporary folder that is removed afterwards.
    """
    def emit(line: str) -> None:
        print(line, flush=True)

    say = out or emit
    r = _Run(say)
    started = time.monotonic()
    say(f"Crossledger self-test: {runtime_description()}")
    say("Libraries: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))
    step = "preparing a folder"
    try:
        with _home(home) as (folder, kept):
            say(f"Working in {folder}{'' if kept else ' (removed afterwards)'}.")
            step = "the database"
            store = _check_store(r, folder)
            opened: list[Any] = []
            try:
                step = "the keyring"
                _check_keyring(r)
                step = "the sandbox sync"
                ws, crm, acct = _check_sync(r, store, opened)
                step = "the reconciliation workbook"
                _check_workbook(r, store, ws, crm, acct, folder)
            finally:
                for connector in opened:
                    with contextlib.suppress(Exception):
                        connector.close()
                store.dispose()  # before the folder is removed (Windows keeps open files locked)
    except SelfTestFailed as exc:
        say(f"FAILED   {exc}")
        say("Self-test failed.")
        return 1
    except Exception as exc:  # noqa: BLE001 - any surprise is a failed self-test, said plainly
        say(f"FAILED   {step[0].upper() + step[1:]} broke: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
        say("Self-test failed. Please send us the lines above and the traceback printed with them.")
        return 1
    note = f" with {r.warnings} warning{'s' if r.warnings != 1 else ''}" if r.warnings else ""
    say(f"Self-test passed{note} in {time.monotonic() - started:.1f} s.")
    return 0
