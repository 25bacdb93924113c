"""Alembic, driven from code so the app upgrades its own store at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    with engine.begin() as conn:
        cfg = config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def pending(engine: Engine) -> list[str]:
    """Revisions not yet applied (for `crossledger doctor`)."""
    script = ScriptDirectory.from_config(config())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = []
    for rev in script.walk_revisions():
        if rev.revision in current:
            break
        heads.append(rev.revision)
    return heads
