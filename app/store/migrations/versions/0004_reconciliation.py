"""reconciliations: their own history, no longer recorded as dry-run syncs

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=True),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("workbook", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconciliation_workspace_id", "reconciliation", ["workspace_id"])
    # Reconciliations used to be recorded as dry-run syncs (trigger 'reconcile'): move them to their own
    # history, so they no longer show as syncs nor count as the last sync. A dry run wrote nothing, so
    # nothing else refers to those runs.
    op.execute("INSERT INTO reconciliation (workspace_id, month, trigger, status, counts, message, started_at, "
               "finished_at) SELECT workspace_id, NULL, 'manual', CASE status WHEN 'failed' THEN 'failed' "
               "WHEN 'cancelled' THEN 'cancelled' WHEN 'running' THEN 'failed' ELSE 'ok' END, '{}', message, "
               "started_at, finished_at FROM run WHERE trigger = 'reconcile'")
    op.execute("DELETE FROM run WHERE trigger = 'reconcile'")


def downgrade() -> None:
    op.drop_index("ix_reconciliation_workspace_id", table_name="reconciliation")
    op.drop_table("reconciliation")
