"""The engine, sessions and where the data lives. Migrations are applied at start."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

APP_NAME = "Crossledger"


def default_home() -> Path:
    env = os.environ.get("CROSSLEDGER_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def ensure_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(home, stat.S_IRWXU)  # 0700: client books are nobody else's business
    return home


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'crossledger.db'}"


class Store:
    """The database for one app instance: an engine plus short-lived sessions."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        kw: dict = {}
        if url.startswith("sqlite"):
            kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, future=True, **kw)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, future=True)
        if migrate:
            from app.store.migrate import upgrade

            upgrade(self.engine)
        db_file = self.engine.url.database if url.startswith("sqlite") else None
        if db_file and db_file != ":memory:" and os.name == "posix" and os.path.exists(db_file):
            os.chmod(db_file, stat.S_IRUSR | stat.S_IWUSR)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
