"""api_budgets: per-connection API calls spent and the CRM's last reported limits

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import leadbridge.store.tables

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_budgets",
        sa.Column("connection_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("day_calls", sa.Integer(), nullable=False),
        sa.Column("window_start", leadbridge.store.tables.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("window_calls", sa.Integer(), nullable=False),
        sa.Column("blocked_until", leadbridge.store.tables.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("blocked_reason", sa.Text(), nullable=True),
        sa.Column("crm_window", sa.String(length=60), nullable=True),
        sa.Column("crm_remaining", sa.Float(), nullable=True),
        sa.Column("crm_limit", sa.Float(), nullable=True),
        sa.Column("crm_seen_at", leadbridge.store.tables.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("updated_at", leadbridge.store.tables.UTCDateTime(timezone=True),
                  nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"],
                                name=op.f("fk_api_budgets_connection_id_connections"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_api_budgets")),
    )


def downgrade() -> None:
    op.drop_table("api_budgets")
