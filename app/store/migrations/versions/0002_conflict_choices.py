"""conflict choices: what a person picked, and when it was applied

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conflict") as batch:
        batch.add_column(sa.Column("chosen_value", sa.Text(), nullable=True))
        batch.add_column(sa.Column("choice", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("applied_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conflict") as batch:
        batch.drop_column("applied_at")
        batch.drop_column("choice")
        batch.drop_column("chosen_value")
