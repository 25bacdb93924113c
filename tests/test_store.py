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


def test_reconciliations_recorded_as_syncs_before_move_to_their_own_history(tmp_path):
    """An older database has each reconciliation as a dry-run sync ('Reconcile (dry run) · Synced'): the upgrade
    moves them to the reconciliation history, so they no longer count as the last sync."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/old.db"
    cfg = config()
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0003")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO workspace (id, name, crm_provider, accounting_provider, settings, "
                             "created_at) VALUES (1, 'demo', 'hubspot', 'quickbooks', '{}', '2026-11-01 09:00:00')"))
        for n, (trigger, state) in enumerate((("manual", "ok"), ("reconcile", "ok"), ("reconcile", "failed")), 1):
            conn.execute(sa.text("INSERT INTO run (id, workspace_id, trigger, dry_run, status, counts, started_at) "
                                 f"VALUES ({n}, 1, '{trigger}', {int(trigger == 'reconcile')}, '{state}', '{{}}', "
                                 f"'2026-11-0{n} 09:00:00')"))
    engine.dispose()
    store = Store(url)  # upgrades to the head
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, trigger FROM run")).all() == [(1, "manual")]
        assert conn.execute(sa.text("SELECT status FROM reconciliation ORDER BY id")).scalars().all() == ["ok",
                                                                                                           "failed"]
    store.dispose()
