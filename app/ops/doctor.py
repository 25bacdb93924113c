"""`crossledger doctor`: what is wrong with this machine or this store, in plain words, with the fix."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from app.connectors import registry
from app.domain.text import plural
from app.store.db import Store
from app.store.models import ConnectionRow, Workspace

# How long a refresh token lives when unused, per the providers' documentation (days).
REFRESH_LIFETIME_DAYS = {"xero": 60, "quickbooks": 100, "pipedrive": 60, "hubspot": None, "salesforce": None,
                         "zohocrm": None, "zohobooks": None}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    message: str
    fix: str = ""


def check_keyring() -> Check:
    from app.connectors.errors import KeyringUnavailable
    from app.connectors.tokens import KeyringTokenStore

    try:
        backend = KeyringTokenStore.check()
    except KeyringUnavailable:
        bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        why = "there is no D-Bus session" if not bus else "no Secret Service answers on the D-Bus session"
        return Check("Keyring", False, f"No system keyring is available ({why}), so Crossledger cannot keep "
                     "sign-ins safely and will not store them anywhere else.",
                     "Install a Secret Service provider and run it in your desktop session: on Debian or Ubuntu "
                     "'sudo apt install gnome-keyring' (KDE: kwalletmanager), then log out and in again.")
    return Check("Keyring", True, f"Sign-ins are kept in the system keyring ({backend.rsplit('.', 2)[-2]}).")


def check_folder(home: Path) -> Check:
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("Data folder", False, f"Crossledger cannot write to {home} ({exc.strerror}).",
                     "Free some disk space or fix the folder's permissions, or start Crossledger with "
                     "--home pointing at a folder you can write to.")
    return Check("Data folder", True, f"Data is kept in {home}.")


def check_migrations(url: str) -> Check:
    from sqlalchemy.engine import make_url

    from app.store.migrate import pending

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return Check("Database", True, "No database yet; Crossledger creates it the first time it starts.")

    try:
        from app.ops.storage import check_url

        check_url(url)
        store = Store(url, migrate=False)
        missing = pending(store.engine)
        store.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        from app.ops.workspaces import UserError

        if isinstance(exc, UserError):
            return Check("Database", False, str(exc), "Start Crossledger with --db pointing at its database.")
        return Check("Database", False, f"The database could not be opened ({type(exc).__name__}).",
                     "Check the --db address and that the database server is running; for a damaged file see "
                     "Database integrity.")
    if missing:
        return Check("Database", False, f"The database needs {len(missing)} upgrade step(s).",
                     "Start Crossledger once; it upgrades the database by itself.")
    return Check("Database", True, "The database is up to date.")


def check_integrity(url: str) -> Check:
    """SQLite's own integrity check of every page of the database, and how to restore if it fails."""
    from app.store import backup

    db_file = backup.sqlite_file(url)
    if db_file is None or not db_file.is_file():
        return Check("Database integrity", True, "Nothing to check: the database is not a local SQLite file.")
    last = backup.newest(db_file)
    if last is not None:
        restore = f"Restore the last backup: crossledger restore {last}"
    else:
        restore = "Restore a backup you keep elsewhere: crossledger restore FILE"
    restore += (f" (backups are kept in {backup.folder_for(db_file)}; the damaged file is kept too, for a "
                "specialist). Then sync again: anything done since the backup is read again from both sides.")
    if not backup.is_sqlite(db_file):
        return Check("Database integrity", False, f"{db_file} is not a readable database any more.", restore)
    problems = backup.integrity(db_file)
    if problems:
        more = f" and {plural(len(problems) - 1, 'more problem')}" if len(problems) > 1 else ""
        return Check("Database integrity", False,
                     f"SQLite's integrity check found the database damaged ({problems[0]}{more}).", restore)
    when = f" The last backup is {last.name}." if last else " No backup has been made yet."
    return Check("Database integrity", True, "SQLite's integrity check found nothing wrong." + when)


def check_connections(store: Store, tokens: object | None) -> list[Check]:
    out: list[Check] = []
    with store.session() as s:
        rows = [(ws.name, c.provider, c.id, c.status) for c in s.scalars(select(ConnectionRow))
                for ws in [s.get(Workspace, c.workspace_id)]]
    for ws_name, provider, conn_id, status in rows:
        label = registry.info(provider).label
        name = f"{ws_name}: {label}"
        if status == "reconnect":
            out.append(Check(name, False, f"The sign-in to {label} has stopped working.",
                             f"Reconnect it: crossledger connect {provider} --workspace \"{ws_name}\""))
            continue
        saved = tokens.load(conn_id) if tokens is not None else None
        if tokens is not None and saved is None:
            out.append(Check(name, False, f"No saved sign-in for {label} was found in the keyring.",
                             f"Reconnect it: crossledger connect {provider} --workspace \"{ws_name}\""))
            continue
        days = REFRESH_LIFETIME_DAYS.get(provider)
        if saved is not None and days and saved.refresh_issued_at:
            left = saved.refresh_issued_at + days * 86400 - time.time()
            if left <= 0:
                out.append(Check(name, False, f"The sign-in to {label} has expired (unused for over {days} days).",
                                 f"Reconnect it: crossledger connect {provider} --workspace \"{ws_name}\""))
                continue
            if left < 7 * 86400:
                out.append(Check(name, False, f"The sign-in to {label} expires in {left / 86400:.0f} days.",
                                 "Run a sync before then; each sync keeps the sign-in alive."))
                continue
        out.append(Check(name, True, f"Connected to {label}."))
    return out


def run_checks(home: Path, url: str, tray: Check | None = None) -> list[Check]:
    checks = [check_folder(home), check_keyring(), check_migrations(url), check_integrity(url)]
    if tray is not None:
        checks.append(tray)
    if checks[0].ok and checks[2].ok and checks[3].ok and not checks[2].message.startswith("No database yet"):
        tokens = None
        if checks[1].ok:
            from app.connectors.tokens import KeyringTokenStore

            tokens = KeyringTokenStore()
        checks += check_connections(Store(url), tokens)
    return checks
