"""Alembic, driven from code so the app upgrades its own store at start.

Importing Alembic costs the app's start about half a second, so a store already at the newest
revision is recognised without it: the revisions are read from the migration files' headers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_HEADER = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:['"]([^'"]*)['"]|None)""", re.M)


def config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revisions() -> set[str] | None:
    """The newest revisions, from the files' ``revision`` / ``down_revision`` lines (None if unsure)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        if path.name.startswith("_"):
            continue
        fields = {m.group(1): m.group(2) for m in _HEADER.finditer(path.read_text(encoding="utf-8"))}
        if not fields.get("revision"):
            return None  # a file this reader does not understand: let Alembic decide
        revisions.add(fields["revision"])
        if fields.get("down_revision"):
            parents.add(fields["down_revision"])
    return (revisions - parents) or None


def up_to_date(engine: Engine) -> bool:
    heads = head_revisions()
    if heads is None:
        return False
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        current = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    return current == heads


def upgrade(engine: Engine) -> None:
    if up_to_date(engine):
        return
    _backup_first(engine)
    from alembic import command

    with engine.begin() as conn:
        cfg = config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def pending(engine: Engine) -> list[str]:
    """Revisions not yet applied (for `crossledger doctor`)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = []
    for rev in script.walk_revisions():
        if rev.revision in current:
            break
        heads.append(rev.revision)
    return heads


def _backup_first(engine: Engine) -> None:
    """A copy of a SQLite store that holds data, taken before its schema changes (a fresh one has none)."""
    from app.store import backup

    db_file = backup.sqlite_file(engine.url.render_as_string(hide_password=False))
    if db_file is None or not db_file.is_file():
        return
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return
    engine.dispose()  # the copy reads the file through its own connection
    backup.before_upgrade(db_file)
