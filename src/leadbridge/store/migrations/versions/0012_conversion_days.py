"""conversions: periods found through the UTC day (occurred_on), not an index on the exact time

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite adds a NOT NULL column only with a default; every row gets its own value below
    op.add_column("conversions", sa.Column(
        "occurred_on", sa.Date(), nullable=not sqlite,
        server_default=sa.text("'1970-01-01'") if sqlite else None))
    if sqlite:  # 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC
        op.execute("UPDATE conversions SET occurred_on = substr(occurred_at, 1, 10)")
        # then without the default (the table is copied): a row must say its own day
        with op.batch_alter_table("conversions", recreate="always") as batch_op:
            batch_op.alter_column("occurred_on", existing_type=sa.Date(), nullable=False,
                                  server_default=None)
    else:
        op.execute("UPDATE conversions SET occurred_on = (occurred_at AT TIME ZONE 'UTC')::date")
        op.alter_column("conversions", "occurred_on", existing_type=sa.Date(), nullable=False)
    op.drop_index("ix_conversions_occurred_at", table_name="conversions")
    op.create_index("ix_conversions_occurred_on", "conversions", ["occurred_on"])


def downgrade() -> None:
    op.drop_index("ix_conversions_occurred_on", table_name="conversions")
    op.create_index("ix_conversions_occurred_at", "conversions", ["occurred_at"])
    op.drop_column("conversions", "occurred_on")
