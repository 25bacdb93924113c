"""Copies of the SQLite database: one a day (the last 7 kept), one before each schema upgrade, and on request.

Every copy is made with SQLite's online backup API (a consistent snapshot even while another process
writes) into a temporary file that is renamed into place once complete, so a backup is never half a
file. A restore checks the copy first, keeps a copy of what it replaces, and never runs beside a sync.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import urllib.parse
from pathlib import Path

from sqlalchemy.engine import make_url

from app.domain import files

FOLDER = "backups"
DAILY_KEEP = 7
DAILY_PREFIX = "crossledger-daily-"
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore that cannot be done, said in plain words with what to do."""


def sqlite_file(url: str) -> Path | None:
    """The database file behind a SQLite URL; None for other databases and in-memory ones."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL at all: not a file either
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser()


def folder_for(db_file: Path) -> Path:
    """Backups live in a folder beside the database (in the data folder for the default database)."""
    return db_file.parent / FOLDER


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """An existing database only (never creates one); ``readonly`` for files that are not ours to change."""
    mode = "ro" if readonly else "rw"
    return sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode={mode}", uri=True, timeout=30)


def integrity(path: Path, *, quick: bool = False, readonly: bool = False) -> list[str]:
    """What SQLite's integrity check finds wrong with the database at ``path``; empty when it is sound."""
    try:
        conn = _connect(path, readonly=readonly)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else [str(r) for r in rows]


def _copy(src: Path, dest: Path, *, readonly: bool = False) -> Path:
    """``src`` copied to ``dest`` whole, through the backup API; the copy is a single self-contained file."""
    with files.atomic_path(dest, private=True) as tmp:
        source = _connect(src, readonly=readonly)
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # no -wal file: the copy is one file
        finally:
            target.close()
            source.close()
    return dest


def _stamp(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now().astimezone()).strftime("%Y-%m-%d-%H%M%S")


def daily(db_file: Path, *, today: dt.date | None = None) -> Path | None:
    """Today's backup, if there is none yet; older daily ones beyond the last 7 are removed.

    A database that fails SQLite's quick check is not copied (that would push a sound backup out).
    """
    if not db_file.is_file():
        return None
    folder = folder_for(db_file)
    day = today or dt.datetime.now().astimezone().date()
    dest = folder / f"{DAILY_PREFIX}{day.isoformat()}.db"
    if dest.exists():
        return None
    if problems := integrity(db_file, quick=True):
        raise BackupError(f"The database {db_file} is damaged ({problems[0]}), so today's backup was not made. "
                          "Run 'crossledger doctor' to see how to restore the last good backup.")
    _copy(db_file, dest)
    for old in sorted(folder.glob(f"{DAILY_PREFIX}*.db"))[:-DAILY_KEEP]:
        old.unlink(missing_ok=True)
    return dest


def before_upgrade(db_file: Path, now: dt.datetime | None = None) -> Path:
    """A copy taken just before the database's schema is upgraded (kept until removed by hand)."""
    return _copy(db_file, folder_for(db_file) / f"crossledger-before-upgrade-{_stamp(now)}.db")


def backup(db_file: Path, dest: Path | None = None, now: dt.datetime | None = None) -> Path:
    """A copy on request: to ``dest`` (a new file, or a folder to put it in), else to the backups folder."""
    if not db_file.is_file():
        raise BackupError(f"There is no database at {db_file} yet, so there is nothing to back up.")
    name = f"crossledger-{_stamp(now)}.db"
    if dest is None:
        dest = folder_for(db_file) / name
    elif dest.is_dir():
        dest = dest / name
    elif dest.exists():
        raise BackupError(f"{dest} already exists. Give a new file name, or a folder to put the backup in.")
    elif not dest.parent.is_dir():
        raise BackupError(f"The folder {dest.parent} does not exist. Create it first or give another place.")
    if dest.resolve() == db_file.resolve():
        raise BackupError("A backup cannot replace the database itself. Give another file name.")
    try:
        return _copy(db_file, dest)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"The backup could not be written to {dest} ({getattr(exc, 'strerror', None) or exc}). "
                          "Choose a folder you can save files in.") from None


def newest(db_file: Path) -> Path | None:
    found = [p for p in folder_for(db_file).glob("crossledger-*.db") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def tables(path: Path) -> set[str]:
    """The tables of the SQLite database at ``path``, read without changing it (sqlite3.DatabaseError if damaged)."""
    conn = _connect(path, readonly=True)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def check_restorable(path: Path) -> None:
    """Refuse anything that is not a sound Crossledger database."""
    if not path.exists():
        raise BackupError(f"There is no file {path}. Give the path of a backup (they are in the backups folder "
                          "beside the database).")
    if not path.is_file():
        raise BackupError(f"{path} is a folder. Give the path of one backup file inside it.")
    if not is_sqlite(path):
        raise BackupError(f"{path} is not a Crossledger backup. Give the path of a .db file Crossledger made.")
    if problems := integrity(path, readonly=True):
        raise BackupError(f"The backup {path} is damaged ({problems[0]}). Choose an older backup.")
    if not {"alembic_version", "workspace", "run"} <= tables(path):
        raise BackupError(f"{path} is a database, but not one of Crossledger's. Give the path of a backup "
                          "Crossledger made.")


def restore(db_file: Path, source: Path, now: dt.datetime | None = None) -> Path | None:
    """Put ``source`` in place of the database (a copy of the current one is kept first; returned)."""
    check_restorable(source)
    if source.resolve() == db_file.resolve():
        raise BackupError("That is the database itself. Give the path of a backup.")
    kept = None
    stamp = _stamp(now)
    if db_file.is_file() and is_sqlite(db_file) and not integrity(db_file):
        kept = _copy(db_file, folder_for(db_file) / f"crossledger-before-restore-{stamp}.db")
        src = _connect(source, readonly=True)
        dst = sqlite3.connect(db_file, timeout=30)  # through the backup API: the -wal file stays consistent
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return kept
    if db_file.exists():  # damaged: set aside as it is (for a specialist), never copied over in place
        kept = folder_for(db_file) / f"crossledger-damaged-{stamp}.db"
        kept.parent.mkdir(parents=True, exist_ok=True)
        db_file.replace(kept)
        for extra in ("-wal", "-shm"):
            if Path(f"{db_file}{extra}").exists():
                Path(f"{db_file}{extra}").replace(f"{kept}{extra}")
    _copy(source, db_file, readonly=True)
    return kept
