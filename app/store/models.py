"""The tables. Nothing here holds a secret: tokens and client secrets live in the OS keyring."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Workspace(Base):
    """One client company: its CRM and accounting connections, mapping, rules and schedule."""

    __tablename__ = "workspace"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    crm_provider: Mapped[str] = mapped_column(String(40))
    accounting_provider: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ConnectionRow(Base):
    """Where a provider account lives; the secrets for it are in the keyring under ``id``."""

    __tablename__ = "connection"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    side: Mapped[str] = mapped_column(String(12))  # crm | accounting
    provider: Mapped[str] = mapped_column(String(40))
    base_url: Mapped[str] = mapped_column(String(400))
    auth_url: Mapped[str | None] = mapped_column(String(400))
    client_id: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[str | None] = mapped_column(String(200))
    label: Mapped[str | None] = mapped_column(String(200))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="connected")  # connected | reconnect
    connected_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("workspace_id", "side"),)


class Mirror(Base):
    """The last state we read of each record on either side (canonical or provider fields)."""

    __tablename__ = "mirror"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(12))
    object_type: Mapped[str] = mapped_column(String(20))
    remote_id: Mapped[str] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[str | None] = mapped_column(String(120))
    archived: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("workspace_id", "side", "object_type", "remote_id"),)


class Link(Base):
    """A CRM record and the ledger record it is synced with, plus what each side held last time."""

    __tablename__ = "link"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    object_type: Mapped[str] = mapped_column(String(20))  # customer | invoice
    crm_type: Mapped[str] = mapped_column(String(20))  # company | person | deal
    crm_id: Mapped[str] = mapped_column(String(120))
    acct_id: Mapped[str] = mapped_column(String(120), index=True)
    how: Mapped[str] = mapped_column(String(40))  # created | email | tax_id | name | link
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"crm": {...}, "acct": {...}}
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("workspace_id", "object_type", "crm_type", "crm_id"),)


class Quarantine(Base):
    """A record held back, with a reason a bookkeeper can act on. One open row per record."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(12))
    record_type: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(300), default="")
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"items": [{"field","message"}]}
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("workspace_id", "side", "record_type", "record_id"),)


class Cursor(Base):
    __tablename__ = "cursor"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(12))
    object_type: Mapped[str] = mapped_column(String(20))
    value: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("workspace_id", "side", "object_type"),)


class Run(Base):
    __tablename__ = "run"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(20))  # manual | schedule | demo | cli
    dry_run: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|ok|partial|failed|cancelled
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Journal(Base):
    """Every write, recorded before it is sent; ``key`` is the idempotency key sent with it."""

    __tablename__ = "journal"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(120))
    op: Mapped[str] = mapped_column(String(40))  # create_customer | update_customer | update_crm ...
    side: Mapped[str] = mapped_column(String(12))  # the side written
    crm_type: Mapped[str | None] = mapped_column(String(20))
    crm_id: Mapped[str | None] = mapped_column(String(120))
    target_id: Mapped[str | None] = mapped_column(String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_journal_key", "workspace_id", "key"),
                      Index("ix_journal_op_status", "workspace_id", "op", "status"))


class FieldChange(Base):
    """One field a run changed on one side: the audit trail and what undo works from."""

    __tablename__ = "field_change"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    journal_id: Mapped[int | None] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(12))
    record_id: Mapped[str] = mapped_column(String(120))
    field: Mapped[str] = mapped_column(String(60))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(40))


class ConflictRow(Base):
    """A field changed on both sides since the last sync, with what the rule did about it."""

    __tablename__ = "conflict"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    link_id: Mapped[int | None] = mapped_column(Integer)
    crm_type: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(120))
    acct_id: Mapped[str | None] = mapped_column(String(120))
    field: Mapped[str] = mapped_column(String(60))
    crm_value: Mapped[str | None] = mapped_column(Text)
    acct_value: Mapped[str | None] = mapped_column(Text)
    base_value: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))  # crm | accounting | open | chosen | resolved
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    chosen_value: Mapped[str | None] = mapped_column(Text)  # what a person picked or typed
    choice: Mapped[str | None] = mapped_column(String(20))  # crm | accounting | edited
    applied_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Lease(Base):
    """One sync at a time per workspace, across processes and machines sharing the store."""

    __tablename__ = "lease"
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class MigrationPlan(Base):
    """A one-time migration's saved plan: applying it does exactly its rows and nothing else."""

    __tablename__ = "migration_plan"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned|applying|applied|superseded
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cursors: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the change feeds as read for the plan
    estimate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    applied_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class MigrationRow(Base):
    """One record (or pair) of a migration plan, with what it holds now and what it will hold."""

    __tablename__ = "migration_row"
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("migration_plan.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # link|create_ledger|create_crm|invalid|review
    name: Mapped[str] = mapped_column(String(300), default="")
    crm_type: Mapped[str | None] = mapped_column(String(20))
    crm_id: Mapped[str | None] = mapped_column(String(120))
    acct_id: Mapped[str | None] = mapped_column(String(120))
    score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    excluded: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    target_id: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(Text)


class Reconciliation(Base):
    """One reconciliation of a month: its own history, never a sync (it writes nothing on either side)."""

    __tablename__ = "reconciliation"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    month: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM
    trigger: Mapped[str] = mapped_column(String(20), default="manual")  # manual | schedule | cli
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|ok|stale|failed|cancelled
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # discrepancies by kind, data-quality items
    workbook: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ProviderBudget(Base):
    """One provider account's allowance, shared by every process on this store (app.store.budget).

    ``key`` is the provider and its organisation (or the connection id when it has none). Times are
    seconds since the epoch, as every process reads them the same way.
    """

    __tablename__ = "provider_budget"
    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), default="")  # the provider's day the count is for, UTC
    used: Mapped[int] = mapped_column(Integer, default=0)  # calls booked that day (some maybe not sent yet)
    cap: Mapped[int | None] = mapped_column(Integer)  # calls allowed a day, when the provider has a cap
    window_index: Mapped[int] = mapped_column(BigInteger, default=0)  # which minute (or second) ``window_used`` is for
    window_used: Mapped[int] = mapped_column(Integer, default=0)
    previous_used: Mapped[int] = mapped_column(Integer, default=0)  # the window before it (kept for a sliding estimate)
    blocked_until: Mapped[float] = mapped_column(Float, default=0.0)  # a Retry-After or a spent day, for all
    blocked_reason: Mapped[str] = mapped_column(String(12), default="")  # blocked | day
    run_calls: Mapped[int | None] = mapped_column(Integer)  # what an idle scheduled sync cost last time
    batch_calls: Mapped[int | None] = mapped_column(Integer)  # what the nightly full sync cost last time


class DetailCache(Base):
    """A record's full detail as a provider last sent it, where its list leaves fields out (Zoho Books
    contacts: addresses, tax numbers), with the modification time it was read at (app.store.detail_cache).

    ``account`` is the provider account's key (as ``ProviderBudget.key``), so every workspace and process
    on that account shares it; ``version`` is the provider's own modification time, compared as text.
    """

    __tablename__ = "detail_cache"
    account: Mapped[str] = mapped_column(String(240), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # contact (Zoho Books), fields (Pipedrive)
    remote_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    version: Mapped[str] = mapped_column(String(120))
    data: Mapped[str] = mapped_column(Text)  # the detail as the connector encodes it (JSON, exact decimals)
