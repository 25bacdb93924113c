"""provider budget: each provider account's calls today and hold, shared by every process

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_budget",
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=True),
        sa.Column("window_index", sa.BigInteger(), nullable=False),
        sa.Column("window_used", sa.Integer(), nullable=False),
        sa.Column("previous_used", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.Column("blocked_reason", sa.String(length=12), nullable=False),
        sa.Column("run_calls", sa.Integer(), nullable=True),
        sa.Column("batch_calls", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("provider_budget")
