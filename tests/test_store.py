"""The store: migrations match the models, any SQLAlchemy URL, private files."""

from __future__ import annotations

import os

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.store.db import Store, ensure_home
from app.store.migrate import config, pending
from app.store.models import Base


def test_migrations_build_exactly_the_models(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/m.db")
    assert pending(store.engine) == []
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "apscheduler" not in str(d)] == []


def test_migrations_apply_again_without_harm(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    Store(url).dispose()
    Store(url).dispose()
    cfg = config()
    cfg.set_main_option("sqlalchemy.url", url)
    command.check(cfg)


def test_home_folder_and_database_are_private(tmp_path):
    home = ensure_home(tmp_path / "h")
    Store(f"sqlite:///{home}/crossledger.db")
    if os.name == "posix":
        assert home.stat().st_mode & 0o777 == 0o700
        assert (home / "crossledger.db").stat().st_mode & 0o777 == 0o600
