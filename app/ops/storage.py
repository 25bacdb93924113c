"""Opening the store a user pointed at, its backups and restores, in a bookkeeper's words.

``open_store`` refuses what is not a Crossledger database (it never writes over someone else's file),
says plainly when a database cannot be reached or is damaged, marks runs a killed process left
"running" as interrupted, and makes the day's backup of a SQLite store.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, SQLAlchemyError

from app.ops.workspaces import UserError
from app.store import backup
from app.store.db import Store, sqlite_url
from app.store.models import Workspace
from app.store.runs import live_holders, mark_interrupted

log = logging.getLogger("crossledger.storage")

DB_EXAMPLE = "sqlite:////path/to/crossledger.db or postgresql://user@host/dbname"


@dataclass
class Opened:
    store: Store
    warnings: list[str] = field(default_factory=list)
    interrupted: list[int] = field(default_factory=list)


def damaged(db_file: Path) -> UserError:
    last = backup.newest(db_file)
    how = (f"Restore the last backup with 'crossledger restore {last}'" if last else
           "Restore a backup with 'crossledger restore FILE'")
    return UserError(f"The database {db_file} is damaged. {how}; 'crossledger doctor' says more.")


def check_url(url: str) -> Path | None:
    """The SQLite file behind ``url`` (None for a server database), or UserError saying what is wrong."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError):
        raise UserError(f"'{url}' is not a database address. Give one like {DB_EXAMPLE}, "
                        "or leave --db out to use the data folder.") from None
    if backend != "sqlite":
        if backend not in ("postgresql", "postgres"):
            raise UserError(f"Crossledger keeps its data in SQLite or PostgreSQL, not '{backend}'. "
                            f"Give an address like {DB_EXAMPLE}.")
        return None
    db_file = backup.sqlite_file(url)
    if db_file is None:
        if parsed.database and parsed.database.startswith("file:"):
            raise UserError("Give the SQLite database as a plain path, e.g. sqlite:////path/to/crossledger.db.")
        return None  # in memory
    if db_file.is_dir():
        raise UserError(f"{db_file} is a folder. Give a database file inside it, e.g. "
                        f"sqlite:///{db_file / 'crossledger.db'}.")
    if db_file.parent.exists() and not db_file.parent.is_dir():
        raise UserError(f"{db_file.parent} is a file, not a folder. Give a database path in a folder.")
    if not db_file.parent.is_dir():
        raise UserError(f"The folder {db_file.parent} does not exist. Create it first, or give a database path "
                        "in a folder that exists.")
    if db_file.exists():
        if db_file.stat().st_size and not backup.is_sqlite(db_file) and backup.newest(db_file) is not None:
            raise damaged(db_file)  # our database (its backups are beside it), overwritten at the start
        if db_file.stat().st_size and not backup.is_sqlite(db_file):
            raise UserError(f"{db_file} is not a Crossledger database, so Crossledger will not write over it. "
                            "Give another file with --db, or leave --db out.")
        if db_file.stat().st_size:
            _check_ours(db_file)
    return db_file


def _check_ours(db_file: Path) -> None:
    try:
        tables = backup.tables(db_file)
    except sqlite3.DatabaseError:
        raise damaged(db_file) from None
    if tables and not ({"alembic_version", "workspace"} & tables):
        raise UserError(f"{db_file} is another program's database, so Crossledger will not write into it. "
                        "Give another file with --db, or leave --db out.")


def connect(url: str, *, migrate: bool = True) -> Store:
    """A Store for ``url``, or UserError in plain words (unknown driver, unreachable server, damaged file)."""
    db_file = check_url(url)
    try:
        return Store(url, migrate=migrate)
    except (NoSuchModuleError, ImportError):
        backend = make_url(url).get_backend_name()
        raise UserError(f"The driver for '{make_url(url).drivername}' databases is not installed. Use SQLite (the "
                        f"default) or PostgreSQL, e.g. {DB_EXAMPLE}." if backend == "postgresql" else
                        f"Crossledger cannot use '{backend}' databases. Give an address like {DB_EXAMPLE}.") from None
    except DatabaseError as exc:
        if db_file is not None and ("not a database" in str(exc.orig) or "malformed" in str(exc.orig)):
            raise damaged(db_file) from None
        if db_file is not None:
            raise UserError(f"Crossledger could not open or create the database file {db_file}. Give a file in a "
                            "folder you can write to.") from None
        raise UserError(f"Crossledger could not open the database at {make_url(url).host or 'that address'}. Check "
                        "the --db address, that the database server is running and that you may use it.") from None
    except (SQLAlchemyError, OSError):
        raise UserError("Crossledger could not open the database. Check the --db address and that you may "
                        "read and write it.") from None


def open_store(home: Path, url: str | None) -> Opened:
    """The store at start: checked, upgraded, runs of killed processes marked, the day's backup made."""
    url = url or sqlite_url(home)
    store = connect(url)
    opened = Opened(store)
    try:
        opened.interrupted = mark_interrupted(store)
    except DatabaseError:
        db_file = backup.sqlite_file(url)
        raise (damaged(db_file) if db_file else UserError("The database could not be read.")) from None
    db_file = backup.sqlite_file(url)
    if db_file is not None:
        try:
            backup.daily(db_file)
        except backup.BackupError as exc:
            opened.warnings.append(str(exc))
        except (OSError, sqlite3.Error) as exc:
            log.warning("the daily backup of %s could not be made: %s", db_file, exc)
    return opened


def make_backup(url: str, dest: str | None) -> Path:
    db_file = _sqlite_only(url, "back up")
    try:
        return backup.backup(db_file, Path(dest).expanduser() if dest else None)
    except backup.BackupError as exc:
        raise UserError(str(exc)) from None


def restore(url: str, source: str) -> tuple[Path, Path | None]:
    """Put a backup in place of the database; refused while a sync or undo holds a workspace."""
    db_file = _sqlite_only(url, "restore")
    path = Path(source).expanduser()
    if path.exists() and db_file.exists() and path.resolve() == db_file.resolve():
        raise UserError(f"{path} is the database itself. Give the path of a backup (they are in "
                        f"{backup.folder_for(db_file)}).")
    try:
        backup.check_restorable(path)
    except backup.BackupError as exc:
        raise UserError(str(exc)) from None
    if db_file.is_file() and backup.is_sqlite(db_file) and not backup.integrity(db_file, quick=True):
        store = Store(url, migrate=False)
        try:
            busy = live_holders(store)
            if busy:
                with store.session() as s:
                    names = ", ".join(f"'{ws.name}'" for ws_id in busy if (ws := s.get(Workspace, ws_id)))
                raise UserError(f"A sync or undo of {names} is running right now, so the database cannot be "
                                "replaced. Restore when it has finished (or close Crossledger first).")
        finally:
            store.dispose()
    try:
        kept = backup.restore(db_file, path)
    except (backup.BackupError, OSError, sqlite3.Error) as exc:
        raise UserError(f"The backup could not be restored ({getattr(exc, 'strerror', None) or exc}). The "
                        "database was left as it was.") from None
    store = connect(url)  # a backup from before an upgrade is brought up to date now
    mark_interrupted(store)
    store.dispose()
    return db_file, kept


def _sqlite_only(url: str, verb: str) -> Path:
    db_file = check_url(url)
    if db_file is None:
        raise UserError(f"Crossledger can {verb} its SQLite database only. For PostgreSQL use the server's own "
                        "tools (pg_dump and pg_restore).")
    return db_file
