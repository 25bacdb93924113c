"""idle indexes: a run finds the journal's unanswered writes (and the undos) of its workspace without
reading the whole journal, which grows with every write ever made

Revision ID: 0007_idle_indexes
Revises: 0006_detail_cache
"""

from alembic import op

revision = "0007_idle_indexes"
down_revision = "0006_detail_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_journal_op_status", "journal", ["workspace_id", "op", "status"])


def downgrade() -> None:
    op.drop_index("ix_journal_op_status", table_name="journal")
