"""detail cache: what a ledger's list leaves out (Zoho Books contact details), kept per provider account

Revision ID: 0006_detail_cache
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_detail_cache"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detail_cache",
        sa.Column("account", sa.String(length=240), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("remote_id", sa.String(length=120), nullable=False),
        sa.Column("version", sa.String(length=120), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("account", "kind", "remote_id"),
    )


def downgrade() -> None:
    op.drop_table("detail_cache")
