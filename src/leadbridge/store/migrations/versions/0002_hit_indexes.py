"""Hits: newest-first listing index; contact index only over identified hits.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_hits_contact_id", table_name="hits")
    op.create_index("ix_hits_contact_id", "hits", ["contact_id"],
                    sqlite_where=sa.text("contact_id IS NOT NULL"),
                    postgresql_where=sa.text("contact_id IS NOT NULL"))
    op.create_index("ix_hits_occurred_at", "hits", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_hits_occurred_at", table_name="hits")
    op.drop_index("ix_hits_contact_id", table_name="hits")
    op.create_index("ix_hits_contact_id", "hits", ["contact_id"])
