"""field_changes: an index by time, so the sync engine prunes the log in small batches

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("field_changes", schema=None) as batch_op:
        batch_op.create_index("ix_field_changes_hub_object_changed_at",
                              ["hub_object", "changed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("field_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_field_changes_hub_object_changed_at")
